import PacketWire
import Timeline

/// Plain-language notes for `--explain`: one place for every text, keyed by what a packet means or which TCP
/// state a socket entered, in English and Japanese.
public enum Explanations {
    /// What a packet means, decided from its flags and the attribution's reason (never from its rendering).
    public enum Meaning: String, Sendable, CaseIterable {
        case syn, synAck, synRetransmit, handshakeAck, data, dataAck, windowUpdate, duplicateAck, retransmission
        case fin, finAck, reset, abortReset, refusedReset, keepAliveProbe, keepAliveAck, datagram, portUnreachable
    }

    public static func meaning(of p: PacketEvent) -> Meaning? {
        if p.proto == .udp { return .datagram }
        if p.proto.isICMP {
            if case .icmp(let summary?, _)? = p.kernel, summary.contains("port unreachable") { return .portUnreachable }
            return nil
        }
        guard let flags = p.flags else { return nil }
        switch p.kernel {
        case .synRetransmission?: return .synRetransmit
        case .keepAliveProbe?: return .keepAliveProbe
        case .keepAliveAck?: return .keepAliveAck
        default: break
        }
        if flags.contains(.rst) {
            if p.kernel == .refusedReset { return .refusedReset }
            return p.byKernel ? .reset : .abortReset
        }
        if flags.contains(.syn) { return flags.contains(.ack) ? .synAck : .syn }
        if case .retransmission? = p.kernel { return .retransmission }
        if flags.contains(.fin) { return .fin }
        if p.length > 0 { return .data }
        switch p.kernel {
        case .ackOfFIN?: return .finAck
        case .ackOfData?: return .dataAck
        case .windowUpdate?: return .windowUpdate
        case .duplicateAck?: return .duplicateAck
        default: return .handshakeAck
        }
    }

    public static func packet(_ p: PacketEvent, _ language: Language) -> String? {
        guard let m = meaning(of: p) else { return nil }
        let (en, ja): (String, String) =
            switch m {
            case .syn:
                (
                    "asks to open a connection and announces its options (MSS, window scale)",
                    "接続を開くよう求め、オプション (MSS、ウィンドウスケール) を伝える"
                )
            case .synAck:
                (
                    "the listening socket's kernel agrees, before any accept() runs",
                    "accept() より前に、待ち受けソケットのカーネルが応じる"
                )
            case .synRetransmit:
                (
                    "no answer came, so the kernel sends the SYN again",
                    "応答がないので、カーネルが SYN を送り直す"
                )
            case .handshakeAck:
                (
                    "acknowledges the SYN/ACK: the connection is established",
                    "SYN/ACK を確認: 接続が確立する"
                )
            case .data: ("carries the application's bytes", "アプリケーションのデータを運ぶ")
            case .dataAck:
                (
                    "the receiving kernel confirms the bytes arrived; the program has not necessarily read them",
                    "受信側カーネルが到着を確認する (プログラムが読んだとは限らない)"
                )
            case .windowUpdate:
                (
                    "same acknowledgment, more room in the receive buffer",
                    "確認番号は同じで、受信バッファの空きが増えたことを伝える"
                )
            case .duplicateAck: ("repeats the last acknowledgment", "前回と同じ確認応答を繰り返す")
            case .retransmission: ("sends bytes again that were sent before", "以前に送ったデータを再び送る")
            case .fin: ("no more data from this side (close or shutdown)", "この側からはもう送らない (close または shutdown)")
            case .finAck:
                (
                    "the kernel confirms the FIN; the program learns of it when recv returns 0",
                    "カーネルが FIN を確認する。プログラムは recv が 0 を返すと知る"
                )
            case .reset: ("the kernel tears the connection down at once", "カーネルが接続を即座に破棄する")
            case .abortReset:
                (
                    "this call aborted the connection: SO_LINGER 0 or unread data, so RST instead of FIN",
                    "この呼び出しが接続を中断した (SO_LINGER 0 か未読データ): FIN ではなく RST"
                )
            case .refusedReset:
                (
                    "nothing listens on that port: the kernel refuses, connect fails with ECONNREFUSED",
                    "そのポートで待ち受けるものがない: カーネルが拒否し connect は ECONNREFUSED"
                )
            case .keepAliveProbe:
                (
                    "the connection was idle: is the peer still there? (one byte behind, no data)",
                    "接続がアイドル: 相手はまだいるか? (1つ前のシーケンス番号、データなし)"
                )
            case .keepAliveAck: ("the peer's kernel answers the probe: still alive", "相手側カーネルがプローブに答える: まだ生きている")
            case .datagram:
                (
                    "one datagram, sent as is: no connection, no acknowledgment",
                    "データグラム1つをそのまま送る: 接続も確認応答もない"
                )
            case .portUnreachable:
                (
                    "nothing listens on that UDP port: the kernel reports it with ICMP",
                    "その UDP ポートには誰もいない: カーネルが ICMP で知らせる"
                )
            }
        return language == .ja ? ja : en
    }

    /// What entering `state` means for a socket.
    public static func state(_ state: TCPState, _ language: Language) -> String? {
        let (en, ja): (String, String)
        switch state {
        case .listen: (en, ja) = ("waits for connections; its kernel answers SYNs", "接続を待つ。SYN にはカーネルが答える")
        case .synSent: (en, ja) = ("SYN sent, waiting for SYN/ACK", "SYN を送り SYN/ACK を待つ")
        case .established: (en, ja) = ("connected: data can flow both ways", "接続済み: 双方向にデータを送れる")
        case .finWait1: (en, ja) = ("sent its FIN, waiting for the ACK", "FIN を送り ACK を待つ")
        case .finWait2: (en, ja) = ("its FIN was acknowledged; waiting for the peer's FIN", "FIN は確認された。相手の FIN を待つ")
        case .closeWait: (en, ja) = ("the peer is done sending; this side should close", "相手は送信を終えた。こちらが close すべき")
        case .lastAck:
            (en, ja) = ("sent its FIN after the peer's; waiting for the last ACK", "相手の後に FIN を送り、最後の ACK を待つ")
        case .closing: (en, ja) = ("both FINs crossed: simultaneous close", "FIN が交差した: 同時クローズ")
        case .timeWait:
            (en, ja) = ("closed first, so it waits (60 s) for stray segments", "先に閉じたので、迷子のセグメントに備えて待つ (60 秒)")
        case .closed: (en, ja) = ("no connection", "接続なし")
        default: return nil
        }
        return language == .ja ? ja : en
    }
}

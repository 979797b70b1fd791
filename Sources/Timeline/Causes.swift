/// Why a packet is on the wire, as a value: the attributors decide it, every renderer words it from one table.

/// The language of labels and notes. Packet fields (flags, seq, ack) stay as Wireshark prints them in both.
public enum Language: String, Sendable, CaseIterable {
    case en, ja
}

/// Someone a cause names: one of the lab's roles, a traced process, an endpoint nobody traced, or the peer.
public enum Party: Sendable, Hashable {
    /// The lab's "server", "client", "client 2": spoken of as "the client".
    case role(String)
    /// A traced process, "python3[1234]".
    case process(String)
    /// An endpoint no traced socket owns, "127.0.0.1:5000".
    case endpoint(String)
    /// The other side, unnamed.
    case peer

    /// "the client" / "クライアント", "python3[1234]", "the peer" / "相手側".
    public func name(_ language: Language) -> String {
        switch (self, language) {
        case (.role(let r), .en): "the \(r)"
        case (.role(let r), .ja): Self.japaneseRole(r)
        case (.process(let p), _), (.endpoint(let p), _): p
        case (.peer, .en): "the peer"
        case (.peer, .ja): "相手側"
        }
    }

    /// "server" → サーバー, "client 2" → クライアント 2; other names as they are.
    public static func japaneseRole(_ role: String) -> String {
        if role == "server" { return "サーバー" }
        if role == "client" { return "クライアント" }
        if role.hasPrefix("client ") { return "クライアント" + role.dropFirst(6) }
        return role
    }
}

/// Why a kernel sent a packet by itself rather than as the direct effect of a call, with the data that says which.
///
/// ``text(_:)`` is the one table of how each reason reads, in English (the JSON Lines `reason`, which stays as it
/// always was) and Japanese.
public enum KernelReason: Sendable, Hashable {
    /// A listening socket's kernel answers a SYN before any accept(2).
    case synAckOfListener
    /// The connecting side's kernel sends its SYN again: no SYN/ACK came (a full backlog ignores SYNs).
    case synRetransmission
    /// The listening side's kernel sends its SYN/ACK again: the final ACK did not come.
    case synAckRetransmission
    /// The last segment of the three-way handshake, when no traced connect(2) sent it.
    case handshakeAck
    /// A pure ACK of new bytes.
    case ackOfData
    /// A pure ACK of the peer's FIN.
    case ackOfFIN
    /// The same acknowledgment again with a new window.
    case windowUpdate
    /// The same acknowledgment and window again.
    case duplicateAck
    /// Bytes sent again; `call` is the call that wrote them, when known.
    case retransmission(call: Int?)
    /// A FIN sent again.
    case finRetransmission
    /// An idle connection's probe: one byte behind, no data.
    case keepAliveProbe
    /// The peer's answer to a keep-alive probe.
    case keepAliveAck
    /// A RST for a port where nothing listens.
    case refusedReset
    /// A RST that a party's kernel sent for its own reasons.
    case resetFrom(Party)
    /// The FIN of a socket the kernel closed when its process exited.
    case finAtExit
    /// The RST of a socket the kernel closed, with data unread, when its process exited.
    case resetAtExit
    /// What call `call` handed the kernel (bytes, a FIN, the handshake's end), built later by the kernel in
    /// `context` ("NET_RX" when an ACK let it go, "TIMER"): Nagle, a full window, a handshake finished in a softirq.
    case deferred(call: Int, context: String)
    /// A segment a party's kernel sent while another party ran a call (the lab).
    case sentDuring(sender: Party, actor: Party, call: String?)
    /// A packet a party's kernel sent, or (nil) a kernel with no more precise reason.
    case sentBy(Party?)
    /// An ICMP message, with the decoder's summary ("port unreachable"); for an error about a datagram a traced
    /// process sent, who sent it and where to.
    case icmp(summary: String?, undelivered: UndeliveredDatagram?)
    /// Address resolution.
    case arp

    /// The datagram an ICMP error quotes: `sender` sent it to `destination`.
    public struct UndeliveredDatagram: Sendable, Hashable {
        public var sender: String
        public var destination: String
        public init(sender: String, destination: String) {
            self.sender = sender
            self.destination = destination
        }
    }

    /// The reason as a reader sees it. English is the JSON Lines contract's `reason`.
    public func text(_ language: Language) -> String {
        let (en, ja): (String, String)
        switch self {
        case .synAckOfListener: (en, ja) = ("SYN/ACK of a listening socket", "待ち受けソケットのカーネルが返すSYN/ACK")
        case .synRetransmission: (en, ja) = ("SYN retransmitted: no SYN/ACK yet", "SYN再送(SYN/ACKが来ない)")
        case .synAckRetransmission: (en, ja) = ("SYN/ACK retransmitted", "SYN/ACK再送(最後のACKが来ない)")
        case .handshakeAck: (en, ja) = ("ACK completing the handshake", "ハンドシェイクを完了するACK")
        case .ackOfData: (en, ja) = ("ACK of data", "受信データへのACK")
        case .ackOfFIN: (en, ja) = ("ACK of FIN", "FINへのACK")
        case .windowUpdate: (en, ja) = ("window update", "ウィンドウ更新")
        case .duplicateAck: (en, ja) = ("duplicate ACK", "重複ACK")
        case .retransmission(nil): (en, ja) = ("retransmission", "再送")
        case .retransmission(let call?):
            (en, ja) = ("retransmission of bytes from call #\(call)", "呼び出し #\(call) のデータの再送")
        case .finRetransmission: (en, ja) = ("FIN retransmitted", "FIN再送")
        case .keepAliveProbe: (en, ja) = ("keep-alive probe", "キープアライブ")
        case .keepAliveAck: (en, ja) = ("ACK of keep-alive probe", "キープアライブへのACK")
        case .refusedReset: (en, ja) = ("RST: no socket listening on this port", "RST: このポートで待ち受けるソケットがない")
        case .resetFrom(let party):
            (en, ja) = ("RST from \(party.name(.en))'s kernel", "\(party.name(.ja))のカーネルからのRST")
        case .finAtExit:
            (en, ja) = (
                "FIN sent when the process exited: the kernel closed the socket",
                "プロセスの終了時にカーネルがソケットを閉じて送ったFIN"
            )
        case .resetAtExit:
            (en, ja) = (
                "RST sent when the process exited with data unread: the kernel aborted the connection",
                "未読データを残してプロセスが終了したため、カーネルが接続を中断して送ったRST"
            )
        case .deferred(let call, let context):
            (en, ja) = (
                "sent later for call #\(call) by the kernel (\(context))",
                "呼び出し #\(call) の分をカーネルが後で送信 (\(context))"
            )
        case .sentDuring(let sender, let actor, let call):
            (en, ja) = (
                "sent by \(sender.name(.en))'s kernel while \(actor.name(.en)) ran \(call ?? "a call")",
                "\(actor.name(.ja))が\(call ?? "呼び出し")を実行中に\(sender.name(.ja))のカーネルが送信"
            )
        case .sentBy(let party?): (en, ja) = ("sent by \(party.name(.en))'s kernel", "\(party.name(.ja))のカーネルが送信")
        case .sentBy(nil): (en, ja) = ("sent by the kernel", "呼び出しによらずカーネルが送信")
        case .icmp(let summary, let undelivered):
            let name = summary.map { "ICMP \($0)" } ?? "ICMP"
            let nameJa = summary.map { "ICMP \(Self.japaneseICMP($0))" } ?? "ICMPメッセージ"
            if let u = undelivered {
                (en, ja) = (
                    "\(name): the datagram \(u.sender) sent to \(u.destination) was not delivered",
                    "\(nameJa): \(u.sender) が \(u.destination) に送ったデータグラムは届かなかった"
                )
            } else {
                (en, ja) = (name, nameJa)
            }
        case .arp: (en, ja) = ("ARP: address resolution", "ARP: アドレス解決")
        }
        return language == .ja ? ja : en
    }

    /// The decoder's ICMP summaries in Japanese; others as they are.
    static func japaneseICMP(_ summary: String) -> String {
        switch summary {
        case "port unreachable": "ポート到達不能"
        case "host unreachable": "ホスト到達不能"
        case "net unreachable": "ネットワーク到達不能"
        case "protocol unreachable": "プロトコル到達不能"
        case "echo request": "エコー要求"
        case "echo reply": "エコー応答"
        case "time exceeded": "時間超過"
        default: summary
        }
    }

    /// Each reason without its data, to walk them all (the test that every reason reads in both languages).
    public enum Kind: CaseIterable, Sendable {
        case synAckOfListener, synRetransmission, synAckRetransmission, handshakeAck, ackOfData, ackOfFIN
        case windowUpdate, duplicateAck, retransmission, finRetransmission, keepAliveProbe, keepAliveAck
        case refusedReset, resetFrom, finAtExit, resetAtExit, deferred, sentDuring, sentBy, icmp, arp
    }

    public var kind: Kind {
        switch self {
        case .synAckOfListener: .synAckOfListener
        case .synRetransmission: .synRetransmission
        case .synAckRetransmission: .synAckRetransmission
        case .handshakeAck: .handshakeAck
        case .ackOfData: .ackOfData
        case .ackOfFIN: .ackOfFIN
        case .windowUpdate: .windowUpdate
        case .duplicateAck: .duplicateAck
        case .retransmission: .retransmission
        case .finRetransmission: .finRetransmission
        case .keepAliveProbe: .keepAliveProbe
        case .keepAliveAck: .keepAliveAck
        case .refusedReset: .refusedReset
        case .resetFrom: .resetFrom
        case .finAtExit: .finAtExit
        case .resetAtExit: .resetAtExit
        case .deferred: .deferred
        case .sentDuring: .sentDuring
        case .sentBy: .sentBy
        case .icmp: .icmp
        case .arp: .arp
        }
    }
}

/// Where the kernel built a packet, as an engine that watches the kernel saw it (the eBPF engine; ptrace cannot
/// see it, and leaves it nil). With it a packet's cause is what the kernel was doing, not an inference from its
/// content.
public enum PacketContext: Sendable, Hashable {
    /// Inside traced call `call`; `ownSocket` when the packet belongs to the socket the call works on (on loopback
    /// a call also builds the peer's packets, and accept may flush another socket's backlog).
    case call(Int, ownSocket: Bool)
    /// In a softirq ("NET_RX": an ACK of data, a SYN/ACK; "TIMER": a delayed ACK, a retransmission, a keep-alive),
    /// on top of traced call `interrupted` if any (where it happened, not why).
    case softirq(String, interrupted: Int?)
    /// By a traced task outside its socket calls: `lastCall` is its previous one; `exiting` while it exits (a FIN
    /// or RST of a socket its exit closed).
    case afterCall(lastCall: Int?, exiting: Bool)
    /// By a task that is not traced (an untraced peer on this host), named "comm[pid]" when known.
    case untraced(String?)

    /// The JSON Lines `"context"`: "call", "softirq", "after-call", "untraced".
    public var label: String {
        switch self {
        case .call: "call"
        case .softirq: "softirq"
        case .afterCall: "after-call"
        case .untraced: "untraced"
        }
    }
}

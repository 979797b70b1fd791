import PacketWire
import Sockets
import SyscallTrace
import Timeline

/// Attributes captured packets to traced calls by content, not by timing.
///
/// On loopback the peer's pure ACK falls inside the other side's call, under ptrace a data segment can be stamped
/// after the sending call returned, and a reply often arrives before recv(2) is entered: so a packet's time says
/// little. Its content says a lot. A packet belongs to the traced socket whose local/remote addresses match its
/// 4-tuple, and within that socket:
/// - a SYN to connect(2); the handshake's final ACK to connect as well;
/// - data bytes k..m (relative sequence numbers, from the SYN) to the send call that wrote bytes k..m, by keeping
///   the running count of bytes each send call wrote on that socket;
/// - a FIN (its sequence number follows the last byte written) to the socket's shutdown(SHUT_WR/RDWR) or close;
/// - received bytes to the receive call that consumed them (`consumedBy`), the peer's FIN to the recv that read 0;
/// - SYN/ACKs of listening sockets, pure ACKs, window updates, retransmissions, keep-alives and RSTs for ports
///   nobody listens on: sent by a kernel by itself (`byKernel`), with a `reason`.
/// UDP datagrams go to the send call of the same socket and length, in order.
public struct TraceAttributor {
    public var calls: [TracedCall]
    public var sockets: [UInt64: SocketRecord]

    public init(calls: [TracedCall], sockets: [UInt64: SocketRecord]) {
        self.calls = calls
        self.sockets = sockets
    }

    /// One socket's byte accounting in each direction.
    struct Ledger {
        /// (call id, first byte offset, end offset) of each successful send, in order.
        var sent: [(Int, Int, Int)] = []
        var received: [(Int, Int, Int)] = []
        var connect: Int?
        var accept: Int?
        var closeOrShutdown: Int?
        var eofRead: Int?
        var closed: Int?
        var firstCall: Timestamp?
        var sentTotal = 0
        var receivedTotal = 0
    }

    /// Per direction of a TCP stream: what it sent, and how many pure ACKs (the first may complete connect).
    struct DirectionState {
        var sent = SegmentDirection()
        var pureAcks = 0
    }

    func ledgers() -> [UInt64: Ledger] {
        var out: [UInt64: Ledger] = [:]
        for c in calls {
            guard let inode = c.socket else { continue }
            var l = out[inode] ?? Ledger()
            if l.firstCall == nil { l.firstCall = c.start }
            switch c.syscall {
            case .connect where l.connect == nil: l.connect = c.id
            case .accept, .accept4: if c.succeeded { l.accept = c.id }
            case .shutdown:
                if c.succeeded, c.how == 1 || c.how == 2, l.closeOrShutdown == nil { l.closeOrShutdown = c.id }
            case .close:
                l.closed = c.id
            default:
                if c.syscall.sends, c.byteCount > 0 {
                    l.sent.append((c.id, l.sentTotal, l.sentTotal + c.byteCount))
                    l.sentTotal += c.byteCount
                } else if c.syscall.receives, c.succeeded {
                    if c.returnValue == 0 {
                        if l.eofRead == nil { l.eofRead = c.id }
                    } else {
                        l.received.append((c.id, l.receivedTotal, l.receivedTotal + c.byteCount))
                        l.receivedTotal += c.byteCount
                    }
                }
            }
            out[inode] = l
        }
        // accept's call belongs to the listening socket; the new socket is the one it returned.
        for c in calls where (c.syscall == .accept || c.syscall == .accept4) && c.succeeded {
            if let inode = c.socket { out[inode, default: Ledger()].accept = c.id }
        }
        return out
    }

    /// The sockets by port pair, so each packet looks at the few sockets that can match it instead of all of them
    /// (a trace of 1000 connections captures ~10 000 packets). Buckets keep `sockets`' iteration order.
    struct PortIndex {
        /// (local port << 16 | remote port) -> connected sockets.
        var connected: [UInt32: [SocketRecord]] = [:]
        /// local port -> unconnected UDP sockets.
        var unconnectedUDP: [UInt16: [SocketRecord]] = [:]
        /// remote port -> TCP sockets that connect(2)ed without their local port ever being learnt: a refused
        /// connect leaves the socket in no kernel table, so where getsockname cannot be asked (a container
        /// without CAP_SYS_PTRACE) only its SYN and the RST can tell, matched by the connect call's time.
        var portless: [UInt16: [SocketRecord]] = [:]

        init(_ sockets: [UInt64: SocketRecord]) {
            for s in sockets.values {
                if s.isTCP, let r = s.remote, (s.local?.port ?? 0) == 0 {
                    portless[r.port, default: []].append(s)
                    continue
                }
                if let l = s.local, let r = s.remote {
                    connected[UInt32(l.port) << 16 | UInt32(r.port), default: []].append(s)
                } else if s.isUDP, s.remote == nil, let l = s.local {
                    unconnectedUDP[l.port, default: []].append(s)
                }
            }
        }
    }

    /// The traced socket that sent (`outgoing`) or receives a packet between `src` and `dst`.
    func socket(
        local: Endpoint, remote: Endpoint, at time: Timestamp, ledgers: [UInt64: Ledger], udp: Bool = false,
        index: PortIndex? = nil, connectWindows: [UInt64: (start: Timestamp, end: Timestamp)]? = nil
    )
        -> SocketRecord?
    {
        let index = index ?? PortIndex(sockets)
        // A connect(2) the peer refused leaves the socket's local address reset to any (the port stays): its SYN
        // and the RST are still its own.
        var matches = (index.connected[UInt32(local.port) << 16 | UInt32(remote.port)] ?? []).filter {
            guard let l = $0.local, let r = $0.remote else { return false }
            return l.port == local.port && r.port == remote.port
                && (Self.same(l.ip, local.address) || Self.isAny(l.ip)) && Self.same(r.ip, remote.address)
        }
        if matches.isEmpty && udp {
            // An unconnected datagram socket: its local port (and address, unless bound to any) is enough.
            matches = (index.unconnectedUDP[local.port] ?? []).filter {
                guard $0.isUDP, $0.remote == nil, let l = $0.local else { return false }
                return l.port == local.port && (Self.isAny(l.ip) || Self.same(l.ip, local.address))
            }
        }
        if matches.isEmpty && !udp, let windows = connectWindows {
            matches = (index.portless[remote.port] ?? []).filter {
                guard let r = $0.remote, Self.same(r.ip, remote.address), let w = windows[$0.inode] else {
                    return false
                }
                return w.start <= time && time <= w.end
            }
        }
        if matches.count <= 1 { return matches.first }
        // A reused 4-tuple: the last socket whose first call came before the packet.
        return matches.filter { (ledgers[$0.inode]?.firstCall ?? time) <= time }
            .max { (ledgers[$0.inode]?.firstCall ?? time) < (ledgers[$1.inode]?.firstCall ?? time) } ?? matches.first
    }

    static func isAny(_ a: IPAddress) -> Bool { a == .v4(0) || a == .v6(0, 0) }

    /// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) on a dual-stack socket match the IPv4 packet.
    static func same(_ a: IPAddress, _ b: IPAddress) -> Bool {
        if a == b { return true }
        func v4(_ x: IPAddress) -> IPAddress? {
            if case .v6(let hi, let lo) = x, hi == 0, lo >> 32 == 0xffff { return .v4(UInt32(truncatingIfNeeded: lo)) }
            return nil
        }
        return v4(a) == b || v4(b) == a
    }

    func actorName(_ record: SocketRecord?) -> String? { record?.owner }

    /// Fills `call`, `sender`, `kernel` and `consumedBy` of each packet (in capture order), and returns
    /// the frames that touch a traced socket (the rest is other traffic on the interface).
    @discardableResult
    public func attribute(_ packets: inout [PacketEvent]) -> Set<Int> {
        var related: Set<Int> = []
        let ledgers = ledgers()
        var directions: [StreamDirection: DirectionState] = [:]
        var udpSendUsed: Set<Int> = []
        var udpRecvUsed: Set<Int> = []
        // Each call's position by id (positions, not copies of whole calls with their strings and arguments).
        let position = Dictionary(uniqueKeysWithValues: calls.indices.map { (calls[$0].id, $0) })
        let index = PortIndex(sockets)
        // The time of each port-less socket's connect(2), during which its SYN and the peer's answer pass.
        var windows: [UInt64: (start: Timestamp, end: Timestamp)] = [:]
        for s in index.portless.values.joined() {
            if let id = ledgers[s.inode]?.connect, let i = position[id] {
                windows[s.inode] = (calls[i].start, calls[i].end)
            }
        }
        // Each packet in place (a copy of each event out and back retained and released every string in it).
        func attribute(_ p: inout PacketEvent) {
            guard let src = p.sourceEndpoint, let dst = p.destinationEndpoint else {
                if p.proto.isICMP {
                    p.kernel = .icmp(summary: p.summary, undelivered: nil)
                    // An error about a datagram a traced socket sent belongs to the program's picture.
                    if let qs = p.quotedSource, let qd = p.quotedDestination,
                        let owner = socket(
                            local: qs, remote: qd, at: p.timestamp, ledgers: ledgers, udp: true,
                            index: index)
                    {
                        related.insert(p.frame)
                        p.kernel = .icmp(
                            summary: p.summary,
                            undelivered: .init(sender: owner.owner, destination: qd.description))
                    }
                } else if p.proto == .arp {
                    p.kernel = .arp
                }
                return
            }
            let udp = p.proto == .udp
            let sender = socket(
                local: src, remote: dst, at: p.timestamp, ledgers: ledgers, udp: udp, index: index,
                connectWindows: windows)
            let receiver = socket(
                local: dst, remote: src, at: p.timestamp, ledgers: ledgers, udp: udp, index: index,
                connectWindows: windows)
            if sender != nil || receiver != nil { related.insert(p.frame) }
            p.sender = sender?.owner ?? src.description
            let out = sender.flatMap { ledgers[$0.inode] }
            let inn = receiver.flatMap { ledgers[$0.inode] }

            if p.proto == .udp {
                if let out {
                    p.call = out.sent.first { !udpSendUsed.contains($0.0) && $0.2 - $0.1 == p.length }?.0
                    if let c = p.call { udpSendUsed.insert(c) }
                }
                if let inn {
                    p.consumedBy = inn.received.first { !udpRecvUsed.contains($0.0) && $0.2 - $0.1 == p.length }?.0
                    if let c = p.consumedBy { udpRecvUsed.insert(c) }
                }
                return
            }
            guard p.proto == .tcp, let flags = p.flags, let rawSeq = p.seq, let rawAck = p.ack else {
                return
            }
            let seq = SequenceNumber(rawSeq)
            let ack = SequenceNumber(rawAck)
            let key = StreamDirection(stream: p.stream ?? -1, fromSource: src)
            var mine = directions[key] ?? DirectionState()
            let theirs = directions[StreamDirection(stream: p.stream ?? -1, fromSource: dst)] ?? DirectionState()
            let retransmission = mine.sent.isRetransmission(seq: seq, length: p.length, flags: flags)
            let keepAlive = mine.sent.isKeepAlive(seq: seq, length: p.length, flags: flags)
            var call: Int?
            var reason: KernelReason?
            // Byte offset in the direction's stream (relative seq 1 is the first byte after the SYN).
            let offset = Int(rawSeq) - 1

            if keepAlive {
                reason = .keepAliveProbe
            } else if flags.contains(.syn) && !flags.contains(.ack) {
                call = out?.connect
                if retransmission { reason = .synRetransmission }
                if let inn, let a = inn.accept { p.consumedBy = a }
            } else if flags.contains(.syn) {
                reason = retransmission ? .synAckRetransmission : .synAckOfListener
            } else if flags.contains(.rst) {
                if !mine.sent.hasSent && flags.contains(.ack) {
                    reason = .refusedReset
                } else if let c = out?.closed {
                    call = c  // close(2) with unread data (or SO_LINGER 0) aborts the connection
                } else {
                    reason = .resetFrom(sender.map { .process($0.owner) } ?? .endpoint(src.description))
                }
            } else if p.length > 0 {
                call = out?.sent.first { offset >= $0.1 && offset < $0.2 }?.0
                if retransmission { reason = .retransmission(call: call) }
                p.consumedBy = inn?.received.first { offset >= $0.1 && offset < $0.2 }?.0
                if flags.contains(.fin), reason == nil, call == nil { call = out?.closeOrShutdown ?? out?.closed }
            } else if flags.contains(.fin) {
                if retransmission {
                    reason = .finRetransmission
                } else if let c = out?.closeOrShutdown ?? out?.closed {
                    call = c
                } else if sender != nil {
                    reason = .finAtExit
                }
                if let inn, let eof = inn.eofRead { p.consumedBy = eof }
            } else {
                // A pure ACK.
                if mine.pureAcks == 0, rawSeq == 1, rawAck == 1, theirs.sent.finNext == nil,
                    let c = out?.connect
                {
                    call = c  // the handshake's last ACK completes connect(2)
                } else {
                    reason = mine.sent.pureAckReason(ack: ack, window: p.window, peer: theirs.sent)
                }
                if mine.pureAcks == 0, rawSeq == 1, rawAck == 1, call == nil, reason == .ackOfData {
                    reason = .handshakeAck
                }
                mine.pureAcks += 1
            }
            p.call = call
            if reason == nil && call == nil && sender != nil { reason = .sentBy(nil) }
            p.kernel = reason
            if let c = call, let i = position[c] { p.sender = calls[i].actor }

            mine.sent.record(seq: seq, length: p.length, flags: flags, ack: ack, window: p.window)
            directions[key] = mine
        }
        for i in packets.indices { attribute(&packets[i]) }
        return related
    }
}

extension Optional where Wrapped == Bool {
    var orFalse: Bool { self ?? false }
}

import PacketWire
import Sockets
import Timeline

extension KernelTraceRun {
    /// The TCP connections the packet records show closed at both ends, each once as (one end, the other): since
    /// the last SYN between those ends, each end sent a FIN that the other acknowledged, or one of them sent an
    /// RST. Neither end can then send anything by itself (it is in TIME_WAIT or gone) unless a packet was lost and
    /// has to be sent again. The program records every packet it queues for the traced sockets and for their peers
    /// on this host, so a trace session can tell from this that the wire has settled without asking sock_diag,
    /// which walks every TCP socket of the machine (a dump takes ~14 ms with 66,000 in TIME_WAIT). A peer on
    /// another host sends packets that are received, not queued here: its connections never show closed, and the
    /// session asks the kernel as before. Empty when the ring lost packet records: a lost SYN could hide a new
    /// connection between the same ends.
    public var closedConnections: [(SocketAddress, SocketAddress)] {
        guard counters.lostPackets == 0 else { return [] }
        var connections: [ClosingEnds: ClosingState] = [:]
        for packet in packets {
            guard let key = packet.key, key.ipProtocol == 6 else { continue }
            let source = SocketAddress(ip: key.source, port: key.sourcePort)
            let ends = ClosingEnds(source, SocketAddress(ip: key.destination, port: key.destinationPort))
            let flags = TCPFlags(rawValue: UInt16(key.flags))
            if flags.contains(.syn) && !flags.contains(.ack) {
                connections[ends] = ClosingState()  // a new connection between the same ends
            }
            connections[ends, default: ClosingState()].record(key, flags: flags, fromFirst: ends.first == source)
        }
        return connections.filter(\.value.closed).map { ($0.key.first, $0.key.second) }
    }
}

/// The two ends of a connection, in one order whichever end sent the packet.
struct ClosingEnds: Hashable {
    var first: SocketAddress
    var second: SocketAddress

    init(_ a: SocketAddress, _ b: SocketAddress) {
        (first, second) = (a.ip, a.port) <= (b.ip, b.port) ? (a, b) : (b, a)
    }
}

/// How far one connection has closed, from its packets in the order they were queued.
struct ClosingState {
    /// Per end (first, second): the sequence number just after its FIN, which an acknowledgment must reach.
    var finEnd: (first: SequenceNumber?, second: SequenceNumber?) = (nil, nil)
    var finAcknowledged = (first: false, second: false)
    var reset = false

    var closed: Bool { reset || (finAcknowledged.first && finAcknowledged.second) }

    mutating func record(_ key: KernelPacketKey, flags: TCPFlags, fromFirst: Bool) {
        if flags.contains(.rst) { reset = true }
        if flags.contains(.fin) {
            let end = SequenceNumber(key.seq) + UInt32(truncatingIfNeeded: key.length) + 1
            if fromFirst { finEnd.first = end } else { finEnd.second = end }
        }
        guard flags.contains(.ack) else { return }
        // The other end's FIN is acknowledged by an acknowledgment at or beyond it, in sequence space (which wraps).
        let ack = SequenceNumber(key.ack)
        if fromFirst {
            if let end = finEnd.second, ack >= end { finAcknowledged.second = true }
        } else {
            if let end = finEnd.first, ack >= end { finAcknowledged.first = true }
        }
    }
}

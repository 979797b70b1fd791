import PacketWire

extension KernelPacketKey {
    /// The key of a captured packet, read as the BPF program reads the kernel's copy: raw sequence numbers, the
    /// protocol of the IP header itself (IPv6 extension headers are not followed there, so a packet with one is
    /// keyed by its addresses, first next-header and IP payload length), the TCP/UDP payload length, or for other
    /// protocols the IP payload length. nil for a packet without an IP header (ARP).
    public init?(_ d: DecodedPacket) {
        let number: UInt8
        var ipPayload: Int
        switch d.network {
        case .ipv4(let h)?:
            number = h.protocolNumber
            ipPayload = h.totalLength - h.headerLength
            if h.fragmentOffset != 0 {
                // A later fragment: no transport header in it (the kernel keys it so too).
                self.init(
                    source: h.source, destination: h.destination, ipProtocol: number, sourcePort: 0,
                    destinationPort: 0, seq: 0, ack: 0, flags: 0, length: ipPayload)
                return
            }
        case .ipv6(let h)?:
            number = h.nextHeader
            ipPayload = h.payloadLength
        default:
            return nil
        }
        guard let source = d.source, let destination = d.destination else { return nil }
        switch (number, d.transport) {
        case (6, .tcp(let t)?):
            self.init(
                source: source, destination: destination, ipProtocol: 6, sourcePort: t.sourcePort,
                destinationPort: t.destinationPort, seq: t.sequenceNumber, ack: t.acknowledgmentNumber,
                flags: UInt8(truncatingIfNeeded: t.flags.rawValue), length: max(0, ipPayload - t.headerLength))
        case (17, .udp(let u)?):
            self.init(
                source: source, destination: destination, ipProtocol: 17, sourcePort: u.sourcePort,
                destinationPort: u.destinationPort, seq: 0, ack: 0, flags: 0, length: max(0, ipPayload - 8))
        default:
            self.init(
                source: source, destination: destination, ipProtocol: number, sourcePort: 0, destinationPort: 0,
                seq: 0, ack: 0, flags: 0, length: max(0, ipPayload))
        }
    }
}

/// Pairs captured packets with the kernel's records of the same packets.
///
/// Both see an outgoing packet once, at the same place (the device queue, where libpcap's taps take outgoing
/// packets), so a captured packet and its record have one key (``KernelPacketKey``), and packets with equal keys
/// (a segment retransmitted unchanged) come in the same order on both sides. Each record is used at most once,
/// with one exception: a TCP super-packet (GSO) larger than the device takes is queued once and cut into segments
/// after the queue's tracepoint, before the taps (a 68 KiB send on lo became segments of 47 616 and 21 019
/// bytes). A captured data segment without a record of its own takes the record of the same ends and
/// acknowledgment whose bytes contain its own.
public enum KernelPacketJoin {
    /// For each captured packet, the index of its record in `kernel`, or nil when the kernel side has none (a
    /// packet from another host, or one of a flow nothing traced took part in).
    public static func match(captured: [CapturedPacket], kernel: [KernelPacket]) -> [Int?] {
        match(keys: captured.map { KernelPacketKey($0.decode()) }, kernel: kernel)
    }

    /// The same for keys already made (nil: a packet that has none).
    public static func match(keys: [KernelPacketKey?], kernel: [KernelPacket]) -> [Int?] {
        var queues: [KernelPacketKey: [Int]] = [:]
        for (i, record) in kernel.enumerated() {
            if let key = record.key { queues[key, default: []].append(i) }
        }
        var next: [KernelPacketKey: Int] = [:]
        var matches = keys.map { key -> Int? in
            guard let key, let queue = queues[key] else { return nil }
            let n = next[key, default: 0]
            guard n < queue.count else { return nil }
            next[key] = n + 1
            return queue[n]
        }
        // Segments of a super-packet: by ends and acknowledgment, the records whose bytes may hold them.
        var superPackets: [Ends: [Int]]?
        for (i, key) in keys.enumerated() where matches[i] == nil {
            guard let key, key.ipProtocol == 6, key.length > 0 else { continue }
            if superPackets == nil {
                let used = Set(matches.compactMap { $0 })
                var index: [Ends: [Int]] = [:]
                for (r, record) in kernel.enumerated() where !used.contains(r) {
                    if let k = record.key, k.ipProtocol == 6, k.length > 0 { index[Ends(k), default: []].append(r) }
                }
                superPackets = index
            }
            matches[i] = superPackets?[Ends(key)]?.first { r in
                guard let whole = kernel[r].key, whole.length > key.length else { return false }
                let offset = Int(key.seq &- whole.seq)  // wraps with the sequence space
                return offset + key.length <= whole.length
            }
        }
        return matches
    }

    /// What the segments of one super-packet share: the ends and the acknowledgment number.
    struct Ends: Hashable {
        var source: IPAddress
        var destination: IPAddress
        var sourcePort: UInt16
        var destinationPort: UInt16
        var ack: UInt32

        init(_ k: KernelPacketKey) {
            source = k.source
            destination = k.destination
            sourcePort = k.sourcePort
            destinationPort = k.destinationPort
            ack = k.ack
        }
    }
}

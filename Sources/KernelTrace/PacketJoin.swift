import PacketWire
import Timeline

extension KernelPacketKey {
    /// The key of a captured packet, to find its kernel record; nil for a packet without IP addresses (ARP).
    public init?(_ packet: PacketEvent) {
        guard let source = packet.source, let destination = packet.destination else { return nil }
        let number: UInt8
        switch packet.proto {
        case "TCP": number = 6
        case "UDP": number = 17
        case "ICMP": number = 1
        case "ICMPv6": number = 58
        default:
            guard let n = UInt8(packet.proto) else { return nil }
            number = n
        }
        let tcp = number == 6
        self.init(
            source: source, destination: destination, ipProtocol: number, sourcePort: packet.sourcePort ?? 0,
            destinationPort: packet.destinationPort ?? 0, seq: tcp ? packet.seq ?? 0 : 0, ack: tcp ? packet.ack ?? 0 : 0,
            flags: tcp ? UInt8(truncatingIfNeeded: packet.flags?.rawValue ?? 0) : 0, length: packet.length)
    }
}

/// Pairs captured packets with the kernel's records of the same packets.
///
/// Both see a packet once, at the same place (the device queue, where libpcap's taps take outgoing packets), so a
/// captured packet and its record have one key (``KernelPacketKey``), and packets with equal keys (a segment
/// retransmitted unchanged) come in the same order on both sides. Each record is used at most once.
public enum KernelPacketJoin {
    /// For each captured packet, the index of its record in `kernel`, or nil when the kernel side has none (a
    /// packet from another host, or one of a flow nothing traced took part in).
    public static func match(captured: [PacketEvent], kernel: [KernelPacket]) -> [Int?] {
        var queues: [KernelPacketKey: [Int]] = [:]
        for (i, record) in kernel.enumerated() {
            if let key = record.key { queues[key, default: []].append(i) }
        }
        var next: [KernelPacketKey: Int] = [:]
        return captured.map { packet in
            guard let key = KernelPacketKey(packet), let queue = queues[key] else { return nil }
            let n = next[key, default: 0]
            guard n < queue.count else { return nil }
            next[key] = n + 1
            return queue[n]
        }
    }
}

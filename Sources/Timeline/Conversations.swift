import PacketWire

/// Frame and byte counts of TCP and UDP conversations, as Wireshark's `-z conv,tcp` / `-z conv,udp` count them:
/// endpoint A is the source of the conversation's first packet, bytes are frame lengths on the wire.
/// Memory grows with the number of conversations, never with the number of packets.
public struct ConversationTable: Sendable {
    public struct Row: Sendable, Equatable {
        public var a: Endpoint
        public var b: Endpoint
        /// 6 (TCP) or 17 (UDP).
        public var proto: UInt8
        public var framesAtoB = 0
        public var bytesAtoB = 0
        public var framesBtoA = 0
        public var bytesBtoA = 0
        public var first: Timestamp
        public var last: Timestamp
        /// Order of first appearance, to keep sorting stable.
        public var order: Int

        public var frames: Int { framesAtoB + framesBtoA }
        public var bytes: Int { bytesAtoB + bytesBtoA }
    }

    /// Rows in order of first appearance, found through `index`: one hash lookup per packet, updates in place.
    private var rows: [Row] = []
    /// UDP 4-tuples, numbered in order of first appearance; `udpRows` maps a number to its row.
    private var index = FlowIndex()
    private var udpRows: [Int] = []
    /// TCP rows are per stream, not per 4-tuple: like tshark, a reused 4-tuple after a new SYN is a new row.
    private var streams = TCPStreamTable()
    private var tcpRows: [Int] = []
    /// Timestamp of the first packet of the capture (any protocol), the origin of "Relative Start".
    public private(set) var origin: Timestamp?

    public init() {}

    public var count: Int { rows.count }

    /// Counts every packet: non-TCP/UDP packets only set the origin, as they do in Wireshark.
    public mutating func add(_ d: DecodedPacket, info: CaptureInfo) {
        guard let s = d.source, let t = d.destination else { return add(noFlow: info) }
        switch d.transport {
        case .tcp(let h):
            add(
                FlowPeek(
                    source: s, destination: t, sourcePort: h.sourcePort, destinationPort: h.destinationPort,
                    protocolNumber: 6, flags: h.flags, sequenceNumber: h.sequenceNumber,
                    acknowledgmentNumber: h.acknowledgmentNumber), info: info)
        case .udp(let h):
            add(
                FlowPeek(
                    source: s, destination: t, sourcePort: h.sourcePort, destinationPort: h.destinationPort,
                    protocolNumber: 17, flags: [], sequenceNumber: 0, acknowledgmentNumber: 0), info: info)
        default:
            add(noFlow: info)
        }
    }

    /// A packet without TCP or UDP: it only sets the origin.
    public mutating func add(noFlow info: CaptureInfo) {
        if origin == nil { origin = info.timestamp }
    }

    /// Counts a TCP or UDP packet from its addressing alone (`PacketDecoder.peekFlow`), without a full decode.
    public mutating func add(_ f: FlowPeek, info: CaptureInfo) {
        if origin == nil { origin = info.timestamp }
        let proto = f.protocolNumber
        let src = Endpoint(f.source, f.sourcePort)
        let dst = Endpoint(f.destination, f.destinationPort)
        let bytes = info.originalLength
        var found: Int?
        var stream = -1
        if proto == 6 {
            // The payload length only feeds relative numbering, which the table does not use.
            stream =
                streams.track(
                    source: src, destination: dst, flags: f.flags, sequenceNumber: f.sequenceNumber,
                    acknowledgmentNumber: f.acknowledgmentNumber, payloadLength: 0
                ).stream
            if stream < tcpRows.count { found = tcpRows[stream] }
        } else {
            let (n, isNew) = index.findOrInsert(FlowKey(src, dst, proto: proto))
            if isNew { udpRows.append(rows.count) } else { found = udpRows[n] }
        }
        if let i = found {
            if src == rows[i].a {
                rows[i].framesAtoB += 1
                rows[i].bytesAtoB += bytes
            } else {
                rows[i].framesBtoA += 1
                rows[i].bytesBtoA += bytes
            }
            if info.timestamp > rows[i].last { rows[i].last = info.timestamp }
            if info.timestamp < rows[i].first { rows[i].first = info.timestamp }
        } else {
            if stream >= 0 { tcpRows.append(rows.count) }
            rows.append(
                Row(
                    a: src, b: dst, proto: proto, framesAtoB: 1, bytesAtoB: bytes, first: info.timestamp,
                    last: info.timestamp, order: rows.count))
        }
    }

    /// The conversations of one protocol, most frames first (as tshark sorts them), ties by first appearance.
    public func sorted(proto: UInt8) -> [Row] {
        rows.filter { $0.proto == proto }.sorted {
            $0.frames != $1.frames ? $0.frames > $1.frames : $0.order < $1.order
        }
    }
}

import PacketWire

/// What Wireshark's `tcp.analysis.*` would say about a segment. The names are Wireshark's field names, so
/// `"analysis":["retransmission"]` reads as `tcp.analysis.retransmission`.
public struct TCPAnalysisFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }

    @inlinable public static var retransmission: Self { Self(rawValue: 1 << 0) }
    @inlinable public static var fastRetransmission: Self { Self(rawValue: 1 << 1) }
    @inlinable public static var spuriousRetransmission: Self { Self(rawValue: 1 << 2) }
    @inlinable public static var duplicateAck: Self { Self(rawValue: 1 << 3) }
    @inlinable public static var outOfOrder: Self { Self(rawValue: 1 << 4) }
    @inlinable public static var zeroWindow: Self { Self(rawValue: 1 << 5) }
    @inlinable public static var windowFull: Self { Self(rawValue: 1 << 6) }
    @inlinable public static var windowUpdate: Self { Self(rawValue: 1 << 7) }
    @inlinable public static var keepAlive: Self { Self(rawValue: 1 << 8) }
    @inlinable public static var lostSegment: Self { Self(rawValue: 1 << 9) }

    public static let named: [(TCPAnalysisFlags, String)] = [
        (.lostSegment, "lost_segment"), (.keepAlive, "keep_alive"), (.zeroWindow, "zero_window"),
        (.windowFull, "window_full"), (.windowUpdate, "window_update"), (.duplicateAck, "duplicate_ack"),
        (.fastRetransmission, "fast_retransmission"), (.spuriousRetransmission, "spurious_retransmission"),
        (.outOfOrder, "out_of_order"), (.retransmission, "retransmission"),
    ]

    /// Calls `body` with the name of each set flag, in the order of `named`, without building strings.
    public func forEachName(_ body: (StaticString) -> Void) {
        if contains(.lostSegment) { body("lost_segment") }
        if contains(.keepAlive) { body("keep_alive") }
        if contains(.zeroWindow) { body("zero_window") }
        if contains(.windowFull) { body("window_full") }
        if contains(.windowUpdate) { body("window_update") }
        if contains(.duplicateAck) { body("duplicate_ack") }
        if contains(.fastRetransmission) { body("fast_retransmission") }
        if contains(.spuriousRetransmission) { body("spurious_retransmission") }
        if contains(.outOfOrder) { body("out_of_order") }
        if contains(.retransmission) { body("retransmission") }
    }

    /// Wireshark's field names of the flags that are set (allocates only when some are).
    public var names: [String] { isEmpty ? [] : Self.named.compactMap { contains($0.0) ? $0.1 : nil } }
}

/// Sequence analysis per TCP stream in the manner of Wireshark's `tcp_analyze_sequence_number`: per direction the
/// next expected sequence number, the last ACK and window, and a duplicate-ACK count. State is kept per stream
/// index, so memory grows with the number of conversations.
public struct TCPAnalyzer: Sendable {
    struct Direction: Sendable {
        var nextSeq: UInt32 = 0
        var hasNext = false
        var nextSeqTime: Int64 = 0
        var lastAck: UInt32 = 0
        var hasAck = false
        var lastAckTime: Int64 = 0
        var window: UInt64 = 0
        var hasWindow = false
        var dupAcks = 0
        /// Window scale from this side's SYN: -1 none offered, -2 no SYN seen.
        var synScale = -2
        /// Shift applied to this side's windows once both SYNs agreed (0 otherwise).
        var shift = 0
    }

    struct Stream: Sendable {
        var initiator = Direction()
        var responder = Direction()
        var synTime: Int64?
        var firstRTT: Int64?
    }

    private var streams: [Stream] = []

    /// 20 ms, the window in which Wireshark calls a retransmission after duplicate ACKs "fast".
    static let fastRetransmitWindow: Int64 = 20_000_000
    /// Out-of-order threshold before the first RTT is known (Wireshark's default, 3 ms).
    static let defaultOutOfOrderThreshold: Int64 = 3_000_000

    public init() {}

    @inline(__always) static func gt(_ a: UInt32, _ b: UInt32) -> Bool { SequenceNumber(a) > SequenceNumber(b) }
    @inline(__always) static func lt(_ a: UInt32, _ b: UInt32) -> Bool { SequenceNumber(a) < SequenceNumber(b) }
    @inline(__always) static func le(_ a: UInt32, _ b: UInt32) -> Bool { SequenceNumber(a) <= SequenceNumber(b) }
    @inline(__always) static func unsignedLess(_ a: Int64, _ b: Int64) -> Bool {
        UInt64(bitPattern: a) < UInt64(bitPattern: b)
    }

    public mutating func analyze(_ info: TCPSegmentInfo, tcp: TCPHeader, payloadLength: Int, time: Timestamp)
        -> TCPAnalysisFlags
    {
        let index = info.stream
        guard index >= 0 else { return [] }
        while streams.count <= index { streams.append(Stream()) }
        // In place through the array's modify accessor: copying the stream out and back cost a memmove each.
        return Self.analyze(&streams[index], info, tcp: tcp, payloadLength: payloadLength, time: time)
    }

    private static func analyze(
        _ s: inout Stream, _ info: TCPSegmentInfo, tcp: TCPHeader, payloadLength: Int, time: Timestamp
    ) -> TCPAnalysisFlags {
        // Wrapping nanoseconds: differences below are `&-`, exact for real captures, and a garbled file's far-apart
        // timestamps give odd flags instead of an overflow trap.
        let now = time.totalNanoseconds
        let fromInitiator = info.fromInitiator
        var fwd = fromInitiator ? s.initiator : s.responder
        var rev = fromInitiator ? s.responder : s.initiator
        let f = tcp.flags
        let syn = f.contains(.syn)
        let fin = f.contains(.fin)
        let rst = f.contains(.rst)
        let control = syn || fin || rst
        let seq = tcp.sequenceNumber
        let ack = tcp.acknowledgmentNumber
        let seglen = UInt32(truncatingIfNeeded: max(payloadLength, 0))
        let window = syn ? UInt64(tcp.window) : UInt64(tcp.window) << UInt64(fwd.shift)
        var r: TCPAnalysisFlags = []

        if syn {
            fwd.synScale = tcp.options.windowScale.map { Int(min($0, 14)) } ?? -1
            if !f.contains(.ack) {
                s.synTime = now
            } else if fwd.synScale >= 0, rev.synScale >= 0 {
                fwd.shift = fwd.synScale
                rev.shift = rev.synScale
            }
        } else if fromInitiator, f.contains(.ack), s.firstRTT == nil, let t = s.synTime {
            s.firstRTT = now &- t
        }

        let probe = seglen == 1 && fwd.hasNext && seq == fwd.nextSeq && rev.hasWindow && rev.window == 0
        if tcp.window == 0 && !control { r.insert(.zeroWindow) }
        if fwd.hasNext && Self.gt(seq, fwd.nextSeq) && !rst { r.insert(.lostSegment) }
        // The attributors' keep-alive rule, against Wireshark's next expected sequence number.
        if fwd.hasNext
            && SegmentDirection.isKeepAlive(
                seq: SequenceNumber(seq), length: Int(seglen), flags: f, next: SequenceNumber(fwd.nextSeq))
        {
            r.insert(.keepAlive)
        }
        let sameAsLast =
            seglen == 0 && window != 0 && fwd.hasWindow && fwd.hasNext && seq == fwd.nextSeq
            && fwd.hasAck && ack == fwd.lastAck && !control
        if sameAsLast && window != fwd.window { r.insert(.windowUpdate) }
        if seglen > 0 && !control && rev.hasWindow && rev.hasAck
            && seq &+ seglen == rev.lastAck
                &+ UInt32(
                    truncatingIfNeeded: rev.window)
        {
            r.insert(.windowFull)
        }
        if sameAsLast && window == fwd.window {
            fwd.dupAcks += 1
            r.insert(.duplicateAck)
        }
        if !r.contains(.keepAlive) && !probe && (seglen > 0 || syn || fin) && fwd.hasNext
            && Self.lt(seq, fwd.nextSeq)
        {
            let threshold = s.firstRTT ?? Self.defaultOutOfOrderThreshold
            // Wireshark takes these time differences as unsigned (guint64): a segment stamped before the one it
            // repeats (a copy from another interface whose clock read earlier) is never "close", so it is a
            // retransmission, not out of order.
            if rev.dupAcks >= 2 && rev.hasAck && rev.lastAck == seq
                && Self.unsignedLess(now &- rev.lastAckTime, Self.fastRetransmitWindow)
            {
                r.formUnion([.fastRetransmission, .retransmission])
            } else if Self.unsignedLess(now &- fwd.nextSeqTime, threshold) && fwd.nextSeq != seq &+ seglen {
                r.insert(.outOfOrder)
            } else if seglen > 0 && rev.hasAck && Self.le(seq &+ seglen, rev.lastAck) {
                // Only data already acknowledged is spurious; a repeated SYN or FIN is a plain retransmission.
                r.formUnion([.spuriousRetransmission, .retransmission])
            } else {
                r.insert(.retransmission)
            }
        }

        var next = seq &+ seglen
        if syn || fin { next &+= 1 }
        if !probe && (!fwd.hasNext || Self.gt(next, fwd.nextSeq)) {
            fwd.nextSeq = next
            fwd.nextSeqTime = now
            fwd.hasNext = true
        }
        fwd.window = window
        fwd.hasWindow = true
        if f.contains(.ack) {
            if !fwd.hasAck || ack != fwd.lastAck {
                fwd.lastAck = ack
                fwd.lastAckTime = now
                fwd.dupAcks = 0
            }
            fwd.hasAck = true
        }
        if fromInitiator {
            s.initiator = fwd
            s.responder = rev
        } else {
            s.responder = fwd
            s.initiator = rev
        }
        return r
    }
}

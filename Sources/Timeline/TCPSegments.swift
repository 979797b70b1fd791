import PacketWire

/// A TCP sequence or acknowledgment number: 32 bits that wrap, compared by their signed distance (RFC 1982's serial
/// numbers, smoltcp's `TcpSeqNumber`). `a < b` means b is ahead of a by less than 2^31.
public struct SequenceNumber: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32

    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    /// How far `b` is behind `a`: positive when `a` is ahead.
    @inlinable public static func - (a: SequenceNumber, b: SequenceNumber) -> Int32 {
        Int32(bitPattern: a.rawValue &- b.rawValue)
    }

    @inlinable public static func + (a: SequenceNumber, n: UInt32) -> SequenceNumber { SequenceNumber(a.rawValue &+ n) }

    // Each comparison is the sign of one distance, so none of them is derived from another (at a distance of exactly
    // 2^31 the derived ones would disagree with this definition).
    @inlinable public static func < (a: SequenceNumber, b: SequenceNumber) -> Bool { a - b < 0 }
    @inlinable public static func <= (a: SequenceNumber, b: SequenceNumber) -> Bool { a - b <= 0 }
    @inlinable public static func > (a: SequenceNumber, b: SequenceNumber) -> Bool { a - b > 0 }
    @inlinable public static func >= (a: SequenceNumber, b: SequenceNumber) -> Bool { a - b >= 0 }

    public var description: String { String(rawValue) }
}

/// What one direction of a TCP stream has sent so far: enough to tell a new segment from a repeat, a keep-alive
/// probe, and what a pure ACK acknowledges. The lab's and the trace's attributors both judge segments with it.
public struct SegmentDirection: Sendable {
    /// The sequence number after the highest byte (or SYN/FIN) sent; nil before the first segment.
    public private(set) var highestNext: SequenceNumber?
    /// The sequence number after this direction's FIN, once one was sent.
    public private(set) var finNext: SequenceNumber?
    /// The last acknowledgment and window this direction sent.
    public private(set) var lastAck: SequenceNumber?
    public private(set) var lastWindow: UInt16?

    public init() {}

    public var hasSent: Bool { highestNext != nil }

    /// The sequence space a segment occupies: its payload, and one each for SYN and FIN.
    @inlinable public static func space(length: Int, flags: TCPFlags) -> UInt32 {
        UInt32(truncatingIfNeeded: length) &+ (flags.contains(.syn) ? 1 : 0) &+ (flags.contains(.fin) ? 1 : 0)
    }

    /// A segment that takes sequence space all of which was sent before (a RST is never one).
    public func isRetransmission(seq: SequenceNumber, length: Int, flags: TCPFlags) -> Bool {
        let space = Self.space(length: length, flags: flags)
        guard let highest = highestNext, space > 0, !flags.contains(.rst) else { return false }
        return seq + space <= highest
    }

    /// An idle connection's probe: at most one byte, no SYN, FIN or RST, one behind what was sent.
    public func isKeepAlive(seq: SequenceNumber, length: Int, flags: TCPFlags) -> Bool {
        guard let highest = highestNext else { return false }
        return Self.isKeepAlive(seq: seq, length: length, flags: flags, next: highest)
    }

    /// The keep-alive rule itself, for a tracker that keeps its own next sequence number (TCP analysis).
    @inlinable public static func isKeepAlive(seq: SequenceNumber, length: Int, flags: TCPFlags, next: SequenceNumber)
        -> Bool
    {
        length <= 1 && !flags.contains(.syn) && !flags.contains(.fin) && !flags.contains(.rst)
            && seq == next + UInt32.max
    }

    /// Whether `ack` acknowledges more than this direction did before (or is its first acknowledgment).
    public func advances(_ ack: SequenceNumber) -> Bool { lastAck.map { ack > $0 } ?? true }

    /// What a pure ACK (no data, SYN, FIN or RST) from this direction acknowledges, given what the other direction
    /// sent: the peer's FIN, new bytes, or nothing new (then a window update, or a duplicate).
    public func pureAckReason(ack: SequenceNumber, window: UInt16?, peer: SegmentDirection) -> KernelReason {
        let advanced = advances(ack)
        if let fin = peer.finNext, ack == fin, advanced { return .ackOfFIN }
        if advanced { return .ackOfData }
        return lastWindow != window ? .windowUpdate : .duplicateAck
    }

    /// Takes a segment into account (after it was judged).
    public mutating func record(
        seq: SequenceNumber, length: Int, flags: TCPFlags, ack: SequenceNumber,
        window: UInt16?
    ) {
        let next = seq + Self.space(length: length, flags: flags)
        if highestNext.map({ next > $0 }) ?? true { highestNext = next }
        if flags.contains(.fin) { finNext = next }
        lastWindow = window
        if flags.contains(.ack) { lastAck = ack }
    }
}

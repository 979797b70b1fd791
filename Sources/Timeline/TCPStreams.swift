/// Timeline: what happened, in order. TCP conversations (stream index, relative sequence numbers), the events of
/// the JSON Lines contract (calls and packets), and the rules that attribute each packet to the call that sent it.
import PacketWire

/// A direction-independent key for a transport conversation: the lower endpoint first.
public struct ConversationKey: Hashable, Sendable {
    public var a: Endpoint
    public var b: Endpoint
    public var proto: UInt8

    public init(_ x: Endpoint, _ y: Endpoint, proto: UInt8) {
        if (x.address, x.port) <= (y.address, y.port) {
            a = x
            b = y
        } else {
            a = y
            b = x
        }
        self.proto = proto
    }

    /// One hasher call per address and one for ports and protocol: the synthesized hash walks every enum
    /// payload separately, and this key is hashed once per packet.
    public func hash(into hasher: inout Hasher) {
        switch a.address {
        case .v4(let x): hasher.combine(UInt64(x))
        case .v6(let h, let l): hasher.combine(h ^ (l &* 0x9E37_79B9_7F4A_7C15))
        }
        switch b.address {
        case .v4(let x): hasher.combine(UInt64(x) | 1 << 40)
        case .v6(let h, let l): hasher.combine(h ^ (l &* 0xC2B2_AE3D_27D4_EB4F))
        }
        hasher.combine(UInt64(a.port) | UInt64(b.port) << 16 | UInt64(proto) << 32)
    }
}

/// One direction of one TCP stream: the stream's index and the endpoint that sends in that direction. The key of
/// the per-direction state the attributors keep (next sequence number, last ACK, window).
public struct StreamDirection: Hashable, Sendable {
    public var stream: Int
    public var fromSource: Endpoint

    public init(stream: Int, fromSource: Endpoint) {
        self.stream = stream
        self.fromSource = fromSource
    }
}

public struct Endpoint: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(_ address: IPAddress, _ port: UInt16) {
        self.address = address
        self.port = port
    }

    public static func < (l: Endpoint, r: Endpoint) -> Bool { (l.address, l.port) < (r.address, r.port) }

    /// "127.0.0.1:61867" or "[::1]:61867".
    public var description: String { IPAddress.describe(address, port: port) }
}

/// What the conversation tracker says about one TCP segment.
public struct TCPSegmentInfo: Sendable, Equatable {
    /// 0-based index of the TCP conversation, as Wireshark's `tcp.stream`.
    public var stream: Int
    /// True when the segment goes from the conversation's first-seen sender (usually the client).
    public var fromInitiator: Bool
    /// Relative sequence number (Wireshark's `tcp.seq`).
    public var relativeSeq: UInt32
    /// Relative acknowledgment number (Wireshark's `tcp.ack`), 0 when the ACK flag is clear.
    public var relativeAck: UInt32
    /// The sequence space this segment occupies (payload plus one each for SYN and FIN).
    public var segmentLength: UInt32
    /// `relativeSeq + segmentLength` (Wireshark's `tcp.nxtseq`).
    public var relativeNextSeq: UInt32
}

/// Tracks TCP conversations: stream indexes that separate reused 4-tuples, and each direction's base sequence
/// number for relative numbering (tcpdump's `tcp_seq_hash`, Wireshark's `packet-tcp.c`). Memory grows with the
/// number of conversations, never with the number of packets.
public struct TCPStreamTable: Sendable {
    struct Direction: Sendable {
        var base: UInt32 = 0
        var hasBase = false
    }

    struct Conversation: Sendable {
        var stream: Int
        var initiator: Endpoint
        var forward = Direction()
        var reverse = Direction()
    }

    /// Conversations live in an array numbered by the flow index, so a packet costs one probe run and its
    /// update happens in place.
    private var index = FlowIndex()
    private var conversations: [Conversation] = []
    public private(set) var streamCount = 0

    public init() {}

    /// Updates the table with one segment and says where it belongs.
    public mutating func track(source: Endpoint, destination: Endpoint, tcp: TCPHeader, payloadLength: Int)
        -> TCPSegmentInfo
    {
        track(
            source: source, destination: destination, flags: tcp.flags, sequenceNumber: tcp.sequenceNumber,
            acknowledgmentNumber: tcp.acknowledgmentNumber, payloadLength: payloadLength)
    }

    /// The same from the three header fields that matter (what `PacketDecoder.peekFlow` gives).
    public mutating func track(
        source: Endpoint, destination: Endpoint, flags: TCPFlags, sequenceNumber: UInt32,
        acknowledgmentNumber: UInt32, payloadLength: Int
    ) -> TCPSegmentInfo {
        let tcp = (flags: flags, sequenceNumber: sequenceNumber, acknowledgmentNumber: acknowledgmentNumber)
        let isSYN = tcp.flags.contains(.syn) && !tcp.flags.contains(.ack)
        var conv: Conversation
        let (slot, isNew) = index.findOrInsert(FlowKey(source, destination, proto: 6))
        if !isNew {
            let i = slot
            let existing = conversations[i]
            conv = existing
            // A SYN whose sequence number differs from its direction's base starts a new stream (port reuse),
            // as in Wireshark; the same SYN again is a retransmission, or the copy of the same connection
            // captured on another interface, and stays in the stream however the first copy ended.
            let mine = source == existing.initiator ? existing.forward : existing.reverse
            if isSYN, mine.hasBase, tcp.sequenceNumber != mine.base {
                conv = Conversation(stream: streamCount, initiator: source)
                streamCount += 1
            }
        } else {
            // The initiator is the side that sent the SYN; without one, the side of the SYN/ACK's peer, else the
            // first sender seen.
            let initiator = tcp.flags.contains(.syn) && tcp.flags.contains(.ack) ? destination : source
            conv = Conversation(stream: streamCount, initiator: initiator)
            streamCount += 1
            conversations.append(conv)
        }
        let forward = source == conv.initiator
        var mine = forward ? conv.forward : conv.reverse
        var theirs = forward ? conv.reverse : conv.forward

        if tcp.flags.contains(.syn) {
            // The base is the ISN, so the SYN is seq 0; as in Wireshark, every SYN sets it (a SYN/ACK with a new
            // ISN in the same stream is numbered 0 again).
            mine.base = tcp.sequenceNumber
            mine.hasBase = true
        } else if !mine.hasBase {
            // Capture started mid-connection: Wireshark makes the first segment seq 1.
            mine.base = tcp.sequenceNumber &- 1
            mine.hasBase = true
        }
        if tcp.flags.contains(.ack), !theirs.hasBase {
            theirs.base = tcp.acknowledgmentNumber &- 1
            theirs.hasBase = true
        }

        let segmentLength = SegmentDirection.space(length: payloadLength, flags: tcp.flags)
        let relSeq = tcp.sequenceNumber &- mine.base
        let relAck = tcp.flags.contains(.ack) ? tcp.acknowledgmentNumber &- theirs.base : 0
        if forward {
            conv.forward = mine
            conv.reverse = theirs
        } else {
            conv.reverse = mine
            conv.forward = theirs
        }
        conversations[slot] = conv
        return TCPSegmentInfo(
            stream: conv.stream, fromInitiator: forward, relativeSeq: relSeq, relativeAck: relAck,
            segmentLength: segmentLength, relativeNextSeq: relSeq &+ segmentLength)
    }
}

/// Decoded header values. They own no memory and every accessor is total: validation happened in the decoder.

/// The link layer a packet was captured with.
public enum LinkHeader: Sendable, Equatable {
    case ethernet(source: MACAddress, destination: MACAddress, etherType: UInt16, vlanTags: Int)
    /// Linux cooked capture (v1 or v2). `packetType` 0 = to us, 4 = outgoing; `interfaceIndex` only in v2.
    case cooked(version: Int, packetType: UInt16, protocolType: UInt16, interfaceIndex: UInt32?)
    /// BSD loopback / NULL: the address family of the payload.
    case loopback(family: UInt32)
    case raw
    case unknown(LinkType)
}

public struct IPv4Header: Sendable, Equatable {
    public var headerLength: Int
    public var tos: UInt8
    public var totalLength: Int
    public var identification: UInt16
    public var dontFragment: Bool
    public var moreFragments: Bool
    /// In bytes (the field times 8).
    public var fragmentOffset: Int
    public var ttl: UInt8
    public var protocolNumber: UInt8
    public var checksum: UInt16
    public var source: IPAddress
    public var destination: IPAddress

    public init(
        headerLength: Int = 20, tos: UInt8 = 0, totalLength: Int, identification: UInt16 = 0, dontFragment: Bool = true,
        moreFragments: Bool = false, fragmentOffset: Int = 0, ttl: UInt8 = 64, protocolNumber: UInt8,
        checksum: UInt16 = 0, source: IPAddress, destination: IPAddress
    ) {
        self.headerLength = headerLength
        self.tos = tos
        self.totalLength = totalLength
        self.identification = identification
        self.dontFragment = dontFragment
        self.moreFragments = moreFragments
        self.fragmentOffset = fragmentOffset
        self.ttl = ttl
        self.protocolNumber = protocolNumber
        self.checksum = checksum
        self.source = source
        self.destination = destination
    }

    public var optionsLength: Int { headerLength - 20 }
    public var isFragment: Bool { moreFragments || fragmentOffset != 0 }
}

public struct IPv6Header: Sendable, Equatable {
    public var trafficClass: UInt8
    public var flowLabel: UInt32
    public var payloadLength: Int
    /// The first next-header value (right after the fixed header).
    public var nextHeader: UInt8
    public var hopLimit: UInt8
    public var source: IPAddress
    public var destination: IPAddress
    /// Extension headers in order (first 8 kept; `extensionHeaderCount` has the full count).
    public var extensionHeaders: [UInt8]
    public var extensionHeaderCount: Int
    /// Bytes taken by extension headers.
    public var extensionLength: Int
    /// The upper-layer protocol after the chain (59 = no next header).
    public var upperLayerProtocol: UInt8
    /// Set when a Fragment header was present.
    public var fragment: Fragment?

    /// An IPv6 Fragment header: the offset in bytes, the M (more fragments) flag and the identification.
    public struct Fragment: Sendable, Equatable {
        public var offset: Int
        public var more: Bool
        public var identification: UInt32
    }

    public var isFragment: Bool { fragment.map { $0.more || $0.offset != 0 } ?? false }
}

public struct ARPHeader: Sendable, Equatable {
    public var operation: UInt16
    public var senderIP: IPAddress?
    public var targetIP: IPAddress?
}

public enum NetworkHeader: Sendable, Equatable {
    case ipv4(IPv4Header)
    case ipv6(IPv6Header)
    case arp(ARPHeader)
    /// An EtherType (or family) PacketWire does not decode, kept as is.
    case unknown(UInt16)

    public var source: IPAddress? {
        switch self {
        case .ipv4(let h): h.source
        case .ipv6(let h): h.source
        default: nil
        }
    }

    public var destination: IPAddress? {
        switch self {
        case .ipv4(let h): h.destination
        case .ipv6(let h): h.destination
        default: nil
        }
    }
}

/// TCP control bits, in header order (FIN is bit 0).
public struct TCPFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }

    // Computed, not `static let`: another module reads a stored static through an addressor and a once-check,
    // which showed up per flag test in the read profile.
    @inlinable public static var fin: TCPFlags { TCPFlags(rawValue: 0x01) }
    @inlinable public static var syn: TCPFlags { TCPFlags(rawValue: 0x02) }
    @inlinable public static var rst: TCPFlags { TCPFlags(rawValue: 0x04) }
    @inlinable public static var psh: TCPFlags { TCPFlags(rawValue: 0x08) }
    @inlinable public static var ack: TCPFlags { TCPFlags(rawValue: 0x10) }
    @inlinable public static var urg: TCPFlags { TCPFlags(rawValue: 0x20) }
    @inlinable public static var ece: TCPFlags { TCPFlags(rawValue: 0x40) }
    @inlinable public static var cwr: TCPFlags { TCPFlags(rawValue: 0x80) }

    /// The eight flags in the order Wireshark lists them in its summary.
    public static let ordered: [(TCPFlags, String)] = [
        (.fin, "FIN"), (.syn, "SYN"), (.rst, "RST"), (.psh, "PSH"), (.ack, "ACK"), (.urg, "URG"), (.ece, "ECE"),
        (.cwr, "CWR"),
    ]

    /// Names in header order: ["SYN", "ACK"].
    public var names: [String] { Self.ordered.compactMap { contains($0.0) ? $0.1 : nil } }

    /// Display order people read in diagrams: SYN, FIN, RST, PSH, ACK, URG, ECE, CWR joined by "/": "SYN/ACK".
    public var label: String {
        var parts: [String] = []
        if contains(.syn) { parts.append("SYN") }
        if contains(.fin) { parts.append("FIN") }
        if contains(.rst) { parts.append("RST") }
        if contains(.psh) { parts.append("PSH") }
        if contains(.ack) { parts.append("ACK") }
        if contains(.urg) { parts.append("URG") }
        if contains(.ece) { parts.append("ECE") }
        if contains(.cwr) { parts.append("CWR") }
        return parts.isEmpty ? "none" : parts.joined(separator: "/")
    }
}

/// A selective-acknowledgement block (left edge inclusive, right edge exclusive).
public struct SACKBlock: Sendable, Equatable {
    public var left: UInt32
    public var right: UInt32
}

/// TCP options decoded into fixed fields; nothing here allocates unless SACK blocks are present.
public struct TCPOptions: Sendable, Equatable {
    public var mss: UInt16?
    public var windowScale: UInt8?
    public var sackPermitted = false
    public var sackBlocks: [SACKBlock] = []
    public var timestamp: Timestamps?
    public var hasNOP = false
    /// Kinds that PacketWire does not decode (first 4 kept), e.g. TCP Fast Open (34) or MPTCP (30).
    public var unknownKinds: [UInt8] = []
    /// Set when an option's length ran past the header or was impossible; decoding stopped there.
    public var malformed = false

    public init() {}

    /// The Timestamps option: the sender's clock and the echo of the peer's.
    public struct Timestamps: Sendable, Equatable {
        public var value: UInt32
        public var echoReply: UInt32
    }

    public var isEmpty: Bool {
        mss == nil && windowScale == nil && !sackPermitted && sackBlocks.isEmpty && timestamp == nil
            && unknownKinds.isEmpty && !malformed
    }
}

public struct TCPHeader: Sendable, Equatable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequenceNumber: UInt32
    public var acknowledgmentNumber: UInt32
    public var headerLength: Int
    public var flags: TCPFlags
    public var window: UInt16
    public var checksum: UInt16
    public var urgentPointer: UInt16
    public var options: TCPOptions

    public init(
        sourcePort: UInt16, destinationPort: UInt16, sequenceNumber: UInt32, acknowledgmentNumber: UInt32,
        headerLength: Int = 20, flags: TCPFlags, window: UInt16, checksum: UInt16 = 0, urgentPointer: UInt16 = 0,
        options: TCPOptions = TCPOptions()
    ) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequenceNumber = sequenceNumber
        self.acknowledgmentNumber = acknowledgmentNumber
        self.headerLength = headerLength
        self.flags = flags
        self.window = window
        self.checksum = checksum
        self.urgentPointer = urgentPointer
        self.options = options
    }
}

public struct UDPHeader: Sendable, Equatable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var length: Int
    public var checksum: UInt16
}

/// ICMP or ICMPv6. For error messages (unreachable, time exceeded, ...) the quoted packet's addresses and ports
/// are decoded when present, so a port-unreachable can be tied to the datagram that caused it.
public struct ICMPHeader: Sendable, Equatable {
    public var isV6: Bool
    public var type: UInt8
    public var code: UInt8
    public var checksum: UInt16
    /// The message's length as the IP header gives it (header included), captured or not.
    public var length: Int = 0
    /// Identifier and sequence of echo request/reply.
    public var echo: Echo?
    public var quoted: QuotedPacket?

    public init(isV6: Bool, type: UInt8, code: UInt8, checksum: UInt16) {
        self.isV6 = isV6
        self.type = type
        self.code = code
        self.checksum = checksum
    }

    /// An error message, which quotes the start of the datagram it is about (RFC 792 and 4443: destination
    /// unreachable, source quench, redirect, time exceeded, parameter problem; packet too big in ICMPv6).
    public var isError: Bool {
        switch (isV6, type) {
        case (true, 1...4), (false, 3), (false, 4), (false, 5), (false, 11), (false, 12): true
        default: false
        }
    }

    public struct Echo: Sendable, Equatable {
        public var identifier: UInt16
        public var sequence: UInt16
    }

    public struct QuotedPacket: Sendable, Equatable {
        public var source: IPAddress
        public var destination: IPAddress
        public var protocolNumber: UInt8
        public var sourcePort: UInt16?
        public var destinationPort: UInt16?
    }

    /// "echo request", "port unreachable", ... as tcpdump names them.
    public var summary: String {
        if isV6 {
            switch (type, code) {
            case (1, 4): return "destination unreachable, unreachable port"
            case (1, _): return "destination unreachable, code \(code)"
            case (2, _): return "packet too big"
            case (3, _): return "time exceeded"
            case (128, _): return "echo request"
            case (129, _): return "echo reply"
            case (133, _): return "router solicitation"
            case (134, _): return "router advertisement"
            case (135, _): return "neighbor solicitation"
            case (136, _): return "neighbor advertisement"
            default: return "type \(type), code \(code)"
            }
        }
        switch (type, code) {
        case (0, _): return "echo reply"
        case (3, 0): return "net unreachable"
        case (3, 1): return "host unreachable"
        case (3, 2): return "protocol unreachable"
        case (3, 3): return "port unreachable"
        case (3, 4): return "need to frag"
        case (3, _): return "unreachable, code \(code)"
        case (8, _): return "echo request"
        case (11, _): return "time exceeded"
        default: return "type \(type), code \(code)"
        }
    }
}

public enum TransportHeader: Sendable, Equatable {
    case tcp(TCPHeader)
    case udp(UDPHeader)
    case icmp(ICMPHeader)
    /// An IP protocol number PacketWire does not decode (or a non-first fragment), kept as is.
    case unknown(UInt8)
}

/// The layer at which decoding stopped early.
public enum Layer: String, Sendable {
    case link, network, transport, options
}

/// Why a packet was not decoded to the end. Truncation means bytes are missing (the snapshot length or a cut
/// record); malformed means the bytes that are there are impossible.
public enum DecodeProblem: Sendable, Equatable, CustomStringConvertible {
    case truncated(Layer)
    case malformed(Layer, String)
    /// The IPv4 total length or IPv6 payload length announces `missing` bytes more than the packet had on the
    /// wire (tcpdump: `truncated-ip - N bytes missing!`). Needs the record's original length:
    /// `DecodedPacket.problem(capturedAs:)` gives it.
    case lengthBeyondPacket(missing: Int, isV6: Bool)
    /// The record's own lengths are impossible (`CaptureInfo.invalidLengths`; tcpdump: `[Invalid header: ...]`).
    case invalidRecord(capturedLength: Int, originalLength: Int)
    /// A link type PacketWire does not decode: the packet is only its bytes.
    case unsupportedLink(LinkType)

    public var description: String {
        switch self {
        case .truncated(let layer): "truncated \(layer.rawValue) header"
        case .malformed(let layer, let why): "malformed \(layer.rawValue) header: \(why)"
        case .lengthBeyondPacket(let missing, let isV6):
            "malformed network header: \(isV6 ? "IPv6 payload" : "IPv4 total") length exceeds the packet by "
                + "\(missing) bytes"
        case .invalidRecord(let captured, let original):
            "invalid record header: "
                + (CaptureInfo.invalidLengths(captured: captured, original: original) ?? []).joined(separator: ", ")
        case .unsupportedLink(let link): "\(link.tcpdumpName) not decoded"
        }
    }
}

/// One packet decoded as far as its bytes allow.
public struct DecodedPacket: Sendable, Equatable {
    public var link: LinkHeader
    public var network: NetworkHeader?
    public var transport: TransportHeader?
    /// Offset of the transport payload from the start of the captured bytes.
    public var payloadOffset: Int = 0
    /// The payload length the headers announce (may exceed what was captured).
    public var payloadLength: Int = 0
    /// Payload bytes actually present in the capture.
    public var capturedPayloadLength: Int = 0
    /// Where the IP datagram ends by its own length field, from the start of the captured bytes (0 without a
    /// valid IP header, or for an IPv6 jumbogram). Beyond the record's original length, the header lies.
    public var networkEnd = 0
    /// What went wrong decoding the bytes; `problem(capturedAs:)` adds what only the record's lengths tell.
    public var problem: DecodeProblem?

    public init(link: LinkHeader) { self.link = link }

    /// The problem to report for the packet `info` describes: the record's impossible lengths first (tcpdump shows
    /// nothing else of such a record), then an IP length beyond the packet's wire length (the bytes the decoder
    /// missed follow from it), then `problem`. Writers that ask for every packet test `info.holds(networkEnd:)`
    /// first, which says when this is `problem`.
    public func problem(capturedAs info: CaptureInfo) -> DecodeProblem? {
        if info.holds(networkEnd: networkEnd) { return problem }
        if !info.hasSoundLengths {
            return .invalidRecord(capturedLength: info.capturedLength, originalLength: info.originalLength)
        }
        let missing = networkEnd - info.originalLength
        if case .ipv6 = network { return .lengthBeyondPacket(missing: missing, isV6: true) }
        return .lengthBeyondPacket(missing: missing, isV6: false)
    }

    public var tcp: TCPHeader? { if case .tcp(let h) = transport { h } else { nil } }
    public var udp: UDPHeader? { if case .udp(let h) = transport { h } else { nil } }
    public var icmp: ICMPHeader? { if case .icmp(let h) = transport { h } else { nil } }
    public var ipv4: IPv4Header? { if case .ipv4(let h) = network { h } else { nil } }
    public var ipv6: IPv6Header? { if case .ipv6(let h) = network { h } else { nil } }

    public var source: IPAddress? { network?.source }
    public var destination: IPAddress? { network?.destination }

    public var sourcePort: UInt16? {
        switch transport {
        case .tcp(let h): h.sourcePort
        case .udp(let h): h.sourcePort
        default: nil
        }
    }

    public var destinationPort: UInt16? {
        switch transport {
        case .tcp(let h): h.destinationPort
        case .udp(let h): h.destinationPort
        default: nil
        }
    }

    public var isFragment: Bool {
        switch network {
        case .ipv4(let h): h.isFragment
        case .ipv6(let h): h.isFragment
        default: false
        }
    }
}

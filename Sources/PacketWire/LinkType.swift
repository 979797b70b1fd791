/// A libpcap link-layer header type (`LINKTYPE_*`), as stored in pcap and pcapng files.
/// Unknown values are kept as they are.
public struct LinkType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// BSD loopback: a 4-byte address family in host byte order (macOS `lo0`).
    public static let null = LinkType(rawValue: 0)
    /// Ethernet II (what Linux `lo` gives).
    public static let ethernet = LinkType(rawValue: 1)
    /// Raw IPv4 or IPv6, told apart by the version nibble.
    public static let raw = LinkType(rawValue: 101)
    /// OpenBSD loopback: like `null`, but the family is big-endian.
    public static let loop = LinkType(rawValue: 108)
    /// Linux cooked capture v1 (`-i any` on older libpcap).
    public static let linuxSLL = LinkType(rawValue: 113)
    public static let ipv4 = LinkType(rawValue: 228)
    public static let ipv6 = LinkType(rawValue: 229)
    /// Linux cooked capture v2 (`-i any` on libpcap 1.10+).
    public static let linuxSLL2 = LinkType(rawValue: 276)

    /// libpcap's `DLT_RAW` is 12 on most systems (14 on some BSDs); pcap files may carry it.
    public static let dltRaw = LinkType(rawValue: 12)

    public var description: String { name ?? "LINKTYPE_\(rawValue)" }

    /// libpcap's name for the link type (`pcap_datalink_val_to_name`), for the decoded ones and the common ones
    /// PacketWire leaves undecoded; nil for the rest.
    public var name: String? {
        switch rawValue {
        case 0: "NULL"
        case 1: "EN10MB"
        case 6: "IEEE802"
        case 9: "PPP"
        case 10: "FDDI"
        case 12, 101: "RAW"
        case 50: "PPP_HDLC"
        case 51: "PPP_ETHER"
        case 104: "C_HDLC"
        case 105: "IEEE802_11"
        case 108: "LOOP"
        case 113: "LINUX_SLL"
        case 119: "PRISM_HEADER"
        case 127: "IEEE802_11_RADIO"
        case 147...162: "USER\(rawValue - 147)"
        case 192: "PPI"
        case 220: "USB_LINUX_MMAPPED"
        case 228: "IPV4"
        case 229: "IPV6"
        case 239: "NFLOG"
        case 253: "NETLINK"
        case 276: "LINUX_SLL2"
        default: nil
        }
    }

    /// How tcpdump's first line names it: "link-type IEEE802_11 (105)", or "link-type 147" without a name.
    public var tcpdumpName: String { name.map { "link-type \($0) (\(rawValue))" } ?? "link-type \(rawValue)" }
}

/// A capture timestamp: seconds since the Unix epoch and nanoseconds within that second.
public struct Timestamp: Hashable, Comparable, Sendable {
    public var seconds: Int64
    public var nanoseconds: UInt32

    public init(seconds: Int64, nanoseconds: UInt32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    /// Nanoseconds since the epoch (wraps only past the year 2262).
    public var totalNanoseconds: Int64 { seconds &* 1_000_000_000 &+ Int64(nanoseconds) }

    public init(totalNanoseconds ns: Int64) {
        var s = ns / 1_000_000_000
        var r = ns % 1_000_000_000
        if r < 0 {
            s -= 1
            r += 1_000_000_000
        }
        self.init(seconds: s, nanoseconds: UInt32(r))
    }

    /// `self - earlier` in nanoseconds, saturating at Int64's range instead of trapping: a garbled capture file can
    /// hold any seconds value (two packets 2^62 seconds apart), and every time difference shown goes through here.
    public func nanoseconds(since earlier: Timestamp) -> Int64 {
        let (seconds, o1) = self.seconds.subtractingReportingOverflow(earlier.seconds)
        let (scaled, o2) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (total, o3) = scaled.addingReportingOverflow(Int64(nanoseconds) - Int64(earlier.nanoseconds))
        if o1 || o2 || o3 { return self < earlier ? .min : .max }
        return total
    }

    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }

    /// Seconds as a Double (for display and JSON; loses sub-microsecond precision in far dates only).
    public var doubleValue: Double { Double(seconds) + Double(nanoseconds) / 1e9 }
}

/// What the capture says about one packet, apart from its bytes (gopacket's `CaptureInfo`).
public struct CaptureInfo: Sendable {
    public var timestamp: Timestamp
    /// Bytes present in the record.
    public var capturedLength: Int
    /// Bytes the packet had on the wire; larger than `capturedLength` when the snapshot length cut it.
    public var originalLength: Int
    /// pcapng interface id (0 for classic pcap and live capture).
    public var interfaceIndex: Int
    public var linkType: LinkType
    /// The interface as the capture names it: a pcapng interface's `if_name`, or `#N` for pcapng interface N when
    /// it has none (N as `interfaceIndex`, tshark's `frame.interface_id`); nil for classic pcap, which names none.
    public var interfaceName: String? {
        get { label?.name }
        set { label = newValue.map(InterfaceLabel.init) }
    }

    /// `interfaceName` in a box a reader makes once per interface: every packet shares it, and copying a class
    /// reference costs a packet less than copying a String.
    public var label: InterfaceLabel?

    public init(
        timestamp: Timestamp, capturedLength: Int, originalLength: Int, interfaceIndex: Int = 0,
        linkType: LinkType, interfaceName: String? = nil
    ) {
        self.init(
            timestamp: timestamp, capturedLength: capturedLength, originalLength: originalLength,
            interfaceIndex: interfaceIndex, linkType: linkType, label: interfaceName.map(InterfaceLabel.init))
    }

    @inlinable
    public init(
        timestamp: Timestamp, capturedLength: Int, originalLength: Int, interfaceIndex: Int,
        linkType: LinkType, label: InterfaceLabel?
    ) {
        self.timestamp = timestamp
        self.capturedLength = capturedLength
        self.originalLength = originalLength
        self.interfaceIndex = interfaceIndex
        self.linkType = linkType
        self.label = label
    }

    public var isTruncated: Bool { capturedLength < originalLength }

    /// tcpdump's `MAXIMUM_SNAPLEN`: a record claiming more than this is not believed. (Computed, as TCPFlags' are:
    /// a stored static costs another module a once-check per read.)
    @inlinable public static var maximumSnapLength: Int { 262_144 }

    /// False when `invalidLengths` has something to say; checked per packet, so without building it.
    @inlinable public var hasSoundLengths: Bool {
        capturedLength != 0 && originalLength >= capturedLength && originalLength <= Self.maximumSnapLength
    }

    /// True when `DecodedPacket.problem(capturedAs:)` is the decoder's own `problem` for a packet whose IP datagram
    /// ends at `networkEnd`: the per-packet test, on plain integers, before asking for more.
    @inlinable public func holds(networkEnd: Int) -> Bool { hasSoundLengths && networkEnd <= originalLength }

    /// What is impossible about the record's lengths, as tcpdump's sanity checks name it ("len(60) < caplen(74)",
    /// "caplen==0", ...), or nil when they hold. tcpdump prints such a record as `[Invalid header: ...]` only.
    public var invalidLengths: [String]? { Self.invalidLengths(captured: capturedLength, original: originalLength) }

    @usableFromInline static func invalidLengths(captured: Int, original: Int) -> [String]? {
        let limit = maximumSnapLength
        guard captured == 0 || original == 0 || original < captured || captured > limit || original > limit else {
            return nil
        }
        var items: [String] = []
        if captured == 0 { items.append("caplen==0") }
        if original == 0 {
            items.append("len==0")
        } else if original < captured {
            items.append("len(\(original)) < caplen(\(captured))")
        }
        if captured > limit { items.append("caplen(\(captured)) > \(limit)") }
        if original > limit { items.append("len(\(original)) > \(limit)") }
        return items
    }
}

/// An interface's name, boxed once so that every packet from the interface shares it.
public final class InterfaceLabel: Sendable {
    public let name: String
    public init(_ name: String) { self.name = name }
}

/// A packet copied out of a capture buffer, owning its bytes, for code that keeps packets (the lab, the timeline).
public struct CapturedPacket: Sendable {
    public var info: CaptureInfo
    public var bytes: [UInt8]

    public init(info: CaptureInfo, bytes: [UInt8]) {
        self.info = info
        self.bytes = bytes
    }

    public func decode() -> DecodedPacket {
        bytes.withUnsafeBytes { PacketDecoder.decode(ByteView($0), linkType: info.linkType) }
    }

    /// The transport payload bytes that were captured.
    public func payload(of packet: DecodedPacket) -> ArraySlice<UInt8> {
        let start = min(max(packet.payloadOffset, 0), bytes.count)
        let end = min(start + max(packet.capturedPayloadLength, 0), bytes.count)
        return bytes[start..<end]
    }
}

import PacketWire

/// tcpdump's display flags as `packetflow read` and `capture` take them: `-v`…, `-e`, `-q`, `-t`…, `-#`, and the
/// dumps `-A`, `-x`/`-xx`, `-X`/`-XX`. Each changes a `PacketText` line exactly as it changes the line of
/// tcpdump 4.99 (`TZ=UTC tcpdump -nn -S FLAGS -r FILE`); the default value changes nothing.
public struct TcpdumpFlags: Sendable, Equatable {
    /// All of it in one word, so that a `PacketText` travels in registers as it did before the flags: the plain
    /// line's per-packet path hands it to every call.
    private var bits: UInt32 = 0

    private enum Field {
        static let verbosity = (shift: UInt32(0), mask: UInt32(0x3))
        static let linkHeader = (shift: UInt32(2), mask: UInt32(0x1))
        static let quick = (shift: UInt32(3), mask: UInt32(0x1))
        static let time = (shift: UInt32(4), mask: UInt32(0x7))
        static let numbered = (shift: UInt32(7), mask: UInt32(0x1))
        static let dumpKind = (shift: UInt32(8), mask: UInt32(0x3))
        static let dumpWithLink = (shift: UInt32(10), mask: UInt32(0x1))
        /// Everything but the dump, which the plain line prints too.
        static let lineBits = UInt32(0xff)
    }

    private func field(_ f: (shift: UInt32, mask: UInt32)) -> UInt32 { (bits >> f.shift) & f.mask }

    private mutating func setField(_ f: (shift: UInt32, mask: UInt32), _ v: UInt32) {
        bits = bits & ~(f.mask << f.shift) | (min(v, f.mask) << f.shift)
    }

    /// `-v` given this many times (tcpdump's `vflag`; 0 to 3).
    public var verbosity: Int {
        get { Int(field(Field.verbosity)) }
        set { setField(Field.verbosity, UInt32(clamping: max(newValue, 0))) }
    }
    /// `-e`: the link-level header before the network line.
    public var linkHeader: Bool {
        get { field(Field.linkHeader) != 0 }
        set { setField(Field.linkHeader, newValue ? 1 : 0) }
    }
    /// `-q`: less protocol information (TCP as `tcp N`; the link header without its type).
    public var quick: Bool {
        get { field(Field.quick) != 0 }
        set { setField(Field.quick, newValue ? 1 : 0) }
    }
    public var time: TimeFormat {
        get { TimeFormat(rawValue: Int(field(Field.time))) ?? .clock }
        set { setField(Field.time, UInt32(newValue.rawValue)) }
    }
    /// `-#`: the packet's number (counting the packets shown) before each line.
    public var numbered: Bool {
        get { field(Field.numbered) != 0 }
        set { setField(Field.numbered, newValue ? 1 : 0) }
    }
    /// `-A`, `-x`, `-X`: the captured bytes after the line. tcpdump shows one dump: hex and ASCII before hex
    /// before ASCII.
    public var dump: Dump {
        get {
            let withLink = field(Field.dumpWithLink) != 0
            switch field(Field.dumpKind) {
            case 1: return .ascii(withLink: withLink)
            case 2: return .hex(withLink: withLink)
            case 3: return .hexASCII(withLink: withLink)
            default: return .none
            }
        }
        set {
            switch newValue {
            case .none: setField(Field.dumpKind, 0)
            case .ascii(let withLink):
                setField(Field.dumpKind, 1)
                setField(Field.dumpWithLink, withLink ? 1 : 0)
            case .hex(let withLink):
                setField(Field.dumpKind, 2)
                setField(Field.dumpWithLink, withLink ? 1 : 0)
            case .hexASCII(let withLink):
                setField(Field.dumpKind, 3)
                setField(Field.dumpWithLink, withLink ? 1 : 0)
            }
            if case .none = newValue { setField(Field.dumpWithLink, 0) }
        }
    }

    /// Whether a dump follows the line (one test of a word, for the plain line's every packet).
    public var hasDump: Bool { field(Field.dumpKind) != 0 }

    /// What `-t` given so many times prints in place of the time of day.
    public enum TimeFormat: Int, Sendable, CaseIterable {
        /// HH:MM:SS.uuuuuu (no `-t`)
        case clock = 0
        /// `-t`: nothing
        case none = 1
        /// `-tt`: seconds since the epoch
        case epoch = 2
        /// `-ttt`: the time since the previous packet shown
        case sincePrevious = 3
        /// `-tttt`: date and time of day
        case date = 4
        /// `-ttttt`: the time since the first packet shown
        case sinceFirst = 5
    }

    /// The byte dumps; `withLink` keeps the link-level header in it (`-xx`, `-XX`, `-AA`).
    public enum Dump: Sendable, Equatable {
        case none
        case ascii(withLink: Bool)
        case hex(withLink: Bool)
        case hexASCII(withLink: Bool)
    }

    public init() {}

    /// True when only the dump differs from the plain line, which then takes the plain path.
    public var isPlain: Bool { bits & Field.lineBits == 0 }
}

/// What tcpdump remembers from one packet line to the next: the reference time of `-ttt` and `-ttttt`
/// (tcpdump keeps one for the whole run, files included).
public struct TcpdumpLineState: Sendable {
    /// Seconds and microseconds; (0, 0) is "not set yet", as tcpdump's `timevalisset` has it.
    var reference: (seconds: Int64, microseconds: Int64) = (0, 0)

    public init() {}
}

struct TcpdumpLine: LineStyle {
    let flags: TcpdumpFlags
    /// The packet's number for `-#`.
    let packetNumber: Int
    var state: TcpdumpLineState
    var isQuoted = false

    var verbosity: Int { flags.verbosity }
    var linkHeader: Bool { flags.linkHeader }
    var quick: Bool { flags.quick }

    func number(into o: inout OutputBuffer) {
        guard flags.numbered else { return }
        // printf("%5u  ")
        o.decimal(packetNumber, rightAlignedIn: 5)
        o.append("  ")
    }

    /// tcpdump's `ts_print`. tcpdump reads files at microsecond precision (libpcap cuts nanoseconds), so the
    /// nanoseconds of a pcap or pcapng go to microseconds first, deltas included.
    mutating func time(_ t: Timestamp, into o: inout OutputBuffer) {
        let seconds = t.seconds
        let micro = Int64(t.nanoseconds / 1000)
        switch flags.time {
        case .clock:
            Self.calendar(seconds, micro, date: false, into: &o)
        case .none:
            return
        case .epoch:
            if Self.unconvertible(seconds) {
                o.append("[Error converting time]")
            } else {
                o.decimal(UInt32(truncatingIfNeeded: seconds))
                o.byte(UInt8(ascii: "."))
                o.decimal(UInt64(micro), minimumWidth: 6)
            }
        case .date:
            Self.calendar(seconds, micro, date: true, into: &o)
        case .sincePrevious, .sinceFirst:
            if state.reference.seconds == 0 && state.reference.microseconds == 0 { state.reference = (seconds, micro) }
            let (refSeconds, refMicro) = state.reference
            let earlier = seconds < refSeconds || (seconds == refSeconds && micro < refMicro)
            // netdissect_timevalsub: whole seconds and microseconds with a borrow.
            var (laterSeconds, laterMicro) = earlier ? (refSeconds, refMicro) : (seconds, micro)
            let (earlierSeconds, earlierMicro) = earlier ? (seconds, micro) : (refSeconds, refMicro)
            if laterMicro < earlierMicro {
                laterSeconds -= 1
                laterMicro += 1_000_000
            }
            o.byte(earlier ? UInt8(ascii: "-") : 0x20)
            Self.calendar(laterSeconds &- earlierSeconds, laterMicro - earlierMicro, date: false, into: &o)
            if flags.time == .sincePrevious { state.reference = (seconds, micro) }
        }
        o.byte(0x20)
    }

    /// tcpdump refuses a time whose low 32 bits have the sign bit set (`(unsigned)sec & 0x80000000`).
    static func unconvertible(_ seconds: Int64) -> Bool { UInt32(truncatingIfNeeded: seconds) & 0x8000_0000 != 0 }

    /// `ts_date_hmsfrac_print` in UTC: [YYYY-MM-DD ]HH:MM:SS.uuuuuu, as strftime and gmtime(3) write it.
    static func calendar(_ seconds: Int64, _ micro: Int64, date: Bool, into o: inout OutputBuffer) {
        if unconvertible(seconds) {
            o.append("[Error converting time]")
            return
        }
        var days = seconds / 86_400
        var s = seconds % 86_400
        if s < 0 {
            s += 86_400
            days -= 1
        }
        if date {
            let (y, m, d) = civil(days)
            if y < 0 { o.byte(UInt8(ascii: "-")) }
            o.decimal(UInt64(y.magnitude), minimumWidth: 1)
            o.byte(UInt8(ascii: "-"))
            o.decimal(UInt64(m), minimumWidth: 2)
            o.byte(UInt8(ascii: "-"))
            o.decimal(UInt64(d), minimumWidth: 2)
            o.byte(0x20)
        }
        o.decimal(UInt64(s / 3600), minimumWidth: 2)
        o.byte(UInt8(ascii: ":"))
        o.decimal(UInt64(s / 60 % 60), minimumWidth: 2)
        o.byte(UInt8(ascii: ":"))
        o.decimal(UInt64(s % 60), minimumWidth: 2)
        o.byte(UInt8(ascii: "."))
        o.decimal(UInt64(micro), minimumWidth: 6)
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    static func civil(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

// MARK: - The link-level header (-e)

extension PacketText {
    /// tcpdump's `-e` header of the link types PacketWire decodes, ending as tcpdump's does (", length N: ") so
    /// that the network line follows. Writes nothing for a link header the decoder could not read.
    static func linkHeader(
        _ d: DecodedPacket, info: CaptureInfo, bytes: ByteView, quick: Bool,
        into o: inout OutputBuffer
    ) {
        switch d.link {
        case .ethernet(_, _, _, let tags):
            // Straight from the bytes: a String per address cost -e more than all the rest of the line.
            guard let destination = bytes.slice(0, 6), let source = bytes.slice(6, 6) else { return }
            mac(source, into: &o)
            o.append(" > ")
            mac(destination, into: &o)
            o.append(", ")
            guard var type = bytes.u16(12) else { return }
            var printedLength = false
            var offset = 14
            // The tags the decoder read: tcpdump prints each with the type that announced it.
            for _ in 0..<tags {
                guard let tag = bytes.u16(offset), let inner = bytes.u16(offset + 2) else { return }
                etherType(type, quick: quick, into: &o)
                if !printedLength {
                    o.append(", length ")
                    o.decimal(info.originalLength)
                    o.append(": ")
                    printedLength = true
                } else {
                    o.append(", ")
                }
                vlanTag(tag, into: &o)
                type = inner
                offset += 4
            }
            etherType(type, quick: quick, into: &o)
            if printedLength {
                o.append(", ")
            } else {
                o.append(", length ")
                o.decimal(info.originalLength)
                o.append(": ")
            }
        case .cooked(1, let packetType, let proto, _):
            // "%3s ": the direction right-aligned.
            let name = cookedDirection(packetType)
            for _ in name.utf8.count..<3 { o.byte(0x20) }
            o.append(name)
            o.byte(0x20)
            if bytes.u16(4) == 6, let address = bytes.slice(6, 6) {
                mac(address, into: &o)
                o.byte(0x20)
            }
            cookedType(proto, bytes: bytes, tagAt: 16, quick: quick, length: info.originalLength, into: &o)
        case .cooked(2, _, let proto, let index?):
            o.append("ifindex ")
            o.decimal(index)
            o.byte(0x20)
            if bytes.u8(11) == 6, let address = bytes.slice(12, 6) {
                mac(address, into: &o)
                o.byte(0x20)
            }
            cookedType(proto, bytes: bytes, tagAt: 20, quick: quick, length: info.originalLength, into: &o)
        case .loopback(let family):
            let name: StaticString? =
                switch family {
                case 2: "IPv4"
                case 6: "NS"
                case 7: "ISO"
                case 16: "Appletalk"
                case 23: "IPX"
                case 24, 28, 30: "IPv6"
                default: nil
                }
            if quick {
                if let name {
                    o.append(name)
                } else {
                    o.append("Unknown AF ")
                    o.decimal(family)
                }
            } else {
                o.append("AF ")
                if let name { o.append(name) } else { o.append("Unknown") }
                o.append(" (")
                o.decimal(family)
                o.byte(UInt8(ascii: ")"))
            }
            o.append(", length ")
            o.decimal(info.originalLength)
            o.append(": ")
        case .raw:
            o.append("ip: ")
        case .cooked, .unknown:
            break
        }
    }

    /// The SLL and SLL2 header's type, as `sll_print`, and the VLAN tag tcpdump then reads before the network
    /// line (printed after ", length N: ", without the inner type's number).
    private static func cookedType(
        _ proto: UInt16, bytes: ByteView, tagAt offset: Int, quick: Bool, length: Int,
        into o: inout OutputBuffer
    ) {
        if !quick {
            switch proto {
            case 0x0001: o.append("802.3")
            case 0x0004: o.append("802.2")
            case ...0x05dc:
                o.append("ethertype Unknown (0x")
                o.hex(UInt64(proto), width: 4)
                o.byte(UInt8(ascii: ")"))
            default: etherType(proto, quick: false, into: &o)
            }
            o.append(", length ")
            o.decimal(length)
            o.append(": ")
        }
        if proto == 0x8100, let tag = bytes.u16(offset), var inner = bytes.u16(offset + 2) {
            vlanTag(tag, into: &o)
            if inner <= 0x05dc { inner = 0x0004 }
            if !quick {
                o.append("ethertype ")
                etherTypeName(inner, into: &o)
                o.append(", ")
            }
        }
    }

    /// `ieee8021q_tci_string` and the ", " after it.
    private static func vlanTag(_ tci: UInt16, into o: inout OutputBuffer) {
        o.append("vlan ")
        o.decimal(tci & 0x0fff)
        o.append(", p ")
        o.decimal(tci >> 13)
        if tci & 0x1000 != 0 { o.append(", DEI") }
        o.append(", ")
    }

    /// `ether_type_print`.
    static func etherType(_ type: UInt16, quick: Bool, into o: inout OutputBuffer) {
        if quick {
            if !etherTypeName(type, into: &o) {
                o.append("Unknown Ethertype (0x")
                o.hex(UInt64(type), width: 4)
                o.byte(UInt8(ascii: ")"))
            }
            return
        }
        o.append("ethertype ")
        if !etherTypeName(type, into: &o) { o.append("Unknown") }
        o.append(" (0x")
        o.hex(UInt64(type), width: 4)
        o.byte(UInt8(ascii: ")"))
    }

    /// The Linux cooked header's packet type as tcpdump names it.
    static func cookedDirection(_ packetType: UInt16) -> String {
        switch packetType {
        case 0: "In"
        case 1: "B"
        case 2: "M"
        case 3: "P"
        case 4: "Out"
        default: "?"
        }
    }

    /// Bytes as colon-separated hex.
    private static func mac(_ b: ByteView, into o: inout OutputBuffer) {
        for i in 0..<b.count {
            if i > 0 { o.byte(UInt8(ascii: ":")) }
            o.hex(UInt64(b.u8(i) ?? 0), width: 2)
        }
    }

    /// tcpdump's name of an EtherType, if it has one; the common ones without a table lookup.
    @discardableResult
    static func etherTypeName(_ type: UInt16, into o: inout OutputBuffer) -> Bool {
        switch type {
        case 0x0800: o.append("IPv4")
        case 0x86dd: o.append("IPv6")
        case 0x0806: o.append("ARP")
        case 0x8100: o.append("802.1Q")
        default:
            guard let name = etherTypeNames[type] else { return false }
            o.append(name)
        }
        return true
    }

    /// tcpdump's `ethertype_values`.
    static let etherTypeNames: [UInt16: String] = [
        0x0800: "IPv4", 0x8847: "MPLS unicast", 0x8848: "MPLS multicast", 0x86dd: "IPv6", 0x8100: "802.1Q",
        0x9100: "802.1Q-9100", 0x88a8: "802.1Q-QinQ", 0x9200: "802.1Q-9200", 0x88e5: "802.1AE MACsec",
        0x0200: "PUP", 0x0806: "ARP", 0x8035: "Reverse ARP", 0x0600: "NS", 0x0500: "Sprite", 0x1000: "Trail",
        0x6001: "MOP DL", 0x6002: "MOP RC", 0x6003: "DN", 0x6004: "LAT", 0x6007: "SCA", 0x6558: "TEB",
        0x8038: "Lanbridge", 0x803c: "DEC DNS", 0x803e: "DEC DTS", 0x805b: "VEXP", 0x805c: "VPROD",
        0x809b: "Appletalk", 0x80f3: "Appletalk ARP", 0x8137: "IPX", 0x880b: "PPP", 0x8808: "MPCP",
        0x8809: "Slow Protocols", 0x8863: "PPPoE D", 0x8864: "PPPoE S", 0x888e: "EAPOL", 0x8899: "Realtek protocols",
        0x886f: "MS NLB heartbeat", 0x8870: "Jumbo", 0x894f: "NSH", 0x9000: "Loopback", 0xfefe: "OSI",
        0x00fe: "GRE-OSI", 0xabcd: "CFM (old)", 0x8902: "CFM", 0x893a: "IEEE1905.1", 0x88cc: "LLDP", 0x88ca: "TIPC",
        0x0707: "GeoNet (old)", 0x8947: "GeoNet", 0x1111: "CALM FAST", 0x88a2: "AoE", 0x88f7: "PTP",
        0xd28b: "Arista Vendor Specific Protocol",
    ]

    /// How many bytes of the packet tcpdump counts as the link-level header (`ndo_ll_hdr_len`), which `-x`, `-X`
    /// and `-A` leave out.
    static func linkLength(_ d: DecodedPacket, captured: Int) -> Int {
        switch d.link {
        case .ethernet(_, _, _, let tags): 14 + 4 * tags
        case .cooked(1, _, let proto, _): proto == 0x8100 ? 20 : 16
        case .cooked(_, _, let proto, _): proto == 0x8100 ? 24 : 20
        case .loopback: 4
        case .raw: 0
        // A link header cut short: tcpdump's printer consumed all there was.
        case .unknown(let link): PacketDecoder.decodes(link) ? captured : 0
        }
    }
}

// MARK: - The dumps (-A, -x, -X)

extension PacketText {
    /// The dump the flags ask for, after the line: from the start of the packet or after its link header.
    static func dump(_ kind: TcpdumpFlags.Dump, _ bytes: ByteView, linkLength: Int, into o: inout OutputBuffer) {
        let all: ByteView
        switch kind {
        case .none: return
        case .ascii(let withLink), .hex(let withLink), .hexASCII(let withLink):
            if withLink {
                all = bytes
            } else {
                // tcpdump prints nothing when nothing follows the link header.
                guard bytes.count > linkLength, let rest = bytes.suffix(from: linkLength) else { return }
                all = rest
            }
        }
        switch kind {
        case .none: break
        case .ascii:
            asciiDump(all, into: &o)
        case .hex:
            // tcpdump writes the dump before the line's newline: take it back, put it after.
            o.rollBack(to: o.count - 1)
            hexWords(all, into: &o)
            o.byte(0x0a)
        case .hexASCII:
            hexDump(all, into: &o)
        }
    }

    /// tcpdump's `ascii_print`: printable bytes, tabs, spaces and newlines as they are, a dot for the rest; a CR
    /// vanishes before a newline and at the end.
    static func asciiDump(_ b: ByteView, into o: inout OutputBuffer) {
        var i = 0
        let n = b.count
        while i < n {
            let c = b.u8(i) ?? 0
            i += 1
            if c == 0x0d {
                // tcpdump looks at what follows only while more than one byte is left.
                if n - i > 1, b.u8(i) != 0x0a { o.byte(UInt8(ascii: ".")) }
            } else if (c > 0x20 && c < 0x7f) || c == 0x09 || c == 0x20 || c == 0x0a {
                o.byte(c)
            } else {
                o.byte(UInt8(ascii: "."))
            }
        }
        o.byte(0x0a)
    }

    /// tcpdump's `hex_print` (and `print_unknown_data`): 16-bit hex words, eight to a line, each line starting with
    /// `indent` and "0xOFFS: ".
    static func hexWords(_ m: ByteView, indent: StaticString = "\n\t", into o: inout OutputBuffer) {
        var i = 0
        while i < m.count {
            if i % 16 == 0 {
                o.append(indent)
                o.append("0x")
                o.hex(UInt64(i), width: 4)
                o.append(": ")
            }
            o.byte(0x20)
            if let hi = m.u8(i) { o.hex(UInt64(hi), width: 2) }
            if let lo = m.u8(i + 1) { o.hex(UInt64(lo), width: 2) }
            i += 2
        }
    }
}

extension OutputBuffer {
    /// printf("%x"): lowercase hex without leading zeros.
    mutating func hexDigits(_ v: UInt64) {
        var width = 1
        while width < 16, v >> UInt64(4 * width) != 0 { width += 1 }
        hex(v, width: width)
    }
}

import PacketWire
import Timeline

// What tcpdump 4.99 adds with -v and -vv, in three files: the IP header's fields and options (here),
// VerboseTransport (the checksums it verifies), VerboseICMP (the datagram an ICMP error quotes, neighbor
// discovery's options). Every byte is read through ByteView; nothing here runs for a line without -v.

/// The Internet checksum (RFC 1071) over big-endian 16-bit words, as tcpdump's `in_cksum` computes it: a packet
/// whose checksum field is right sums to 0xffff, so `value` is 0.
struct InternetChecksum {
    private var sum: UInt64 = 0

    mutating func add(_ word: UInt16) { sum += UInt64(word) }

    mutating func add(_ v: UInt32) {
        sum += UInt64(v >> 16) + UInt64(v & 0xffff)
    }

    mutating func add(_ a: IPAddress) {
        switch a {
        case .v4(let v): add(v)
        case .v6(let hi, let lo):
            for shift in stride(from: 48, through: 0, by: -16) {
                sum += (hi >> UInt64(shift)) & 0xffff
                sum += (lo >> UInt64(shift)) & 0xffff
            }
        }
    }

    /// The bytes, padded with a zero byte when their count is odd (they are always the last ones summed). Eight
    /// at a time as two 32-bit words: a one's complement sum may be taken in wider words and folded after.
    mutating func add(_ b: ByteView) {
        var i = 0
        while let v = b.u64(i) {
            sum += (v >> 32) + (v & 0xffff_ffff)
            i += 8
        }
        while let w = b.u16(i) {
            sum += UInt64(w)
            i += 2
        }
        if let last = b.u8(i) { sum += UInt64(last) << 8 }
    }

    /// The complement of the folded sum: 0 when the data with its checksum field is right.
    var value: UInt16 {
        var s = sum
        while s >> 16 != 0 { s = (s & 0xffff) + (s >> 16) }
        return ~UInt16(truncatingIfNeeded: s)
    }

    /// `in_cksum_shouldbe`: what the checksum field should have held, given what it holds.
    static func shouldBe(_ field: UInt16, _ computed: UInt16) -> UInt16 {
        var s = UInt32(field) + UInt32(computed)
        s = (s & 0xffff) + (s >> 16)
        s = (s & 0xffff) + (s >> 16)
        return UInt16(truncatingIfNeeded: s)
    }
}
extension PacketText {
    /// tcpdump's `ipproto_values`.
    static func protocolName(_ p: UInt8) -> StaticString {
        switch p {
        case 0: "Options"
        case 1: "ICMP"
        case 2: "IGMP"
        case 4: "IPIP"
        case 6: "TCP"
        case 8: "EGP"
        case 9: "IGRP"
        case 17: "UDP"
        case 33: "DCCP"
        case 41: "IPv6"
        case 43: "Routing"
        case 44: "Fragment"
        case 46: "RSVP"
        case 47: "GRE"
        case 50: "ESP"
        case 51: "AH"
        case 55: "Mobile IP"
        case 58: "ICMPv6"
        case 62: "Mobile IP (old)"
        case 88: "EIGRP"
        case 89: "OSPF"
        case 103: "PIM"
        case 108: "Compressed IP"
        case 112: "VRRP"
        case 113: "PGM"
        case 132: "SCTP"
        case 135: "Mobility"
        case 143: "Ethernet"
        default: "unknown"
        }
    }

    /// Where the IP header starts in the captured bytes.
    static func networkOffset(_ d: DecodedPacket) -> Int {
        switch d.link {
        case .ethernet(_, _, _, let tags): 14 + 4 * tags
        case .cooked(1, _, _, _): 16
        case .cooked: 20
        case .loopback: 4
        case .raw, .unknown: 0
        }
    }

    /// `ip_print`'s -v part: "(tos 0x0, ttl 64, id 1, offset 0, flags [DF], proto TCP (6), length 60)" and the
    /// newline and indent after it. False when an option was cut short (tcpdump then ends the line).
    static func ipv4Verbose(_ ip: IPv4Header, _ d: DecodedPacket, bytes: ByteView, into o: inout OutputBuffer)
        -> Bool
    {
        let base = networkOffset(d)
        o.append("(tos 0x")
        o.hexDigits(UInt64(ip.tos))
        switch ip.tos & 3 {
        case 1: o.append(",ECT(1)")
        case 2: o.append(",ECT(0)")
        case 3: o.append(",CE")
        default: break
        }
        if ip.ttl >= 1 {
            o.append(", ttl ")
            o.decimal(ip.ttl)
        }
        o.append(", id ")
        o.decimal(ip.identification)
        o.append(", offset ")
        o.decimal(ip.fragmentOffset)
        o.append(", flags [")
        let field = bytes.u16(base + 6) ?? 0
        flagNames(UInt32(field), [(0x2000, "+"), (0x4000, "DF"), (0x8000, "rsvd")], into: &o)
        o.append("], proto ")
        o.append(protocolName(ip.protocolNumber))
        o.append(" (")
        o.decimal(ip.protocolNumber)
        o.append("), length ")
        o.decimal(ip.totalLength)
        var complete = true
        if ip.headerLength > 20 {
            o.append(", options (")
            let options = bytes.suffix(from: base + 20)?.prefix(ip.headerLength - 20) ?? bytes.prefix(0)
            if !ipOptions(options, length: ip.headerLength - 20, into: &o) {
                o.append(" [truncated-option]")
                complete = false
            }
            o.byte(UInt8(ascii: ")"))
        }
        if let header = bytes.slice(base, ip.headerLength) {
            var sum = InternetChecksum()
            sum.add(header)
            if sum.value != 0 {
                o.append(", bad cksum ")
                o.hexDigits(UInt64(ip.checksum))
                o.append(" (->")
                o.hexDigits(UInt64(InternetChecksum.shouldBe(ip.checksum, sum.value)))
                o.append(")!")
            }
        }
        o.append(")\n    ")
        return complete
    }

    /// `ip_optprint`: the options' names, comma-separated, with what tcpdump says about routes and timestamps.
    /// False when an option runs past the captured bytes.
    static func ipOptions(_ b: ByteView, length: Int, into o: inout OutputBuffer) -> Bool {
        var at = 0
        var remaining = length
        var first = true
        while remaining > 0 {
            if !first { o.byte(UInt8(ascii: ",")) }
            first = false
            guard let code = b.u8(at) else { return false }
            switch code {
            case 0: o.append("EOL")
            case 1: o.append("NOP")
            case 68: o.append("timestamp")
            case 130: o.append("security")
            case 7: o.append("RR")
            case 137: o.append("SSRR")
            case 131: o.append("LSRR")
            case 148: o.append("RA")
            case 82: o.append("traceroute")
            default:
                o.append("unknown ")
                o.decimal(code)
            }
            var optionLength = 1
            if code > 1 {
                guard let l = b.u8(at + 1) else { return false }
                optionLength = Int(l)
                if optionLength < 2 {
                    bad("length", optionLength, spaced: true, into: &o)
                    return true
                }
            }
            if optionLength > remaining {
                bad("length", optionLength, spaced: true, into: &o)
                return true
            }
            guard let option = b.slice(at, optionLength) else { return false }
            switch code {
            case 0: return true
            case 68: guard timestampOption(option, into: &o) else { return false }
            case 7, 131, 137: guard routeOption(option, into: &o) else { return false }
            case 148:
                if optionLength < 4 {
                    bad("length", optionLength, spaced: true, into: &o)
                } else if let value = option.u16(2), value != 0 {
                    o.append(" value ")
                    o.decimal(value)
                }
            default: break
            }
            at += optionLength
            remaining -= optionLength
        }
        return true
    }

    /// tcpdump's "[bad length N]", "[bad ptr N]", "[bad ts type N]" for a malformed option, after a space if `spaced`.
    private static func bad(_ what: StaticString, _ value: some BinaryInteger, spaced: Bool, into o: inout OutputBuffer)
    {
        o.append(spaced ? " [bad " : "[bad ")
        o.append(what)
        o.byte(0x20)
        o.decimal(value)
        o.byte(UInt8(ascii: "]"))
    }

    /// `ip_printroute`.
    private static func routeOption(_ b: ByteView, into o: inout OutputBuffer) -> Bool {
        let length = b.count
        if length < 3 {
            bad("length", length, spaced: true, into: &o)
            return true
        }
        if (length + 1) & 3 != 0 {
            bad("length", length, spaced: true, into: &o)
        }
        let raw = Int(b.u8(2) ?? 0)
        let pointer = raw - 1
        if pointer < 3 || (pointer + 1) & 3 != 0 || pointer > length + 1 {
            bad("ptr", raw, spaced: true, into: &o)
        }
        var at = 3
        while at < length {
            guard let address = b.ipv4(at) else { return false }
            o.byte(0x20)
            o.address(address)
            if pointer > at { o.byte(UInt8(ascii: ",")) }
            at += 4
        }
        return true
    }

    /// `ip_printts`.
    private static func timestampOption(_ b: ByteView, into o: inout OutputBuffer) -> Bool {
        let length = b.count
        if length < 4 {
            bad("length", length, spaced: false, into: &o)
            return true
        }
        o.append(" TS{")
        let flags = b.u8(3) ?? 0
        let hop = flags & 0xf != 0 ? 8 : 4
        if (length - 4) & (hop - 1) != 0 {
            bad("length", length, spaced: false, into: &o)
        }
        let raw = Int(b.u8(2) ?? 0)
        let pointer = raw - 1
        if pointer < 4 || (pointer - 4) & (hop - 1) != 0 || pointer > length + 1 {
            bad("ptr", raw, spaced: false, into: &o)
        }
        var at = 0
        switch flags & 0xf {
        case 0: o.append("TSONLY")
        case 1: o.append("TS+ADDR")
        case 3: o.append("PRESPEC")
        default:
            bad("ts type", flags & 0xf, spaced: false, into: &o)
        }
        if [0, 1, 3].contains(flags & 0xf) {
            at = 4
            while at < length {
                o.append(pointer == at ? " ^ " : " ")
                guard b.has(at, hop), let stamp = b.u32(at + hop - 4) else { return false }
                o.decimal(stamp)
                o.byte(UInt8(ascii: "@"))
                if hop == 8, let address = b.ipv4(at) { o.address(address) }
                at += hop
            }
        }
        if pointer == at { o.append(" ^ ") }
        if flags >> 4 != 0 {
            o.append(" [")
            o.decimal(flags >> 4)
            o.append(" hops not recorded]} ")
        } else {
            o.byte(UInt8(ascii: "}"))
        }
        return true
    }

    /// `ip6_print`'s -v part: "(flowlabel 0x91baf, hlim 63, next-header ICMPv6 (58) payload length: 60) ".
    static func ipv6Verbose(_ ip: IPv6Header, _ d: DecodedPacket, bytes: ByteView, into o: inout OutputBuffer) {
        o.byte(UInt8(ascii: "("))
        if ip.trafficClass != 0 {
            o.append("class 0x")
            o.hex(UInt64(ip.trafficClass), width: 2)
            o.append(", ")
        }
        if ip.flowLabel != 0 {
            o.append("flowlabel 0x")
            o.hex(UInt64(ip.flowLabel), width: 5)
            o.append(", ")
        }
        o.append("hlim ")
        o.decimal(ip.hopLimit)
        o.append(", next-header ")
        o.append(protocolName(ip.nextHeader))
        o.append(" (")
        o.decimal(ip.nextHeader)
        o.append(") payload length: ")
        o.decimal(ip.payloadLength)
        o.append(") ")
    }
}

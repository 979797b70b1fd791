import PacketWire
import Timeline

// What tcpdump 4.99 adds with -v and -vv: the IP header's fields, the checksums it verifies, the datagram an ICMP
// error quotes and ICMPv6 neighbor discovery's options. Every byte is read through ByteView; nothing here runs
// for a line without -v.

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
                    o.append(" [bad length ")
                    o.decimal(optionLength)
                    o.byte(UInt8(ascii: "]"))
                    return true
                }
            }
            if optionLength > remaining {
                o.append(" [bad length ")
                o.decimal(optionLength)
                o.byte(UInt8(ascii: "]"))
                return true
            }
            guard let option = b.slice(at, optionLength) else { return false }
            switch code {
            case 0: return true
            case 68: guard timestampOption(option, into: &o) else { return false }
            case 7, 131, 137: guard routeOption(option, into: &o) else { return false }
            case 148:
                if optionLength < 4 {
                    o.append(" [bad length ")
                    o.decimal(optionLength)
                    o.byte(UInt8(ascii: "]"))
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

    /// `ip_printroute`.
    private static func routeOption(_ b: ByteView, into o: inout OutputBuffer) -> Bool {
        let length = b.count
        if length < 3 {
            o.append(" [bad length ")
            o.decimal(length)
            o.byte(UInt8(ascii: "]"))
            return true
        }
        if (length + 1) & 3 != 0 {
            o.append(" [bad length ")
            o.decimal(length)
            o.byte(UInt8(ascii: "]"))
        }
        let raw = Int(b.u8(2) ?? 0)
        let pointer = raw - 1
        if pointer < 3 || (pointer + 1) & 3 != 0 || pointer > length + 1 {
            o.append(" [bad ptr ")
            o.decimal(raw)
            o.byte(UInt8(ascii: "]"))
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
            o.append("[bad length ")
            o.decimal(length)
            o.byte(UInt8(ascii: "]"))
            return true
        }
        o.append(" TS{")
        let flags = b.u8(3) ?? 0
        let hop = flags & 0xf != 0 ? 8 : 4
        if (length - 4) & (hop - 1) != 0 {
            o.append("[bad length ")
            o.decimal(length)
            o.byte(UInt8(ascii: "]"))
        }
        let raw = Int(b.u8(2) ?? 0)
        let pointer = raw - 1
        if pointer < 4 || (pointer - 4) & (hop - 1) != 0 || pointer > length + 1 {
            o.append("[bad ptr ")
            o.decimal(raw)
            o.byte(UInt8(ascii: "]"))
        }
        var at = 0
        switch flags & 0xf {
        case 0: o.append("TSONLY")
        case 1: o.append("TS+ADDR")
        case 3: o.append("PRESPEC")
        default:
            o.append("[bad ts type ")
            o.decimal(flags & 0xf)
            o.byte(UInt8(ascii: "]"))
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

    /// The addresses a transport checksum covers, as tcpdump's `nextproto4_cksum` and `nextproto6_cksum` take
    /// them (the final destination of a source route), and whether the datagram is a fragment (tcpdump checks
    /// no checksum then). nil without an IP header.
    static func pseudoHeader(_ d: DecodedPacket, bytes: ByteView)
        -> (source: IPAddress, destination: IPAddress, fragmented: Bool)?
    {
        switch d.network {
        case .ipv4(let ip):
            var destination = ip.destination
            if ip.headerLength > 20,
                let options = bytes.slice(networkOffset(d) + 20, ip.headerLength - 20)
            {
                // ip_finddst: the last address of a loose or strict source route.
                var at = 0
                scan: while let code = options.u8(at), code != 0 {
                    var length = 1
                    if code != 1 {
                        guard let l = options.u8(at + 1), l >= 2 else { break scan }
                        length = Int(l)
                    }
                    guard options.has(at, length) else { break scan }
                    if code == 131 || code == 137, length >= 7, let last = options.ipv4(at + length - 4) {
                        destination = last
                        break scan
                    }
                    at += length
                }
            }
            return (ip.source, destination, ip.moreFragments)
        case .ipv6(let ip):
            var destination = ip.destination
            if ip.extensionHeaders.contains(43) {
                // ip6_finddst: the last address of a type 0 or type 2 routing header.
                var next = ip.nextHeader
                var at = networkOffset(d) + 40
                walk: while true {
                    switch next {
                    case 0, 60:
                        guard let n = bytes.u8(at), let l = bytes.u8(at + 1) else { break walk }
                        next = n
                        at += (Int(l) + 1) * 8
                    case 43:
                        guard let l = bytes.u8(at + 1), let type = bytes.u8(at + 2) else { break walk }
                        if type == 0 || type == 2, l >= 2, let last = bytes.ipv6(at + 8 + (Int(l) / 2 - 1) * 16) {
                            destination = last
                        }
                        break walk
                    default:
                        break walk
                    }
                }
            }
            return (ip.source, destination, ip.fragment != nil)
        default:
            return nil
        }
    }

    /// The checksum of a transport header and payload of `length` bytes at `offset`, with the pseudo-header; nil
    /// when any of it was not captured (tcpdump then prints nothing about it).
    static func transportChecksum(_ d: DecodedPacket, bytes: ByteView, at offset: Int, length: Int, proto: UInt8)
        -> UInt16?
    {
        guard let (source, destination, fragmented) = pseudoHeader(d, bytes: bytes), !fragmented,
            let segment = bytes.slice(offset, length)
        else { return nil }
        var sum = InternetChecksum()
        sum.add(source)
        sum.add(destination)
        sum.add(UInt32(length))
        sum.add(UInt16(proto))
        sum.add(segment)
        return sum.value
    }

    /// tcp_print's ", cksum 0x1234 (correct)" / "(incorrect -> 0x5678)".
    static func tcpChecksum(_ tcp: TCPHeader, _ d: DecodedPacket, bytes: ByteView, into o: inout OutputBuffer) {
        let start = d.payloadOffset - tcp.headerLength
        guard let sum = transportChecksum(d, bytes: bytes, at: start, length: tcp.headerLength + d.payloadLength,
                                          proto: 6)
        else { return }
        o.append(", cksum 0x")
        o.hex(UInt64(tcp.checksum), width: 4)
        if sum != 0 {
            o.append(" (incorrect -> 0x")
            o.hex(UInt64(InternetChecksum.shouldBe(tcp.checksum, sum)), width: 4)
            o.byte(UInt8(ascii: ")"))
        } else {
            o.append(" (correct)")
        }
    }

    /// `print_tcp_rst_data`: the text a reset carries (RFC 1122 allows it), up to 30 characters.
    static func resetData(_ d: DecodedPacket, bytes: ByteView, into o: inout OutputBuffer) {
        let length = d.payloadLength
        o.append(bytes.has(d.payloadOffset, length) ? " [RST" : " [!RST")
        var n = length
        if n > 30 {
            n = 30
            o.byte(UInt8(ascii: "+"))
        }
        o.byte(0x20)
        var at = d.payloadOffset
        while n > 0, let c = bytes.u8(at) {
            printable(c, into: &o)
            at += 1
            n -= 1
        }
        o.byte(UInt8(ascii: "]"))
    }

    /// `fn_print_char`: "M-" for the high bit, "^" and the letter for a control character.
    static func printable(_ c: UInt8, into o: inout OutputBuffer) {
        var c = c
        if c >= 0x80 {
            c &= 0x7f
            o.append("M-")
        }
        if c < 0x20 || c == 0x7f {
            c ^= 0x40
            o.byte(UInt8(ascii: "^"))
        }
        o.byte(c)
    }

    /// udp_print's "[udp sum ok] " / "[bad udp cksum 0x1234 -> 0x5678!] " / "[no cksum] ": over IPv6 from -v on,
    /// over IPv4 from -vv on (tcpdump's choice).
    static func udpChecksum(_ udp: UDPHeader, _ d: DecodedPacket, bytes: ByteView, verbosity: Int,
                            into o: inout OutputBuffer) {
        let isV4: Bool
        switch d.network {
        case .ipv4: isV4 = true
        case .ipv6: isV4 = false
        default: return
        }
        if isV4 {
            guard verbosity > 1, pseudoHeader(d, bytes: bytes)?.fragmented == false else { return }
            if udp.checksum == 0 {
                o.append("[no cksum] ")
                return
            }
        }
        // The datagram's length: the UDP length field's, or the IP payload's when that is shorter.
        let length = 8 + min(max(udp.length - 8, 0), d.payloadLength)
        guard let sum = transportChecksum(d, bytes: bytes, at: d.payloadOffset - 8, length: length, proto: 17) else {
            return
        }
        if sum != 0 {
            o.append("[bad udp cksum 0x")
            o.hex(UInt64(udp.checksum), width: 4)
            o.append(" -> 0x")
            o.hex(UInt64(InternetChecksum.shouldBe(udp.checksum, sum)), width: 4)
            o.append("!] ")
        } else {
            o.append("[udp sum ok] ")
        }
    }

    /// icmp6_print's "[icmp6 sum ok] " / "[bad icmp6 cksum 0x0000 -> 0xd9ce!] ", before "ICMP6".
    static func icmp6Checksum(_ d: DecodedPacket, bytes: ByteView, into o: inout OutputBuffer) {
        guard case .icmp(let icmp) = d.transport, icmp.length > 0,
            let sum = transportChecksum(d, bytes: bytes, at: d.payloadOffset - 8, length: icmp.length, proto: 58)
        else { return }
        if sum != 0 {
            o.append("[bad icmp6 cksum 0x")
            o.hex(UInt64(icmp.checksum), width: 4)
            o.append(" -> 0x")
            o.hex(UInt64(InternetChecksum.shouldBe(icmp.checksum, sum)), width: 4)
            o.append("!] ")
        } else {
            o.append("[icmp6 sum ok] ")
        }
    }

    /// How far tcpdump's ICMP printer got with what -v adds.
    enum ICMPVerbose {
        case complete
        /// It printed " [|icmp]" where the bytes ended and went on.
        case cut
        /// It gave up on the packet (a longjmp in tcpdump): the line ends with the mark of the protocol it was in.
        case gaveUp
    }

    /// What icmp_print adds with -v after "ICMP …, length N": a wrong checksum, the datagram an error quotes (a
    /// line of its own, printed as tcpdump prints any datagram), and RFC 4884 extensions.
    func icmpVerbose<S: LineStyle>(
        _ s: S, _ d: DecodedPacket, at offset: Int, length: Int, _ bytes: ByteView, into o: inout OutputBuffer
    ) -> ICMPVerbose {
        guard case .icmp(let icmp) = d.transport else { return .complete }
        let fragmented = Self.pseudoHeader(d, bytes: bytes)?.fragmented ?? false
        if !fragmented, let message = bytes.slice(offset, length) {
            var sum = InternetChecksum()
            sum.add(message)
            if sum.value != 0 {
                o.append(" (wrong icmp cksum ")
                o.hexDigits(UInt64(icmp.checksum))
                o.append(" (->")
                o.hexDigits(UInt64(InternetChecksum.shouldBe(icmp.checksum, sum.value)))
                o.append(")!)")
            }
        }
        guard [3, 4, 5, 11, 12].contains(icmp.type) else { return .complete }
        o.append("\n\t")
        var quotedFlags = TcpdumpFlags()
        quotedFlags.verbosity = s.verbosity
        quotedFlags.linkHeader = s.linkHeader
        quotedFlags.quick = s.quick
        guard quoted(quotedFlags, bytes, at: offset + 8, end: offset + length, into: &o) else {
            o.append(" [|icmp]")
            return .gaveUp
        }
        if [3, 11, 12].contains(icmp.type), length > Self.extensionOffset,
            !Self.multipartExtension(bytes.suffix(from: offset)?.prefix(length) ?? bytes.prefix(0), length: length,
                                     into: &o)
        {
            o.append(" [|icmp]")
            return .cut
        }
        return .complete
    }

    /// The datagram an ICMP error quotes, from `offset`, cut where its own total length ends (and where the ICMP
    /// message does), printed with the flags of the line it is in. False when its length field is missing, where
    /// tcpdump gives up on the packet.
    @inline(never)
    func quoted(_ flags: TcpdumpFlags, _ bytes: ByteView, at offset: Int, end: Int, into o: inout OutputBuffer) -> Bool
    {
        guard let first = bytes.u8(offset), let total = bytes.u16(offset + 2) else { return false }
        // ip_print's checks before it trusts the header.
        if first >> 4 != 4 {
            if first >> 4 == 6 {
                o.append("IP6, wrong link-layer encapsulation (invalid)")
            } else {
                o.append("IP")
                o.decimal(first >> 4)
                o.append(" (invalid)")
            }
            return true
        }
        let headerLength = Int(first & 0x0f) * 4
        guard bytes.has(offset, 20), total >= 20, headerLength >= 20, Int(total) >= headerLength else {
            if !flags.linkHeader { o.append("IP ") }
            if !bytes.has(offset, 20) {
                o.append(" [|ip]")
            } else if total < 20 {
                o.append("truncated-ip ")
                o.decimal(total)
            } else if headerLength < 20 {
                o.append("bad-hlen ")
                o.decimal(headerLength)
            } else {
                o.append("bad-len ")
                o.decimal(total)
            }
            return true
        }
        let available = max(0, min(offset + Int(total), end, bytes.count) - offset)
        guard let inner = bytes.slice(offset, available) else { return false }
        let info = CaptureInfo(
            timestamp: Timestamp(seconds: 0, nanoseconds: 0), capturedLength: inner.count,
            originalLength: Int(total), linkType: .ipv4)
        let decoded = PacketDecoder.decode(inner, linkType: .ipv4)
        var style = TcpdumpLine(flags: flags, packetNumber: 0, state: TcpdumpLineState(), isQuoted: true)
        line(&style, PacketTrack(), info: info, decoded: decoded, bytes: inner, into: &o)
        return true
    }

    /// RFC 4884 extensions start 128 bytes into the quoted datagram, after the 8-byte ICMP header.
    static let extensionOffset = 136

    /// icmp_print's RFC 4884 part: tcpdump looks for an extension structure in an error longer than 136 bytes
    /// (without its length field set, only when the structure's checksum is right). False when it is cut short.
    static func multipartExtension(_ m: ByteView, length: Int, into o: inout OutputBuffer) -> Bool {
        // tcpdump checks that all of its struct icmp_ext_t (141 bytes) is there first.
        guard m.has(0, extensionOffset + 5), let lengthField = m.u8(5), let versionByte = m.u8(extensionOffset)
        else { return false }
        let structure = m.slice(extensionOffset, length - extensionOffset)
        if lengthField == 0, let structure {
            var sum = InternetChecksum()
            sum.add(structure)
            if sum.value != 0 { return true }
        }
        o.append("\n\tICMP Multi-Part extension v")
        o.decimal(versionByte >> 4)
        guard versionByte >> 4 == 2 else {
            o.append(" packet not supported")
            return true
        }
        var remaining = length - extensionOffset
        if let structure, let checksum = structure.u16(2) {
            var sum = InternetChecksum()
            sum.add(structure)
            o.append(", checksum 0x")
            o.hex(UInt64(checksum), width: 4)
            o.append(sum.value != 0 ? " (incorrect), length " : " (correct), length ")
            o.decimal(remaining)
        }
        remaining -= 4
        var at = extensionOffset + 4
        while remaining > 4 {
            guard let objectLength = m.u16(at), let objectClass = m.u8(at + 2), let classType = m.u8(at + 3) else {
                return false
            }
            at += 4
            o.append("\n\t  ")
            switch objectClass {
            case 1: o.append("MPLS Stack Entry")
            case 2: o.append("Interface Identification")
            default: o.append("unknown")
            }
            o.append(" Object (")
            o.decimal(objectClass)
            o.append("), Class-Type: ")
            o.decimal(classType)
            o.append(", length ")
            o.decimal(objectLength)
            remaining -= 4
            if objectClass == 0 || objectLength < 4 { return true }
            let dataLength = Int(objectLength) - 4
            if objectClass == 1, classType == 1 {
                guard let label = m.u32(at) else { return false }
                o.append("\n\t    label ")
                o.decimal(label >> 12)
                o.append(", tc ")
                o.decimal((label >> 9) & 7)
                if label & 0x100 != 0 { o.append(", [S]") }
                o.append(", ttl ")
                o.decimal(label & 0xff)
            } else {
                unknownData(m, at: at, length: dataLength, indent: "\n\t    ", into: &o)
            }
            if remaining < dataLength { break }
            remaining -= dataLength
            at += dataLength
        }
        return true
    }

    /// tcpdump's `print_unknown_data`: hex words of what was captured of `length` bytes at `at`.
    static func unknownData(_ m: ByteView, at: Int, length: Int, indent: StaticString, into o: inout OutputBuffer) {
        guard let rest = m.suffix(from: at) else { return }
        hexWords(rest.prefix(length), indent: indent, into: &o)
    }

    /// tcpdump's `bittok2str`: the names of the set bits, in the table's order, or "none".
    static func flagNames(_ value: UInt32, _ table: [(UInt32, StaticString)], into o: inout OutputBuffer) {
        var first = true
        for (bit, name) in table where value & bit != 0 {
            if !first { o.append(", ") }
            first = false
            o.append(name)
        }
        if first { o.append("none") }
    }

    /// `get_rtpref`: a router's preference bits.
    static func routerPreference(_ flags: UInt8) -> StaticString {
        switch (flags & 0x18) >> 3 {
        case 0: "medium"
        case 1: "high"
        case 2: "rsv"
        default: "low"
        }
    }

    /// `get_lifetime`.
    private static func lifetime(_ v: UInt32, into o: inout OutputBuffer) {
        if v == UInt32.max {
            o.append("infinity")
        } else {
            o.decimal(v)
            o.byte(UInt8(ascii: "s"))
        }
    }

    /// `icmp6_opt_print`: neighbor discovery options from `start` of the message, each on a line of its own (with
    /// -vv its bytes follow in hex). False when one runs past the bytes.
    static func ndOptions(_ m: ByteView, from start: Int, length: Int, verbosity: Int, into o: inout OutputBuffer)
        -> Bool
    {
        var at = start
        var remaining = length - start
        while at < m.count {
            guard m.has(at + 1, 1) else { return false }
            if remaining <= 0 { return true }
            let type = m.u8(at) ?? 0
            let units = Int(m.u8(at + 1) ?? 0)
            let size = units * 8
            guard units > 0, m.has(at, size) else { return false }
            o.append("\n\t  ")
            let name: StaticString = switch type {
            case 1: "source link-address"
            case 2: "destination link-address"
            case 3: "prefix info"
            case 4: "redirected header"
            case 5: "mtu"
            case 25: "rdnss"
            case 31: "dnssl"
            case 7: "advertisement interval"
            case 8: "homeagent information"
            case 24: "route info"
            default: "unknown"
            }
            o.append(name)
            o.append(" option (")
            o.decimal(type)
            o.append("), length ")
            o.decimal(size)
            o.append(" (")
            o.decimal(units)
            o.append("): ")
            switch type {
            case 1, 2:
                for i in 0..<(size - 2) {
                    if i > 0 { o.byte(UInt8(ascii: ":")) }
                    o.hex(UInt64(m.u8(at + 2 + i) ?? 0), width: 2)
                }
            case 3:
                guard let prefixLength = m.u8(at + 2), let flags = m.u8(at + 3), let valid = m.u32(at + 4),
                    let preferred = m.u32(at + 8), let prefix = m.ipv6(at + 16)
                else { return false }
                o.address(prefix)
                o.byte(UInt8(ascii: "/"))
                o.decimal(prefixLength)
                if units != 4 { o.append("badlen") }
                o.append(", Flags [")
                flagNames(UInt32(flags), [(0x80, "onlink"), (0x40, "auto"), (0x20, "router")], into: &o)
                o.append("], valid time ")
                lifetime(valid, into: &o)
                o.append(", pref. time ")
                lifetime(preferred, into: &o)
            case 4:
                // tcpdump dumps from the first option here, not from this one.
                unknownData(m, at: start, length: size, indent: "\n\t    ", into: &o)
            case 5:
                guard let mtu = m.u32(at + 4) else { return false }
                o.byte(0x20)
                o.decimal(mtu)
                if units != 1 { o.append("bad option length") }
            case 25:
                guard let life = m.u32(at + 4) else { return false }
                o.append(" lifetime ")
                o.decimal(life)
                o.append("s,")
                for i in 0..<((units - 1) / 2) {
                    guard let address = m.ipv6(at + 8 + 16 * i) else { return false }
                    o.append(" addr: ")
                    o.address(address)
                }
            case 31:
                guard let life = m.u32(at + 4) else { return false }
                o.append(" lifetime ")
                o.decimal(life)
                o.append("s, domain(s):")
                var name = at + 8
                while name < at + size, let first = m.u8(name), first != 0 {
                    o.byte(0x20)
                    guard let next = domainName(m, at: name, into: &o) else { return false }
                    name = next
                }
            case 7:
                guard let interval = m.u32(at + 4) else { return false }
                o.byte(0x20)
                o.decimal(interval)
                o.append("ms")
            case 8:
                guard let preference = m.u16(at + 4), let life = m.u16(at + 6) else { return false }
                o.append(" preference ")
                o.decimal(preference)
                o.append(", lifetime ")
                o.decimal(life)
            case 24:
                guard let prefixLength = m.u8(at + 2), let flags = m.u8(at + 3), let life = m.u32(at + 4) else {
                    return false
                }
                var hi: UInt64 = 0
                var lo: UInt64 = 0
                switch units {
                case 1: break
                case 2:
                    guard let h = m.u64(at + 8) else { return false }
                    hi = h
                case 3:
                    guard let h = m.u64(at + 8), let l = m.u64(at + 16) else { return false }
                    hi = h
                    lo = l
                default: return false
                }
                o.byte(0x20)
                o.address(.v6(hi, lo))
                o.byte(UInt8(ascii: "/"))
                o.decimal(prefixLength)
                o.append(", pref=")
                o.append(routerPreference(flags))
                o.append(", lifetime=")
                lifetime(life, into: &o)
            default:
                if verbosity <= 1 {
                    unknownData(m, at: at + 2, length: size - 2, indent: "\n\t  ", into: &o)
                    return true
                }
            }
            if verbosity > 1 { unknownData(m, at: at + 2, length: size - 2, indent: "\n\t    ", into: &o) }
            at += size
            remaining -= size
        }
        return true
    }

    /// A domain name without compression (DNSSL names have none), labels each followed by a dot, as tcpdump's
    /// `fqdn_print` writes it; the offset after it, or nil when it runs past the bytes.
    private static func domainName(_ m: ByteView, at start: Int, into o: inout OutputBuffer) -> Int? {
        var at = start
        while let length = m.u8(at) {
            at += 1
            if length == 0 { return at }
            guard length < 64, let label = m.slice(at, Int(length)) else { return nil }
            for i in 0..<label.count { printable(label.u8(i) ?? 0, into: &o) }
            o.byte(UInt8(ascii: "."))
            at += Int(length)
        }
        return nil
    }

    /// `mldv2_query_print` after " v2".
    static func mldv2Query(_ m: ByteView, length: Int, verbosity: Int, into o: inout OutputBuffer) -> Bool {
        guard let code = m.u16(4) else { return false }
        // RFC 3810's floating-point form above 32767.
        let delay = code < 32768
            ? UInt32(code) : (UInt32(code & 0x0fff) | 0x1000) << ((UInt32(code & 0x7000) >> 12) + 3)
        if verbosity > 0 {
            o.append(" [max resp delay=")
            o.decimal(delay)
            o.byte(UInt8(ascii: "]"))
        }
        guard let group = m.ipv6(8) else { return false }
        o.append(" [gaddr ")
        o.address(group)
        if verbosity > 0 {
            guard let flags = m.u8(24), let qqic = m.u8(25) else { return false }
            if flags & 0x08 != 0 { o.append(" sflag") }
            if flags & 0x07 != 0 {
                o.append(" robustness=")
                o.decimal(flags & 0x07)
            }
            let qqi = qqic < 128 ? UInt32(qqic) : (UInt32(qqic & 0x0f) | 0x10) << ((UInt32(qqic & 0x70) >> 4) + 3)
            o.append(" qqi=")
            o.decimal(qqi)
        }
        guard let sources = m.u16(26) else { return false }
        if sources > 0 {
            if length < 28 + Int(sources) * 16 {
                o.append(" [invalid number of sources]")
            } else if verbosity > 1 {
                o.append(" {")
                for i in 0..<Int(sources) {
                    guard let source = m.ipv6(28 + 16 * i) else { return false }
                    o.byte(0x20)
                    o.address(source)
                }
                o.append(" }")
            } else {
                o.append(", ")
                o.decimal(sources)
                o.append(" source(s)")
            }
        }
        o.byte(UInt8(ascii: "]"))
        return true
    }

    /// `mldv2_report_print`'s group records (-v).
    static func mldv2Records(_ m: ByteView, _ count: UInt16, length: Int, verbosity: Int, into o: inout OutputBuffer)
        -> Bool
    {
        var group = 8
        for _ in 0..<Int(count) {
            if length < group + 20 {
                o.append(" [invalid number of groups]")
                return true
            }
            guard let address = m.ipv6(group + 4), let type = m.u8(group), let sources = m.u16(group + 2) else {
                return false
            }
            o.append(" [gaddr ")
            o.address(address)
            o.byte(0x20)
            let name: StaticString? = switch type {
            case 1: "is_in"
            case 2: "is_ex"
            case 3: "to_in"
            case 4: "to_ex"
            case 5: "allow"
            case 6: "block"
            default: nil
            }
            if let name {
                o.append(name)
            } else {
                o.append(" [v2-report-#")
                o.decimal(type)
                o.byte(UInt8(ascii: "]"))
            }
            if length < group + 20 + Int(sources) * 16 {
                o.append(" [invalid number of sources ")
                o.decimal(sources)
                o.byte(UInt8(ascii: "]"))
                return true
            }
            if verbosity == 1 {
                o.append(", ")
                o.decimal(sources)
                o.append(" source(s)")
            } else {
                o.append(" {")
                for i in 0..<Int(sources) {
                    guard let source = m.ipv6(group + 20 + 16 * i) else { return false }
                    o.byte(0x20)
                    o.address(source)
                }
                o.append(" }")
            }
            group += 20 + Int(sources) * 16
            o.byte(UInt8(ascii: "]"))
        }
        return true
    }

    /// A quoted TCP or UDP header cut before its end, as tcp_print and udp_print show it: the ports when they are
    /// there, then tcpdump's mark. False when the datagram is not such a one.
    static func cutTransport(_ proto: UInt8, _ d: DecodedPacket, bytes: ByteView, into o: inout OutputBuffer) -> Bool {
        guard proto == 6 || proto == 17, case .truncated(.transport)? = d.problem, !d.isFragment,
            let source = d.source, let destination = d.destination
        else { return false }
        let start: Int
        let length: Int
        switch d.network {
        case .ipv4(let ip):
            start = networkOffset(d) + ip.headerLength
            length = ip.totalLength - ip.headerLength
        case .ipv6(let ip):
            start = networkOffset(d) + 40 + ip.extensionLength
            length = ip.payloadLength - ip.extensionLength
        default: return false
        }
        o.address(source)
        if let sourcePort = bytes.u16(start), let destinationPort = bytes.u16(start + 2) {
            o.byte(UInt8(ascii: "."))
            o.decimal(sourcePort)
            o.append(" > ")
            o.address(destination)
            o.byte(UInt8(ascii: "."))
            o.decimal(destinationPort)
            o.append(": ")
            if proto == 17, length < 8 {
                // The IP datagram leaves no room for a UDP header.
                o.append("truncated-udp ")
                o.decimal(length)
                return true
            }
        } else {
            o.append(" > ")
            o.address(destination)
            o.append(proto == 6 ? ":" : ": ")
        }
        o.append(proto == 6 ? " [|tcp]" : " [|udp]")
        return true
    }
}

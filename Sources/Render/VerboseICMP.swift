import PacketWire
import Timeline

// -v and -vv for ICMP and ICMPv6: the datagram an error quotes (printed as a packet of its own), RFC 4884
// extensions, neighbor discovery's options and MLDv2.
extension PacketText {
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
        guard icmp.isError else { return .complete }
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
            !Self.multipartExtension(
                bytes.suffix(from: offset)?.prefix(length) ?? bytes.prefix(0), length: length,
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
            let name: StaticString =
                switch type {
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
        let delay =
            code < 32768
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
            let name: StaticString? =
                switch type {
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
}

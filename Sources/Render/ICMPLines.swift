import PacketWire

// MARK: - ICMP and ICMPv6 as tcpdump prints them

extension OutputBuffer {
    /// Forgets what was written after `count`: tcpdump prints an ICMP message only once it has read all of it.
    mutating func rollBack(to count: Int) { used = min(used, count) }
}

extension PacketText {
    /// " tcp port 9", " udp port 9", " protocol 132 port 9": the unreachable port of a quoted datagram.
    static func quotedPort(_ proto: UInt8, _ port: UInt16, into o: inout OutputBuffer) {
        switch proto {
        case 6: o.append(" tcp port ")
        case 17: o.append(" udp port ")
        default:
            o.append(" protocol ")
            o.decimal(proto)
            o.append(" port ")
        }
        o.decimal(port)
    }

    /// The ICMP or ICMPv6 message at `offset` of `bytes`, `length` bytes long by its IP header, as tcpdump prints
    /// it; false when the line ends with tcpdump's truncation mark. Out of `write`, whose per-packet path stays
    /// small (with this inline, Swift copied every decoded packet).
    @inline(never)
    static func icmp(
        _ isV6: Bool, at offset: Int, length: Int, _ bytes: ByteView, verbosity: Int = 0, into o: inout OutputBuffer
    ) -> Bool {
        let m = bytes.suffix(from: offset)?.prefix(max(length, 0)) ?? bytes.prefix(0)
        if isV6 ? icmp6(m, length: length, verbosity: verbosity, into: &o) : icmp4(m, length: length, into: &o) {
            return true
        }
        o.append(isV6 ? " [|icmp6]" : " [|icmp]")
        return false
    }

    /// Whether tcpdump's printer, running out of bytes in the message at `offset` (after `icmp` returned false),
    /// stopped at one of its bounds checks (ND_TCHECK: it goes on to the end of the packet) rather than in a read
    /// (GET: it gives up on the packet, and then dumps it from its first byte with -x, -X and -A).
    static func icmpCutIsChecked(_ isV6: Bool, at offset: Int, _ bytes: ByteView) -> Bool {
        guard let m = bytes.suffix(from: offset), let type = m.u8(0), m.u8(1) != nil else { return false }
        if !isV6 {
            switch type {
            case 3: return m.u8(1) == 3 && !m.has(17, 1)
            case 9, 11: return true
            case 14: return !m.has(16, 4)
            default: return false
            }
        }
        switch type {
        case 1: return m.u8(1) == 4
        case 4: return !m.has(32, 16)
        // Neighbor discovery: the fixed part is read, the options are checked.
        case 133, 147: return m.has(0, 8)
        case 134: return m.has(0, 16)
        case 135, 136: return m.has(0, 24)
        case 137: return m.has(0, 40)
        default: return false
        }
    }

    /// A first fragment whose ICMP header was cut before its type and code, which tcpdump's printer still reads.
    @inline(never)
    static func isCutICMP(_ d: DecodedPacket, _ proto: UInt8) -> Bool {
        guard case .truncated(.transport)? = d.problem, !d.isFragment else { return false }
        if case .ipv6 = d.network { return proto == 58 }
        return proto == 1
    }

    /// tcpdump 4.99's `icmp_print` without -v: "ICMP what, length N", where "what" names what the message says
    /// about the datagram it quotes ("127.0.0.1 udp port 5000 unreachable"). `m` is the message as far as it was
    /// captured and its IP datagram reaches; `length` its length per the IP header. tcpdump writes nothing of a
    /// message it runs out of bytes in (it prints " [|icmp]" instead): then this writes nothing and returns false.
    static func icmp4(_ m: ByteView, length: Int, into o: inout OutputBuffer) -> Bool {
        let start = o.count
        guard icmp4What(m, into: &o) else {
            o.rollBack(to: start)
            return false
        }
        o.append(", length ")
        o.decimal(length)
        return true
    }

    /// The quoted IP header of an ICMP error starts after the 8-byte ICMP header; its destination at 16.
    private enum Quoted4 {
        static let header = 8, protocolNumber = 8 + 9, destination = 8 + 16
    }

    private static func icmp4What(_ m: ByteView, into o: inout OutputBuffer) -> Bool {
        guard let type = m.u8(0), let code = m.u8(1) else { return false }
        o.append("ICMP ")
        switch type {
        case 0, 8:
            guard let id = m.u16(4), let seq = m.u16(6) else { return false }
            o.append(type == 8 ? "echo request, id " : "echo reply, id ")
            o.decimal(id)
            o.append(", seq ")
            o.decimal(seq)
        case 3 where code == 3:
            // The quoted transport header follows the quoted IP header, whatever length that claims.
            guard m.has(Quoted4.protocolNumber, 1), let vhl = m.u8(Quoted4.header),
                let port = m.u16(Quoted4.header + Int(vhl & 0x0f) * 4 + 2), let proto = m.u8(Quoted4.protocolNumber),
                let dst = m.ipv4(Quoted4.destination)
            else { return false }
            o.address(dst)
            Self.quotedPort(proto, port, into: &o)
            o.append(" unreachable")
        case 3 where code == 4:
            guard let mtu = m.u16(6), let dst = m.ipv4(Quoted4.destination) else { return false }
            o.address(dst)
            o.append(" unreachable - need to frag")
            if mtu != 0 {
                o.append(" (mtu ")
                o.decimal(mtu)
                o.byte(UInt8(ascii: ")"))
            }
        case 3 where code == 2:
            guard let dst = m.ipv4(Quoted4.destination), let proto = m.u8(Quoted4.protocolNumber) else { return false }
            o.address(dst)
            o.append(" protocol ")
            o.decimal(proto)
            o.append(" unreachable")
        case 3:
            guard let dst = m.ipv4(Quoted4.destination) else { return false }
            let (before, after): (StaticString, StaticString) =
                switch code {
                case 0: ("net ", " unreachable")
                case 1: ("host ", " unreachable")
                case 5: ("", " unreachable - source route failed")
                case 6: ("net ", " unreachable - unknown")
                case 7: ("host ", " unreachable - unknown")
                case 8: ("", " unreachable - source host isolated")
                case 9: ("net ", " unreachable - admin prohibited")
                case 10: ("host ", " unreachable - admin prohibited")
                case 11: ("net ", " unreachable - tos prohibited")
                case 12: ("host ", " unreachable - tos prohibited")
                case 13: ("host ", " unreachable - admin prohibited filter")
                case 14: ("host ", " unreachable - host precedence violation")
                case 15: ("host ", " unreachable - precedence cutoff")
                default: ("", " unreachable - #")
                }
            o.append(before)
            o.address(dst)
            o.append(after)
            if code > 15 { o.decimal(code) }
        case 5:
            guard let dst = m.ipv4(Quoted4.destination), let gateway = m.ipv4(4) else { return false }
            switch code {
            case 0, 1, 2, 3:
                o.append(code < 2 ? "redirect " : "redirect-tos ")
                o.address(dst)
                o.append(code % 2 == 0 ? " to net " : " to host ")
            default:
                o.append("redirect-#")
                o.decimal(code)
                o.byte(0x20)
                o.address(dst)
                o.append(" to ")
            }
            o.address(gateway)
        case 9:
            guard let count = m.u8(4), let size = m.u8(5), let lifetime = m.u16(6) else { return false }
            o.append("router advertisement lifetime ")
            if lifetime >= 3600 {
                o.decimal(lifetime / 3600)
                o.byte(UInt8(ascii: ":"))
            }
            if lifetime >= 60 {
                o.decimal(UInt64(lifetime % 3600 / 60), minimumWidth: lifetime >= 3600 ? 2 : 1)
                o.byte(UInt8(ascii: ":"))
                o.decimal(UInt64(lifetime % 60), minimumWidth: 2)
            } else {
                o.decimal(lifetime)
            }
            o.byte(0x20)
            o.decimal(count)
            o.byte(UInt8(ascii: ":"))
            guard size == 2 else {
                o.append(" [size ")
                o.decimal(size)
                o.byte(UInt8(ascii: "]"))
                break
            }
            for i in 0..<Int(count) {
                guard let address = m.ipv4(8 + 8 * i), let preference = m.u32(12 + 8 * i) else { return false }
                o.append(" {")
                o.address(address)
                o.byte(0x20)
                o.decimal(preference)
                o.byte(UInt8(ascii: "}"))
            }
        case 11:
            guard m.has(Quoted4.destination, 4) else { return false }
            switch code {
            case 0: o.append("time exceeded in-transit")
            case 1: o.append("ip reassembly time exceeded")
            default:
                o.append("time exceeded-#")
                o.decimal(code)
            }
        case 12:
            if code != 0 {
                o.append("parameter problem - code ")
                o.decimal(code)
            } else {
                guard let pointer = m.u8(4) else { return false }
                o.append("parameter problem - octet ")
                o.decimal(pointer)
            }
        case 13:
            guard let id = m.u16(4), let seq = m.u16(6) else { return false }
            o.append("time stamp query id ")
            o.decimal(id)
            o.append(" seq ")
            o.decimal(seq)
        case 14:
            guard m.has(16, 4), let id = m.u16(4), let seq = m.u16(6), let originate = m.u32(8),
                let receive = m.u32(12), let transmit = m.u32(16)
            else { return false }
            o.append("time stamp reply id ")
            o.decimal(id)
            o.append(" seq ")
            o.decimal(seq)
            o.append(": org ")
            milliseconds(originate, into: &o)
            o.append(", recv ")
            milliseconds(receive, into: &o)
            o.append(", xmit ")
            milliseconds(transmit, into: &o)
        case 18:
            guard let mask = m.u32(8) else { return false }
            o.append("address mask is 0x")
            o.hex(UInt64(mask), width: 8)
        case 4: o.append("source quench")
        case 10: o.append("router solicitation")
        case 15: o.append("information request")
        case 16: o.append("information reply")
        case 17: o.append("address mask request")
        default:
            o.append("type-#")
            o.decimal(type)
        }
        return true
    }

    /// An ICMP timestamp (milliseconds since midnight UTC) as tcpdump's `icmp_tstamp_print`: HH:MM:SS.mmm.
    private static func milliseconds(_ t: UInt32, into o: inout OutputBuffer) {
        let seconds = t / 1000
        o.decimal(UInt64(seconds / 3600), minimumWidth: 2)
        o.byte(UInt8(ascii: ":"))
        o.decimal(UInt64(seconds / 60 % 60), minimumWidth: 2)
        o.byte(UInt8(ascii: ":"))
        o.decimal(UInt64(seconds % 60), minimumWidth: 2)
        o.byte(UInt8(ascii: "."))
        o.decimal(UInt64(t % 1000), minimumWidth: 3)
    }

    /// The quoted IPv6 header of an ICMPv6 error starts after the 8-byte ICMPv6 header.
    private enum Quoted6 {
        static let header = 8, nextHeader = 8 + 6, source = 8 + 8, destination = 8 + 24
    }

    /// tcpdump 4.99's `icmp6_print`: "ICMP6, what, length N" (with -v the length moves behind the name of
    /// neighbor discovery messages, whose options follow, and goes elsewhere). Unlike ICMP it prints as it reads:
    /// when it runs out of bytes the line so far stays and " [|icmp6]" follows; then this returns false. Router
    /// renumbering, node information and RPL messages get their name and length only (tcpdump says more).
    static func icmp6(_ m: ByteView, length: Int, verbosity: Int = 0, into o: inout OutputBuffer) -> Bool {
        if length == 0 {
            o.append("ICMP6, length 0 (invalid)")
            return true
        }
        guard let type = m.u8(0) else { return false }
        o.append("ICMP6, ")
        let name: StaticString? =
            switch type {
            case 1: "destination unreachable"
            case 2: "packet too big"
            case 3: "time exceeded in-transit"
            case 4: "parameter problem"
            case 128: "echo request"
            case 129: "echo reply"
            case 130: "multicast listener query"
            case 131: "multicast listener report"
            case 132: "multicast listener done"
            case 133: "router solicitation"
            case 134: "router advertisement"
            case 135: "neighbor solicitation"
            case 136: "neighbor advertisement"
            case 137: "redirect"
            case 138: "router renumbering"
            case 139: "who-are-you request"
            case 140: "who-are-you reply"
            case 141: "inverse neighbor solicitation"
            case 142: "inverse neighbor advertisement"
            case 143: "multicast listener report v2"
            case 144: "ha discovery request"
            case 145: "ha discovery reply"
            case 146: "mobile router solicitation"
            case 147: "mobile router advertisement"
            case 155: "RPL"
            case 200: "mtrace response"
            case 201: "mtrace message"
            default: nil
            }
        if let name {
            o.append(name)
        } else {
            o.append("unknown icmp6 type (")
            o.decimal(type)
            o.byte(UInt8(ascii: ")"))
        }
        if verbosity > 0, [133, 134, 135, 136, 137, 145, 147].contains(type) {
            o.append(", length ")
            o.decimal(length)
        }
        guard let code = m.u8(1) else { return false }
        switch type {
        case 1:
            switch code {
            case 0: o.append(", unreachable route")
            case 1: o.append(",  unreachable prohibited")  // tcpdump's table has the extra space
            case 2: o.append(", beyond scope")
            case 3: o.append(", unreachable address")
            case 4: o.append(", unreachable port")
            default:
                o.append(", unknown unreach code (")
                o.decimal(code)
                o.byte(UInt8(ascii: ")"))
            }
            switch code {
            case 0, 1, 3:
                guard let dst = m.ipv6(Quoted6.destination) else { return false }
                o.byte(0x20)
                o.address(dst)
            case 2:
                guard let dst = m.ipv6(Quoted6.destination), let src = m.ipv6(Quoted6.source) else { return false }
                o.byte(0x20)
                o.address(dst)
                o.append(", source address ")
                o.address(src)
            case 4:
                guard let (proto, at) = upperLayer6(m), let port = m.u16(at + 2),
                    let dst = m.ipv6(Quoted6.destination)
                else { return false }
                o.append(", ")
                o.address(dst)
                Self.quotedPort(proto, port, into: &o)
                if proto != 6 && proto != 17 { o.append(" unreachable") }
            default:
                // tcpdump shows the rest as hex, without the length (with -vv, neither).
                if verbosity <= 1 {
                    hexWords(m, into: &o)
                    return true
                }
            }
        case 2:
            guard let mtu = m.u32(4) else { return false }
            o.append(", mtu ")
            o.decimal(mtu)
        case 3:
            switch code {
            case 0:
                guard let dst = m.ipv6(Quoted6.destination) else { return false }
                o.append(" for ")
                o.address(dst)
            case 1: o.append(" (reassembly)")
            default:
                o.append(", unknown code (")
                o.decimal(code)
                o.byte(UInt8(ascii: ")"))
            }
        case 4:
            guard m.has(Quoted6.destination, 16) else { return false }
            let what: StaticString? =
                switch code {
                case 0: ", erroneous - octet "
                case 1: ", next header - octet "
                case 2: ", option - octet "
                case 3: ", incomplete header chain - octet "
                default: nil
                }
            if let what {
                guard let pointer = m.u32(4) else { return false }
                o.append(what)
                o.decimal(pointer)
            } else {
                o.append(", code-#")
                o.decimal(code)
            }
        case 128, 129:
            guard let id = m.u16(4), let seq = m.u16(6) else { return false }
            o.append(", id ")
            o.decimal(id)
            o.append(", seq ")
            o.decimal(seq)
        case 130:
            if length == 24 {
                guard mld6(m, into: &o) else { return false }
            } else if length >= 28 {
                o.append(" v2")
                guard mldv2Query(m, length: length, verbosity: verbosity, into: &o) else { return false }
            } else {
                o.append(" unknown-version (len ")
                o.decimal(length)
                o.append(") ")
            }
        case 131, 132:
            guard mld6(m, into: &o) else { return false }
        case 135, 136:
            guard let target = m.ipv6(8) else { return false }
            o.append(type == 135 ? ", who has " : ", tgt is ")
            o.address(target)
            if verbosity > 0 {
                if type == 136 {
                    guard let flags = m.u32(4) else { return false }
                    o.append(", Flags [")
                    flagNames(
                        flags, [(0x8000_0000, "router"), (0x4000_0000, "solicited"), (0x2000_0000, "override")],
                        into: &o)
                    o.byte(UInt8(ascii: "]"))
                }
                guard ndOptions(m, from: 24, length: length, verbosity: verbosity, into: &o) else { return false }
            }
        case 137:
            guard let dst = m.ipv6(24) else { return false }
            o.append(", ")
            o.address(dst)
            guard let target = m.ipv6(8) else { return false }
            o.append(" to ")
            o.address(target)
            if verbosity > 0, !ndOptions(m, from: 40, length: length, verbosity: verbosity, into: &o) { return false }
        case 143:
            if length < 8 {
                o.append(" [invalid len ")
                o.decimal(length)
                o.byte(UInt8(ascii: "]"))
            } else {
                guard let records = m.u16(6) else { return false }
                o.append(", ")
                o.decimal(records)
                o.append(" group record(s)")
                if verbosity > 0, !mldv2Records(m, records, length: length, verbosity: verbosity, into: &o) {
                    return false
                }
            }
        case 144, 146:
            guard let id = m.u16(4) else { return false }
            o.append(", id 0x")
            o.hex(UInt64(id), width: 4)
        case 133:
            if verbosity > 0, !ndOptions(m, from: 8, length: length, verbosity: verbosity, into: &o) { return false }
        case 134:
            if verbosity > 0 {
                guard let hops = m.u8(4), let flags = m.u8(5), let lifetime = m.u16(6), let reachable = m.u32(8),
                    let retransmit = m.u32(12)
                else { return false }
                o.append("\n\thop limit ")
                o.decimal(hops)
                o.append(", Flags [")
                flagNames(
                    UInt32(flags),
                    [
                        (0x80, "managed"), (0x40, "other stateful"), (0x20, "home agent"),
                        (0x02, "ipv6 only"),
                    ], into: &o)
                o.append("], pref ")
                o.append(routerPreference(flags))
                o.append(", router lifetime ")
                o.decimal(lifetime)
                o.append("s, reachable time ")
                o.decimal(reachable)
                o.append("ms, retrans timer ")
                o.decimal(retransmit)
                o.append("ms")
                guard ndOptions(m, from: 16, length: length, verbosity: verbosity, into: &o) else { return false }
            }
        case 145:
            if verbosity > 0 {
                guard let id = m.u16(4) else { return false }
                o.append(", id 0x")
                o.hex(UInt64(id), width: 4)
                var at = 8
                while at < length {
                    guard let address = m.ipv6(at) else { return false }
                    o.append(", ")
                    o.address(address)
                    at += 16
                }
            }
        case 147:
            if verbosity > 0 {
                guard let id = m.u16(4), let flags = m.u16(6) else { return false }
                o.append(", id 0x")
                o.hex(UInt64(id), width: 4)
                if flags & 0xc000 != 0 { o.byte(0x20) }
                if flags & 0x8000 != 0 { o.byte(UInt8(ascii: "M")) }
                if flags & 0x4000 != 0 { o.byte(UInt8(ascii: "O")) }
                guard ndOptions(m, from: 8, length: length, verbosity: verbosity, into: &o) else { return false }
            }
        case 138...142, 155:
            break
        default:
            o.append(", length ")
            o.decimal(length)
            if verbosity <= 1 { hexWords(m, into: &o) }
            return true
        }
        if verbosity == 0 {
            o.append(", length ")
            o.decimal(length)
        }
        return true
    }

    /// tcpdump's `mld6_print`: nothing when the 24-byte MLD message is not all there.
    private static func mld6(_ m: ByteView, into o: inout OutputBuffer) -> Bool {
        guard m.has(0, 24), let delay = m.u16(4), let address = m.ipv6(8) else { return true }
        o.append("max resp delay: ")
        o.decimal(delay)
        o.append(" addr: ")
        o.address(address)
        return true
    }

    /// tcpdump's `get_upperlayer`: follows the quoted datagram's extension headers (hop-by-hop, destination
    /// options, routing, a first fragment, AH) to TCP or UDP; the protocol and where its header starts, or nil.
    private static func upperLayer6(_ m: ByteView) -> (proto: UInt8, offset: Int)? {
        guard var next = m.u8(Quoted6.nextHeader) else { return nil }
        var offset = Quoted6.header
        var length = 40
        while offset < m.count {
            offset += length
            switch next {
            case 6, 17:
                return m.has(offset + 2, 2) ? (next, offset) : nil
            case 0, 60, 43:
                guard let n = m.u8(offset), let l = m.u8(offset + 1) else { return nil }
                next = n
                length = (Int(l) + 1) * 8
            case 44:
                guard let n = m.u8(offset), let fragment = m.u16(offset + 2), fragment & 0xfff8 == 0 else { return nil }
                next = n
                length = 8
            case 51:
                guard let n = m.u8(offset), let l = m.u8(offset + 1) else { return nil }
                next = n
                length = (Int(l) + 2) * 4
            default:
                return nil
            }
        }
        return nil
    }

}

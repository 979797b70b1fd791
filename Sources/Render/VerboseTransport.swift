import PacketWire
import Timeline

// -v and -vv for TCP, UDP and ICMPv6: the checksums tcpdump verifies over the pseudo-header, a reset's text, and
// the mark of a transport header cut short.
extension PacketText {
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
        guard
            let sum = transportChecksum(
                d, bytes: bytes, at: start, length: tcp.headerLength + d.payloadLength,
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
    static func udpChecksum(
        _ udp: UDPHeader, _ d: DecodedPacket, bytes: ByteView, verbosity: Int,
        into o: inout OutputBuffer
    ) {
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
        checksumVerdict("udp", field: udp.checksum, sum: sum, into: &o)
    }

    /// icmp6_print's "[icmp6 sum ok] " / "[bad icmp6 cksum 0x0000 -> 0xd9ce!] ", before "ICMP6".
    static func icmp6Checksum(_ d: DecodedPacket, bytes: ByteView, into o: inout OutputBuffer) {
        guard case .icmp(let icmp) = d.transport, icmp.length > 0,
            let sum = transportChecksum(d, bytes: bytes, at: d.payloadOffset - 8, length: icmp.length, proto: 58)
        else { return }
        checksumVerdict("icmp6", field: icmp.checksum, sum: sum, into: &o)
    }

    /// "[NAME sum ok] ", or "[bad NAME cksum 0xFIELD -> 0xSHOULDBE!] " when the sum over the packet is not 0.
    private static func checksumVerdict(_ name: String, field: UInt16, sum: UInt16, into o: inout OutputBuffer) {
        if sum != 0 {
            o.append("[bad ")
            o.append(name)
            o.append(" cksum 0x")
            o.hex(UInt64(field), width: 4)
            o.append(" -> 0x")
            o.hex(UInt64(InternetChecksum.shouldBe(field, sum)), width: 4)
            o.append("!] ")
        } else {
            o.byte(UInt8(ascii: "["))
            o.append(name)
            o.append(" sum ok] ")
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

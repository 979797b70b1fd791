/// Decodes captured bytes, layer by layer, as far as they are valid.
///
/// Every read goes through `ByteView`; a missing byte ends decoding with `.truncated`, an impossible value with
/// `.malformed`. The decoder never traps and never allocates for the common TCP/UDP/IPv4/IPv6 packet.
public enum PacketDecoder {
    public static func decode(_ bytes: ByteView, linkType: LinkType) -> DecodedPacket {
        switch linkType {
        case .ethernet: return decodeEthernet(bytes)
        case .linuxSLL: return decodeSLL(bytes)
        case .linuxSLL2: return decodeSLL2(bytes)
        case .null: return decodeNull(bytes, bigEndian: false)
        case .loop: return decodeNull(bytes, bigEndian: true)
        case .raw, .dltRaw:
            var p = DecodedPacket(link: .raw)
            decodeIP(bytes, base: 0, into: &p)
            return p
        case .ipv4:
            var p = DecodedPacket(link: .raw)
            decodeIPv4(bytes, base: 0, into: &p)
            return p
        case .ipv6:
            var p = DecodedPacket(link: .raw)
            decodeIPv6(bytes, base: 0, into: &p)
            return p
        default:
            var p = DecodedPacket(link: .unknown(linkType))
            p.problem = .unsupportedLink(linkType)
            return p
        }
    }

    /// Whether `decode` reads past the link layer of `linkType`'s packets (otherwise each is `.unsupportedLink`).
    public static func decodes(_ linkType: LinkType) -> Bool {
        switch linkType {
        case .ethernet, .linuxSLL, .linuxSLL2, .null, .loop, .raw, .dltRaw, .ipv4, .ipv6: true
        default: false
        }
    }

    // MARK: Link layer

    private enum Ethernet {
        static let destination = 0, source = 6, etherType = 12, headerLength = 14
        static let vlanTagLength = 4
    }

    public enum EtherType {
        public static let ipv4: UInt16 = 0x0800
        public static let arp: UInt16 = 0x0806
        public static let ipv6: UInt16 = 0x86dd
        public static let vlan: UInt16 = 0x8100
        public static let qinq: UInt16 = 0x88a8
    }

    static func decodeEthernet(_ b: ByteView) -> DecodedPacket {
        guard let dst = b.mac(Ethernet.destination), let src = b.mac(Ethernet.source),
            var type = b.u16(Ethernet.etherType)
        else {
            var p = DecodedPacket(link: .unknown(.ethernet))
            p.problem = .truncated(.link)
            return p
        }
        var offset = Ethernet.headerLength
        var tags = 0
        // 802.1Q / 802.1ad tags: skip up to two, keeping the inner EtherType.
        while type == EtherType.vlan || type == EtherType.qinq, tags < 2 {
            guard let inner = b.u16(offset + 2) else {
                var p = DecodedPacket(link: .ethernet(source: src, destination: dst, etherType: type, vlanTags: tags))
                p.problem = .truncated(.link)
                return p
            }
            type = inner
            offset += Ethernet.vlanTagLength
            tags += 1
        }
        var p = DecodedPacket(link: .ethernet(source: src, destination: dst, etherType: type, vlanTags: tags))
        decodeEtherType(type, b, base: offset, into: &p)
        return p
    }

    private enum SLL {
        static let packetType = 0, protocolType = 14, headerLength = 16
    }

    private enum SLL2 {
        static let protocolType = 0, interfaceIndex = 4, packetType = 10, headerLength = 20
    }

    static func decodeSLL(_ b: ByteView) -> DecodedPacket {
        guard let pktType = b.u16(SLL.packetType), let proto = b.u16(SLL.protocolType) else {
            var p = DecodedPacket(link: .unknown(.linuxSLL))
            p.problem = .truncated(.link)
            return p
        }
        var p = DecodedPacket(link: .cooked(version: 1, packetType: pktType, protocolType: proto, interfaceIndex: nil))
        decodeEtherType(proto, b, base: SLL.headerLength, into: &p)
        return p
    }

    static func decodeSLL2(_ b: ByteView) -> DecodedPacket {
        guard let proto = b.u16(SLL2.protocolType), let index = b.u32(SLL2.interfaceIndex),
            let pktType = b.u8(SLL2.packetType), b.has(0, SLL2.headerLength)
        else {
            var p = DecodedPacket(link: .unknown(.linuxSLL2))
            p.problem = .truncated(.link)
            return p
        }
        var p = DecodedPacket(
            link: .cooked(version: 2, packetType: UInt16(pktType), protocolType: proto, interfaceIndex: index))
        decodeEtherType(proto, b, base: SLL2.headerLength, into: &p)
        return p
    }

    static func decodeNull(_ b: ByteView, bigEndian: Bool) -> DecodedPacket {
        guard var family = bigEndian ? b.u32(0) : b.u32le(0) else {
            var p = DecodedPacket(link: .unknown(bigEndian ? .loop : .null))
            p.problem = .truncated(.link)
            return p
        }
        // NULL stores the family in the capturing host's byte order; a value above 0xffff was written by the
        // other byte order.
        if family > 0xffff { family = family.byteSwapped }
        var p = DecodedPacket(link: .loopback(family: family))
        switch family {
        case 2: decodeIPv4(b, base: 4, into: &p)
        case 10, 24, 28, 30: decodeIPv6(b, base: 4, into: &p)  // AF_INET6 on Linux, BSDs, FreeBSD, Darwin
        default: p.network = .unknown(UInt16(truncatingIfNeeded: family))
        }
        return p
    }

    static func decodeEtherType(_ type: UInt16, _ b: ByteView, base: Int, into p: inout DecodedPacket) {
        switch type {
        case EtherType.ipv4: decodeIPv4(b, base: base, into: &p)
        case EtherType.ipv6: decodeIPv6(b, base: base, into: &p)
        case EtherType.arp: decodeARP(b, base: base, into: &p)
        default: p.network = .unknown(type)
        }
    }

    static func decodeARP(_ b: ByteView, base: Int, into p: inout DecodedPacket) {
        // Ethernet/IPv4 ARP: htype(2) ptype(2) hlen(1) plen(1) op(2) sha(6) spa(4) tha(6) tpa(4)
        guard let op = b.u16(base + 6) else {
            p.network = .arp(ARPHeader(operation: 0))
            p.problem = .truncated(.network)
            return
        }
        let hlen = Int(b.u8(base + 4) ?? 0)
        let plen = Int(b.u8(base + 5) ?? 0)
        var arp = ARPHeader(operation: op)
        if plen == 4 {
            arp.senderIP = b.u32(base + 8 + hlen).map { .v4($0) }
            arp.targetIP = b.u32(base + 8 + 2 * hlen + 4).map { .v4($0) }
        }
        p.network = .arp(arp)
        if !b.has(base, 8 + 2 * hlen + 2 * plen) { p.problem = .truncated(.network) }
    }

    // MARK: Network layer

    static func decodeIP(_ b: ByteView, base: Int, into p: inout DecodedPacket) {
        guard let first = b.u8(base) else {
            p.problem = .truncated(.network)
            return
        }
        switch first >> 4 {
        case 4: decodeIPv4(b, base: base, into: &p)
        case 6: decodeIPv6(b, base: base, into: &p)
        default: p.problem = .malformed(.network, "IP version \(first >> 4)")
        }
    }

    private enum IPv4 {
        static let versionIHL = 0, tos = 1, totalLength = 2, identification = 4, flagsFragment = 6, ttl = 8,
            protocolNumber = 9, checksum = 10, source = 12, destination = 16, minimumLength = 20
    }

    static func decodeIPv4(_ b: ByteView, base: Int, into p: inout DecodedPacket) {
        guard let vihl = b.u8(base + IPv4.versionIHL), let tos = b.u8(base + IPv4.tos),
            let total = b.u16(base + IPv4.totalLength), let ident = b.u16(base + IPv4.identification),
            let ff = b.u16(base + IPv4.flagsFragment), let ttl = b.u8(base + IPv4.ttl),
            let proto = b.u8(base + IPv4.protocolNumber), let sum = b.u16(base + IPv4.checksum),
            let src = b.u32(base + IPv4.source), let dst = b.u32(base + IPv4.destination)
        else {
            p.problem = .truncated(.network)
            return
        }
        let ihl = Int(vihl & 0x0f) * 4
        let header = IPv4Header(
            headerLength: ihl, tos: tos, totalLength: Int(total), identification: ident,
            dontFragment: ff & 0x4000 != 0, moreFragments: ff & 0x2000 != 0, fragmentOffset: Int(ff & 0x1fff) * 8,
            ttl: ttl, protocolNumber: proto, checksum: sum, source: .v4(src), destination: .v4(dst))
        p.network = .ipv4(header)
        guard vihl >> 4 == 4 else {
            p.problem = .malformed(.network, "version \(vihl >> 4) in an IPv4 header")
            return
        }
        guard ihl >= IPv4.minimumLength else {
            p.problem = .malformed(.network, "header length \(ihl) < 20")
            return
        }
        guard Int(total) >= ihl else {
            p.problem = .malformed(.network, "total length \(total) < header length \(ihl)")
            return
        }
        p.networkEnd = base + Int(total)
        guard b.has(base, ihl) else {
            p.problem = .truncated(.network)
            return
        }
        if header.fragmentOffset != 0 {
            // Only the first fragment carries the transport header.
            p.transport = .unknown(proto)
            setPayload(b, offset: base + ihl, announced: Int(total) - ihl, into: &p)
            return
        }
        decodeTransport(proto, b, base: base + ihl, length: Int(total) - ihl, isV6: false, into: &p)
    }

    private enum IPv6 {
        static let versionClassFlow = 0, payloadLength = 4, nextHeader = 6, hopLimit = 7, source = 8,
            destination = 24, headerLength = 40
    }

    static func decodeIPv6(_ b: ByteView, base: Int, into p: inout DecodedPacket) {
        guard let vcf = b.u32(base + IPv6.versionClassFlow), let plen = b.u16(base + IPv6.payloadLength),
            let next = b.u8(base + IPv6.nextHeader), let hop = b.u8(base + IPv6.hopLimit),
            let src = b.ipv6(base + IPv6.source), let dst = b.ipv6(base + IPv6.destination)
        else {
            p.problem = .truncated(.network)
            return
        }
        var h = IPv6Header(
            trafficClass: UInt8(truncatingIfNeeded: vcf >> 20), flowLabel: vcf & 0xfffff, payloadLength: Int(plen),
            nextHeader: next, hopLimit: hop, source: src, destination: dst, extensionHeaders: [],
            extensionHeaderCount: 0, extensionLength: 0, upperLayerProtocol: next, fragment: nil)
        guard vcf >> 28 == 6 else {
            p.network = .ipv6(h)
            p.problem = .malformed(.network, "version \(vcf >> 28) in an IPv6 header")
            return
        }
        // A zero payload length belongs to a jumbogram, whose length is in a Hop-by-Hop option.
        if plen != 0 { p.networkEnd = base + IPv6.headerLength + Int(plen) }
        // Walk the extension header chain.
        var offset = base + IPv6.headerLength
        var proto = next
        var nonFirstFragment = false
        chain: while true {
            switch proto {
            case 0, 43, 60, 135, 139, 140, 44, 51:
                guard let nh = b.u8(offset), let lenField = b.u8(offset + 1) else {
                    p.network = .ipv6(h)
                    p.problem = .truncated(.network)
                    return
                }
                let length: Int
                switch proto {
                case 44:
                    length = 8
                    guard let fo = b.u16(offset + 2), let ident = b.u32(offset + 4) else {
                        p.network = .ipv6(h)
                        p.problem = .truncated(.network)
                        return
                    }
                    h.fragment = .init(offset: Int(fo >> 3) * 8, more: fo & 1 != 0, identification: ident)
                    if fo >> 3 != 0 { nonFirstFragment = true }
                case 51: length = (Int(lenField) + 2) * 4  // AH counts 4-byte words
                default: length = (Int(lenField) + 1) * 8
                }
                if h.extensionHeaders.count < 8 { h.extensionHeaders.append(proto) }
                h.extensionHeaderCount += 1
                h.extensionLength += length
                offset += length
                proto = nh
                if h.extensionLength > Int(plen) || h.extensionHeaderCount > 64 {
                    p.network = .ipv6(h)
                    p.problem = .malformed(.network, "extension headers longer than the payload")
                    return
                }
                if nonFirstFragment { break chain }
            default:
                break chain
            }
        }
        h.upperLayerProtocol = proto
        p.network = .ipv6(h)
        guard b.has(offset, 0) else {
            p.problem = .truncated(.network)
            return
        }
        let remaining = Int(plen) - h.extensionLength
        if nonFirstFragment || proto == 59 {
            p.transport = .unknown(proto)
            setPayload(b, offset: offset, announced: remaining, into: &p)
            return
        }
        decodeTransport(proto, b, base: offset, length: remaining, isV6: true, into: &p)
    }

    // MARK: Transport layer

    static func decodeTransport(
        _ proto: UInt8, _ b: ByteView, base: Int, length: Int, isV6: Bool, into p: inout DecodedPacket
    ) {
        switch proto {
        case 6: decodeTCP(b, base: base, length: length, into: &p)
        case 17: decodeUDP(b, base: base, length: length, into: &p)
        case 1 where !isV6, 58 where isV6: decodeICMP(b, base: base, length: length, isV6: isV6, into: &p)
        default:
            p.transport = .unknown(proto)
            setPayload(b, offset: base, announced: length, into: &p)
        }
    }

    /// Records where the payload starts and how much of it the headers announce versus what was captured.
    static func setPayload(_ b: ByteView, offset: Int, announced: Int, into p: inout DecodedPacket) {
        p.payloadOffset = offset
        p.payloadLength = max(announced, 0)
        let present = b.count > offset ? b.count - offset : 0
        p.capturedPayloadLength = min(present, p.payloadLength)
    }

    private enum TCP {
        static let sourcePort = 0, destinationPort = 2, sequence = 4, acknowledgment = 8, dataOffsetFlags = 12,
            window = 14, checksum = 16, urgent = 18, minimumLength = 20
    }

    static func decodeTCP(_ b: ByteView, base: Int, length: Int, into p: inout DecodedPacket) {
        guard let sport = b.u16(base + TCP.sourcePort), let dport = b.u16(base + TCP.destinationPort),
            let seq = b.u32(base + TCP.sequence), let ack = b.u32(base + TCP.acknowledgment),
            let offFlags = b.u16(base + TCP.dataOffsetFlags), let win = b.u16(base + TCP.window),
            let sum = b.u16(base + TCP.checksum), let urg = b.u16(base + TCP.urgent)
        else {
            p.transport = .unknown(6)
            p.problem = .truncated(.transport)
            return
        }
        let headerLength = Int(offFlags >> 12) * 4
        var h = TCPHeader(
            sourcePort: sport, destinationPort: dport, sequenceNumber: seq, acknowledgmentNumber: ack,
            headerLength: headerLength, flags: TCPFlags(rawValue: offFlags & 0xff), window: win, checksum: sum,
            urgentPointer: urg, options: TCPOptions())
        guard headerLength >= TCP.minimumLength else {
            p.transport = .tcp(h)
            p.problem = .malformed(.transport, "data offset \(headerLength) < 20")
            return
        }
        guard headerLength <= length else {
            p.transport = .tcp(h)
            p.problem = .malformed(.transport, "data offset \(headerLength) beyond segment length \(length)")
            return
        }
        if headerLength > TCP.minimumLength {
            if let optionBytes = b.slice(base + TCP.minimumLength, headerLength - TCP.minimumLength) {
                h.options = decodeTCPOptions(optionBytes)
            } else {
                // The options are cut by the snapshot length: decode what is there.
                h.options = decodeTCPOptions(b.suffix(from: base + TCP.minimumLength) ?? b.prefix(0))
                p.transport = .tcp(h)
                p.problem = .truncated(.options)
                return
            }
        }
        p.transport = .tcp(h)
        setPayload(b, offset: base + headerLength, announced: length - headerLength, into: &p)
        if h.options.malformed { p.problem = .malformed(.options, "bad option length") }
    }

    /// Decodes the option list; a bad length ends it and sets `malformed` (as tcpdump prints `[bad opt]`).
    public static func decodeTCPOptions(_ b: ByteView) -> TCPOptions {
        var o = TCPOptions()
        var i = 0
        while let kind = b.u8(i) {
            if kind == 0 { break }  // End of option list
            if kind == 1 {
                o.hasNOP = true
                i += 1
                continue
            }
            guard let len8 = b.u8(i + 1) else {
                o.malformed = true
                break
            }
            let len = Int(len8)
            guard len >= 2, b.has(i, len) else {
                o.malformed = true
                break
            }
            switch (kind, len) {
            case (2, 4): o.mss = b.u16(i + 2)
            case (3, 3): o.windowScale = b.u8(i + 2)
            case (4, 2): o.sackPermitted = true
            case (5, _) where (len - 2) % 8 == 0:
                var j = i + 2
                while j + 8 <= i + len, let l = b.u32(j), let r = b.u32(j + 4) {
                    o.sackBlocks.append(SACKBlock(left: l, right: r))
                    j += 8
                }
            case (8, 10):
                if let v = b.u32(i + 2), let e = b.u32(i + 6) { o.timestamp = .init(value: v, echoReply: e) }
            case (2, _), (3, _), (4, _), (5, _), (8, _):
                o.malformed = true
                return o
            default:
                if o.unknownKinds.count < 4 { o.unknownKinds.append(kind) }
            }
            i += len
        }
        return o
    }

    private enum UDP {
        static let sourcePort = 0, destinationPort = 2, length = 4, checksum = 6, headerLength = 8
    }

    static func decodeUDP(_ b: ByteView, base: Int, length: Int, into p: inout DecodedPacket) {
        guard let sport = b.u16(base + UDP.sourcePort), let dport = b.u16(base + UDP.destinationPort),
            let ulen = b.u16(base + UDP.length), let sum = b.u16(base + UDP.checksum)
        else {
            p.transport = .unknown(17)
            p.problem = .truncated(.transport)
            return
        }
        let h = UDPHeader(sourcePort: sport, destinationPort: dport, length: Int(ulen), checksum: sum)
        p.transport = .udp(h)
        // Jumbograms (RFC 2675) put 0 here; otherwise the field must cover the header and fit the IP payload.
        let announced = ulen == 0 ? length : Int(ulen)
        if announced > length, p.isFragment {
            // A first fragment: the datagram the length field counts goes on in later fragments.
            setPayload(b, offset: base + UDP.headerLength, announced: announced - UDP.headerLength, into: &p)
            return
        }
        guard announced >= UDP.headerLength, announced <= max(length, UDP.headerLength) else {
            p.problem = .malformed(.transport, "UDP length \(ulen) does not fit IP payload \(length)")
            setPayload(b, offset: base + UDP.headerLength, announced: length - UDP.headerLength, into: &p)
            return
        }
        setPayload(b, offset: base + UDP.headerLength, announced: announced - UDP.headerLength, into: &p)
    }

    private enum ICMP {
        static let type = 0, code = 1, checksum = 2, identifier = 4, sequence = 6, headerLength = 8
        static let ipv4HeaderLength = 20, ipv6HeaderLength = 40
    }

    static func decodeICMP(_ b: ByteView, base: Int, length: Int, isV6: Bool, into p: inout DecodedPacket) {
        guard let type = b.u8(base + ICMP.type), let code = b.u8(base + ICMP.code),
            let sum = b.u16(base + ICMP.checksum)
        else {
            p.transport = .unknown(isV6 ? 58 : 1)
            p.problem = .truncated(.transport)
            setPayload(b, offset: base, announced: length, into: &p)
            return
        }
        var h = ICMPHeader(isV6: isV6, type: type, code: code, checksum: sum)
        h.length = length
        let isEcho = isV6 ? (type == 128 || type == 129) : (type == 0 || type == 8)
        if isEcho, let id = b.u16(base + ICMP.identifier), let seq = b.u16(base + ICMP.sequence) {
            h.echo = ICMPHeader.Echo(identifier: id, sequence: seq)
        }
        // The quoted datagram ends where the IP datagram does (what follows is link-layer padding), as tcpdump
        // bounds it.
        let end = min(b.count, base + max(length, 0))
        let quotedBytes = end >= base + ICMP.headerLength ? b.slice(base + ICMP.headerLength, end - base - 8) : nil
        if h.isError, let quotedBytes {
            var inner = DecodedPacket(link: .raw)
            decodeIP(quotedBytes, base: 0, into: &inner)
            if let src = inner.source, let dst = inner.destination {
                let proto: UInt8 = inner.ipv4?.protocolNumber ?? inner.ipv6?.upperLayerProtocol ?? 0
                // The quoted datagram is itself cut short by design, so read the ports straight from its header.
                let headerLength = inner.ipv4?.headerLength ?? (40 + (inner.ipv6?.extensionLength ?? 0))
                let hasPorts = proto == 6 || proto == 17
                h.quoted = .init(
                    source: src, destination: dst, protocolNumber: proto,
                    sourcePort: hasPorts ? quotedBytes.u16(headerLength) : nil,
                    destinationPort: hasPorts ? quotedBytes.u16(headerLength + 2) : nil)
            }
        }
        p.transport = .icmp(h)
        setPayload(b, offset: base + ICMP.headerLength, announced: length - ICMP.headerLength, into: &p)
        if !b.has(base, ICMP.headerLength) {
            p.problem = .truncated(.transport)
        } else if h.isError, !(quotedBytes?.has(0, isV6 ? ICMP.ipv6HeaderLength : ICMP.ipv4HeaderLength) ?? false) {
            // An error without the header of the datagram it is about says less than it should.
            p.problem = .truncated(.transport)
        }
    }
}

/// The transport addressing of a packet, for code that counts conversations and needs nothing else.
public struct FlowPeek: Sendable {
    public var source: IPAddress
    public var destination: IPAddress
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// 6 (TCP) or 17 (UDP).
    public var protocolNumber: UInt8
    /// TCP only (zero for UDP).
    public var flags: TCPFlags
    public var sequenceNumber: UInt32
    public var acknowledgmentNumber: UInt32

    public init(
        source: IPAddress, destination: IPAddress, sourcePort: UInt16, destinationPort: UInt16,
        protocolNumber: UInt8, flags: TCPFlags, sequenceNumber: UInt32, acknowledgmentNumber: UInt32
    ) {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.protocolNumber = protocolNumber
        self.flags = flags
        self.sequenceNumber = sequenceNumber
        self.acknowledgmentNumber = acknowledgmentNumber
    }
}

extension PacketDecoder {
    /// What `peekFlow` can say without a full decode.
    public enum Peek {
        /// A TCP or UDP packet whose full decode has `transport` `.tcp`/`.udp` with these values.
        case flow(FlowPeek)
        /// A packet whose full decode has neither a TCP nor a UDP header.
        case noFlow
        /// Anything else (other link types, VLAN tags, IPv6 extension headers, damaged headers): decode fully.
        case undecided
    }

    /// The common case of `decode(_:linkType:)` for conversation counting: Ethernet, IPv4 (first fragment or
    /// none) or IPv6 without extension headers, TCP or UDP. It reads the same bytes through the same checked
    /// `ByteView` calls and answers `.undecided` wherever the full decoder would look further, so a `.flow`
    /// answer always equals the full decode's addresses, ports, flags and numbers.
    public static func peekFlow(_ b: ByteView, linkType: LinkType) -> Peek {
        guard linkType == .ethernet, let type = b.u16(12), b.has(0, 14) else { return .undecided }
        let base = 14
        let source: IPAddress
        let destination: IPAddress
        let proto: UInt8
        let transport: Int
        switch type {
        case 0x0800:
            guard let vihl = b.u8(base), let ff = b.u16(base + 6), let p = b.u8(base + 9),
                let total = b.u16(base + 2), let s = b.u32(base + 12), let d = b.u32(base + 16)
            else { return .undecided }
            let ihl = Int(vihl & 0x0f) * 4
            guard vihl >> 4 == 4, ihl >= 20, Int(total) >= ihl, b.has(base, ihl), ff & 0x1fff == 0 else {
                return .undecided
            }
            source = .v4(s)
            destination = .v4(d)
            proto = p
            transport = base + ihl
        case 0x86dd:
            guard let vcf = b.u32(base), vcf >> 28 == 6, let next = b.u8(base + 6), let sh = b.u64(base + 8),
                let sl = b.u64(base + 16), let dh = b.u64(base + 24), let dl = b.u64(base + 32)
            else { return .undecided }
            guard next == 6 || next == 17, b.has(base + 40, 0) else { return .undecided }
            source = .v6(sh, sl)
            destination = .v6(dh, dl)
            proto = next
            transport = base + 40
        default:
            return .undecided
        }
        switch proto {
        case 6:
            guard let sp = b.u16(transport), let dp = b.u16(transport + 2), let seq = b.u32(transport + 4),
                let ack = b.u32(transport + 8), let offFlags = b.u16(transport + 12), b.has(transport, 20)
            else { return .undecided }
            return .flow(
                FlowPeek(
                    source: source, destination: destination, sourcePort: sp, destinationPort: dp, protocolNumber: 6,
                    flags: TCPFlags(rawValue: offFlags & 0xff), sequenceNumber: seq, acknowledgmentNumber: ack))
        case 17:
            guard let sp = b.u16(transport), let dp = b.u16(transport + 2), b.has(transport, 8) else {
                return .undecided
            }
            return .flow(
                FlowPeek(
                    source: source, destination: destination, sourcePort: sp, destinationPort: dp, protocolNumber: 17,
                    flags: [], sequenceNumber: 0, acknowledgmentNumber: 0))
        case 1, 58:
            return .undecided  // ICMP: decoded fully (its header decides nothing here, but keep one rule)
        default:
            return .noFlow
        }
    }
}

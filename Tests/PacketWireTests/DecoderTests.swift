import Foundation
import PacketWire
import TestSupport
import Testing

func decode(_ bytes: [UInt8], _ link: LinkType) -> DecodedPacket {
    bytes.withUnsafeBytes { PacketDecoder.decode(ByteView($0), linkType: link) }
}

/// The IP datagram of an Ethernet frame, for re-wrapping in other link layers.
func ipDatagram(_ frame: [UInt8]) -> [UInt8] { Array(frame.dropFirst(14)) }

@Suite struct DecoderTests {
    @Test func ethernetIPv4SYNWithOptions() throws {
        let p = decode(RealPackets.ethernetIPv4SYN, .ethernet)
        #expect(p.problem == nil)
        guard case .ethernet(_, _, let type, let tags) = p.link else {
            Issue.record("expected Ethernet, got \(p.link)")
            return
        }
        #expect(type == 0x0800 && tags == 0)
        let ip = try #require(p.ipv4)
        #expect(ip.source == IPAddress("127.0.0.1"))
        #expect(ip.destination == IPAddress("127.0.0.2"))
        #expect(ip.dontFragment && !ip.isFragment && ip.ttl == 64 && ip.totalLength == 60)
        let tcp = try #require(p.tcp)
        #expect(tcp.sourcePort == 45414 && tcp.destinationPort == 50001)
        #expect(tcp.sequenceNumber == 2_769_744_304 && tcp.acknowledgmentNumber == 0)
        #expect(tcp.flags == [.syn] && tcp.flags.names == ["SYN"])
        #expect(tcp.window == 65495 && tcp.headerLength == 40)
        #expect(tcp.options.mss == 65495 && tcp.options.windowScale == 10 && tcp.options.sackPermitted)
        #expect(tcp.options.timestamp?.value == 1_902_886_571 && tcp.options.timestamp?.echoReply == 0)
        #expect(p.payloadLength == 0 && p.capturedPayloadLength == 0)
    }

    @Test func ethernetIPv4DataCarriesUTF8Payload() throws {
        let bytes = RealPackets.ethernetIPv4Data
        let p = decode(bytes, .ethernet)
        #expect(p.problem == nil)
        let tcp = try #require(p.tcp)
        #expect(tcp.flags == [.psh, .ack] && tcp.flags.label == "PSH/ACK")
        #expect(tcp.sequenceNumber == 2_769_744_305 && tcp.window == 64)
        #expect(p.payloadLength == 21 && p.capturedPayloadLength == 21)
        let payload = Array(bytes[p.payloadOffset..<(p.payloadOffset + p.payloadLength)])
        #expect(String(decoding: payload, as: UTF8.self) == "こんにちは hello")
    }

    @Test func ethernetIPv6Data() throws {
        let p = decode(RealPackets.ethernetIPv6Data, .ethernet)
        #expect(p.problem == nil)
        let ip = try #require(p.ipv6)
        #expect(ip.source.description == "::1" && ip.destination.description == "::1")
        #expect(ip.hopLimit == 64 && ip.upperLayerProtocol == 6 && ip.extensionHeaderCount == 0)
        #expect(ip.flowLabel == 0xd1ceb)
        let tcp = try #require(p.tcp)
        #expect(tcp.sourcePort == 42932 && tcp.destinationPort == 50002 && tcp.flags == [.psh, .ack])
        #expect(p.payloadLength == 21)
    }

    @Test func linuxCookedV2UDP() throws {
        let p = decode(RealPackets.sll2UDP, .linuxSLL2)
        #expect(p.problem == nil)
        guard case .cooked(let version, let packetType, let proto, let index) = p.link else {
            Issue.record("expected cooked, got \(p.link)")
            return
        }
        #expect(version == 2 && packetType == 0 && proto == 0x0800 && index == 1)
        let udp = try #require(p.udp)
        #expect(udp.sourcePort == 49975 && udp.destinationPort == 50003 && udp.length == 12)
        #expect(p.payloadLength == 4)
    }

    @Test func icmpPortUnreachableQuotesTheDatagram() throws {
        let p = decode(RealPackets.sll2ICMPPortUnreachable, .linuxSLL2)
        #expect(p.problem == nil)
        let icmp = try #require(p.icmp)
        #expect(icmp.type == 3 && icmp.code == 3 && icmp.summary == "port unreachable")
        let q = try #require(icmp.quoted)
        #expect(q.protocolNumber == 17 && q.destinationPort == 50003 && q.sourcePort == 45866)
    }

    /// The quote of an ICMP error ends where its IP datagram does: bytes after it (link-layer padding) are not
    /// quoted. An error whose quote lacks the quoted IP header is truncated.
    @Test func icmpQuoteEndsWithItsDatagram() throws {
        let frame = RealPackets.sll2ICMPPortUnreachable
        let whole = try #require(decode(frame, .linuxSLL2).icmp)
        #expect(whole.length == 40 && whole.isError)
        #expect(decode(frame + [UInt8](repeating: 0xee, count: 10), .linuxSLL2).icmp == whole)
        // The same bytes, but an IP total length that ends the datagram 10 bytes into the quote.
        var short = frame
        short[23] = 20 + 8 + 10
        let p = decode(short, .linuxSLL2)
        let icmp = try #require(p.icmp)
        #expect(icmp.length == 18 && icmp.quoted == nil)
        #expect(p.problem == .truncated(.transport))
        #expect(p.payloadLength == 10 && p.capturedPayloadLength == 10)
    }

    @Test func otherLinkTypesCarryTheSameDatagram() throws {
        let ip = ipDatagram(RealPackets.ethernetIPv4Data)
        // BSD NULL in little- and big-endian hosts, OpenBSD LOOP, raw IP, Linux cooked v1.
        let sll1: [UInt8] = [0x00, 0x04, 0x03, 0x04, 0x00, 0x06] + [UInt8](repeating: 0, count: 8) + [0x08, 0x00]
        let cases: [([UInt8], LinkType)] = [
            ([2, 0, 0, 0] + ip, .null), ([0, 0, 0, 2] + ip, .null), ([0, 0, 0, 2] + ip, .loop), (ip, .raw),
            (ip, .dltRaw), (ip, .ipv4), (sll1 + ip, .linuxSLL),
        ]
        for (bytes, link) in cases {
            let p = decode(bytes, link)
            #expect(p.problem == nil, "\(link)")
            #expect(p.tcp?.sourcePort == 45414, "\(link)")
            #expect(p.payloadLength == 21, "\(link)")
        }
        let v6 = ipDatagram(RealPackets.ethernetIPv6Data)
        for (bytes, link) in [([30, 0, 0, 0] + v6, LinkType.null), (v6, .raw), (v6, .ipv6)] {
            #expect(decode(bytes, link).tcp?.destinationPort == 50002, "\(link)")
        }
    }

    @Test func everyTruncatedPrefixIsMarkedNeverTraps() {
        for (name, bytes, link) in RealPackets.all {
            let full = decode(bytes, link)
            #expect(full.problem == nil, "\(name)")
            for n in 0..<bytes.count {
                let p = decode(Array(bytes[..<n]), link)
                // Cut inside the headers: marked truncated. Cut inside the payload: headers whole, payload short.
                if p.problem == nil {
                    // The quoted datagram of an ICMP error is payload, so only its header is compared.
                    #expect(p.tcp == full.tcp && p.udp == full.udp, "\(name) prefix \(n)")
                    #expect(p.icmp?.type == full.icmp?.type && p.icmp?.code == full.icmp?.code, "\(name) prefix \(n)")
                    #expect(p.capturedPayloadLength < full.payloadLength, "\(name) prefix \(n)")
                } else if case .truncated = p.problem {
                } else {
                    Issue.record("\(name) prefix \(n): \(String(describing: p.problem))")
                }
            }
        }
    }

    @Test func impossibleHeaderValuesAreMalformed() {
        var ihl4 = RealPackets.ethernetIPv4SYN
        ihl4[14] = 0x44  // IHL 16 bytes
        #expect(decode(ihl4, .ethernet).problem == .malformed(.network, "header length 16 < 20"))
        var shortOffset = RealPackets.ethernetIPv4SYN
        shortOffset[46] = 0x40  // TCP data offset 16
        #expect(decode(shortOffset, .ethernet).problem == .malformed(.transport, "data offset 16 < 20"))
        var badOption = RealPackets.ethernetIPv4SYN
        badOption[55] = 0x09  // MSS option claims 9 bytes
        let p = decode(badOption, .ethernet)
        #expect(p.tcp?.options.malformed == true)
        #expect(p.problem == .malformed(.options, "bad option length"))
        var version = RealPackets.ethernetIPv4SYN
        version[14] = 0x75
        #expect(decode(version, .ethernet).problem == .malformed(.network, "version 7 in an IPv4 header"))
    }

    /// An IP length is judged against the record's original length, as tcpdump judges it: a header that claims
    /// more than the wire carried is malformed, a packet cut by the snapshot length is not. The record's own
    /// impossible lengths come first.
    @Test func ipLengthBeyondTheWire() throws {
        func info(_ captured: Int, _ original: Int) -> CaptureInfo {
            CaptureInfo(
                timestamp: Timestamp(seconds: 0, nanoseconds: 0), capturedLength: captured,
                originalLength: original, linkType: .ethernet)
        }
        let frame = RealPackets.ethernetIPv4Data
        let n = frame.count
        #expect(decode(frame, .ethernet).networkEnd == n)
        #expect(decode(frame, .ethernet).problem(capturedAs: info(n, n)) == nil)
        var longer = frame
        longer[17] &+= 20  // total length 20 more than the datagram
        let p = decode(longer, .ethernet)
        #expect(p.problem == nil && p.networkEnd == n + 20)
        #expect(p.problem(capturedAs: info(n, n)) == .lengthBeyondPacket(missing: 20, isV6: false))
        #expect(p.problem(capturedAs: info(n, n + 20)) == nil, "cut by the snapshot length: the claim holds")
        #expect(p.problem(capturedAs: info(n, n + 5)) == .lengthBeyondPacket(missing: 15, isV6: false))
        #expect(p.problem(capturedAs: info(n, n - 1)) == .invalidRecord(capturedLength: n, originalLength: n - 1))
        #expect(
            p.problem(capturedAs: info(n, n - 1))?.description
                == "invalid record header: len(\(n - 1)) < caplen(\(n))")
        var v6 = RealPackets.ethernetIPv6Data
        v6[19] &+= 7  // payload length
        #expect(
            decode(v6, .ethernet).problem(capturedAs: info(v6.count, v6.count))
                == .lengthBeyondPacket(missing: 7, isV6: true))
        // A jumbogram's zero payload length claims nothing.
        v6[18] = 0
        v6[19] = 0
        #expect(decode(v6, .ethernet).networkEnd == 0)
    }

    /// `decodes` names exactly the link types `decode` reads past the link layer of; every other one is marked.
    @Test func undecodedLinkTypesAreMarked() {
        for raw in UInt32(0)...300 {
            let link = LinkType(rawValue: raw)
            let p = decode(RealPackets.ethernetIPv4SYN, link)
            #expect((p.problem == .unsupportedLink(link)) == !PacketDecoder.decodes(link), "\(link)")
        }
        #expect(
            DecodeProblem.unsupportedLink(LinkType(rawValue: 147)).description
                == "link-type USER0 (147) not decoded")
        #expect(DecodeProblem.unsupportedLink(LinkType(rawValue: 300)).description == "link-type 300 not decoded")
    }

    @Test func ipv4FragmentsAreMarkedAndLaterOnesNotDecodedAsTCP() {
        var later = RealPackets.ethernetIPv4Data
        later[20] = 0x00
        later[21] = 0x10  // offset 16 * 8 = 128 bytes
        let p = decode(later, .ethernet)
        #expect(p.isFragment && p.ipv4?.fragmentOffset == 128)
        #expect(p.transport == .unknown(6))
        var first = RealPackets.ethernetIPv4Data
        first[20] = 0x20  // MF set, offset 0
        let f = decode(first, .ethernet)
        #expect(f.isFragment && f.tcp != nil)
    }

    @Test func ipv6ExtensionHeaderChain() throws {
        // Insert a Hop-by-Hop (8 bytes) and a Destination Options header (8 bytes) before TCP.
        var frame = RealPackets.ethernetIPv6Data
        let hopByHop: [UInt8] = [60, 0, 1, 4, 0, 0, 0, 0]  // next: dest opts, PadN
        let destOpts: [UInt8] = [6, 0, 1, 4, 0, 0, 0, 0]  // next: TCP
        frame.insert(contentsOf: hopByHop + destOpts, at: 54)
        frame[20] = 0  // next header: Hop-by-Hop
        frame[18] = 0x00
        frame[19] = 0x35 + 16
        let p = decode(frame, .ethernet)
        #expect(p.problem == nil)
        let ip = try #require(p.ipv6)
        #expect(ip.extensionHeaders == [0, 60] && ip.extensionLength == 16 && ip.upperLayerProtocol == 6)
        #expect(p.tcp?.destinationPort == 50002 && p.payloadLength == 21)
    }

    /// Real packets with a few bytes changed at random, on every link type: decoding never traps, and what it says
    /// stays inside the bytes it was given. The announced payload covers the captured part, which lies inside the
    /// packet; the conversation peek agrees with the full decode; an IP length beyond the bytes is reported as such
    /// (nothing else is, with the record's lengths sound); a link type PacketWire does not know is marked.
    @Test func randomBytesDecodeWithinTheirBytes() {
        var rng = SplitMix64.seeded(default: 0x5eed)
        let seed = "seed \(rng.seed) (PACKETFLOW_TEST_SEED to replay)"
        let links: [LinkType] = [
            .ethernet, .linuxSLL, .linuxSLL2, .null, .loop, .raw, .ipv4, .ipv6, .init(rawValue: 9),
        ]
        var transports = 0
        for round in 0..<20_000 {
            let base = RealPackets.all[Int(rng.next() % UInt64(RealPackets.all.count))]
            var bytes = base.1
            // Flip a few bytes of a real packet so decoding gets deep before it meets nonsense.
            for _ in 0..<(1 + rng.next() % 6) where !bytes.isEmpty {
                bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            // Mostly the packet's own link type, so decoding goes deep; sometimes any other.
            let link = rng.next() % 4 == 0 ? links[Int(rng.next() % UInt64(links.count))] : base.2
            let what = "\(seed), round \(round), \(base.0) as \(link)"
            bytes.withUnsafeBytes { raw in
                let view = ByteView(raw)
                let p = PacketDecoder.decode(view, linkType: link)
                if p.transport != nil && link == base.2 { transports += 1 }
                #expect(p.capturedPayloadLength >= 0 && p.capturedPayloadLength <= p.payloadLength, "\(what)")
                if p.capturedPayloadLength > 0 {
                    #expect(p.payloadOffset >= 0 && p.payloadOffset + p.capturedPayloadLength <= bytes.count, "\(what)")
                }
                switch PacketDecoder.peekFlow(view, linkType: link) {
                case .flow(let f):
                    #expect(f.source == p.source && f.destination == p.destination, "\(what)")
                    #expect(f.sourcePort == p.sourcePort && f.destinationPort == p.destinationPort, "\(what)")
                case .noFlow: #expect(p.tcp == nil && p.udp == nil, "\(what)")
                case .undecided: break
                }
                let info = CaptureInfo(
                    timestamp: Timestamp(seconds: 0, nanoseconds: 0), capturedLength: bytes.count,
                    originalLength: bytes.count, linkType: link)
                switch p.problem(capturedAs: info) {
                case .lengthBeyondPacket(let missing, _)?:
                    #expect(missing > 0 && p.networkEnd == bytes.count + missing, "\(what)")
                case .invalidRecord?: Issue.record("\(what): a sound record called invalid")
                default: #expect(p.networkEnd <= bytes.count, "\(what)")
                }
                #expect((p.problem == .unsupportedLink(link)) == !PacketDecoder.decodes(link), "\(what)")
            }
        }
        // Most changed packets still decode to a transport header, so the checks above reach the deep paths.
        #expect(transports > 12_000, "\(seed): \(transports) of about 15 000 decoded to a transport")
    }
}

@Suite struct AddressTests {
    @Test(arguments: [
        ("::1", "::1"), ("2001:db8:0:0:0:0:2:1", "2001:db8::2:1"), ("2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"), ("::", "::"), ("fe80::1:2", "fe80::1:2"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"), ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
    ])
    func ipv6CanonicalForm(input: String, expected: String) throws {
        #expect(try #require(IPAddress(input)).description == expected)
    }

    @Test(arguments: [
        ("0.0.0.0", 0, "0.0.0.0:0"), ("255.255.255.255", 65535, "255.255.255.255:65535"),
        ("10.0.100.9", 80, "10.0.100.9:80"), ("1.20.3.199", 7, "1.20.3.199:7"), ("127.0.0.2", 49152, "127.0.0.2:49152"),
        ("::1", 49152, "[::1]:49152"),
    ])
    func addressesWithPortsPrintEveryDigit(address: String, port: Int, expected: String) throws {
        let ip = try #require(IPAddress(address))
        #expect(IPAddress.describe(ip, port: UInt16(port)) == expected)
        #expect(ip.description == address)
    }

    @Test func ipv4AndBadInput() {
        #expect(IPAddress("127.0.0.2") == .v4(0x7f00_0002))
        #expect(IPAddress("127.0.0.2")?.description == "127.0.0.2")
        for bad in ["", "1.2.3", "1.2.3.256", "1::2::3", "12345::", "1.2.3.4.5", "gg::1", ":::"] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func macAddress() {
        #expect(MACAddress(0x0011_22aa_bbcc).description == "00:11:22:aa:bb:cc")
    }
}

@Test func timeDifferencesSaturateInsteadOfTrapping() {
    let a = Timestamp(seconds: 1_795_776_074, nanoseconds: 12_000)
    let b = Timestamp(seconds: 1_795_776_075, nanoseconds: 11_000)
    #expect(b.nanoseconds(since: a) == 999_999_000)
    #expect(a.nanoseconds(since: b) == -999_999_000)
    // Tens of thousands of years apart (a garbled file): more nanoseconds than Int64 holds.
    let far = Timestamp(seconds: 46_550_297_371, nanoseconds: 7_096_000)
    #expect(far.nanoseconds(since: a) == .max)
    #expect(a.nanoseconds(since: far) == .min)
    #expect(
        Timestamp(seconds: .max, nanoseconds: 0).nanoseconds(since: Timestamp(seconds: .min, nanoseconds: 0)) == .max)
}

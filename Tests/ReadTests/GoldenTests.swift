import Foundation
import PacketFiles
import PacketWire
import TestSupport
import Testing
import Timeline

@testable import Render

/// One line of Tests/Fixtures/golden/TESTLIST.
struct GoldenCase: CustomTestStringConvertible, Sendable {
    var name: String
    var input: String
    var expected: String
    var options: [String]
    var testDescription: String { name }

    /// Every test of the list, in order (comments and blank lines skipped).
    static let all: [GoldenCase] = {
        let list = (try? String(contentsOfFile: fixture("golden/TESTLIST"), encoding: .utf8)) ?? ""
        return list.split(separator: "\n").compactMap { line in
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let first = words.first, !first.hasPrefix("#"), words.count >= 3 else { return nil }
            return GoldenCase(name: first, input: words[1], expected: words[2], options: Array(words.dropFirst(3)))
        }
    }()
}

@Suite struct ReadGoldenTests {
    func golden(_ name: String) throws -> String {
        try String(contentsOfFile: fixture("golden/" + name), encoding: .utf8)
    }

    /// The list is there and every file it names exists: a table that lost its lines would pass every test.
    @Test func listIsComplete() throws {
        #expect(GoldenCase.all.count >= 35)
        for c in GoldenCase.all {
            #expect(FileManager.default.fileExists(atPath: fixture(c.input)), "\(c.name): no \(c.input)")
            #expect(FileManager.default.fileExists(atPath: fixture("golden/" + c.expected)), "\(c.name)")
        }
    }

    /// The product itself, run as a user runs it, from the fixtures' directory (a picture's title names the file
    /// as given).
    @Test(arguments: GoldenCase.all)
    func readMatchesGolden(_ c: GoldenCase) throws {
        let bin = packetflowBinary()
        try #require(FileManager.default.isExecutableFile(atPath: bin.path), "build packetflow first: swift build")
        let r = try runProcess(
            URL(fileURLWithPath: "/bin/sh"),
            ["-c", "cd \"$1\" && shift && exec \"$@\"", "sh", fixtures.path, bin.path, "read"] + c.options + [c.input],
            environment: ["TZ": "UTC", "NO_COLOR": "1"])
        #expect(r.status == 0, "\(c.name): \(r.stderr)")
        #expect(r.stderr == "", "\(c.name)")
        #expect(r.stdout == (try golden(c.expected)), "\(c.name)")
    }

    /// The library engine writes what the binary writes (the binary is the engine behind flags).
    @Test(arguments: goldenCaptures)
    func engineMatchesGolden(_ file: String) throws {
        let stem = String(file.split(separator: ".")[0])
        let text = render(fixture(file), .text)
        #expect(text.warnings.isEmpty)
        #expect(text.output == (try golden(stem + ".txt")))
        #expect(render(fixture(file), .jsonl).output == (try golden(stem + ".jsonl")))
        #expect(render(fixture(file), .conversations).output == (try golden(stem + ".conv")))
    }

    @Test func payloadAndHexOfMalformedPackets() throws {
        let r = render(fixture("bad-packets.pcap"), .payloadHex)
        // Malformed and truncated packets are shown as such and reading goes on to the last record.
        #expect(r.output.contains("[malformed network header: header length 12 < 20]"))
        #expect(r.output.contains("[truncated transport header]"))
        #expect(r.output.contains("    日本語 o\n"))
        #expect(r.output.contains("22:13:20.000006 "))
    }

    /// A cut file: every valid record first, then one error naming the byte offset.
    @Test func truncatedFileKeepsValidRecords() throws {
        let r = render(fixture("malformed/truncated-record.pcap"), .text)
        #expect(r.output.split(separator: "\n").count == 2)
        #expect(
            r.warnings == [
                "\(fixture("malformed/truncated-record.pcap")): byte 204: "
                    + "truncated packet record (needs 82 bytes, 26 left)"
            ])
    }

    /// Without a SYN, the first segment of each direction is seq 1, and acks are relative to the peer's base.
    @Test func midConnectionIsNumberedLikeWireshark() throws {
        let lines = render(fixture("mid-connection.pcap"), .text).output.split(separator: "\n")
        #expect(
            lines.first?.hasSuffix(
                "Flags [.], ack 1, win 64, options [nop,nop,TS val 4041301929 ecr 2178459257], length 0") == true)
        #expect(lines[1].contains("Flags [P.], seq 1:10, ack 1,"))
    }

    /// With -S the Ethernet, SLL and SLL2 captures print exactly as `TZ=UTC tcpdump -nn -S -r` does (SLL2 lines
    /// start with the interface and the direction: In, Out, B, M, P; "?" for an index this machine lacks).
    @Test(arguments: [
        "lo-usec.pcap", "lo-nsec.pcap", "any-sll.pcap", "any-sll2.pcap", "sll2-directions.pcap", "be-usec.pcap",
        "mix.pcap", "display-flags.pcap", "null-loopback.pcap",
    ])
    func absoluteTextIsTcpdumpText(_ file: String) throws {
        guard let expected = try run("tcpdump", ["-nn", "-S", "-r", fixture(file)], environment: ["TZ": "UTC"])
        else {
            Issue.record("tcpdump is not installed: apt-get install tcpdump (CI installs it)")
            return
        }
        // Our lines add Wireshark's TCP analysis in brackets at the end; tcpdump has no such thing.
        let ours = render(fixture(file), .text, absolute: true).output
            .replacing(#/\s\[[a-z_, ]+\]\n/#, with: "\n")
        #expect(ours == expected)
    }

    /// The conversation tables are tshark's, character for character.
    @Test(arguments: ["lo-usec.pcap", "two-interfaces.pcapng", "mix.pcap", "mid-connection.pcap"])
    func conversationsAreTsharks(_ file: String) throws {
        guard let tcp = try run("tshark", ["-r", fixture(file), "-q", "-z", "conv,tcp"]),
            let udp = try run("tshark", ["-r", fixture(file), "-q", "-z", "conv,udp"])
        else {
            Issue.record("tshark is not installed: apt-get install tshark (CI installs it)")
            return
        }
        #expect(render(fixture(file), .conversations).output == tcp + udp)
    }

    /// The exact fixed-point writer prints what printf("%14.9f") and ("%15.4f") print: on ties of binary
    /// fractions (2^-10 has ten decimals), on the durations a capture gives, and on random values.
    @Test func fixedPointMatchesPrintf() {
        func printf(_ v: Double, _ decimals: Int, _ width: Int) -> String {
            var buffer = [CChar](repeating: 0, count: 64)
            _ = withVaList([v]) { args in
                buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, 64, "%\(width).\(decimals)f", args) }
            }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        var values: [Double] = [0, 1, 0.5, 0.00005, 0.00015, 0.00025, 1.00005, 999_999_999.5, 5e-10, 1.5e-9, 2.5e-9]
        for k in 1...60 { values.append(1 / Double(UInt64(1) << UInt64(k))) }
        for k in 1...60 { values.append(3 / Double(UInt64(1) << UInt64(k)) + Double(k)) }
        var rng = SplitMix64.seeded(default: 0xF1_C5ED)
        for _ in 0..<20_000 {
            let ns = Int64.random(in: 0..<100_000_000_000_000, using: &rng)
            values.append(ConversationReport.seconds(ns))
            values.append(ConversationReport.seconds(ns) - ConversationReport.seconds(ns / 3))
            values.append(Double.random(in: 0..<1e-3, using: &rng))
        }
        for v in values {
            for (decimals, width) in [(9, 14), (4, 15)] {
                var o = OutputBuffer()
                ConversationReport.fixed(seconds: v, decimals: decimals, width: width, into: &o)
                #expect(o.text == printf(v, decimals, width), "\(v) \(decimals), seed \(rng.seed)")
            }
        }
    }

    @Test func sizesAreFormattedLikeWireshark() {
        #expect(ConversationReport.size(9999) == "9999 bytes")
        #expect(ConversationReport.size(10_000) == "10 kB")
        #expect(ConversationReport.size(12_345_678) == "12 MB")
    }
}

@Suite struct OutputBufferTests {
    /// The allocation-free writers print exactly what the shared formatters print.
    @Test(arguments: [
        "::", "::1", "1::", "fd00::1a", "2001:db8::1:0:0:1", "2001:db8:0:0:1::1", "fe80::1:2:3:4",
        "1:2:3:4:5:6:7:8", "0:1::", "::ffff:10.0.0.1", "10.0.0.1", "255.255.255.255", "0.0.0.0",
    ])
    func addressesMatchDescription(_ text: String) {
        let a = IPAddress(text)!
        var o = OutputBuffer()
        o.address(a)
        #expect(o.text == a.description)
    }

    @Test func decimals() {
        var o = OutputBuffer(capacity: 8)
        var values: [UInt64] = [0, 9, 10, 99, 100, 101, 999, 1000, 4_294_967_295, 4_294_967_296, UInt64.max]
        var p: UInt64 = 1
        for _ in 0..<19 {
            p *= 10
            values += [p - 1, p, p + 1, p / 10 * 5 + 37]
        }
        var rng = SplitMix64.seeded(default: 0xDEC1_3A15)
        for _ in 0..<5000 {
            values.append(UInt64.random(in: 0...UInt64.max, using: &rng) >> UInt64.random(in: 0...63, using: &rng))
        }
        for v in values {
            for width in [1, 2, 6, 9, 20] {
                o.clear()
                o.decimal(v, minimumWidth: width)
                let plain = String(v)
                #expect(
                    o.text == String(repeating: "0", count: max(0, width - plain.count)) + plain, "seed \(rng.seed)")
            }
        }
        for v: UInt64 in [0, 9, 10, 99, 4_294_967_295, 4_294_967_296, UInt64.max] {
            o.clear()
            o.decimal(v, minimumWidth: 1)
            #expect(o.text == String(v))
        }
        o.clear()
        o.decimal(42, minimumWidth: 6)
        #expect(o.text == "000042")
        o.clear()
        o.decimal(-17)
        #expect(o.text == "-17")
        // The most negative value has no positive counterpart of its type.
        o.clear()
        o.decimal(Int64.min)
        #expect(o.text == String(Int64.min))
        o.clear()
        o.decimal(Int8.min)
        #expect(o.text == "-128")
    }
}

@Suite struct PacketJSONTests {
    /// The fast writer used by `read --format jsonl` and the contract's JSONLines.write agree on every packet.
    @Test(arguments: goldenCaptures)
    func fastWriterMatchesJSONLines(_ file: String) throws {
        var builder = PacketEventBuilder()
        let reader = try CaptureFileReader(path: fixture(file))
        var count = 0
        while let r = try reader.next() {
            let d = PacketDecoder.decode(r.bytes, linkType: r.info.linkType)
            let e = builder.event(frame: r.frameNumber, info: r.info, decoded: d, payload: [])
            var w = JSONWriter()
            JSONLines.write(e, into: &w, lab: false)
            var o = OutputBuffer()
            PacketJSON.write(e, into: &o)
            #expect(o.text == String(decoding: w.bytes, as: UTF8.self))
            count += 1
        }
        #expect(count > 0)
    }

    /// The writer behind `read --format jsonl` (from the decoded packet and its track, no event) agrees too.
    @Test(arguments: goldenCaptures)
    func trackWriterMatchesJSONLines(_ file: String) throws {
        var builder = PacketEventBuilder()
        var tracker = PacketEventBuilder()
        let reader = try CaptureFileReader(path: fixture(file))
        var count = 0
        while let r = try reader.next() {
            let d = PacketDecoder.decode(r.bytes, linkType: r.info.linkType)
            let e = builder.event(frame: r.frameNumber, info: r.info, decoded: d, payload: [])
            let t = tracker.track(info: r.info, decoded: d)
            var w = JSONWriter()
            JSONLines.write(e, into: &w, lab: false)
            var o = OutputBuffer()
            PacketJSON.write(frame: r.frameNumber, t, info: r.info, decoded: d, into: &o)
            #expect(o.text == String(decoding: w.bytes, as: UTF8.self))
            count += 1
        }
        #expect(count > 0)
    }

    @Test func escapesLikeJSONWriter() {
        var e = PacketEvent(frame: 1, timestamp: Timestamp(seconds: 1, nanoseconds: 5), proto: .tcp, length: 0)
        e.problem = "tab\there x\"\\\n\u{1}"
        e.analysis = ["retransmission"]
        e.comments = ["pid 1 python3 #2 connect at \"x.py\":3\n", "two"]
        var w = JSONWriter()
        JSONLines.write(e, into: &w, lab: false)
        var o = OutputBuffer()
        PacketJSON.write(e, into: &o)
        #expect(o.text == String(decoding: w.bytes, as: UTF8.self))
    }
}

@Suite struct PeekFlowTests {
    /// `peekFlow` never contradicts the full decoder: on every packet of every fixture, and on every truncated
    /// prefix of each packet, a `.flow` answer has the decode's addresses, ports, flags and numbers, and
    /// `.noFlow` means the decode found neither TCP nor UDP.
    @Test(arguments: goldenCaptures + ["be-usec.pcap", "comments.pcapng", "synthetic.pcapng"])
    func agreesWithTheDecoder(_ file: String) throws {
        let reader = try CaptureFileReader(path: fixture(file))
        var flows = 0
        while let r = try reader.next() {
            let all = r.bytes.copyBytes()
            for n in stride(from: all.count, through: 0, by: -1) {
                all.withUnsafeBytes { raw in
                    let b = ByteView(UnsafeRawBufferPointer(rebasing: raw[..<n]))
                    let d = PacketDecoder.decode(b, linkType: r.info.linkType)
                    switch PacketDecoder.peekFlow(b, linkType: r.info.linkType) {
                    case .flow(let f):
                        if n == all.count { flows += 1 }
                        #expect(f.source == d.source && f.destination == d.destination)
                        #expect(f.sourcePort == d.sourcePort && f.destinationPort == d.destinationPort)
                        switch d.transport {
                        case .tcp(let h):
                            #expect(f.protocolNumber == 6 && f.flags == h.flags)
                            #expect(
                                f.sequenceNumber == h.sequenceNumber
                                    && f.acknowledgmentNumber == h.acknowledgmentNumber)
                        case .udp: #expect(f.protocolNumber == 17)
                        default: Issue.record("\(file) frame \(r.frameNumber) prefix \(n): flow without TCP/UDP")
                        }
                    case .noFlow:
                        #expect(d.tcp == nil && d.udp == nil, "\(file) frame \(r.frameNumber) prefix \(n)")
                    case .undecided:
                        break
                    }
                }
            }
        }
        if file.hasSuffix(".pcap") && !file.hasPrefix("any-") { #expect(flows > 0) }
    }
}

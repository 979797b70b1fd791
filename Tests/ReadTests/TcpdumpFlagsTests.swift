import Foundation
import Glibc
import PacketWire
import TestSupport
import Testing

@testable import Render

/// tcpdump's display flags, held against tcpdump itself: for each flag (and some combinations) and each fixture
/// tcpdump can read, `packetflow read -S FLAGS FILE` prints what `TZ=UTC tcpdump -nn -S FLAGS -r FILE` prints,
/// byte for byte, once PacketFlow's own additions in brackets at the ends of lines (TCP analysis, [truncated]) are
/// taken out. The goldens of TESTLIST hold the same flags as PacketFlow prints them, brackets and all.
@Suite struct TcpdumpFlagsTests {
    static let flagSets = [
        "-v", "-vv", "-vvv", "-e", "-q", "-t", "-tt", "-ttt", "-tttt", "-ttttt", "-#", "-A", "-AA", "-x", "-xx", "-X",
        "-XX", "-e -v", "-e -q", "-q -v", "-vv -x", "-vv -e -q -# -ttttt -X",
    ]

    /// Every fixture tcpdump reads: real captures on lo, -i any (SLL and SLL2), nanosecond and big-endian files,
    /// the generated traffic mix, ICMP errors real and synthetic, BSD loopback, the display-flags file, and the
    /// malformed files tcpdump marks.
    static let files = [
        "lo-usec.pcap", "lo-nsec.pcap", "any-sll.pcap", "any-sll2.pcap", "sll2-directions.pcap", "be-usec.pcap",
        "mix.pcap", "mid-connection.pcap", "port-reuse.pcap", "icmp-errors.pcap", "icmp-variants.pcap",
        "display-flags.pcap", "null-loopback.pcap", "malformed/ip-length-beyond-packet.pcap",
        "malformed/len-below-caplen.pcap", "malformed/unsupported-link.pcap", "comments.pcapng",
    ]

    /// Packets where PacketFlow says less than tcpdump, by file, packet number (from 1) and the flag that shows it.
    /// Each must still differ (so the list cannot rot) and every other packet of the file must agree.
    static let exceptions: [String: [(packet: Int, from: String, why: String)]] = [
        "icmp-variants.pcap": [(22, "-v", "the quoted datagram is GRE, which tcpdump decodes and PacketFlow does not")]
    ]

    /// PacketFlow's additions at the ends of lines: Wireshark's analysis names and the truncation mark.
    static let ourNames = [
        "retransmission", "fast_retransmission", "spurious_retransmission", "duplicate_ack", "out_of_order",
        "zero_window", "window_full", "window_update", "keep_alive", "lost_segment", "truncated",
    ]

    static func withoutOurBrackets(_ text: String) -> String {
        let brackets = try! Regex(" \\[(?:(?:" + ourNames.joined(separator: "|") + ")(?:, )?)+\\]\n")
        return text.replacing(brackets, with: "\n")
    }

    @Test(arguments: flagSets)
    func sameBytesAsTcpdump(_ flags: String) throws {
        let words = flags.split(separator: " ").map(String.init)
        let bin = packetflowBinary()
        try #require(FileManager.default.isExecutableFile(atPath: bin.path), "build packetflow first: swift build")
        for file in Self.files {
            guard
                let expected = try run(
                    "tcpdump", ["-nn", "-S"] + words + ["-r", fixture(file)],
                    environment: ["TZ": "UTC"])
            else {
                Issue.record("tcpdump is not installed: apt-get install tcpdump (CI installs it)")
                return
            }
            let r = try runProcess(bin, ["read", "-S"] + words + [fixture(file)], environment: ["TZ": "UTC"])
            #expect(r.status == 0, "\(flags) \(file): \(r.stderr)")
            let ours = Self.withoutOurBrackets(r.stdout)
            let known = (Self.exceptions[file] ?? []).filter { e in words.contains { $0.hasPrefix(e.from) } }
            if known.isEmpty {
                #expect(ours == expected, "\(flags) \(file)")
                continue
            }
            // Compare packet by packet (the flag sets with -v have no ASCII dump, whose lines start with anything).
            let a = Self.packets(expected)
            let b = Self.packets(ours)
            try #require(a.count == b.count, "\(flags) \(file): \(a.count) packets from tcpdump, \(b.count) ours")
            for i in a.indices {
                if let why = known.first(where: { $0.packet == i + 1 })?.why {
                    #expect(a[i] != b[i], "\(flags) \(file) packet \(i + 1) now agrees (\(why)): drop the exception")
                } else {
                    #expect(a[i] == b[i], "\(flags) \(file) packet \(i + 1)")
                }
            }
        }
    }

    /// The packets of tcpdump's output: a packet starts on a line that does not start with white space, or with
    /// the number -# puts there ("    1  "); -v's second lines and the dumps start with four spaces or a tab.
    static func packets(_ text: String) -> [String] {
        var result: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            let starts =
                line.first.map { $0 != " " && $0 != "\t" } ?? false
                || line.wholeMatch(of: #/ *[0-9]+  .*/#) != nil
            if starts || result.isEmpty {
                result.append(String(line) + "\n")
            } else {
                result[result.count - 1] += line + "\n"
            }
        }
        return result
    }

    /// The test's own helpers: one packet per line, -v's second lines and dumps kept with their packet; only
    /// PacketFlow's brackets taken out.
    @Test func helpers() {
        let text =
            "    1  12:00:00.000000 IP (tos 0x0)\n    10.0.0.1.1 > 10.0.0.2.2: UDP, length 1\n"
            + "\t0x0000:  4500\n    2  12:00:00.000001 IP 10.0.0.1 > 10.0.0.2:  ip-proto-253 3\n"
        #expect(Self.packets(text).count == 2)
        #expect(Self.packets("a\n b\nc\n") == ["a\n b\n", "c\n"])
        // Only our brackets go; tcpdump's stay.
        #expect(
            Self.withoutOurBrackets("x, length 0 [duplicate_ack, retransmission]\ny [truncated]\n")
                == "x, length 0\ny\n")
        let theirs = "a: [udp sum ok] UDP, length 4\nb:  [|icmp]\nc [RST bye]\nflags [DF]\n"
        #expect(Self.withoutOurBrackets(theirs) == theirs)
    }
}

/// The pieces the flags are made of, each against its reference.
@Suite struct TcpdumpFlagPartsTests {
    /// -tttt's date is gmtime(3) and strftime's: on the edges of months, leap days, centuries, the 32-bit limit,
    /// and random times (seeded).
    @Test func calendarIsGmtime() {
        var rng = SplitMix64.seeded(default: 0x7117_7177)
        var seconds: [Int64] = [
            0, 1, 59, 86_399, 86_400, 951_782_400, 951_868_799, 1_700_006_399,
            2_147_483_647, 2_678_400 - 1, 946_684_799,
        ]
        for _ in 0..<5000 { seconds.append(Int64.random(in: 0...0x7fff_ffff, using: &rng)) }
        for s in seconds {
            var t = time_t(s)
            var tm = tm()
            gmtime_r(&t, &tm)
            var buffer = [CChar](repeating: 0, count: 64)
            strftime(&buffer, 64, "%Y-%m-%d %H:%M:%S", &tm)
            let expected = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            var o = OutputBuffer()
            TcpdumpLine.calendar(s, 42, date: true, into: &o)
            #expect(o.text == expected + ".000042", "\(s), seed \(rng.seed)")
        }
    }

    /// What tcpdump does with a time it cannot convert, and with the reference of -ttt and -ttttt: a first packet
    /// at the epoch leaves it unset (tcpdump's timevalisset), so the next packet becomes the reference.
    @Test func timeFormats() {
        func lines(_ format: TcpdumpFlags.TimeFormat, _ stamps: [(Int64, UInt32)]) -> [String] {
            var flags = TcpdumpFlags()
            flags.time = format
            var style = TcpdumpLine(flags: flags, packetNumber: 1, state: TcpdumpLineState())
            return stamps.map { s, ns in
                var o = OutputBuffer()
                style.time(Timestamp(seconds: s, nanoseconds: ns), into: &o)
                return o.text
            }
        }
        let stamps: [(Int64, UInt32)] = [(100, 999_999_999), (102, 1000), (101, 0)]
        #expect(lines(.sincePrevious, stamps) == [" 00:00:00.000000 ", " 00:00:01.000002 ", "-00:00:01.000001 "])
        #expect(lines(.sinceFirst, stamps) == [" 00:00:00.000000 ", " 00:00:01.000002 ", " 00:00:00.000001 "])
        #expect(
            lines(.sinceFirst, [(0, 0), (5, 0), (7, 0)]) == [
                " 00:00:00.000000 ", " 00:00:00.000000 ",
                " 00:00:02.000000 ",
            ])
        #expect(lines(.epoch, [(1_700_000_000, 123_456_789)]) == ["1700000000.123456 "])
        #expect(lines(.epoch, [(0x8000_0000, 0)]) == ["[Error converting time] "])
        #expect(lines(.date, [(-1, 0)]) == ["[Error converting time] "])
        #expect(lines(.none, [(5, 0)]) == [""])
    }

    /// RFC 1071's example words, and a checksum field that makes the sum right.
    @Test func internetChecksum() throws {
        var sum = InternetChecksum()
        for w: UInt16 in [0x0001, 0xf203, 0xf4f5, 0xf6f7] { sum.add(w) }
        #expect(sum.value == ~UInt16(0xddf2))
        // An odd byte count pads the last byte with a zero.
        let bytes: [UInt8] = [0x45, 0x00, 0x00, 0x1c, 0xab]
        bytes.withUnsafeBytes { raw in
            var s = InternetChecksum()
            s.add(ByteView(raw))
            var t = InternetChecksum()
            for w: UInt16 in [0x4500, 0x001c, 0xab00] { t.add(w) }
            #expect(s.value == t.value)
        }
        #expect(InternetChecksum.shouldBe(0, 0x1234) == 0x1234)
    }

    /// A flag that cannot shape what a view prints is refused in one line that says what to do.
    @Test(arguments: [
        (["-e", "--format", "jsonl"], "-e changes packet lines; --format jsonl writes JSON objects"),
        (["-x", "--conversations"], "-x changes packet lines; --conversations prints tables"),
        (["-vv", "--flow"], "-vv changes packet lines; a flow diagram draws arrows"),
        (["-A", "--format", "mermaid"], "-A changes packet lines; a flow diagram draws arrows"),
        (["-Q", "in"], "-Q picks the direction of a live capture"),
        (["-s", "96"], "-s sets how much of each packet a live capture keeps"),
        (["-D"], "-D lists the interfaces to capture on: packetflow capture -D"),
        (["-tttttt"], "-t is given at most five times"),
        (["--count", "-v"], "--count prints only the number of packets"),
        (["-X", "-w", "/tmp/packetflow-never-written.pcapng"], "-w writes the selected packets to a file"),
    ])
    func refusedWithOneLine(_ arguments: [String], _ message: String) throws {
        let r = try runProcess(packetflowBinary(), ["read"] + arguments + [fixture("lo-usec.pcap")])
        #expect(r.status == 64, "\(arguments)")
        #expect(r.stderr.hasPrefix("Error: " + message), "\(arguments): \(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    /// --count prints tcpdump's count line, of the packets that pass the filter and -c, over all the files.
    @Test func countsPackets() throws {
        for (arguments, expected) in [
            ([fixture("lo-usec.pcap")], "10 packets\n"), (["-f", "udp", fixture("mix.pcap")], "74 packets\n"),
            (["-c", "1", fixture("mix.pcap")], "1 packet\n"), (["-f", "icmp", fixture("lo-usec.pcap")], "0 packets\n"),
            ([fixture("lo-usec.pcap"), fixture("lo-nsec.pcap")], "20 packets\n"),
        ] {
            let r = try runProcess(packetflowBinary(), ["read", "--count"] + arguments)
            #expect(r.status == 0 && r.stdout == expected, "\(arguments): \(r.stdout) \(r.stderr)")
            if arguments.count == 1, let tcpdump = try run("tcpdump", ["--count", "-r", arguments[0]]) {
                #expect(tcpdump == expected)
            }
        }
    }
}

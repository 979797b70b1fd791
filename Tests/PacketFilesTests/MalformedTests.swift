import Foundation
import PacketFiles
import PacketWire
import TestSupport
import Testing

/// A broken capture and what reading it must report: the records before the first bad one, then the reader's error
/// (where and what), or, for a file that reads to the end, the whole-file warnings and each packet's problem.
struct Malformed: CustomStringConvertible {
    var file: String
    var records: Int
    /// The error's byte offset and (part of) its message; nil when every record reads.
    var error: (offset: Int, message: String)?
    /// `CaptureFileReader.warnings`, without the leading path.
    var warnings: [String] = []
    /// `DecodedPacket.problem(capturedAs:)` by frame; every frame not listed must have none.
    var problems: [Int: String] = [:]
    var description: String { file }

    init(file: String, records: Int, offset: Int, message: String) {
        self.file = file
        self.records = records
        error = (offset, message)
    }

    init(file: String, records: Int, warnings: [String] = [], problems: [Int: String]) {
        self.file = file
        self.records = records
        self.warnings = warnings
        self.problems = problems
    }
}

// Made by scripts/fixtures.py. SHB 28 + IDB 20 + two 52-byte EPBs = 152; pcap header 24 + two 90-byte records = 204.
let malformedCorpus: [Malformed] = [
    Malformed(file: "empty.pcap", records: 0, offset: 0, message: "empty file (needs 4 bytes, 0 left)"),
    Malformed(file: "bad-magic.pcap", records: 0, offset: 0, message: "unknown magic number 0xdeadbeef"),
    Malformed(
        file: "short-header.pcap", records: 0, offset: 0,
        message: "truncated pcap file header (needs 24 bytes, 20 left)"),
    Malformed(
        file: "truncated-record.pcap", records: 2, offset: 204,
        message: "truncated packet record (needs 82 bytes, 26 left)"),
    Malformed(
        file: "huge-length.pcap", records: 2, offset: 204,
        message: "packet record length 4294967280 exceeds the maximum"),
    Malformed(
        file: "absurd-block-length.pcapng", records: 2, offset: 152,
        message: "block length 2147483632 exceeds the maximum"),
    Malformed(file: "length-mismatch.pcapng", records: 2, offset: 152, message: "trailing length does not match"),
    Malformed(
        file: "huge-caplen.pcapng", records: 2, offset: 152,
        message: "captured length 4294967280 overruns its block"),
    Malformed(
        file: "unknown-interface.pcapng", records: 2, offset: 152,
        message: "packet for interface 5, which the section has not described"),
    Malformed(
        file: "truncated-block.pcapng", records: 9, offset: 1124,
        message: "truncated block (needs 100 bytes, 93 left)"),
    // IPv4 total and IPv6 payload lengths beyond what the wire carried (tcpdump: "truncated-ip - N bytes missing!");
    // frame 4 was also cut by the snapshot length, and its header claims 34 bytes past its original 60.
    Malformed(
        file: "ip-length-beyond-packet.pcap", records: 5,
        problems: [
            1: "malformed network header: IPv4 total length exceeds the packet by 20 bytes",
            2: "malformed network header: IPv4 total length exceeds the packet by 30 bytes",
            3: "malformed network header: IPv6 payload length exceeds the packet by 20 bytes",
            4: "malformed network header: IPv4 total length exceeds the packet by 34 bytes",
        ]),
    // Records whose own lengths are impossible (tcpdump: "[Invalid header: ...]").
    Malformed(
        file: "len-below-caplen.pcap", records: 4,
        problems: [
            1: "invalid record header: len(37) < caplen(47)", 2: "invalid record header: len==0",
            3: "invalid record header: caplen==0",
        ]),
    // Link types PacketWire does not decode: one warning per link type for the file, a problem on each packet.
    Malformed(
        file: "unsupported-link.pcap", records: 2,
        warnings: ["link-type USER0 (147) is not decoded: packetflow sees its packets as bytes only"],
        problems: [1: "link-type USER0 (147) not decoded", 2: "link-type USER0 (147) not decoded"]),
    Malformed(
        file: "unsupported-link.pcapng", records: 4,
        warnings: [
            "interface 1 (wlan0): link-type IEEE802_11 (105) is not decoded: packetflow sees its packets as bytes only",
            "interface 2: link-type USER0 (147) is not decoded: packetflow sees its packets as bytes only",
        ],
        problems: [
            2: "link-type IEEE802_11 (105) not decoded", 3: "link-type USER0 (147) not decoded",
            4: "link-type IEEE802_11 (105) not decoded",
        ]),
]

@Test(arguments: malformedCorpus)
func malformedFile(_ m: Malformed) throws {
    let path = fixture("malformed/" + m.file)
    for size in [CaptureFileReader.defaultBufferSize, 16] {
        let r = readAll(path: path, bufferSize: size)
        #expect(r.records.count == m.records)
        #expect(r.records.map(\.frame) == Array(0..<m.records).map { $0 + 1 })
        if let expected = m.error {
            let error = try #require(r.error)
            #expect(error.byteOffset == expected.offset)
            #expect(error.message.contains(expected.message), "\(error)")
            #expect(error.description.hasPrefix("\(path): byte \(expected.offset): "))
        } else {
            #expect(r.error == nil)
        }
        #expect(r.warnings == m.warnings.map { "\(path): " + $0 })
        var problems: [Int: String] = [:]
        for record in r.records {
            let problem = record.bytes.withUnsafeBytes { raw in
                PacketDecoder.decode(ByteView(raw), linkType: record.linkType).problem(capturedAs: record.info)
            }
            if let problem { problems[record.frame] = problem.description }
        }
        #expect(problems == m.problems)
        let batched = readAll(path: path, bufferSize: size, batched: true)
        #expect(batched.records == r.records && batched.error == r.error)
        // Read ahead on a second thread, in chunks of `size` bytes: the same records and the same error.
        for ahead in [
            readAll(path: path, bufferSize: size, readAhead: true),
            readAll(path: path, bufferSize: size, batched: true, readAhead: true),
        ] {
            #expect(ahead.records == r.records && ahead.error == r.error && ahead.warnings == r.warnings)
        }
    }
}

@Test func errorIsStickyAndRecordsBeforeItAreIntact() throws {
    let good = readAll(path: fixture("lo-usec.pcap"))
    let reader = try CaptureFileReader(path: fixture("malformed/truncated-record.pcap"))
    let r = readAll(reader)
    #expect(r.records == Array(good.records.prefix(2)))
    #expect(throws: CaptureFileError.self) { _ = try reader.next() }
}

/// Every prefix of a valid file: never a crash, the records delivered are a prefix of the full file's, and
/// anything short of the whole file that cuts a record reports an error.
@Test(arguments: ["lo-usec.pcap", "be-usec.pcap", "comments.pcapng", "synthetic.pcapng"])
func everyTruncatedPrefix(_ file: String) throws {
    let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture(file))))
    let full = readAll(bytes: data)
    #expect(full.error == nil)
    for n in 0..<data.count {
        let prefix = Array(data[..<n])
        // Through a real file for some lengths, from memory for all (the same code path after read(2)).
        let r: ReadResult
        if n % 97 == 0 {
            let path = temporaryPath("prefix")
            _ = FileManager.default.createFile(atPath: path, contents: Data(prefix))
            r = readAll(path: path, bufferSize: 32)
            let ahead = readAll(path: path, bufferSize: n % 2 == 0 ? 32 : 4096, batched: true, readAhead: true)
            #expect(ahead.records == r.records && ahead.error == r.error, "\(file) prefix \(n) read ahead")
            try? FileManager.default.removeItem(atPath: path)
        } else {
            r = readAll(bytes: prefix, bufferSize: n % 2 == 0 ? 16 : 4096)
            let batched = readAll(bytes: prefix, bufferSize: n % 2 == 0 ? 16 : 4096, batched: true)
            #expect(batched.records == r.records && batched.error == r.error, "\(file) prefix \(n) batched")
        }
        #expect(r.records == Array(full.records.prefix(r.records.count)), "\(file) prefix \(n)")
        // Cutting the last byte always cuts the last record.
        if n == data.count - 1 { #expect(r.error != nil && r.records.count == full.records.count - 1) }
        if let error = r.error { #expect(error.byteOffset <= n) }
    }
}

/// Random byte flips in a valid file: reading never traps, every record that lies wholly before the first changed
/// byte comes out as it was, and the rest is the same however the file is read (buffer size, batched, read ahead
/// from a real file): records numbered from 1 on described interfaces, an error inside the file, and packets
/// that decode within their own bytes.
@Test func corruptedFilesKeepTheirIntactRecords() throws {
    var rng = SplitMix64.seeded(default: 0xC0FF_EE)
    let seed = "seed \(rng.seed) (PACKETFLOW_TEST_SEED to replay)"
    var changed = 0
    for file in ["lo-nsec.pcap", "synthetic.pcapng", "two-interfaces.pcapng", "icmp-errors.pcap"] {
        let data = [UInt8](try #require(FileManager.default.contents(atPath: fixture(file))))
        for round in 0..<150 {
            var bytes = data
            var first = bytes.count
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                bytes[at] = UInt8.random(in: 0...255, using: &rng)
                first = min(first, at)
            }
            let what = "\(seed), \(file) round \(round), first change at \(first)"
            let r = readAll(bytes: bytes, bufferSize: 64)
            // What a reader of the untouched bytes before the change delivers, the changed file delivers too.
            let intact = readAll(bytes: Array(data[..<first])).records
            #expect(Array(r.records.prefix(intact.count)) == intact, "\(what)")
            if r.records != readAll(bytes: data).records { changed += 1 }
            #expect(r.records.map(\.frame) == Array(r.records.indices).map { $0 + 1 }, "\(what)")
            #expect(r.records.allSatisfy { $0.interface < r.interfaces.count }, "\(what)")
            if let error = r.error { #expect(error.byteOffset <= bytes.count, "\(what)") }
            let others = [
                readAll(bytes: bytes, bufferSize: 1 << 16), readAll(bytes: bytes, bufferSize: 64, batched: true),
            ]
            for other in others {
                #expect(other.records == r.records && other.error == r.error, "\(what)")
            }
            if round % 25 == 0 {
                let path = temporaryPath("corrupt")
                _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
                defer { try? FileManager.default.removeItem(atPath: path) }
                let ahead = readAll(path: path, bufferSize: 64, batched: true, readAhead: true)
                #expect(ahead.records == r.records && ahead.error?.message == r.error?.message, "\(what)")
                #expect(ahead.error?.byteOffset == r.error?.byteOffset, "\(what)")
            }
            for record in r.records {
                let p = record.bytes.withUnsafeBytes { PacketDecoder.decode(ByteView($0), linkType: record.linkType) }
                #expect(p.capturedPayloadLength <= p.payloadLength, "\(what), frame \(record.frame)")
                #expect(
                    p.capturedPayloadLength == 0 || p.payloadOffset + p.capturedPayloadLength <= record.bytes.count,
                    "\(what), frame \(record.frame)")
            }
        }
    }
    // The flips must reach records, or the checks above say nothing.
    #expect(changed > 100, "\(seed)")
}

import Foundation
import PacketFiles
import PacketWire
import Testing

struct Expected {
    var file: String
    var format: CaptureFileFormat
    var count: Int
    var linkTypes: [LinkType]
    var first: (ns: Int64, length: Int, interface: Int)
    var last: (ns: Int64, length: Int, interface: Int)
}

// Values recorded with `tshark -r F -T fields -e frame.number -e frame.time_epoch -e frame.len -e frame.cap_len`.
let expectations: [Expected] = [
    Expected(
        file: "lo-usec.pcap", format: .pcap(nanosecond: false, bigEndian: false), count: 10,
        linkTypes: [.ethernet], first: (1_795_776_074_012_163_000, 74, 0), last: (1_795_776_074_012_835_000, 66, 0)),
    Expected(
        file: "be-usec.pcap", format: .pcap(nanosecond: false, bigEndian: true), count: 10,
        linkTypes: [.ethernet], first: (1_795_776_074_012_163_000, 74, 0), last: (1_795_776_074_012_835_000, 66, 0)),
    Expected(
        file: "lo-nsec.pcap", format: .pcap(nanosecond: true, bigEndian: false), count: 10,
        linkTypes: [.ethernet], first: (1_795_776_076_177_435_502, 74, 0), last: (1_795_776_076_177_727_616, 66, 0)),
    Expected(
        file: "any-sll2.pcap", format: .pcap(nanosecond: false, bigEndian: false), count: 10,
        linkTypes: [.linuxSLL2], first: (1_795_776_078_310_037_000, 80, 0), last: (1_795_776_078_310_302_000, 72, 0)),
    Expected(
        file: "any-sll.pcap", format: .pcap(nanosecond: false, bigEndian: false), count: 10,
        linkTypes: [.linuxSLL], first: (1_795_776_080_470_516_000, 76, 0), last: (1_795_776_080_470_840_000, 68, 0)),
    Expected(
        file: "comments.pcapng", format: .pcapng, count: 10,
        linkTypes: [.ethernet], first: (1_795_776_076_177_435_502, 74, 0), last: (1_795_776_076_177_727_616, 66, 0)),
    Expected(
        file: "two-interfaces.pcapng", format: .pcapng, count: 20, linkTypes: [.ethernet, .linuxSLL2],
        first: (1_795_776_074_012_163_000, 74, 0), last: (1_795_776_078_310_302_000, 72, 1)),
]

@Test(arguments: expectations.indices)
func readsFixture(_ i: Int) throws {
    let e = expectations[i]
    // A tiny buffer forces the refill and grow paths that a 1 MiB buffer never takes on small files.
    for size in [CaptureFileReader.defaultBufferSize, 16, 100] {
        let r = readAll(path: fixture(e.file), bufferSize: size)
        #expect(r.error == nil, "\(e.file): \(String(describing: r.error))")
        #expect(r.format == e.format)
        #expect(r.records.count == e.count)
        #expect(r.interfaces.map(\.linkType) == e.linkTypes)
        #expect(r.records.map(\.frame) == Array(1...e.count))
        let first = try #require(r.records.first)
        let last = try #require(r.records.last)
        #expect(
            first.ns == e.first.ns && first.capturedLength == e.first.length && first.interface == e.first.interface)
        #expect(last.ns == e.last.ns && last.capturedLength == e.last.length && last.interface == e.last.interface)
        #expect(r.records.allSatisfy { $0.bytes.count == $0.capturedLength })
        #expect(r.records.allSatisfy { $0.linkType == e.linkTypes[$0.interface] })
    }
}

/// Every frame of every real fixture agrees with tshark on time, lengths and comments.
@Test(arguments: expectations.map(\.file))
func agreesWithTshark(_ file: String) throws {
    guard
        let lines = try tshark([
            "-r", fixture(file), "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len",
            "-e", "frame.cap_len", "-e", "frame.comment",
        ])
    else { return }
    let r = readAll(path: fixture(file))
    #expect(r.records.count == lines.count)
    for (record, line) in zip(r.records, lines) {
        let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        #expect(record.ns == ns(f[0]), "\(file) frame \(record.frame)")
        #expect(record.originalLength == Int(f[1]))
        #expect(record.capturedLength == Int(f[2]))
        #expect(record.comments.joined(separator: ",") == f[3])
    }
}

/// Reading ahead on a second thread (chunk sizes from tiny to default) and the batched loop deliver exactly
/// what `next()` delivers, on every fixture.
@Test(arguments: expectations.map(\.file))
func readAheadAndBatchedMatchPlainReads(_ file: String) {
    let plain = readAll(path: fixture(file), readAhead: false)
    #expect(plain.error == nil && !plain.records.isEmpty)
    for size in [16, 100, 4096, CaptureFileReader.defaultBufferSize] {
        for batched in [false, true] {
            let r = readAll(path: fixture(file), bufferSize: size, batched: batched, readAhead: true)
            #expect(r.records == plain.records && r.error == plain.error, "\(file) \(size) \(batched)")
        }
    }
}

@Test func bigEndianPcapHasTheSameBytes() {
    let le = readAll(path: fixture("lo-usec.pcap"))
    let be = readAll(path: fixture("be-usec.pcap"))
    #expect(le.records.count == 10)
    #expect(le.records == be.records)
}

@Test func pcapngComments() {
    let r = readAll(path: fixture("comments.pcapng"))
    #expect(r.records[0].comments == ["first comment"])
    #expect(r.records[1].comments == [])
    // editcap -a for a frame that already has a comment replaces it.
    #expect(r.records[2].comments == ["second comment on three"])
    #expect(r.records.dropFirst(3).allSatisfy { $0.comments.isEmpty })
}

@Test func pcapngInterfacesFromMergecap() {
    let r = readAll(path: fixture("two-interfaces.pcapng"))
    #expect(r.records.filter { $0.interface == 0 }.count == 10)
    #expect(r.records.filter { $0.interface == 1 }.count == 10)
    // mergecap interleaves by time.
    #expect(zip(r.records, r.records.dropFirst()).allSatisfy { $0.ns <= $1.ns })
    #expect(r.interfaces.map(\.snapLength) == [262144, 262144])
    // Neither interface has an if_name: each is named by its number.
    #expect(r.records.allSatisfy { $0.interfaceName == "#\($0.interface)" })
    #expect(readAll(path: fixture("lo-usec.pcap")).records.allSatisfy { $0.interfaceName == nil })
}

/// synthetic.pcapng (scripts/fixtures.py): two sections with different byte orders, power-of-2 and power-of-10
/// resolutions, if_tsoffset, Simple and obsolete Packet Blocks, skipped NRB and unknown blocks, an ISB.
@Test func syntheticPcapng() throws {
    for size in [CaptureFileReader.defaultBufferSize, 16] {
        let r = readAll(path: fixture("synthetic.pcapng"), bufferSize: size)
        #expect(r.error == nil)
        #expect(r.format == .pcapng)
        #expect(r.records.count == 6)
        guard r.records.count == 6 else { return }
        let (a, b, c, d, e, f) = (r.records[0], r.records[1], r.records[2], r.records[3], r.records[4], r.records[5])
        #expect(a.ns == 1_700_000_100_250_000_000 && a.capturedLength == 30 && a.interface == 0)
        #expect(a.comments == ["héllo"] && a.bytes == [UInt8](repeating: 0x11, count: 30))
        // Simple Packet Block: no timestamp; 100 bytes on the wire cut to interface 0's snap length of 40.
        #expect(b.ns == 0 && b.capturedLength == 40 && b.originalLength == 100 && b.interface == 0)
        #expect(b.bytes == [UInt8](repeating: 0x22, count: 40) && b.comments.isEmpty)
        #expect(c.ns == 1_700_000_001_500_000_000 && c.capturedLength == 21 && c.originalLength == 60)
        #expect(c.interface == 1 && c.linkType == .raw)
        #expect(d.ns == 1_700_000_002_250_000_000 && d.capturedLength == 5 && d.comments == ["old", "block"])
        #expect(d.bytes == [0x44, 0x44, 0x44, 0x44, 0x44])
        #expect(e.ns == 1_700_000_003_123_456_789 && e.capturedLength == 14 && e.interface == 2)
        #expect(f.ns == 1_700_000_004_000_000_001 && f.capturedLength == 3 && f.originalLength == 9)
        #expect(f.comments == ["big", "endian"] && f.bytes == [0x66, 0x66, 0x66])
        #expect(r.interfaces.count == 3)
        #expect(r.interfaces.map(\.name) == ["eth-test", "raw0", "be0"])
        #expect(r.records.map(\.interfaceName) == ["eth-test", "eth-test", "raw0", "raw0", "be0", "be0"])
        #expect(r.interfaces.map(\.timestampResolution) == [.powerOf10(6), .powerOf2(10), .powerOf10(9)])
        #expect(r.interfaces.map(\.timestampOffset) == [100, 0, 0])
        #expect(r.interfaces.map(\.section) == [0, 0, 1])
        #expect(r.interfaces[0].dropped == 7 && r.interfaces[0].received == 10)
        #expect(r.interfaces[1].dropped == nil)
    }
}

@Test func readsStandardInput() throws {
    // Through a pipe, as `packetflow read -` would see it.
    let tool = Process()
    tool.executableURL = URL(fileURLWithPath: "/bin/cat")
    tool.arguments = [fixture("lo-nsec.pcap")]
    let pipe = Pipe()
    tool.standardOutput = pipe
    try tool.run()
    let reader = try CaptureFileReader(
        fileDescriptor: pipe.fileHandleForReading.fileDescriptor, name: "stdin",
        bufferSize: 64)
    let r = readAll(reader)
    tool.waitUntilExit()
    #expect(r.error == nil)
    #expect(r.records == readAll(path: fixture("lo-nsec.pcap")).records)
}

@Test func missingFileNamesThePath() {
    let r = readAll(path: "/nonexistent/x.pcap")
    #expect(r.error?.description.hasPrefix("/nonexistent/x.pcap: byte 0: cannot open") == true)
}

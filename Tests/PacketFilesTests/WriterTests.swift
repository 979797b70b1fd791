import Foundation
import PacketFiles
import PacketWire
import Testing

/// Ethernet / IPv4 / TCP, 54 bytes, with the given TCP flags (checksums left zero).
func syntheticTCP(flags: UInt8, payload: [UInt8] = []) -> [UInt8] {
    var p: [UInt8] = [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00]
    let ipLength = 20 + 20 + payload.count
    p += [
        0x45, 0, UInt8(ipLength >> 8), UInt8(ipLength & 0xFF), 0, 1, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
    ]
    p += [0xB0, 0x00, 0x1F, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]
    return p + payload
}

func writeSample(to path: String) throws -> [Copied] {
    let w = try PcapngWriter(path: path)
    let eth = try w.addInterface(linkType: .ethernet, snapLength: 65535, name: "lo")
    let raw = try w.addInterface(linkType: .raw, snapLength: 0, name: "tun0")
    let packets: [(iface: Int, ns: Int64, bytes: [UInt8], original: Int, comments: [String])] = [
        (eth, 1_700_000_000_000_000_001, syntheticTCP(flags: 0x02), 54, ["SYN from the client"]),
        (eth, 1_700_000_000_123_456_789, syntheticTCP(flags: 0x12), 54, []),
        (raw, 1_700_000_001_999_999_999, Array(syntheticTCP(flags: 0x10).dropFirst(14)), 40, []),
        (
            eth, 1_700_000_002_000_000_000, syntheticTCP(flags: 0x18, payload: Array("hello".utf8)), 1500,
            ["PSH with 5 bytes", "snapped: ünïcode"]
        ),
    ]
    var expected: [Copied] = []
    for (i, p) in packets.enumerated() {
        try p.bytes.withUnsafeBytes { raw in
            try w.writePacket(
                raw, timestamp: Timestamp(totalNanoseconds: p.ns), originalLength: p.original,
                interface: p.iface, comments: p.comments)
        }
        expected.append(
            Copied(
                frame: i + 1, ns: p.ns, capturedLength: p.bytes.count, originalLength: p.original,
                interface: p.iface, interfaceName: p.iface == eth ? "lo" : "tun0",
                linkType: p.iface == eth ? .ethernet : .raw, bytes: p.bytes, comments: p.comments))
    }
    w.setStatistics(interface: eth, received: 4, dropped: 2)
    try w.close()
    return expected
}

@Test func writerRoundTrip() throws {
    let path = temporaryPath("w.pcapng")
    defer { try? FileManager.default.removeItem(atPath: path) }
    let expected = try writeSample(to: path)
    let r = readAll(path: path)
    #expect(r.error == nil)
    #expect(r.records == expected)
    #expect(r.interfaces.map(\.name) == ["lo", "tun0"])
    #expect(r.interfaces.map(\.linkType) == [.ethernet, .raw])
    #expect(r.interfaces.map(\.snapLength) == [65535, 0])
    #expect(r.interfaces.map(\.timestampResolution) == [.powerOf10(9), .powerOf10(9)])
    #expect(r.interfaces[0].received == 4 && r.interfaces[0].dropped == 2)
    #expect(r.interfaces[1].dropped == nil)
}

@Test func writerCopiesAFileExactly() throws {
    // pcap in, pcapng out, same packets back.
    let path = temporaryPath("copy.pcapng")
    defer { try? FileManager.default.removeItem(atPath: path) }
    let reader = try CaptureFileReader(path: fixture("any-sll2.pcap"))
    let w = try PcapngWriter(path: path)
    try w.addInterface(linkType: .linuxSLL2)
    try reader.forEach { r in
        try w.writePacket(
            r.bytes, timestamp: r.info.timestamp, originalLength: r.info.originalLength,
            comments: r.frameNumber == 2 ? ["second"] : [])
    }
    try w.close()
    var original = readAll(path: fixture("any-sll2.pcap")).records
    original[1].comments = ["second"]
    // A pcap names no interface; the copy's unnamed pcapng interface 0 is "#0".
    for i in original.indices { original[i].interfaceName = "#0" }
    #expect(readAll(path: path).records == original)
}

@Test func tsharkReadsWriterOutput() throws {
    let path = temporaryPath("tshark.pcapng")
    defer { try? FileManager.default.removeItem(atPath: path) }
    let expected = try writeSample(to: path)
    // Wireshark 3.6 calls the field pkt_comment; 4.x (Debian 12) frame.comment.
    guard
        let lines = try tshark([
            "-r", path, "-T", "fields", "-e", "frame.number", "-e", "frame.comment",
            "-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len",
            "-e", "tcp.flags",
        ])
    else { return }
    #expect(lines.count == expected.count)
    for (e, line) in zip(expected, lines) {
        let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        #expect(f.count == 6, "\(line)")
        guard f.count == 6 else { continue }
        #expect(Int(f[0]) == e.frame)
        #expect(f[1] == e.comments.joined(separator: ","))
        #expect(ns(f[2]) == e.ns)
        #expect(Int(f[3]) == e.originalLength && Int(f[4]) == e.capturedLength)
    }
    // tshark decoded our synthetic TCP (SYN, SYN-ACK, ACK, PSH-ACK).
    #expect(
        lines.map { $0.split(separator: "\t", omittingEmptySubsequences: false).last.map(String.init) }
            == ["0x0002", "0x0012", "0x0010", "0x0018"])
}

@Test func writerRejectsUnknownInterface() throws {
    let path = temporaryPath("bad.pcapng")
    defer { try? FileManager.default.removeItem(atPath: path) }
    let w = try PcapngWriter(path: path)
    #expect(throws: CaptureFileError.self) {
        try [UInt8](repeating: 0, count: 4).withUnsafeBytes {
            try w.writePacket($0, timestamp: Timestamp(seconds: 0, nanoseconds: 0))
        }
    }
    try w.close()
    let r = readAll(path: path)
    #expect(r.error == nil && r.records.isEmpty && r.interfaces.isEmpty)
}

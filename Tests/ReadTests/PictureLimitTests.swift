import Foundation
import TestSupport
import Testing

/// A picture (HTML, Mermaid) of a whole large capture is refused with one line that says what to pick, instead of
/// a page no browser opens.
@Suite struct PictureLimitTests {
    /// A classic pcap of one TCP stream: a SYN, then `acks` ACKs, each 54 bytes of Ethernet, IPv4 and TCP.
    static func capture(acks: Int) -> Data {
        var d = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        u32(0xa1b2_c3d4)
        u16(2)
        u16(4)
        u32(0)
        u32(0)
        u32(65535)
        u32(1)
        for i in 0...acks {
            u32(1_700_000_000)
            u32(UInt32(i % 1_000_000))
            u32(54)
            u32(54)
            d.append(contentsOf: [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0x08, 0x00])
            d.append(contentsOf: [0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 2])
            let flags: UInt8 = i == 0 ? 0x02 : 0x10
            d.append(contentsOf: [
                0xc3, 0x50, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, i == 0 ? 0 : 1, 0x50, flags, 0xff, 0xff,
                0, 0, 0, 0,
            ])
        }
        return d
    }

    @Test func aPageOfMoreThanAHundredThousandPacketsIsRefusedInOneLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("picture-limit-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("big.pcap")
        try Self.capture(acks: 100_000).write(to: file)
        let page = dir.appendingPathComponent("big.html")
        for format in ["html", "mermaid"] {
            let r = try runProcess(packetflowBinary(), ["read", "--format", format, "-o", page.path, file.path])
            #expect(r.status == 1)
            #expect(r.stderr.contains("holds at most 100000 packets; pick a TCP stream (--stream N;"))
            #expect(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1)
            #expect(!FileManager.default.fileExists(atPath: page.path))
        }
        // A count within the limit draws.
        let small = try runProcess(packetflowBinary(), ["read", "--format", "mermaid", "-c", "3", file.path])
        #expect(small.status == 0)
        #expect(small.stdout.split(separator: "\n").filter { $0.contains("->>") }.count == 3)
    }
}

/// Every view of every malformed file ends with output and, at worst, one error line: never a trap. Two of the
/// files hold timestamps tens of thousands of years apart, whose difference in nanoseconds overflows Int64 (the
/// conversation table and the flow diagram trapped on them).
@Suite struct MalformedViewsTests {
    static let views: [[String]] = [
        [], ["--format", "jsonl"], ["--conversations"], ["--flow"], ["--payload", "-X"], ["--format", "mermaid"],
        ["--format", "html", "-o", "/dev/null"],
    ]

    @Test func everyViewOfEveryMalformedFileEndsCleanly() throws {
        let dir = fixtures.appendingPathComponent("malformed")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(files.contains("time-overflow-a.pcapng") && files.contains("time-overflow-b.pcapng"))
        for file in files {
            for view in Self.views {
                let r = try runProcess(packetflowBinary(), ["read"] + view + [dir.appendingPathComponent(file).path])
                #expect(r.status == 0 || r.status == 1, "\(file) \(view): status \(r.status)")
                #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("crashed"), "\(file) \(view)")
            }
        }
    }
}

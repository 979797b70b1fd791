import Foundation
import TestSupport
import Testing

/// The malformed packets that used to pass silently, through the real CLI: each is marked in the text as tcpdump
/// marks it, carries a "problem" in JSON Lines, and a condition of the whole file is one line on stderr; reading
/// goes on to the end and exits 0, as tcpdump does.
@Suite struct MalformedPacketTests {
    struct Case: CustomStringConvertible, Sendable {
        var file: String
        /// Frames whose JSON object has a "problem".
        var problemFrames: [Int]
        /// Lines on stderr, after "packetflow: PATH: ".
        var warnings: [String]
        /// tcpdump reads it (it cannot read a pcapng with two link types).
        var tcpdump: Bool
        var description: String { file }
    }

    static let cases = [
        Case(file: "ip-length-beyond-packet.pcap", problemFrames: [1, 2, 3, 4], warnings: [], tcpdump: true),
        Case(file: "len-below-caplen.pcap", problemFrames: [1, 2, 3], warnings: [], tcpdump: true),
        Case(
            file: "unsupported-link.pcap", problemFrames: [1, 2],
            warnings: ["link-type USER0 (147) is not decoded: packetflow sees its packets as bytes only"],
            tcpdump: true),
        Case(
            file: "unsupported-link.pcapng", problemFrames: [2, 3, 4],
            warnings: [
                "interface 1 (wlan0): link-type IEEE802_11 (105) is not decoded: packetflow sees its packets as bytes only",
                "interface 2: link-type USER0 (147) is not decoded: packetflow sees its packets as bytes only",
            ], tcpdump: false),
    ]

    /// `read -S` prints what `TZ=UTC tcpdump -nn -S -r` prints, marks included (`truncated-ip - N bytes missing!`,
    /// `[Invalid header: len(N) < caplen(M)]`, `UNSUPPORTED` and the bytes), apart from our own bracketed
    /// `[truncated]` on a packet the snapshot length cut.
    @Test(arguments: cases.filter(\.tcpdump))
    func textIsTcpdumps(_ c: Case) throws {
        let path = fixture("malformed/" + c.file)
        guard let expected = try run("tcpdump", ["-nn", "-S", "-r", path], environment: ["TZ": "UTC"]) else {
            Issue.record("tcpdump is not installed: apt-get install tcpdump (CI installs it)")
            return
        }
        let ours = try runProcess(packetflowBinary(), ["read", "-S", path])
        #expect(ours.status == 0)
        #expect(ours.stdout.replacing(" [truncated]\n", with: "\n") == expected)
        for mark in ["truncated-ip - ", "truncated-ip6 - ", "[Invalid header: ", "UNSUPPORTED"] {
            #expect(ours.stdout.contains(mark) == expected.contains(mark), "\(mark)")
        }
    }

    /// Every view reads to the end with status 0; JSON Lines carries the problems, and each view says once on
    /// stderr what concerns the whole file.
    @Test(arguments: cases)
    func problemsAndWarnings(_ c: Case) throws {
        let path = fixture("malformed/" + c.file)
        let warnings = c.warnings.map { "packetflow: \(path): \($0)\n" }.joined()
        let json = try runProcess(packetflowBinary(), ["read", "--format", "jsonl", path])
        #expect(json.status == 0)
        #expect(json.stderr == warnings)
        let frames = try json.stdout.split(separator: "\n").compactMap { line -> Int? in
            let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return o["problem"] is String ? (o["frame"] as? NSNumber)?.intValue : nil
        }
        #expect(frames == c.problemFrames)
        for view in [["--conversations"], ["--flow"], []] {
            let r = try runProcess(packetflowBinary(), ["read"] + view + [path])
            #expect(r.status == 0 && r.stderr == warnings, "\(view)")
        }
    }
}

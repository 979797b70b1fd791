import Foundation
import TestSupport
import Testing

/// `read --format jsonl` numbers TCP streams as tshark's `tcp.stream` does: by addresses and ports only, so one
/// connection captured on two interfaces is one stream (the second copies are retransmissions), and a reused
/// 4-tuple is a new stream only when a SYN brings a new initial sequence number, whichever side sends it.
@Suite struct StreamNumberingTests {
    static let analysis = [
        "retransmission", "fast_retransmission", "spurious_retransmission", "duplicate_ack", "out_of_order",
        "zero_window", "window_full", "window_update", "keep_alive", "lost_segment",
    ]

    /// Each packet's stream, relative seq/ack and analysis flags, from the real CLI and from tshark.
    @Test(arguments: ["same-connection-two-interfaces.pcapng", "port-reuse.pcap"])
    func streamsSeqAndAnalysisAgreeWithTshark(_ file: String) throws {
        var args = [
            "-r", fixture(file), "-T", "fields", "-E", "separator=/t", "-e", "frame.number", "-e",
            "tcp.stream", "-e", "tcp.seq", "-e", "tcp.ack",
        ]
        for name in Self.analysis { args += ["-e", "tcp.analysis." + name] }
        guard let table = try run("tshark", args) else {
            Issue.record("tshark is not installed: apt-get install tshark (CI installs it)")
            return
        }
        let theirs = table.split(separator: "\n").map { row -> String in
            let cells = row.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            let flags = zip(Self.analysis, cells.dropFirst(4)).filter { !$0.1.isEmpty }.map(\.0).sorted()
            return (cells.prefix(4) + [flags.joined(separator: ",")]).joined(separator: " ")
        }
        let result = try runProcess(packetflowBinary(), ["read", "--format", "jsonl", fixture(file)])
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result.stderr)")
        let ours = try result.stdout.split(separator: "\n").map { line -> String in
            let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            func text(_ key: String) -> String { (o[key] as? NSNumber).map { "\($0.intValue)" } ?? "" }
            let flags = ((o["analysis"] as? [String]) ?? []).sorted().joined(separator: ",")
            return [text("frame"), text("stream"), text("seq"), text("ack"), flags].joined(separator: " ")
        }
        #expect(ours == theirs)
        // The fixtures are meant to exercise the rules: copies flagged as retransmissions, several streams.
        #expect(theirs.contains { $0.hasSuffix(" retransmission") })
        let streams = Set(theirs.map { $0.split(separator: " ")[1] })
        #expect(streams.count == (file == "port-reuse.pcap" ? 3 : 1))
    }

    /// `"interface"` is the pcapng interface's `if_name` (tshark's `frame.interface_name`), `"#N"` for interface N
    /// without one (tshark's `frame.interface_id`; tshark names it "unknown"), and null for classic pcap, whose
    /// packets tshark gives neither field. tshark 4.0 names a later section's interfaces after the first
    /// section's (synthetic.pcapng's "be0" is "eth-test" there), so only the first section is compared with it.
    @Test(arguments: [
        "same-connection-two-interfaces.pcapng", "two-interfaces.pcapng", "synthetic.pcapng", "lo-usec.pcap",
    ])
    func interfaceAgreesWithTshark(_ file: String) throws {
        let args = [
            "-r", fixture(file), "-T", "fields", "-E", "separator=/t", "-e", "frame.interface_id", "-e",
            "frame.interface_name", "-e", "frame.section_number",
        ]
        guard let table = try run("tshark", args) else {
            Issue.record("tshark is not installed: apt-get install tshark (CI installs it)")
            return
        }
        let theirs = table.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { row in
            let cells = row.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if cells[0].isEmpty { return "null" }
            if cells[2] != "1" { return "?" }
            return cells[1] == "unknown" ? "#" + cells[0] : cells[1]
        }
        let result = try runProcess(packetflowBinary(), ["read", "--format", "jsonl", fixture(file)])
        let ours = try result.stdout.split(separator: "\n").map { line -> String in
            let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(o.keys.contains("interface"), "every packet object has the key")
            return o["interface"] as? String ?? "null"
        }
        #expect(ours.count == theirs.count)
        #expect(zip(ours, theirs).allSatisfy { $0 == $1 || $1 == "?" }, "\(ours) against \(theirs)")
        let expected: Set<String> =
            switch file {
            case "same-connection-two-interfaces.pcapng": ["lo", "any"]
            case "two-interfaces.pcapng": ["#0", "#1"]
            case "synthetic.pcapng": ["eth-test", "raw0", "be0"]
            default: ["null"]
            }
        #expect(Set(ours) == expected)
    }

    /// The conversation table of the same connection on two interfaces is tshark's: one row, every frame in it.
    @Test func conversationsOfOneConnectionOnTwoInterfaces() throws {
        let file = fixture("same-connection-two-interfaces.pcapng")
        guard let tcp = try run("tshark", ["-r", file, "-q", "-z", "conv,tcp"]),
            let udp = try run("tshark", ["-r", file, "-q", "-z", "conv,udp"])
        else {
            Issue.record("tshark is not installed: apt-get install tshark (CI installs it)")
            return
        }
        let ours = try runProcess(packetflowBinary(), ["read", "--conversations", file])
        #expect(ours.status == 0)
        #expect(ours.stdout == tcp + udp)
        #expect(ours.stdout.split(separator: "\n").filter { $0.contains("<->") }.count == 1)
    }
}

import Foundation
import TestSupport
import Testing

/// The JSON Lines of `packetflow read --format jsonl` against tshark's fields, packet by packet.
@Suite struct TsharkAgreementTests {
    static let fields = [
        "frame.number", "frame.time_epoch", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "tcp.srcport",
        "tcp.dstport", "udp.srcport", "udp.dstport", "tcp.flags", "tcp.seq", "tcp.ack", "tcp.len", "tcp.stream",
        "udp.length", "tcp.window_size_value",
    ]

    static let tcpFlagNames = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"]

    @Test(arguments: goldenCaptures.filter { $0 != "bad-packets.pcap" })
    func jsonLinesAgreeWithTshark(_ file: String) throws {
        var args = ["-r", fixture(file), "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"]
        for f in Self.fields { args += ["-e", f] }
        guard let table = try run("tshark", args) else {
            Issue.record("tshark is not installed: apt-get install tshark (CI installs it)")
            return
        }
        let rows = table.split(separator: "\n", omittingEmptySubsequences: true)
        let ours = render(fixture(file), .jsonl).output.split(separator: "\n")
        #expect(rows.count == ours.count, "\(file): tshark has \(rows.count) packets, we have \(ours.count)")
        #expect(rows.count > 0)
        var mismatches = 0
        for (row, line) in zip(rows, ours) {
            let v = Dictionary(
                uniqueKeysWithValues: zip(
                    Self.fields,
                    row.split(
                        separator: "\t",
                        omittingEmptySubsequences: false
                    ).map(String.init)))
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            func int(_ k: String) -> Int? { (obj[k] as? NSNumber)?.intValue }
            func str(_ k: String) -> String? { obj[k] as? String }
            var problems: [String] = []
            func check(_ what: String, _ ours: String?, _ theirs: String?) {
                if ours != theirs { problems.append("\(what): ours \(ours ?? "nil"), tshark \(theirs ?? "nil")") }
            }
            let empty: (String?) -> String? = { $0?.isEmpty == false ? $0 : nil }
            check("frame", int("frame").map(String.init), v["frame.number"])
            // The timestamp is compared as text: both print nine decimals.
            let ts = line.split(separator: "\"ts\":")[1].prefix { $0 != "," }
            check("ts", String(ts), v["frame.time_epoch"])
            check("src", str("src"), empty(v["ip.src"]) ?? empty(v["ipv6.src"]))
            check("dst", str("dst"), empty(v["ip.dst"]) ?? empty(v["ipv6.dst"]))
            if let sport = empty(v["tcp.srcport"]) {
                check("proto", str("proto"), "TCP")
                check("sport", int("sport").map(String.init), sport)
                check("dport", int("dport").map(String.init), v["tcp.dstport"])
                check("seq", int("seq").map(String.init), v["tcp.seq"])
                check("ack", int("ack").map(String.init), v["tcp.ack"])
                check("len", int("len").map(String.init), v["tcp.len"])
                check("stream", int("stream").map(String.init), v["tcp.stream"])
                check("win", int("win").map(String.init), v["tcp.window_size_value"])
                let bits = Int(v["tcp.flags"]!.dropFirst(2), radix: 16) ?? -1
                let names = Self.tcpFlagNames.enumerated().filter { bits & (1 << $0.offset) != 0 }.map(\.element)
                check("flags", (obj["flags"] as? [String])?.joined(separator: ","), names.joined(separator: ","))
            } else if let sport = empty(v["udp.srcport"]) {
                check("proto", str("proto"), "UDP")
                check("sport", int("sport").map(String.init), sport)
                check("dport", int("dport").map(String.init), v["udp.dstport"])
                check("len", int("len").map(String.init), Int(v["udp.length"] ?? "").map { String($0 - 8) })
            }
            if !problems.isEmpty {
                mismatches += 1
                if mismatches <= 5 { Issue.record("\(file) frame \(v["frame.number"] ?? "?"): \(problems)") }
            }
        }
        #expect(mismatches == 0)
    }
}

/// `"analysis"` against tshark's `tcp.analysis.*` fields, frame by frame.
@Suite struct TCPAnalysisTests {
    static let names = [
        "retransmission", "fast_retransmission", "spurious_retransmission", "duplicate_ack", "out_of_order",
        "zero_window", "window_full", "window_update", "keep_alive", "lost_segment",
    ]

    @Test(arguments: ["mix.pcap", "lo-usec.pcap", "mid-connection.pcap", "two-interfaces.pcapng"])
    func analysisAgreesWithTshark(_ file: String) throws {
        var args = ["-r", fixture(file), "-T", "fields", "-E", "separator=/t", "-e", "frame.number"]
        for n in Self.names { args += ["-e", "tcp.analysis." + n] }
        guard let table = try run("tshark", args) else {
            Issue.record("tshark is not installed: apt-get install tshark (CI installs it)")
            return
        }
        let rows = table.split(separator: "\n")
        let ours = render(fixture(file), .jsonl).output.split(separator: "\n")
        #expect(rows.count == ours.count)
        var flagged = 0
        for (row, line) in zip(rows, ours) {
            let cells = row.split(separator: "\t", omittingEmptySubsequences: false).dropFirst()
            let expected = zip(Self.names, cells).filter { !$0.1.isEmpty }.map(\.0).sorted()
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let got = ((obj["analysis"] as? [String]) ?? []).sorted()
            if !expected.isEmpty { flagged += 1 }
            #expect(got == expected, "\(file) frame \(obj["frame"] ?? "?")")
        }
        if file == "mix.pcap" { #expect(flagged >= 20, "the fixture is meant to exercise the analysis") }
    }

    /// pcapng packet comments (a trace's `-w` puts the call that sent each packet there) reach `read`'s JSON Lines
    /// as tshark's `frame.comment` has them, and the flow diagram shows them under their arrows.
    @Test func packetCommentsAgreeWithTshark() throws {
        let file = fixture("comments.pcapng")
        guard let table = try run("tshark", ["-r", file, "-T", "fields", "-e", "frame.comment"]) else {
            Issue.record("tshark is not installed: apt-get install tshark (CI installs it)")
            return
        }
        let theirs = table.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        let json = try runProcess(packetflowBinary(), ["read", "--format", "jsonl", file])
        #expect(json.status == 0)
        let ours = try json.stdout.split(separator: "\n").map { line in
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            // tshark joins several comments of one packet with a comma.
            return (obj?["comments"] as? [String] ?? []).joined(separator: ",")
        }
        #expect(ours == theirs)
        #expect(ours.contains { !$0.isEmpty })
        let flow = try runProcess(packetflowBinary(), ["read", "--flow", file])
        for comment in theirs where !comment.isEmpty { #expect(flow.stdout.contains("comment: \(comment)\n")) }
    }

    /// `read --flow FILE` prints each stream as soon as it and those before it are complete (a first pass finds
    /// where each stream ends), so its memory follows the open streams; standard input, read once, keeps them all
    /// to the end. Both print the same diagrams in stream order, filter or not.
    @Test(arguments: [[], ["-f", "tcp port 80 or tcp port 443"], ["-c", "100"]])
    func flowOfAFileEqualsFlowOfStandardInput(_ options: [String]) throws {
        let file = fixture("mix.pcap")
        let bin = packetflowBinary()
        let streamed = try runProcess(bin, ["read", "--flow"] + options + [file])
        let shell = (["read", "--flow"] + options + ["-"]).map { "'\($0)'" }.joined(separator: " ")
        let whole = try runProcess(URL(fileURLWithPath: "/bin/sh"), ["-c", "'\(bin.path)' \(shell) < '\(file)'"])
        #expect(streamed.status == 0 && whole.status == 0)
        #expect(streamed.stdout == whole.stdout)
        let streams = streamed.stdout.split(separator: "\n").compactMap { line in
            line.hasPrefix("TCP stream ") ? Int(line.dropFirst(11)) : nil
        }
        #expect(streams.count > 1)
        #expect(streams == streams.sorted())
    }

    /// `read -f FILTER -w OUT` keeps the packets tcpdump's `-r IN -w OUT FILTER` keeps (tcpdump reads both files
    /// the same), each input interface as an output interface, and packet comments.
    @Test func writingSelectedPacketsKeepsWhatTcpdumpKeeps() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("read-w-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bin = packetflowBinary()
        let selected = dir.appendingPathComponent("port4000.pcapng").path
        let w = try runProcess(bin, ["read", "-f", "tcp port 4000", "-w", selected, fixture("mix.pcap")])
        #expect(w.status == 0 && w.stdout.isEmpty)
        guard let ours = try run("tcpdump", ["-nn", "-S", "-r", selected], environment: ["TZ": "UTC"]),
            let theirs = try run(
                "tcpdump", ["-nn", "-S", "-r", fixture("mix.pcap"), "tcp port 4000"],
                environment: ["TZ": "UTC"])
        else {
            Issue.record("tcpdump is not installed: apt-get install tcpdump (CI installs it)")
            return
        }
        #expect(!ours.isEmpty && ours == theirs)

        // Two files, three interfaces, comments: all kept.
        let merged = dir.appendingPathComponent("merged.pcapng").path
        let m = try runProcess(
            bin, ["read", "-w", merged, fixture("comments.pcapng"), fixture("two-interfaces.pcapng")])
        #expect(m.status == 0)
        let table = try #require(
            try run(
                "tshark",
                [
                    "-r", merged, "-T", "fields", "-e", "frame.interface_id",
                    "-e", "frame.comment",
                ]))
        let rows = table.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
        #expect(Set(rows.map { $0[0] }) == ["0", "1", "2"])
        #expect(rows.contains { $0.count > 1 && $0[1] == "first comment" })

        // A full disk is the output's failure: one line, and reading stops (it is not blamed on an input).
        let full = try runProcess(bin, ["read", "-w", "/dev/full", fixture("mix.pcap"), fixture("lo-usec.pcap")])
        #expect(full.status == 1)
        #expect(full.stderr.hasPrefix("Error: /dev/full: ") && full.stderr.contains("No space left on device"))
        #expect(full.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1)

        // The output may not be an input: writing it would erase it first.
        let same = try runProcess(bin, ["read", "-w", selected, selected])
        #expect(same.status != 0 && same.stderr.contains("is also an input file"))
    }
}

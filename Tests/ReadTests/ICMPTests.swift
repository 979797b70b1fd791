import Foundation
import TestSupport
import Testing

/// ICMP and ICMPv6 lines are tcpdump's, byte for byte: an error names what it quotes (`ICMP 10.9.2.2 udp port 9
/// unreachable`, `ICMP6, time exceeded in-transit for fd09:2::2`), and a message cut short ends where tcpdump's
/// does (` [|icmp]`).
@Suite struct ICMPTests {
    /// icmp-errors.pcap: what Linux really sends (scripts/icmp-fixture.sh, in namespaces of its own);
    /// icmp-variants.pcap: every type and code tcpdump names, whole and cut short (scripts/fixtures.py).
    @Test(arguments: ["icmp-errors.pcap", "icmp-variants.pcap"])
    func linesAreTcpdumps(_ file: String) throws {
        let path = fixture(file)
        guard let expected = try run("tcpdump", ["-nn", "-S", "-r", path], environment: ["TZ": "UTC"]) else {
            Issue.record("tcpdump is not installed: apt-get install tcpdump (CI installs it)")
            return
        }
        for options in [["-S"], []] {
            let ours = try runProcess(packetflowBinary(), ["read"] + options + [path])
            #expect(ours.status == 0 && ours.stderr.isEmpty)
            // Our one addition: a packet the snapshot length cut says so at the end of its line.
            let lines = ours.stdout.replacing(" [truncated]\n", with: "\n")
            #expect(lines == expected, "\(options)")
            if lines != expected {
                let pairs = zip(lines.split(separator: "\n"), expected.split(separator: "\n"))
                for (a, b) in pairs where a != b { Issue.record("ours:    \(a)\ntcpdump: \(b)") }
            }
        }
    }

    /// The real capture holds each kind of error Linux sends, so the comparison above cannot pass on an empty file.
    @Test func realCaptureHoldsEveryError() throws {
        let text = try runProcess(packetflowBinary(), ["read", "-S", fixture("icmp-errors.pcap")]).stdout
        for what in [
            "ICMP 10.9.2.2 udp port 9 unreachable", "ICMP 10.9.2.2 protocol 253 unreachable",
            "ICMP net 10.9.99.1 unreachable", "ICMP host 10.9.50.1 unreachable",
            "ICMP host 10.9.51.1 unreachable - admin prohibited filter", "ICMP host 10.9.2.99 unreachable",
            "ICMP 10.9.2.2 unreachable - need to frag (mtu 1280)", "ICMP time exceeded in-transit",
            "ICMP ip reassembly time exceeded", "ICMP parameter problem - octet 20",
            "ICMP redirect 10.9.60.1 to host 10.9.1.3",
            "ICMP6, destination unreachable, unreachable port, fd09:2::2 udp port 9",
            "ICMP6, destination unreachable, unreachable route fd09:99::1",
            "ICMP6, destination unreachable,  unreachable prohibited fd09:51::1",
            "ICMP6, destination unreachable, unreachable address fd09:2::99", "ICMP6, packet too big, mtu 1280",
            "ICMP6, time exceeded in-transit for fd09:2::2", "ICMP6, time exceeded in-transit (reassembly)",
            "ICMP6, parameter problem, next header - octet 6", "ICMP6, parameter problem, option - octet 42",
            "ICMP6, parameter problem, erroneous - octet 4", "ICMP6, redirect, fd09:60::1 to fe80::3",
        ] {
            #expect(text.contains(what), "\(what)")
        }
    }

    /// An error whose quoted header was cut carries a problem in JSON Lines; one that quotes enough does not.
    @Test func cutQuotesAreProblems() throws {
        let json = try runProcess(packetflowBinary(), ["read", "--format", "jsonl", fixture("icmp-variants.pcap")])
        let objects = try json.stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        let problems = objects.filter { $0["problem"] != nil }
        #expect(!problems.isEmpty)
        #expect(problems.allSatisfy { $0["problem"] as? String == "truncated transport header" })
        // The first 82 messages are whole and have none; the 14 after them are cut, and those cut inside the quote
        // or the ICMP header have one.
        #expect(objects.count == 96)
        #expect(objects.prefix(82).allSatisfy { $0["problem"] == nil && $0["truncated"] == nil })
        #expect(problems.count == 10)
    }
}

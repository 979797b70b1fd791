import Foundation
import TestSupport
import Testing

/// The two engines on the same programs: the seed's client and server, every lab scenario (its calls made by the
/// `packetflow lab` process being traced), curl and nc. ptrace infers each packet's call from its content; eBPF
/// sees the kernel build it. For every packet the ptrace engine ties to a call, the eBPF engine must tie the
/// same packet to the same call. Where eBPF names a call and ptrace names none (an ACK or window update that
/// recv(2) sent as it read, the ACK of a FIN that crossed a close), eBPF's answer is checked against what the kernel
/// saw: the packet was built inside that call, on the socket the call works on.
///
/// The runs are separate, so packets and calls are compared by what they are, not by number: a packet by its ends
/// (numbered by first appearance, since client ports differ), flags, relative sequence number, length and
/// occurrence; a call by its process name, call name, descriptor and occurrence.
@Suite(.serialized) struct EngineAgreementTests {
    typealias Seed = SeedTraceTests
    typealias Robust = RobustnessTraceTests
    typealias Running = SeedTraceTests.Running

    /// A packet as both runs have it. Not its acknowledgment number: what the sender had received when it sent
    /// (the peer's reply, its FIN) is a matter of timing, which differs between two runs; what it sends is not.
    struct PacketKey: Hashable, CustomStringConvertible {
        var from: Int
        var to: Int
        var proto: String
        var flags: [String]
        var seq: Int?
        var length: Int?
        var occurrence: Int

        var description: String {
            "\(proto) \(from)→\(to) \(flags.joined(separator: "/")) seq=\(seq ?? -1) len=\(length ?? -1) "
                + "(#\(occurrence))"
        }
    }

    struct CallKey: Hashable, CustomStringConvertible {
        var comm: String
        var name: String
        var fd: Int?
        var occurrence: Int

        var description: String { "\(comm) \(name)(\(fd.map(String.init) ?? "-")) (#\(occurrence))" }
    }

    /// One run's packets by key, with the call each is tied to.
    struct Run {
        var packets: [(key: PacketKey, event: [String: Any])] = []
        var calls: [Int: (key: CallKey, event: [String: Any])] = [:]

        init(_ events: [[String: Any]]) {
            var seen: [CallKey: Int] = [:]
            let callEvents = events.filter { $0["type"] as? String == "call" }
                .sorted { ($0["id"] as? Int ?? 0) < ($1["id"] as? Int ?? 0) }
            for c in callEvents {
                guard let id = c["id"] as? Int else { continue }
                var key = CallKey(
                    comm: c["comm"] as? String ?? "?", name: c["name"] as? String ?? "?", fd: c["fd"] as? Int,
                    occurrence: 0)
                key.occurrence = seen[key, default: 0]
                seen[key] = key.occurrence + 1
                calls[id] = (key, c)
            }
            var ends: [String: Int] = [:]
            var occurrences: [PacketKey: Int] = [:]
            for p in events where p["type"] as? String == "packet" {
                func end(_ address: String, _ port: String) -> Int {
                    let name = "\(p[address] ?? "?"):\(p[port] ?? "-")"
                    if let n = ends[name] { return n }
                    ends[name] = ends.count
                    return ends.count - 1
                }
                var key = PacketKey(
                    from: end("src", "sport"), to: end("dst", "dport"), proto: p["proto"] as? String ?? "?",
                    flags: Seed.flags(p), seq: p["seq"] as? Int, length: p["len"] as? Int, occurrence: 0)
                key.occurrence = occurrences[key, default: 0]
                occurrences[key] = key.occurrence + 1
                packets.append((key, p))
            }
        }

        /// The data segment of these ends whose bytes hold the first byte of `key`'s.
        func segment(holding key: PacketKey) -> [String: Any]? {
            guard let seq = key.seq, let length = key.length, length > 0 else { return nil }
            return packets.first {
                guard $0.key.from == key.from, $0.key.to == key.to, $0.key.proto == key.proto, let s = $0.key.seq,
                    let l = $0.key.length
                else { return false }
                return s <= seq && seq < s + l
            }?.event
        }

        func call(of packet: [String: Any]) -> (key: CallKey, event: [String: Any])? {
            (packet["call"] as? Int).flatMap { calls[$0] }
        }
    }

    /// Compares a ptrace run with an eBPF run of the same workload; returns how many packets ptrace tied to a
    /// call (each of which was checked).
    @discardableResult
    static func expectAgreement(ptrace: [[String: Any]], ebpf: [[String: Any]], _ label: String) -> Int {
        let p = Run(ptrace)
        let e = Run(ebpf)
        let eBPFPackets = Dictionary(e.packets.map { ($0.key, $0.event) }, uniquingKeysWith: { a, _ in a })
        var checked = 0
        for (key, packet) in p.packets {
            // How the kernel cuts a large send into segments depends on timing (the window, the ACKs so far), so
            // two runs may cut it differently: a data segment without its twin is compared with the segment of
            // the other run that carries its first byte.
            guard let theirs = eBPFPackets[key] ?? e.segment(holding: key) else {
                if p.call(of: packet) != nil { Issue.record("\(label): \(key) is not in the eBPF run") }
                continue
            }
            let mine = p.call(of: packet)?.key
            let kernels = e.call(of: theirs)
            if let mine {
                checked += 1
                let theirCall = kernels.map { "\($0.key)" } ?? "none"
                #expect(kernels?.key == mine, "\(label): \(key): ptrace \(mine), eBPF \(theirCall)")
            } else if let (call, event) = kernels {
                // eBPF names a call where content alone saw the kernel: it must have seen the packet built in
                // that very call, on that call's socket, which sent it (an unconnected or refused socket has no
                // remote end; one bound to any address shows 0.0.0.0 or ::).
                #expect(theirs["context"] as? String == "call", "\(label): \(key) tied to \(call) in \(theirs)")
                let local = event["local"] as? String ?? ""
                let source = "\(theirs["src"] ?? ""):\(theirs["sport"] ?? "")"
                let destination = "\(theirs["dst"] ?? ""):\(theirs["dport"] ?? "")"
                let any = ["0.0.0.0:\(theirs["sport"] ?? "")", "[::]:\(theirs["sport"] ?? "")"]
                #expect(local == source || any.contains(local), "\(label): \(key) tied to \(call) on \(local)")
                #expect([nil, destination].contains(event["remote"] as? String), "\(label): \(key) tied to \(call)")
            }
        }
        #expect(e.packets.allSatisfy { $0.event["engine"] as? String == "ebpf" && $0.event["context"] is String })
        return checked
    }

    /// `packetflow trace --engine ENGINE --format jsonl [extra] -- command` to the end: its events.
    static func trace(_ engine: Seed.Engine, _ command: [String], extra: [String] = [], input: String? = nil)
        throws -> [[String: Any]]
    {
        let (status, events, output) = try Robust.trace(command, engine: engine, extra: extra, input: input)
        #expect(status == 0, "\(engine) \(command): \(output.suffix(500))")
        return events
    }

    /// The lab's scenarios, each on a port of its own below the ephemeral range (no client port collides with it,
    /// nor with the seed's), on this host's lo, without the lab's own capture: the trace captures.
    static let scenarios = [
        "basic", "half-close", "abort", "refused", "unread-close", "bulk", "backlog", "nagle", "keepalive",
        "time-wait", "simultaneous-close", "udp", "ipv6",
    ]

    @Test(arguments: scenarios.enumerated().map { ($0.element, UInt16(21_000 + 2 * $0.offset)) })
    func everyLabScenarioHasTheSameCallForEachPacket(scenario: String, port: UInt16) throws {
        let lab = [
            packetflowBinary().path, "lab", scenario, "--no-capture", "--hosts", "host", "--settle", "30",
            "--server", "127.0.0.2:\(port)",
        ]
        let ptrace = try Self.trace(.ptrace, lab)
        let ebpf = try Self.trace(.ebpf, lab)
        let checked = Self.expectAgreement(ptrace: ptrace, ebpf: ebpf, scenario)
        // The refused connect has a SYN only; UDP's datagrams: every scenario has a packet of a call.
        #expect(checked >= 1, "\(scenario): no packet tied to a call by ptrace")
    }

    @Test func curlHasTheSameCallForEachPacket() throws {
        let scripts = Robust.Scripts()
        let (server, port) = try Robust.startHTTPServer(scripts)
        defer { server.kill() }
        let curl = ["curl", "-s", "-o", "/dev/null", "http://127.0.0.1:\(port)/"]
        let checked = Self.expectAgreement(
            ptrace: try Self.trace(.ptrace, curl), ebpf: try Self.trace(.ebpf, curl), "curl")
        #expect(checked >= 3, "SYN, handshake ACK, request")
    }

    @Test func ncHasTheSameCallForEachPacket() throws {
        let scripts = Robust.Scripts()
        let sink = scripts.write(
            "sink.py",
            Robust.listener(
                """
                while True:
                    c, _ = srv.accept()
                    while c.recv(4096): pass
                    c.close()
                """))
        let (server, port) = try Robust.start(["/usr/bin/env", "python3", sink])
        defer { server.kill() }
        let nc = ["nc", "-N", "127.0.0.1", "\(port)"]
        let checked = Self.expectAgreement(
            ptrace: try Self.trace(.ptrace, nc, input: "hello from nc\n"),
            ebpf: try Self.trace(.ebpf, nc, input: "hello from nc\n"), "nc")
        #expect(checked >= 4, "SYN, handshake ACK, data, FIN")
    }

    @Test func seedClientHasTheSameCallForEachPacket() throws {
        try withSeedPort {
            let server = try Running(["/usr/bin/env", "python3", Seed.seed.appendingPathComponent("server.py").path])
            defer { server.kill() }
            try #require(server.waitFor("listening on"), "the seed server did not start (port 49152 busy?)")
            let client = ["python3", Seed.seed.appendingPathComponent("client.py").path]
            let checked = Self.expectAgreement(
                ptrace: try Self.trace(.ptrace, client, input: "hello\n"),
                ebpf: try Self.trace(.ebpf, client, input: "hello\n"), "seed client")
            #expect(checked >= 4, "SYN, handshake ACK, data, FIN")
        }
    }

    @Test func seedServerHasTheSameCallForEachPacket() throws {
        try withSeedPort {
            var runs: [Seed.Engine: [[String: Any]]] = [:]
            for engine in Seed.Engine.allCases {
                let trace = try Running(
                    [Seed.packetflow, "trace"] + engine.flags + [
                        "--format", "jsonl", "--", "python3", Seed.seed.appendingPathComponent("server.py").path,
                    ])
                defer { trace.kill() }
                try #require(trace.waitFor("listening on"), "the traced seed server did not start")
                let client = try Running(
                    ["/usr/bin/env", "python3", Seed.seed.appendingPathComponent("client.py").path])
                client.stdin.fileHandleForWriting.write(Data("to the traced server\n".utf8))
                try client.stdin.fileHandleForWriting.close()
                #expect(client.finish().hasPrefix("Hello, client #1!"))
                // The server's FIN and the last ACK on the wire before the server is stopped.
                #expect(connectionsClosed(port: 49152), "the seed connection did not close")
                kill(trace.process.processIdentifier, SIGINT)
                runs[engine] = Seed.jsonLines(trace.finish())
            }
            let checked = Self.expectAgreement(ptrace: runs[.ptrace] ?? [], ebpf: runs[.ebpf] ?? [], "seed server")
            #expect(checked >= 2, "the reply, the FIN")
        }
    }

    /// Both ends in one traced run (`sh -c 'server & client'`): each packet names its own side's call, and what
    /// each side received names the call that consumed it.
    @Test(arguments: Seed.Engine.allCases)
    func bothEndsTracedInOneRunNameBothCalls(engine: Seed.Engine) throws {
        try withSeedPort {
            let server = Seed.seed.appendingPathComponent("server.py").path
            let client = Seed.seed.appendingPathComponent("client.py").path
            // The server listens on 127.0.0.2:49152 (0200007F:C000 in /proc/net/tcp, state 0A) before the client
            // starts; then it is ended (SIGTERM: a shell's background job ignores SIGINT).
            let listening = "grep -q '0200007F:C000 00000000:0000 0A' /proc/net/tcp"
            let script =
                "python3 \(server) & s=$!; until \(listening); do sleep 0.02; done; "
                + "echo both ends | python3 \(client); kill $s; wait $s; exit 0"
            let events = try Self.trace(engine, ["sh", "-c", script])
            let calls = events.filter { $0["type"] as? String == "call" && $0["local"] is String }
            func call(_ name: String, _ port: (Int) -> Bool) -> [String: Any]? {
                calls.first { $0["name"] as? String == name && port(Robust.port($0["local"]) ?? 0) }
            }
            let serverSide = { (p: Int) in p == 49152 }
            let clientSide = { (p: Int) in p != 49152 && p != 0 }
            let connect = try #require(call("connect", clientSide))
            let accept = try #require(call("accept4", serverSide))
            #expect(connect["pid"] as? Int != accept["pid"] as? Int, "two processes")
            let clientSend = try #require(call("sendto", clientSide))
            let clientRecv = try #require(call("recvfrom", clientSide))
            let serverRecv = try #require(call("recvfrom", serverSide))
            let serverSend = try #require(call("sendto", serverSide))
            let clientPort = try #require(Robust.port(connect["local"]))
            let tcp = Seed.packets(events).filter {
                $0["sport"] as? Int == clientPort || $0["dport"] as? Int == clientPort
            }
            let syn = try #require(tcp.first { Seed.flags($0) == ["SYN"] })
            #expect(syn["call"] as? Int == Robust.id(connect))
            #expect(syn["consumed_by"] as? Int == Robust.id(accept))
            let request = try #require(tcp.first { $0["sport"] as? Int == clientPort && $0["len"] as? Int == 9 })
            #expect(request["call"] as? Int == Robust.id(clientSend))
            #expect(request["consumed_by"] as? Int == Robust.id(serverRecv))
            let reply = try #require(tcp.first { $0["sport"] as? Int == 49152 && ($0["len"] as? Int ?? 0) > 0 })
            #expect(reply["call"] as? Int == Robust.id(serverSend))
            #expect(reply["consumed_by"] as? Int == Robust.id(clientRecv))
            for side in [49152, clientPort] {
                let fin = try #require(tcp.first { $0["sport"] as? Int == side && Seed.flags($0).contains("FIN") })
                let closer = calls.first { $0["id"] as? Int == fin["call"] as? Int }
                #expect(closer?["name"] as? String == "close", "the FIN from :\(side): \(fin)")
                #expect(Robust.port(closer?["local"]) == side)
            }
        }
    }
}

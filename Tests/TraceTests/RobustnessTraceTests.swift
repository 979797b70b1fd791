import Foundation
import TestSupport
import Testing

/// `packetflow trace` on programs other than the seed: curl, nc, threads, fork, exec, UDP, IPv6, a kill mid-call
/// and attach/detach. Real processes, real capture on lo (root, as CI); each test checks which call a packet is
/// attributed to, not only that the run succeeded.
@Suite(.serialized) struct RobustnessTraceTests {
    typealias Seed = SeedTraceTests
    typealias Running = SeedTraceTests.Running

    /// A scratch directory with the test's Python scripts; removed at the end of the test.
    final class Scripts {
        let dir: String
        init() { dir = try! makeScratchDirectory("robust") }
        deinit { try? FileManager.default.removeItem(atPath: dir) }

        func write(_ name: String, _ text: String) -> String {
            let path = dir + "/" + name
            _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
            return path
        }
    }

    /// A Python TCP (or UDP) listener on an ephemeral port that prints "port N" and then runs `body`.
    static func listener(
        _ body: String, family: String = "AF_INET", host: String = "127.0.0.1",
        type: String = "SOCK_STREAM"
    ) -> String {
        """
        import os, socket, sys, time
        srv = socket.socket(socket.\(family), socket.\(type))
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("\(host)", 0))
        if srv.type == socket.SOCK_STREAM: srv.listen(16)
        print("port", srv.getsockname()[1], flush=True)
        \(body)
        """
    }

    /// The number on the first complete line of `process`'s output that starts with `prefix` ("port 4711").
    static func number(_ process: Running, after prefix: String) -> Int? {
        while true {
            let text = String(decoding: process.buffer, as: UTF8.self)
            let complete = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            if let n = complete.first(where: { $0.hasPrefix(prefix) }).flatMap({ Int($0.dropFirst(prefix.count)) }) {
                return n
            }
            let chunk = process.stdout.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            process.buffer.append(chunk)
        }
    }

    /// Starts a script and returns it with the port it printed.
    static func start(_ arguments: [String]) throws -> (Running, Int) {
        let process = try Running(arguments)
        let port = try #require(number(process, after: "port "), "\(arguments) printed no port")
        return (process, port)
    }

    /// Runs `packetflow trace --engine ENGINE --format jsonl [extra] -- command` to the end.
    static func trace(_ command: [String], engine: Seed.Engine, extra: [String] = [], input: String? = nil) throws
        -> (status: Int32, events: [[String: Any]], output: String)
    {
        let run = try Running(
            [Seed.packetflow, "trace"] + engine.flags + ["--format", "jsonl"] + extra + ["--"] + command)
        if let input { run.stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try run.stdin.fileHandleForWriting.close()
        let output = run.finish()
        return (run.process.terminationStatus, Seed.jsonLines(output), output)
    }

    static func packets(_ events: [[String: Any]], proto: String) -> [[String: Any]] {
        events.filter { $0["type"] as? String == "packet" && $0["proto"] as? String == proto }
    }

    static func id(_ e: [String: Any]?) -> Int? { e?["id"] as? Int }

    static func port(_ endpoint: Any?) -> Int? {
        (endpoint as? String).flatMap { Int($0.split(separator: ":").last ?? "") }
    }

    // MARK: programs that are not Python

    @Test(arguments: Seed.Engine.allCases)
    func curlConnectSendsTheSYNAndItsSendTheRequest(engine: Seed.Engine) throws {
        let scripts = Scripts()
        let (server, port) = try Self.startHTTPServer(scripts)
        defer { server.kill() }
        let (status, events, _) = try Self.trace(
            ["curl", "-s", "-o", "/dev/null", "http://127.0.0.1:\(port)/"], engine: engine)
        #expect(status == 0)
        let connect = try #require(Seed.calls(events, "connect").first { Self.port($0["remote"]) == port })
        let clientPort = try #require(Self.port(connect["local"]))
        #expect(connect["comm"] as? String == "curl")
        let out = Seed.packets(events).filter { $0["sport"] as? Int == clientPort }
        let syn = try #require(out.first { Seed.flags($0) == ["SYN"] })
        #expect(syn["call"] as? Int == Self.id(connect))
        let request = try #require(out.first { ($0["len"] as? Int ?? 0) > 0 })
        let sender = try #require(
            events.first { $0["type"] as? String == "call" && $0["id"] as? Int == request["call"] as? Int })
        #expect(["sendto", "write", "sendmsg", "writev"].contains(sender["name"] as? String ?? ""))
        #expect(sender["fd"] as? Int == connect["fd"] as? Int)
        #expect(sender["result"] as? Int == request["len"] as? Int)
        // The response is consumed by one of curl's receive calls.
        let response = try #require(
            Seed.packets(events).first { $0["dport"] as? Int == clientPort && ($0["len"] as? Int ?? 0) > 0 })
        #expect(response["consumed_by"] as? Int != nil)
    }

    @Test(arguments: Seed.Engine.allCases)
    func ncWriteOnASocketSendsTheDataSegment(engine: Seed.Engine) throws {
        let scripts = Scripts()
        let sink = scripts.write(
            "sink.py",
            Self.listener(
                """
                c, _ = srv.accept()
                data = b""
                while True:
                    chunk = c.recv(4096)
                    if not chunk: break
                    data += chunk
                print("got", len(data), flush=True)
                """))
        let (server, port) = try Self.start(["/usr/bin/env", "python3", sink])
        defer { server.kill() }
        let (status, events, _) = try Self.trace(
            ["nc", "-N", "127.0.0.1", "\(port)"], engine: engine, input: "hello from nc\n")
        #expect(status == 0)
        #expect(server.finish().contains("got 14"))
        let connect = try #require(Seed.calls(events, "connect").first { Self.port($0["remote"]) == port })
        let clientPort = try #require(Self.port(connect["local"]))
        let write = try #require(Seed.calls(events, "write").first { $0["fd"] as? Int == connect["fd"] as? Int })
        #expect(write["result"] as? Int == 14)
        let data = try #require(
            Seed.packets(events).first { $0["sport"] as? Int == clientPort && $0["len"] as? Int == 14 })
        #expect(data["call"] as? Int == Self.id(write))
        #expect(data["by_kernel"] as? Bool == false)
        // nc's shutdown(SHUT_WR) after stdin's end sends the FIN.
        let fin = try #require(
            Seed.packets(events).first { $0["sport"] as? Int == clientPort && Seed.flags($0).contains("FIN") })
        let finCall = events.first { $0["type"] as? String == "call" && $0["id"] as? Int == fin["call"] as? Int }
        #expect(["shutdown", "close"].contains(finCall?["name"] as? String ?? ""))
    }

    // MARK: threads, fork, exec

    @Test(arguments: Seed.Engine.allCases)
    func twoThreadsEachConnectWithTheirOwnSYN(engine: Seed.Engine) throws {
        let scripts = Scripts()
        let sink = scripts.write(
            "sink.py",
            Self.listener(
                """
                for _ in range(2):
                    c, _ = srv.accept(); c.recv(64); c.close()
                """))
        let client = scripts.write(
            "threads.py",
            """
            import socket, sys, threading
            port = int(sys.argv[1])
            def run(i):
                s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"thread %d" % i); s.close()
            ts = [threading.Thread(target=run, args=(i,)) for i in range(2)]
            for t in ts: t.start()
            for t in ts: t.join()
            """)
        let (server, port) = try Self.start(["/usr/bin/env", "python3", sink])
        defer { server.kill() }
        let (status, events, _) = try Self.trace(["python3", client, "\(port)"], engine: engine)
        #expect(status == 0)
        let connects = Seed.calls(events, "connect").filter { Self.port($0["remote"]) == port }
        try #require(connects.count == 2)
        let tids = Set(connects.compactMap { $0["tid"] as? Int })
        #expect(tids.count == 2)
        #expect(!tids.contains(connects[0]["pid"] as? Int ?? 0))
        for connect in connects {
            #expect((connect["source"] as? String)?.contains("socket.create_connection") == true)
            let clientPort = try #require(Self.port(connect["local"]))
            let out = Seed.packets(events).filter { $0["sport"] as? Int == clientPort }
            let syn = try #require(out.first { Seed.flags($0) == ["SYN"] })
            #expect(syn["call"] as? Int == Self.id(connect))
            let data = try #require(out.first { $0["len"] as? Int == 8 })
            let send = events.first { $0["type"] as? String == "call" && $0["id"] as? Int == data["call"] as? Int }
            #expect(send?["tid"] as? Int == connect["tid"] as? Int)
        }
    }

    @Test(arguments: Seed.Engine.allCases)
    func aCallASignalInterruptsAndThatRunsAgainIsOneCall(engine: Seed.Engine) throws {
        let scripts = Scripts()
        // The server answers after 0.4 s; meanwhile SIGALRM (every 0.1 s) interrupts the client's recv, which the
        // kernel reports to a tracer as ERESTARTSYS and Python (PEP 475) then runs again.
        let sink = scripts.write(
            "slow.py",
            Self.listener(
                """
                c, _ = srv.accept(); c.recv(64); time.sleep(0.4); c.sendall(b"late reply"); c.close()
                """))
        let client = scripts.write(
            "alarm.py",
            """
            import signal, socket, sys
            signal.signal(signal.SIGALRM, lambda *_: None)
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.sendall(b"ping")
            signal.setitimer(signal.ITIMER_REAL, 0.1, 0.1)
            data = s.recv(64)
            signal.setitimer(signal.ITIMER_REAL, 0)
            s.close()
            """)
        let (server, port) = try Self.start(["/usr/bin/env", "python3", sink])
        defer { server.kill() }
        let (status, events, _) = try Self.trace(["python3", client, "\(port)"], engine: engine)
        #expect(status == 0)
        let receives = events.filter {
            $0["type"] as? String == "call" && ["recvfrom", "recvmsg", "read"].contains($0["name"] as? String ?? "")
        }
        #expect(receives.count == 1, "one recv, however often the alarm interrupted it: \(receives)")
        #expect(!events.contains { ($0["errno"] as? String)?.hasPrefix("ERESTART") == true })
        let recv = try #require(receives.first)
        #expect(recv["result"] as? Int == 10)
        // It began before the reply was sent and consumed it.
        let reply = try #require(Seed.packets(events).first { $0["len"] as? Int == 10 })
        #expect(reply["consumed_by"] as? Int == Self.id(recv))
        let start = try #require(recv["ts_start"] as? Double)
        let replyTime = try #require(reply["ts"] as? Double)
        #expect(start < replyTime - 0.2)
    }

    @Test(arguments: Seed.Engine.allCases)
    func forkedChildSendIsAttributedToTheChild(engine: Seed.Engine) throws {
        let scripts = Scripts()
        let server = scripts.write(
            "forking.py",
            Self.listener(
                """
                c, _ = srv.accept()
                pid = os.fork()
                if pid == 0:
                    srv.close(); c.sendall(b"from child %d" % os.getpid()); c.close(); os._exit(0)
                c.close(); os.waitpid(pid, 0)
                print("child", pid, flush=True)
                """))
        let trace = try Running(
            [Seed.packetflow, "trace"] + engine.flags + ["--format", "jsonl", "--", "python3", server])
        defer { trace.kill() }
        let port = try #require(Self.number(trace, after: "port "))
        let client = try Running([
            "/usr/bin/env", "python3", "-c",
            """
            import socket; s = socket.create_connection(("127.0.0.1", \(port))); print(s.recv(64).decode())
            """,
        ])
        let reply = client.finish()
        let output = trace.finish()
        #expect(trace.process.terminationStatus == 0)
        let childPid = try #require(
            output.split(separator: "\n").compactMap { $0.hasPrefix("child ") ? Int($0.dropFirst(6)) : nil }.first)
        #expect(reply.contains("from child \(childPid)"))
        let events = Seed.jsonLines(output)
        let accept = try #require(Seed.calls(events, "accept4").first { $0["result"] != nil })
        let send = try #require(Seed.calls(events, "sendto").first)
        #expect(send["pid"] as? Int == childPid)
        #expect(send["pid"] as? Int != accept["pid"] as? Int)
        #expect((send["source"] as? String)?.contains("c.sendall") == true)
        let data = try #require(
            Seed.packets(events).first { $0["sport"] as? Int == port && ($0["len"] as? Int ?? 0) > 0 })
        #expect(data["call"] as? Int == Self.id(send))
        // The child's close is not the last reference (the parent closed first or later): one of them sent the FIN.
        let fin = try #require(
            Seed.packets(events).first { $0["sport"] as? Int == port && Seed.flags($0).contains("FIN") })
        #expect(Seed.calls(events, "close").contains { Self.id($0) == fin["call"] as? Int })
    }

    /// A recv that waits returns after calls that started later; calls are numbered in the order they started, the
    /// order they are printed in, not the order they returned.
    @Test(arguments: Seed.Engine.allCases)
    func callsAreNumberedInTheOrderTheyStarted(engine: Seed.Engine) throws {
        let scripts = Scripts()
        let script = scripts.write(
            "waiting.py",
            """
            import socket, threading, time
            srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
            s = socket.create_connection(srv.getsockname()); c, _ = srv.accept()
            t = threading.Thread(target=lambda: c.recv(64)); t.start()
            time.sleep(0.2)
            s.send(b"x"); t.join()
            """)
        let run = try Running(
            [Seed.packetflow, "trace"] + engine.flags + ["--format", "jsonl", "--", "python3", script])
        try run.stdin.fileHandleForWriting.close()
        let events = Seed.jsonLines(run.finish())
        #expect(run.process.terminationStatus == 0)
        let calls = events.filter { $0["type"] as? String == "call" }
        #expect(calls.compactMap(Self.id) == Array(1...calls.count))
        let recv = try #require(Seed.calls(events, "recvfrom").first)
        let send = try #require(Seed.calls(events, "sendto").first)
        #expect(try #require(Self.id(recv)) < #require(Self.id(send)))
        // It returned once the send had run: after the send began. (Which returned first is the scheduler's: on
        // loopback the send wakes the recv on the other core before it returns itself, and eBPF times both exactly.)
        #expect((recv["ts_end"] as? Double ?? 0) > (send["ts_start"] as? Double ?? .infinity), "the recv waited")
    }

    @Test(arguments: Seed.Engine.allCases)
    func execKeepsTracingTheNewProgram(engine: Seed.Engine) throws {
        let scripts = Scripts()
        let sink = scripts.write("sink.py", Self.listener("c, _ = srv.accept(); c.recv(64); c.close()"))
        let (server, port) = try Self.start(["/usr/bin/env", "python3", sink])
        defer { server.kill() }
        let (status, events, _) = try Self.trace(
            [
                "sh", "-c",
                "exec python3 -c 'import socket; s = socket.create_connection((\"127.0.0.1\", \(port))); s.sendall(b\"after exec\"); s.close()'",
            ], engine: engine)
        #expect(status == 0)
        let connect = try #require(Seed.calls(events, "connect").first { Self.port($0["remote"]) == port })
        #expect(connect["comm"] as? String == "python3")
        let clientPort = try #require(Self.port(connect["local"]))
        let out = Seed.packets(events).filter { $0["sport"] as? Int == clientPort }
        #expect(out.first { Seed.flags($0) == ["SYN"] }?["call"] as? Int == Self.id(connect))
        let data = try #require(out.first { $0["len"] as? Int == 10 })
        #expect(Seed.calls(events, "sendto").contains { Self.id($0) == data["call"] as? Int })
    }

    // MARK: UDP and IPv6

    @Test(arguments: Seed.Engine.allCases)
    func udpSendtoSendsTheDatagramAndAClosedPortGetsAnICMPFromTheKernel(engine: Seed.Engine) throws {
        let scripts = Scripts()
        let sink = scripts.write(
            "udp.py", Self.listener("data, addr = srv.recvfrom(64); srv.sendto(data.upper(), addr)", type: "SOCK_DGRAM")
        )
        let (server, port) = try Self.start(["/usr/bin/env", "python3", sink])
        defer { server.kill() }
        // A port nobody listens on: bind one and close it again.
        let closed = scripts.write(
            "client.py",
            """
            import socket, sys
            port = int(sys.argv[1])
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]; probe.close()
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"ping", ("127.0.0.1", port))
            print(s.recvfrom(64)[0].decode(), flush=True)
            s.sendto(b"nobody", ("127.0.0.1", closed))
            print("closed", closed, flush=True)
            """)
        // Without --all-packets: the ICMP error about the program's own datagram is part of its picture.
        let (status, events, output) = try Self.trace(["python3", closed, "\(port)"], engine: engine)
        #expect(status == 0)
        #expect(output.contains("PING"))
        let closedPort = try #require(
            output.split(separator: "\n").compactMap { $0.hasPrefix("closed ") ? Int($0.dropFirst(7)) : nil }.first)
        let sends = Seed.calls(events, "sendto")
        let ping = try #require(sends.first { Self.port(($0["args"] as? [String: Any])?["addr"]) == port })
        let nobody = try #require(sends.first { Self.port(($0["args"] as? [String: Any])?["addr"]) == closedPort })
        #expect((ping["source"] as? String)?.contains("s.sendto(b\"ping\"") == true)
        let udp = Self.packets(events, proto: "UDP")
        let datagram = try #require(udp.first { $0["dport"] as? Int == port })
        #expect(datagram["call"] as? Int == Self.id(ping))
        #expect(datagram["by_kernel"] as? Bool == false)
        let reply = try #require(udp.first { $0["sport"] as? Int == port })
        #expect(reply["consumed_by"] != nil)
        let lost = try #require(udp.first { $0["dport"] as? Int == closedPort })
        #expect(lost["call"] as? Int == Self.id(nobody))
        let icmp = try #require(events.first { ($0["proto"] as? String)?.hasPrefix("ICMP") == true })
        #expect(icmp["by_kernel"] as? Bool == true)
        #expect((icmp["reason"] as? String)?.lowercased().contains("unreachable") == true)
        #expect((icmp["reason"] as? String)?.contains("sent to 127.0.0.1:\(closedPort) was not delivered") == true)
    }

    @Test(arguments: Seed.Engine.allCases)
    func refusedConnectSendsTheSYNAndTheKernelAnswersRST(engine: Seed.Engine) throws {
        let scripts = Scripts()
        // A port nobody listens on: bind one and close it again. After the refusal the kernel resets the socket's
        // local address to 0.0.0.0 (it keeps the port), so the packets must be matched without it.
        let refused = scripts.write(
            "refused.py",
            """
            import errno, socket
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM); probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]; probe.close()
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            print("refused", s.connect_ex(("127.0.0.1", closed)) == errno.ECONNREFUSED, closed, flush=True)
            s.close()
            """)
        let (status, events, output) = try Self.trace(["python3", refused], engine: engine)
        #expect(status == 0)
        let line = try #require(output.split(separator: "\n").first { $0.hasPrefix("refused ") })
        #expect(line.hasPrefix("refused True "))
        let closedPort = try #require(Int(line.split(separator: " ").last ?? ""))
        let connect = try #require(Seed.calls(events, "connect").first)
        #expect(connect["errno"] as? String == "ECONNREFUSED")
        #expect((connect["source"] as? String)?.contains("s.connect_ex((\"127.0.0.1\", closed))") == true)
        let tcp = Seed.packets(events)
        let syn = try #require(tcp.first { Seed.flags($0) == ["SYN"] && $0["dport"] as? Int == closedPort })
        #expect(syn["call"] as? Int == Self.id(connect))
        #expect(syn["by_kernel"] as? Bool == false)
        let rst = try #require(tcp.first { Seed.flags($0) == ["RST", "ACK"] && $0["sport"] as? Int == closedPort })
        #expect(rst["by_kernel"] as? Bool == true)
        #expect(rst["reason"] as? String == "RST: no socket listening on this port")
        #expect(tcp.count == 2, "the SYN and the RST, nothing else")
    }

    @Test(arguments: ["en", "ja"], Seed.Engine.allCases)
    func textTimelineShowsEachCallItsLineAndWhoSentEachPacket(lang: String, engine: Seed.Engine) throws {
        let scripts = Scripts()
        let refused = scripts.write(
            "refused.py",
            """
            import socket
            probe = socket.socket(); probe.bind(("127.0.0.1", 0)); closed = probe.getsockname()[1]; probe.close()
            s = socket.socket()
            s.connect_ex(("127.0.0.1", closed))
            s.close()
            """)
        let run = try Running([Seed.packetflow, "trace"] + engine.flags + ["--lang", lang, "--", "python3", refused])
        try run.stdin.fileHandleForWriting.close()
        let text = run.finish()
        #expect(run.process.terminationStatus == 0)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let ja = lang == "ja"
        #expect(lines.first == (ja ? "PacketFlow トレース: " : "PacketFlow trace: ") + "python3 \(refused)")
        // Calls: time, id, process, call, result, the socket's ends and TCP state; the Python line below.
        let connect = try #require(lines.firstIndex { $0.contains(" connect(3, 127.0.0.1:") })
        #expect(
            lines[connect].contains(
                /^ +\+\d+\.\d{3}ms #\d+ python3\[\d+\] connect\(\d+, 127\.0\.0\.1:\d+\) = -1 ECONNREFUSED  0\.0\.0\.0:\d+ → 127\.0\.0\.1:\d+  CLOSED$/
            ))
        #expect(lines[connect + 1] == "               refused.py:4 s.connect_ex((\"127.0.0.1\", closed))")
        let id = try #require(lines[connect].firstMatch(of: /#(\d+) python3/).map { String($0.1) })
        // Packets: time, the program's process and socket on the left, an arrow from sender to receiver labelled
        // with flags and numbers, the peer; then the call that sent it or why a kernel did.
        let syn = try #require(lines.first { $0.contains(" SYN seq=0 ") })
        let sentBy = ja ? "  ← #\(id) connect が送信" : "  ← sent by #\(id) connect"
        #expect(
            syn.contains(
                /^ +\+\d+\.\d{3}ms   python3\[\d+\] 127\.0\.0\.1:\d+ ── SYN seq=0 win=\d+ \[mss \d+[^\]]*\] ──> 127\.0\.0\.1:\d+  ←/
            ))
        #expect(syn.hasSuffix(sentBy))
        let rst = try #require(lines.first { $0.contains(" RST/ACK seq=1 ack=1 win=0") })
        #expect(
            rst.contains(/\ python3\[\d+\] 127\.0\.0\.1:\d+ <── RST\/ACK seq=1 ack=1 win=0 ── 127\.0\.0\.1:\d+  \(/))
        // eBPF saw the kernel build it: in the NET_RX softirq that received the SYN.
        let softirq = engine == .ebpf ? " NET_RX" : ""
        #expect(
            rst.hasSuffix(
                ja
                    ? "  (カーネルが送信\(softirq): RST: このポートで待ち受けるソケットがない)"
                    : "  (kernel\(softirq): RST: no socket listening on this port)"))
        // The script's own calls: socket, bind, close of the probe; socket, connect, close. Without HOME, glibc first
        // tries the name-service cache over a Unix socket (socket, connect, close, twice), and a pyenv shim runs bash
        // processes that do the same: all traced, all before the script's own.
        let calls = lines.filter { $0.contains(/^ +\+\d+\.\d{3}ms #\d+ \S/) }
        let script = calls.filter { $0.contains(" python3[") }.compactMap {
            $0.firstMatch(of: /\] (\w+)\(/).map { String($0.1) }
        }
        #expect(script.suffix(6) == ["socket", "bind", "close", "socket", "connect", "close"])
        let summary = try #require(
            lines.first { $0.hasSuffix(ja ? "パケット (うちカーネルが自ら送信: 1)" : "packets (1 sent by a kernel on its own)") })
        #expect(Int(summary.prefix { $0.isNumber }) == calls.count, "the summary counts every call printed")
        #expect(summary.contains(ja ? "、2 パケット" : ", 2 packets"))
    }

    @Test(arguments: Seed.Engine.allCases)
    func theProgramsOwnSitecustomizeStillRunsBesideTheHook(engine: Seed.Engine) throws {
        let scripts = Scripts()
        _ = scripts.write("sitecustomize.py", "import builtins\nbuiltins.USER_SITE_RAN = True\n")
        // The user's PYTHONPATH reaches packetflow, which puts the hook's directory before it.
        let run = try Running([
            "/usr/bin/env", "PYTHONPATH=\(scripts.dir)", Seed.packetflow, "trace", "--engine", engine.rawValue,
            "--format", "jsonl", "--",
            "python3", "-c",
            "import builtins, socket, sitecustomize\nprint('user site', getattr(builtins, 'USER_SITE_RAN', False), "
                + "sitecustomize.__file__)\ns = socket.socket()\ns.close()",
        ])
        try run.stdin.fileHandleForWriting.close()
        let output = run.finish()
        let events = Seed.jsonLines(output)
        #expect(run.process.terminationStatus == 0)
        #expect(output.contains("user site True \(scripts.dir)/sitecustomize.py"))
        let socket = try #require(Seed.calls(events, "socket").first)
        #expect(
            socket["source"] as? String == "<string>:3 s = socket.socket()",
            "python -c: the line is quoted from the command itself")
    }

    /// `python -c` has no file for linecache: the hook quotes the command's own line, finding it among options as
    /// CPython parses them (a -W value may contain a "c"; "-cCODE" glues the code to its option).
    @Test(
        arguments: [["-W", "ignore::DeprecationWarning", "-c"], ["-X", "dev", "-c"], ["-Bc"], []], Seed.Engine.allCases)
    func pythonDashCQuotesTheCommandsLines(options: [String], engine: Seed.Engine) throws {
        let code = "import socket\ns = socket.socket()\ns.close()"
        let arguments = options.isEmpty ? ["-c" + code] : options + [code]
        let run = try Running(
            [Seed.packetflow, "trace"] + engine.flags + ["--format", "jsonl", "--", "python3"] + arguments)
        try run.stdin.fileHandleForWriting.close()
        let events = Seed.jsonLines(run.finish())
        #expect(run.process.terminationStatus == 0)
        #expect(Seed.calls(events, "socket").last?["source"] as? String == "<string>:2 s = socket.socket()")
        #expect(Seed.calls(events, "close").last?["source"] as? String == "<string>:3 s.close()")
    }

    /// Socket options as strace names them, with the value set or got (read from the program's memory), and the
    /// Python line of getsockopt too.
    @Test(arguments: Seed.Engine.allCases)
    func socketOptionsAreNamedWithTheirValues(engine: Seed.Engine) throws {
        let scripts = Scripts()
        let options = scripts.write(
            "options.py",
            """
            import socket, struct
            s = socket.socket()
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"reno")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            got = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            print("rcvbuf", got)
            s.close()
            """)
        let run = try Running(
            [Seed.packetflow, "trace"] + engine.flags + ["--format", "jsonl", "--", "python3", options])
        try run.stdin.fileHandleForWriting.close()
        let output = run.finish()
        let events = Seed.jsonLines(output)
        #expect(run.process.terminationStatus == 0)
        let got = try #require(output.firstMatch(of: /rcvbuf (\d+)/).flatMap { Int($0.1) })
        func args(_ c: [String: Any]) -> [String: String] {
            (c["args"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
        }
        let set = Seed.calls(events, "setsockopt").map(args)
        #expect(set.count == 4)
        #expect(set.first == ["fd": "3", "level": "SOL_TCP", "option": "TCP_NODELAY", "value": "1"])
        #expect(
            set.dropFirst().first == [
                "fd": "3", "level": "SOL_SOCKET", "option": "SO_LINGER", "l_onoff": "1", "l_linger": "0",
            ])
        #expect(set.dropFirst(2).first == ["fd": "3", "level": "SOL_TCP", "option": "TCP_CONGESTION", "value": "reno"])
        #expect(set.last == ["fd": "3", "level": "SOL_SOCKET", "option": "SO_RCVBUF", "value": "65536"])
        let get = try #require(Seed.calls(events, "getsockopt").last)
        #expect(args(get) == ["fd": "3", "level": "SOL_SOCKET", "option": "SO_RCVBUF", "value": "\(got)"])
        #expect(get["source"] as? String == "options.py:7 got = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)")
    }

    /// The timeline's first line names the command as a shell would run it again, on one line.
    @Test func aMultiLineCommandIsShownOnOneLine() throws {
        let run = try Running([Seed.packetflow, "trace", "--", "python3", "-c", "import socket\nprint('it\\'s')"])
        try run.stdin.fileHandleForWriting.close()
        let text = run.finish()
        #expect(run.process.terminationStatus == 0)
        #expect(
            text.split(separator: "\n").first { $0.hasPrefix("PacketFlow trace:") }
                == #"PacketFlow trace: python3 -c $'import socket\nprint(\'it\\\'s\')'"#)
    }

    /// Python started by something else (a shell here; a shebang script, pytest or make alike) names its lines too.
    @Test(arguments: Seed.Engine.allCases)
    func pythonStartedByAShellStillNamesItsLines(engine: Seed.Engine) throws {
        let scripts = Scripts()
        let script = scripts.write("inner.py", "import socket\ns = socket.socket()\ns.close()\n")
        let run = try Running(
            [Seed.packetflow, "trace"] + engine.flags + ["--format", "jsonl", "--", "sh", "-c", "python3 \(script)"])
        try run.stdin.fileHandleForWriting.close()
        let events = Seed.jsonLines(run.finish())
        #expect(run.process.terminationStatus == 0)
        let socket = try #require(Seed.calls(events, "socket").last)
        #expect(socket["comm"] as? String == "python3")
        #expect(socket["source"] as? String == "inner.py:2 s = socket.socket()")
    }

    @Test(arguments: Seed.Engine.allCases)
    func pythonWithIsolatedModeSaysWhyThereAreNoSourceLines(engine: Seed.Engine) throws {
        let run = try Running(
            [Seed.packetflow, "trace"] + engine.flags + [
                "--format", "jsonl", "--", "python3", "-I",
                "-c",
                "import socket; socket.socket().close()",
            ])
        try run.stdin.fileHandleForWriting.close()
        let events = Seed.jsonLines(run.finish())
        #expect(run.process.terminationStatus == 0)
        #expect(run.errors.contains("python3 -I does not load the hook that names source lines"))
        let socket = try #require(Seed.calls(events, "socket").first)
        #expect(socket["source"] is NSNull)
    }

    @Test(arguments: Seed.Engine.allCases)
    func unixSocketAddressesAreShownAsPaths(engine: Seed.Engine) throws {
        // glibc's own name-service lookups do this too (without HOME, Python's start connects to
        // /var/run/nscd/socket): such calls must say where they went, not "?".
        let (status, events, _) = try Self.trace(
            [
                "python3", "-c",
                """
                import socket
                s = socket.socket(socket.AF_UNIX)
                s.connect_ex("/nonexistent/packetflow.sock")
                s.connect_ex("\\0packetflow-abstract")
                s.close()
                """,
            ], engine: engine)
        #expect(status == 0)
        let connects = events.filter { $0["type"] as? String == "call" && $0["name"] as? String == "connect" }
            .compactMap { ($0["args"] as? [String: Any])?["addr"] as? String }
        #expect(connects.suffix(2) == ["/nonexistent/packetflow.sock", "@packetflow-abstract"])
    }

    @Test(arguments: Seed.Engine.allCases)
    func packetsAfterTheProgramExitedAreStillReported(engine: Seed.Engine) throws {
        let scripts = Scripts()
        // The peer closes its side 30 ms after the traced client has closed and exited.
        let peer = scripts.write(
            "peer.py",
            Self.listener(
                """
                import time
                c, _ = srv.accept()
                while c.recv(64): pass
                time.sleep(0.03)
                c.close()
                time.sleep(1)
                """))
        let (server, port) = try Self.start(["/usr/bin/env", "python3", peer])
        defer { server.kill() }
        let client = scripts.write(
            "client.py",
            """
            import socket, sys
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
            s.sendall(b"bye")
            s.close()
            """)
        let (status, events, _) = try Self.trace(["python3", client, "\(port)"], engine: engine)
        #expect(status == 0)
        let close = try #require(Seed.calls(events, "close").first { Self.port($0["remote"]) == port })
        let ended = try #require(close["ts_end"] as? Double)
        let fromPeer = Seed.packets(events).filter { $0["sport"] as? Int == port }
        let fin = try #require(fromPeer.first { Seed.flags($0).contains("FIN") }, "the peer's FIN, sent after the exit")
        #expect((fin["ts"] as? Double ?? 0) > ended + 0.02)
        // And the client's kernel acknowledges it after the program is gone.
        let lastAck = Seed.packets(events).last { $0["dport"] as? Int == port }
        #expect(lastAck.map { Seed.flags($0) } == ["ACK"])
        #expect((lastAck?["ts"] as? Double ?? 0) >= fin["ts"] as? Double ?? 0)
    }

    @Test(arguments: Seed.Engine.allCases)
    func aDatagramThatAnswersAfterTheProgramExitedIsStillReported(engine: Seed.Engine) throws {
        let scripts = Scripts()
        let echo = scripts.write(
            "late.py",
            Self.listener(
                """
                import time
                data, addr = srv.recvfrom(64)
                time.sleep(0.03)
                srv.sendto(b"late", addr)
                time.sleep(1)
                """, type: "SOCK_DGRAM"))
        let (server, port) = try Self.start(["/usr/bin/env", "python3", echo])
        defer { server.kill() }
        let (status, events, _) = try Self.trace(
            [
                "python3", "-c",
                """
                import socket, sys
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hi", ("127.0.0.1", \(port)))
                """,
            ], engine: engine)
        #expect(status == 0)
        let udp = Self.packets(events, proto: "UDP")
        #expect(udp.contains { $0["dport"] as? Int == port && $0["len"] as? Int == 2 })
        #expect(
            udp.contains { $0["sport"] as? Int == port && $0["len"] as? Int == 4 }, "the answer, 30 ms after the exit")
    }

    @Test(arguments: Seed.Engine.allCases)
    func ipv6ConnectSendsTheSYNOnLoopback(engine: Seed.Engine) throws {
        let scripts = Scripts()
        let sink = scripts.write(
            "sink6.py", Self.listener("c, _ = srv.accept(); c.recv(64); c.close()", family: "AF_INET6", host: "::1"))
        let (server, port) = try Self.start(["/usr/bin/env", "python3", sink])
        defer { server.kill() }
        let (status, events, _) = try Self.trace(
            [
                "python3", "-c",
                "import socket; s = socket.create_connection(('::1', \(port))); s.sendall(b'over six'); s.close()",
            ], engine: engine)
        #expect(status == 0)
        let connect = try #require(Seed.calls(events, "connect").first { Self.port($0["remote"]) == port })
        #expect((connect["remote"] as? String)?.contains("::1") == true)
        let clientPort = try #require(Self.port(connect["local"]))
        let out = Seed.packets(events).filter { $0["sport"] as? Int == clientPort }
        #expect(out.first { Seed.flags($0) == ["SYN"] }?["call"] as? Int == Self.id(connect))
        let data = try #require(out.first { $0["len"] as? Int == 8 })
        #expect(Seed.calls(events, "sendto").contains { Self.id($0) == data["call"] as? Int })
    }

    // MARK: endings

    @Test(arguments: Seed.Engine.allCases)
    func programKilledInsideRecvEndsTheTraceWith137AndKeepsItsPackets(engine: Seed.Engine) throws {
        let scripts = Scripts()
        let silent = scripts.write("silent.py", Self.listener("c, _ = srv.accept(); c.recv(64); time.sleep(30)"))
        let client = scripts.write(
            "blocked.py",
            """
            import os, socket, sys
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
            s.sendall(b"then wait")
            print("pid", os.getpid(), flush=True)
            s.recv(64)
            """)
        let (server, port) = try Self.start(["/usr/bin/env", "python3", silent])
        defer { server.kill() }
        let trace = try Running(
            [Seed.packetflow, "trace"] + engine.flags + ["--format", "jsonl", "--", "python3", client, "\(port)"])
        defer { trace.kill() }
        let pid = try #require(Self.number(trace, after: "pid ").map(Int32.init))
        #expect(blockedInSyscall(pid, [45]), "the client never blocked in recv")
        kill(pid, SIGKILL)
        let output = trace.finish()
        #expect(trace.process.terminationStatus == 137)
        let events = Seed.jsonLines(output)
        let recv = try #require(Seed.calls(events, "recvfrom").last)
        #expect(recv["result"] is NSNull || recv["result"] == nil)
        let connect = try #require(Seed.calls(events, "connect").first)
        let clientPort = try #require(Self.port(connect["local"]))
        let out = Seed.packets(events).filter { $0["sport"] as? Int == clientPort }
        #expect(out.first { Seed.flags($0) == ["SYN"] }?["call"] as? Int == Self.id(connect))
        let data = try #require(out.first { $0["len"] as? Int == 9 })
        #expect(Seed.calls(events, "sendto").contains { Self.id($0) == data["call"] as? Int })
        // The kernel closes the killed program's socket: its FIN has no call.
        let fin = try #require(out.first { Seed.flags($0).contains("FIN") })
        #expect(fin["by_kernel"] as? Bool == true)
    }

    static func state(of pid: Int32) -> String {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("State:") }.map(String.init) ?? ""
    }

    static func tracerPid(of pid: Int32) -> Int? {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("TracerPid:") }
            .flatMap { Int($0.dropFirst(10).trimmingCharacters(in: .whitespaces)) }
    }

    /// Python's http.server on a free loopback port (curl's peer), serving the scripts' directory.
    static func startHTTPServer(_ scripts: Scripts) throws -> (server: Running, port: Int) {
        let http = scripts.write(
            "httpd.py",
            """
            import http.server
            s = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
            print("port", s.server_port, flush=True)
            s.serve_forever()
            """)
        return try Self.start(["/usr/bin/env", "python3", http])
    }

    /// An echo server (Python, on a free loopback port) for the attach tests, and a client script that sends its
    /// second argument to the port in its first and prints the reply.
    static func startEchoServer(_ scripts: Scripts) throws -> (server: Running, port: Int, client: String) {
        let echo = scripts.write(
            "echo.py",
            Self.listener(
                """
                while True:
                    c, _ = srv.accept(); c.sendall(b"echo " + c.recv(64)); c.close()
                """))
        let client = scripts.write(
            "client.py",
            """
            import socket, sys
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.sendall(sys.argv[2].encode())
            print(s.recv(64).decode(), flush=True)
            """)
        let (server, port) = try Self.start(["/usr/bin/env", "python3", echo])
        return (server, port, client)
    }

    @Test func attachSeesTrafficAndSIGINTDetachesLeavingTheServerServing() throws {
        let scripts = Scripts()
        let (server, port, client) = try Self.startEchoServer(scripts)
        defer { server.kill() }
        let pid = server.process.processIdentifier
        // The ptrace engine: TracerPid shows it holds the server, and lets it go.
        let trace = try Running([Seed.packetflow, "trace", "--engine", "ptrace", "--format", "jsonl", "-p", "\(pid)"])
        defer { trace.kill() }
        let deadline = Date().addingTimeInterval(5)
        while Self.tracerPid(of: pid) != Int(trace.process.processIdentifier) && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(Self.tracerPid(of: pid) == Int(trace.process.processIdentifier))
        let first = try Running(["/usr/bin/env", "python3", client, "\(port)", "one"]).finish()
        #expect(first.contains("echo one"))
        #expect(connectionsClosed(port: UInt16(port)), "the first connection did not close")
        kill(trace.process.processIdentifier, SIGINT)
        let output = trace.finish()
        #expect(trace.process.terminationStatus == 0)
        // Released, running, not stopped.
        #expect(Self.tracerPid(of: pid) == 0)
        #expect(!Self.state(of: pid).contains("t (tracing stop)"))
        #expect(!Self.state(of: pid).contains("T (stopped)"))
        let second = try Running(["/usr/bin/env", "python3", client, "\(port)", "two"]).finish()
        #expect(second.contains("echo two"))

        let events = Seed.jsonLines(output)
        let accept = try #require(Seed.calls(events, "accept4").first { $0["result"] as? Int != nil })
        #expect(accept["pid"] as? Int == Int(pid))
        let send = try #require(Seed.calls(events, "sendto").first)
        let data = try #require(Seed.packets(events).first { $0["sport"] as? Int == port && $0["len"] as? Int == 8 })
        #expect(data["call"] as? Int == Self.id(send))
        let syn = try #require(Seed.packets(events).first { $0["dport"] as? Int == port && Seed.flags($0) == ["SYN"] })
        #expect(syn["consumed_by"] as? Int == Self.id(accept))
    }

    /// `-p` with eBPF: the program is never stopped (no tracer holds it, no thread is ever in a tracing stop), the
    /// accept it was blocked in when the engine attached is recorded as it returns, and Ctrl-C leaves nothing in
    /// the kernel: every BPF program packetflow had loaded is gone, and the server serves on untraced.
    @Test func attachWithEBPFNeverStopsTheProgramAndCtrlCLeavesNothingInTheKernel() throws {
        let scripts = Scripts()
        let (server, port, client) = try Self.startEchoServer(scripts)
        defer { server.kill() }
        let pid = server.process.processIdentifier
        #expect(blockedInSyscall(pid, [43, 288]), "the server never blocked in accept")  // before anything watches
        let trace = try Running([Seed.packetflow, "trace", "--engine", "ebpf", "--format", "jsonl", "-p", "\(pid)"])
        defer { trace.kill() }
        try #require(trace.waitForError("attached to \(pid) (ebpf)"), "\(trace.errors)")
        let programs = bpfProgramIDs(heldBy: trace.process.processIdentifier)
        #expect(programs.count == 8, "packetflow holds its programs: \(programs)")
        // Watched meanwhile: never a tracing stop, never a tracer.
        let watcher = StateWatcher(pid)
        let first = try Running(["/usr/bin/env", "python3", client, "\(port)", "one"]).finish()
        #expect(first.contains("echo one"))
        #expect(connectionsClosed(port: UInt16(port)), "the first connection did not close")
        let seen = watcher.stop()
        #expect(!seen.isEmpty && seen.allSatisfy { !$0.contains("t (tracing stop)") && !$0.contains("T (stopped)") })
        #expect(seen.allSatisfy { $0.contains("TracerPid:\t0") }, "no tracer ever held it")
        kill(trace.process.processIdentifier, SIGINT)
        let output = trace.finish()
        #expect(trace.process.terminationStatus == 0)
        #expect(bpfProgramsGone(programs), "programs still loaded after packetflow ended: \(programs)")
        let second = try Running(["/usr/bin/env", "python3", client, "\(port)", "two"]).finish()
        #expect(second.contains("echo two"))

        let events = Seed.jsonLines(output)
        #expect(events.allSatisfy { $0["engine"] as? String == "ebpf" })
        let accept = try #require(Seed.calls(events, "accept4").first { $0["result"] as? Int != nil })
        #expect(accept["pid"] as? Int == Int(pid))
        let send = try #require(Seed.calls(events, "sendto").first)
        let data = try #require(Seed.packets(events).first { $0["sport"] as? Int == port && $0["len"] as? Int == 8 })
        #expect(data["call"] as? Int == Self.id(send))
        #expect(data["context"] as? String == "call")
        let syn = try #require(Seed.packets(events).first { $0["dport"] as? Int == port && Seed.flags($0) == ["SYN"] })
        #expect(syn["consumed_by"] as? Int == Self.id(accept))
        #expect(
            !Seed.packets(events).contains { ($0["len"] as? Int ?? 0) == 8 && $0["dport"] as? Int == port },
            "the second client came after the detach")
    }

    /// /proc/PID/status of every thread of a process, sampled on a thread of its own until ``stop()``.
    final class StateWatcher: @unchecked Sendable {
        private let lock = NSLock()
        private var samples: [String] = []
        private var running = true
        private let done = DispatchSemaphore(value: 0)

        init(_ pid: Int32) {
            Thread.detachNewThread { [self] in
                while lock.withLock({ running }) {
                    for tid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? [] {
                        if let s = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/status", encoding: .utf8) {
                            lock.withLock { samples.append(s) }
                        }
                    }
                    usleep(2_000)
                }
                done.signal()
            }
        }

        func stop() -> [String] {
            lock.withLock { running = false }
            done.wait()
            return lock.withLock { samples }
        }
    }

    /// The command exits and leaves a process running (`sleep &`): trace follows it, and Ctrl-C, which can no
    /// longer be passed to the command, detaches from it: trace ends with the command's status and the process
    /// runs on untraced.
    @Test(arguments: Seed.Engine.allCases)
    func ctrlCAfterTheCommandExitedDetachesFromWhatItLeftRunning(engine: Seed.Engine) throws {
        let run = try Running(
            [Seed.packetflow, "trace"] + engine.flags
                + ["--no-capture", "--", "sh", "-c", "sleep 30 & echo $!; exit 3"])
        defer { run.kill() }
        try #require(run.waitFor("\n"))
        let pid = try #require(Int32(String(decoding: run.buffer, as: UTF8.self).split(separator: "\n")[0]))
        defer { kill(pid, SIGKILL) }
        usleep(300_000)
        #expect(run.process.isRunning, "the left-running sleep is still traced")
        let tracer = run.process.processIdentifier
        kill(tracer, SIGINT)
        // sleep inherited packetflow's stdout and the socket through which Foundation learns that packetflow has
        // exited (a shell passes them on too), so Foundation cannot tell until sleep ends: /proc can.
        let deadline = Date().addingTimeInterval(10)
        while !Self.state(of: tracer).contains("Z (zombie)") && Date() < deadline { usleep(20_000) }
        #expect(Self.state(of: tracer).contains("Z (zombie)"), "Ctrl-C ended the trace")
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        #expect(status.contains("TracerPid:\t0\n"), "sleep runs on, detached")
        #expect(status.contains("State:\tS (sleeping)"), "and not stopped")
        kill(pid, SIGKILL)
        _ = run.finish()
        #expect(run.process.terminationStatus == 3)
    }

    @Test(arguments: Seed.Engine.allCases)
    func exitCodeIsPassedThrough(engine: Seed.Engine) throws {
        let (status, _, _) = try Self.trace(["sh", "-c", "exit 7"], engine: engine, extra: ["--no-capture"])
        #expect(status == 7)
        let (killed, _, _) = try Self.trace(["sh", "-c", "kill -9 $$"], engine: engine, extra: ["--no-capture"])
        #expect(killed == 137)
    }

    // MARK: output cut short

    /// A temporary directory of the test's own, for TMPDIR: what the hook leaves there is this run's alone (other
    /// tests trace at the same time and make hook directories in /tmp).
    static func privateTemporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "pf-hook-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        // Readable by the unprivileged user some tests run packetflow as.
        chmod(path, 0o1777)
        return path
    }

    static func hookDirectories(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
            $0.hasPrefix("packetflow-hook.")
        }
    }

    @Test(arguments: Seed.Engine.allCases)
    func outputPipeClosedByHeadStillRemovesThePythonHook(engine: Seed.Engine) throws {
        let temporary = try Self.privateTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        // Enough calls that the JSON Lines overflow the pipe after head has gone.
        let program = "import socket\nfor _ in range(3000): socket.socket().close()"
        let shell = try Running([
            "/bin/sh", "-c",
            "TMPDIR=\(temporary) \(Seed.packetflow) trace --engine \(engine) --no-capture --format jsonl -- "
                + "python3 -c '\(program)' | head -1",
        ])
        let output = shell.finish()
        #expect(shell.process.terminationStatus == 0)
        #expect(output.hasPrefix("{\"type\":\"call\""))
        #expect(output.split(separator: "\n").count == 1)
        #expect(Self.hookDirectories(in: temporary).isEmpty)
    }

    /// `trace --help` (the usage line of an error says to ask for it) shows the help, engines included, and runs
    /// nothing: the command's arguments take every word, so it must be told from a misspelled option.
    @Test(arguments: ["--help", "-h"])
    func traceHelpShowsBothEngines(flag: String) throws {
        let help = try runProcess(packetflowBinary(), ["trace", flag])
        #expect(help.status == 0, "\(help.stderr)")
        let text = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")  // lines are wrapped
        #expect(text.contains("--engine <engine>") && text.contains("values: auto, ebpf, ptrace"), "\(text)")
        #expect(text.contains("--engine auto then says why in one line"))
    }

    // MARK: missing privileges

    /// Runs packetflow as nobody with no capabilities; returns its exit status and stdout+stderr.
    static func asNobody(_ arguments: String, environment: String = "") throws -> (Int32, String) {
        let shell = try Running([
            "/bin/sh", "-c",
            "\(environment) setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all "
                + "\(Seed.packetflow) \(arguments) 2>&1",
        ])
        let output = shell.finish()
        return (shell.process.terminationStatus, output)
    }

    /// As nobody, neither engine may trace a root process: each missing privilege is one line saying what to do.
    /// `auto` first says why eBPF cannot load (no CAP_BPF), as it would before a ptrace trace that works, then
    /// ptrace says why it cannot attach: two lines, both ending in what to run instead.
    @Test(arguments: ["ptrace", "ebpf", "auto"])
    func attachWithoutPrivilegeSaysWhatToDoInOneLinePerPrivilege(engine: String) throws {
        // A root-owned process: nobody may not trace it.
        let sleeper = try Running(["/bin/sleep", "30"])
        defer { sleeper.kill() }
        let pid = sleeper.process.processIdentifier
        let (status, output) = try Self.asNobody("trace --engine \(engine) --no-capture -p \(pid)")
        #expect(status != 0)
        let lines = output.split(separator: "\n")
        let ptrace = lines.filter { $0.contains("cannot attach to \(pid): not permitted") && $0.contains("needs root") }
        let bpf = lines.filter { $0.contains("needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN): run as root") }
        switch engine {
        case "ptrace": #expect(lines.count == 1 && ptrace.count == 1, "\(output)")
        case "ebpf":
            #expect(lines.count == 1 && bpf.count == 1, "\(output)")
            #expect(output.contains("or use --engine ptrace"))
        default:
            #expect(lines.count == 2 && bpf.count == 1 && ptrace.count == 1, "\(output)")
            #expect(lines.first.map { bpf.contains($0) } == true, "eBPF's line first, as before any ptrace trace")
        }
        #expect(Self.state(of: pid).contains("S (sleeping)"))
    }

    /// bpf(2) refused, as a container's seccomp profile refuses it (Tests/Fixtures/deny-syscalls.py): `auto` says
    /// why in one line and traces with ptrace; `--engine ebpf` fails with one line and a non-zero status, having
    /// run nothing.
    @Test(arguments: ["EPERM", "ENOSYS"])
    func withBPFRefusedAutoFallsBackToPtraceAndEBPFFailsInOneLine(error: String) throws {
        let deny = Seed.root.appendingPathComponent("Tests/Fixtures/deny-syscalls.py").path
        let prefix = ["/usr/bin/env", "python3", deny, error, "bpf", "--", Seed.packetflow, "trace"]
        let auto = try Running(prefix + ["--format", "jsonl", "--", "sh", "-c", "echo ran; exit 3"])
        let output = auto.finish()
        #expect(auto.process.terminationStatus == 3)
        #expect(output.contains("ran"))
        let lines = auto.errors.split(separator: "\n")
        #expect(lines.count == 1, "\(lines)")
        let refused = "packetflow: eBPF engine unavailable: the bpf(2) system call was refused (\(error))"
        #expect(lines.first?.hasPrefix(refused) == true)
        #expect(lines.first?.hasSuffix("; tracing with ptrace") == true)
        #expect(Seed.jsonLines(output).allSatisfy { $0["engine"] as? String == "ptrace" })

        let marker = NSTemporaryDirectory() + "pf-ebpf-refused-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let ebpf = try Running(prefix + ["--engine", "ebpf", "--no-capture", "--", "touch", marker])
        _ = ebpf.finish()
        #expect(ebpf.process.terminationStatus != 0)
        let failure = ebpf.errors.split(separator: "\n")
        #expect(
            failure.count == 1 && failure.first?.contains("the bpf(2) system call was refused") == true,
            "\(failure)")
        #expect(failure.first?.hasSuffix("(or use --engine ptrace)") == true)
        #expect(!FileManager.default.fileExists(atPath: marker), "nothing ran")
    }

    @Test func captureWithoutCapNetRawSaysWhatToDoInOneLine() throws {
        let temporary = try Self.privateTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        let (status, output) = try Self.asNobody("trace -- python3 -c pass", environment: "TMPDIR=\(temporary)")
        #expect(status != 0)
        #expect(output.split(separator: "\n").count == 1)
        #expect(output.contains("needs root or CAP_NET_RAW"))
        #expect(output.contains("--no-capture"))
        #expect(Self.hookDirectories(in: temporary).isEmpty)
        // And without capture the same user can trace its own program.
        let (traced, calls) = try Self.asNobody("trace --no-capture -- sh -c 'exit 3'")
        #expect(traced == 3)
        #expect(calls.contains("calls (no capture)"))
    }
}

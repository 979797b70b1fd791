import Foundation
import TestSupport
import Testing

/// Real processes, real capture: `packetflow trace` on the seed's Python client and server (needs root, as CI).
@Suite(.serialized) struct SeedTraceTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let seed = root.appendingPathComponent("Tests/Fixtures/seed")

    /// The packetflow binary built next to the test bundle.
    static var packetflow: String { packetflowBinary().path }

    /// A running process whose stdout is read line by line until a marker appears.
    final class Running {
        let process = Process()
        let stdout = Pipe()
        let stdin = Pipe()
        var buffer = Data()
        /// stderr goes to a file (no second pipe to drain), echoed to the test's own stderr by ``errors``.
        let stderrPath = NSTemporaryDirectory() + "running-\(UUID().uuidString).err"

        init(_ arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: arguments[0])
            process.arguments = Array(arguments.dropFirst())
            process.standardOutput = stdout
            process.standardInput = stdin
            _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: stderrPath)
            try process.run()
        }

        deinit { try? FileManager.default.removeItem(atPath: stderrPath) }

        /// What the process wrote to stderr so far (also copied to the test's stderr, for a failing run's log).
        var errors: String {
            let text = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            FileHandle.standardError.write(Data(text.utf8))
            return text
        }

        func waitFor(_ marker: String, seconds: Double = 10) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if String(decoding: buffer, as: UTF8.self).contains(marker) { return true }
                let chunk = stdout.fileHandleForReading.availableData
                if chunk.isEmpty { return String(decoding: buffer, as: UTF8.self).contains(marker) }
                buffer.append(chunk)
            }
            return false
        }

        /// Waits until the process has written `marker` to stderr (packetflow's "attached to PID" line).
        func waitForError(_ marker: String, seconds: Double = 10) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if ((try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "").contains(marker) { return true }
                if !process.isRunning { break }
                Thread.sleep(forTimeInterval: 0.02)
            }
            return ((try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "").contains(marker)
        }

        func finish() -> String {
            buffer.append(stdout.fileHandleForReading.readDataToEndOfFile())
            process.waitUntilExit()
            return String(decoding: buffer, as: UTF8.self)
        }

        func kill() {
            // The test runner's blocked signal mask is inherited: SIGKILL cannot be blocked.
            if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    static func jsonLines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").filter { $0.hasPrefix("{\"type\"") }.compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// The program's calls named `name` on IP sockets (those have a local address from socket(2) on). Any program
    /// may also make calls on Unix sockets it never wrote: without HOME, glibc's user lookup at Python's start
    /// connects to /var/run/nscd/socket (twice), which CI's environment showed.
    static func calls(_ events: [[String: Any]], _ name: String) -> [[String: Any]] {
        events.filter { $0["type"] as? String == "call" && $0["name"] as? String == name && $0["local"] is String }
    }

    static func packets(_ events: [[String: Any]]) -> [[String: Any]] {
        events.filter { $0["type"] as? String == "packet" && $0["proto"] as? String == "TCP" }
    }

    static func flags(_ p: [String: Any]) -> [String] { p["flags"] as? [String] ?? [] }

    /// Where packetflow runs. The tracer reads the program's memory with process_vm_readv(2) and duplicates its
    /// sockets with pidfd_open(2) and pidfd_getfd(2), but a container's seccomp profile (Docker's default, without
    /// CAP_SYS_PTRACE) answers EPERM to all but pidfd_open and an older kernel ENOSYS to all: the answers must not
    /// change.
    enum Host: String, CaseIterable, CustomTestStringConvertible {
        case unrestricted
        case containerWithoutSysPtrace
        case kernelWithoutCrossMemoryCalls

        var testDescription: String { rawValue }

        /// What runs packetflow: nothing, or the fixture that installs a seccomp filter refusing those calls.
        var prefix: [String] {
            let refused = "process_vm_readv,process_vm_writev,pidfd_getfd,kcmp"
            let deny = SeedTraceTests.root.appendingPathComponent("Tests/Fixtures/deny-syscalls.py").path
            switch self {
            case .unrestricted: return []
            case .containerWithoutSysPtrace: return ["/usr/bin/env", "python3", deny, "EPERM", refused, "--"]
            case .kernelWithoutCrossMemoryCalls:
                return ["/usr/bin/env", "python3", deny, "ENOSYS", refused + ",pidfd_open", "--"]
            }
        }
    }

    /// Which engine a test runs under. Tests of general trace behaviour run under both; those about one engine
    /// (ptrace's TracerPid, its fallbacks on ptrace-hostile hosts) pin it.
    enum Engine: String, CaseIterable, CustomTestStringConvertible {
        case ebpf
        case ptrace

        var testDescription: String { rawValue }
        /// The flags that choose it.
        var flags: [String] { ["--engine", rawValue] }
    }

    /// The seed on every host: unrestricted under both engines; the ptrace-hostile hosts are about the ptrace
    /// engine's fallbacks (their filter refuses pidfd_open too, which eBPF registers a program with: `auto` would
    /// fall back to ptrace there anyway, with a line saying so).
    static let hosts: [(Host, Engine)] =
        Engine.allCases.map { (.unrestricted, $0) }
        + [(.containerWithoutSysPtrace, .ptrace), (.kernelWithoutCrossMemoryCalls, .ptrace)]

    @Test(arguments: hosts)
    func tracedClientShowsEachPacketWithItsCallAndPythonLine(on host: Host, engine: Engine) throws {
        try withSeedPort { try tracedClientShowsEachPacketWithItsCallAndPythonLineOnSeedPort(host, engine) }
    }

    /// Runs with the seed port's lock held (see `withSeedPort`).
    func tracedClientShowsEachPacketWithItsCallAndPythonLineOnSeedPort(_ host: Host, _ engine: Engine) throws {
        let server = try Running(["/usr/bin/env", "python3", Self.seed.appendingPathComponent("server.py").path])
        defer { server.kill() }
        try #require(server.waitFor("listening on"), "the seed server did not start (port 49152 busy?)")

        let pcap = NSTemporaryDirectory() + "trace-\(getpid()).pcapng"
        defer { try? FileManager.default.removeItem(atPath: pcap) }
        let trace = try Running(
            host.prefix + [Self.packetflow, "trace"] + engine.flags + [
                "--format", "jsonl", "-w", pcap, "--", "python3", Self.seed.appendingPathComponent("client.py").path,
            ])
        trace.stdin.fileHandleForWriting.write(Data("hello trace\n".utf8))
        try trace.stdin.fileHandleForWriting.close()
        let output = trace.finish()
        #expect(trace.process.terminationStatus == 0)
        #expect(!trace.errors.contains("packetflow:"), "no warning: nothing is missing from the trace")
        #expect(output.contains("Hello, client #1! Received 11 bytes"))
        let events = Self.jsonLines(output)
        // Every object names the engine; every packet the context eBPF saw it built in (null under ptrace).
        #expect(!events.isEmpty && events.allSatisfy { $0["engine"] as? String == engine.rawValue })
        #expect(
            events.filter { $0["type"] as? String == "packet" }.allSatisfy {
                engine == .ptrace ? $0["context"] is NSNull : $0["context"] is String
            })

        let connect = try #require(Self.calls(events, "connect").first)
        #expect(connect["source"] as? String == "client.py:21 client.connect((HOST, D_PORT_NO))")
        let send = try #require(Self.calls(events, "sendto").first)
        #expect(send["source"] as? String == "client.py:25 client.sendall(sending_message.encode(\"UTF-8\"))")
        let recv = try #require(Self.calls(events, "recvfrom").first)
        #expect(recv["source"] as? String == "client.py:27 server_reception_data = client.recv(BUFSIZE)")
        let close = try #require(Self.calls(events, "close").first)
        #expect(close["source"] as? String == "client.py:31 client.close()")
        let client = try #require(connect["local"] as? String)
        let clientPort = try #require(Int(client.split(separator: ":").last ?? ""))

        let tcp = Self.packets(events).filter {
            $0["sport"] as? Int == clientPort || $0["dport"] as? Int == clientPort
        }
        let fromClient = tcp.filter { $0["sport"] as? Int == clientPort }
        let toClient = tcp.filter { $0["dport"] as? Int == clientPort }
        // connect → SYN, SYN/ACK (by the server's kernel), ACK.
        let syn = try #require(fromClient.first { Self.flags($0) == ["SYN"] })
        #expect(syn["call"] as? Int == connect["id"] as? Int)
        #expect(syn["by_kernel"] as? Bool == false)
        let synAck = try #require(toClient.first { Self.flags($0) == ["SYN", "ACK"] })
        #expect(synAck["by_kernel"] as? Bool == true)
        #expect(synAck["reason"] as? String == "SYN/ACK of a listening socket")
        if engine == .ebpf {
            #expect(syn["context"] as? String == "call")
            #expect(synAck["context"] as? String == "softirq")
        }
        let ack = try #require(fromClient.first { Self.flags($0) == ["ACK"] && $0["seq"] as? Int == 1 })
        #expect(ack["call"] as? Int == connect["id"] as? Int)
        // sendall's sendto → the data segment.
        let data = try #require(fromClient.first { $0["len"] as? Int == 11 })
        #expect(data["call"] as? Int == send["id"] as? Int)
        #expect(data["by_kernel"] as? Bool == false)
        // recv consumes the server's reply.
        let reply = try #require(toClient.first { ($0["len"] as? Int ?? 0) > 0 })
        #expect(reply["consumed_by"] as? Int == recv["id"] as? Int)
        // close → the client's FIN.
        let fin = try #require(fromClient.first { Self.flags($0).contains("FIN") })
        #expect(fin["call"] as? Int == close["id"] as? Int)
        // Every pure ACK the client's kernel sent on its own says why.
        for p in fromClient where Self.flags(p) == ["ACK"] && p["seq"] as? Int != 1 {
            #expect(p["by_kernel"] as? Bool == true)
            #expect(p["reason"] != nil)
        }

        // The pcapng opens in tshark with the comments on the right packets.
        let tshark = try Running([
            "/usr/bin/env", "tshark", "-r", pcap, "-Y", "tcp.port == \(clientPort)", "-T", "fields", "-e",
            "tcp.flags.str", "-e", "tcp.len", "-e", "frame.comment",
        ])
        let rows = tshark.finish().split(separator: "\n").map {
            $0.split(separator: "\t", omittingEmptySubsequences: false)
        }
        #expect(tshark.process.terminationStatus == 0)
        let synRow = try #require(rows.first)
        #expect(synRow.count == 3 && synRow[2].contains("#\(connect["id"] as? Int ?? 0) connect at client.py:21"))
        let dataRow = try #require(rows.first { $0.count == 3 && $0[1] == "11" })
        #expect(dataRow[2].contains("sendto at client.py:25 client.sendall"))
        let replyRow = try #require(rows.first { $0.count == 3 && $0[1] != "0" && $0[1] != "11" })
        #expect(replyRow[2].contains("consumed by pid") && replyRow[2].contains("client.py:27"))
        #expect(rows.contains { $0.count == 3 && $0[2].contains("close at client.py:31") && $0[0].contains("F") })
        // eBPF's comments also say where the kernel built each packet.
        let synAckRow = try #require(rows.dropFirst().first)
        if engine == .ebpf {
            #expect(synRow[2].hasSuffix("; built in call #\(connect["id"] as? Int ?? 0) connect"), "\(synRow)")
            #expect(synAckRow[2].contains("kernel: SYN/ACK of a listening socket; built in softirq NET_RX"))
        } else {
            #expect(!rows.contains { $0.count == 3 && $0[2].contains("built ") })
        }
    }

    @Test(arguments: hosts)
    func tracedServerShowsAcceptRecvSendAndClose(on host: Host, engine: Engine) throws {
        try withSeedPort { try tracedServerShowsAcceptRecvSendAndCloseOnSeedPort(host, engine) }
    }

    /// Runs with the seed port's lock held (see `withSeedPort`).
    func tracedServerShowsAcceptRecvSendAndCloseOnSeedPort(_ host: Host, _ engine: Engine) throws {
        let trace = try Running(
            host.prefix + [Self.packetflow, "trace"] + engine.flags + [
                "--format", "jsonl", "--", "python3", Self.seed.appendingPathComponent("server.py").path,
            ])
        defer { trace.kill() }
        try #require(trace.waitFor("listening on"), "the traced seed server did not start (port 49152 busy?)")

        let client = try Running(["/usr/bin/env", "python3", Self.seed.appendingPathComponent("client.py").path])
        client.stdin.fileHandleForWriting.write(Data("to the traced server\n".utf8))
        try client.stdin.fileHandleForWriting.close()
        let reply = client.finish()
        #expect(reply.hasPrefix("Hello, client #1!"))
        Thread.sleep(forTimeInterval: 0.3)
        // As kill(1) would: packetflow forwards SIGINT to the program, which ends with KeyboardInterrupt.
        Foundation.kill(trace.process.processIdentifier, SIGINT)
        let output = trace.finish()
        #expect(trace.process.terminationStatus == 128 + SIGINT)
        #expect(!trace.errors.contains("packetflow:"), "no warning: nothing is missing from the trace")
        let events = Self.jsonLines(output)

        let accept = try #require(Self.calls(events, "accept4").first { $0["result"] as? Int != nil })
        #expect((accept["source"] as? String)?.hasPrefix("server.py:32 client, addr = server.accept()") == true)
        let recv = try #require(Self.calls(events, "recvfrom").first)
        #expect(recv["source"] as? String == "server.py:36 data = client.recv(4096)")
        let send = try #require(Self.calls(events, "sendto").first)
        #expect((send["source"] as? String)?.hasPrefix("server.py:41 client.sendall(") == true)
        let close = try #require(Self.calls(events, "close").first)
        #expect(close["source"] as? String == "server.py:43 client.close()")

        let tcp = Self.packets(events)
        let fromServer = tcp.filter { $0["sport"] as? Int == 49152 }
        let toServer = tcp.filter { $0["dport"] as? Int == 49152 }
        let syn = try #require(toServer.first { Self.flags($0) == ["SYN"] })
        #expect(syn["consumed_by"] as? Int == accept["id"] as? Int)
        let synAck = try #require(fromServer.first { Self.flags($0) == ["SYN", "ACK"] })
        #expect(synAck["by_kernel"] as? Bool == true)
        #expect(synAck["reason"] as? String == "SYN/ACK of a listening socket")
        let message = try #require(toServer.first { $0["len"] as? Int == 20 })
        #expect(message["consumed_by"] as? Int == recv["id"] as? Int)
        let answer = try #require(fromServer.first { ($0["len"] as? Int ?? 0) > 0 })
        #expect(answer["call"] as? Int == send["id"] as? Int)
        let fin = try #require(fromServer.first { Self.flags($0).contains("FIN") })
        #expect(fin["call"] as? Int == close["id"] as? Int)
    }
}

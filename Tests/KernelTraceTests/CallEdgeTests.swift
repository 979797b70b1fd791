import Foundation
import KernelTrace
import Sockets
import SyscallTrace
import TestSupport
import Testing

extension KernelTraceTests {
    /// What the sys_enter/sys_exit hooks record where a call does not simply enter and leave: a signal in the
    /// middle, a connect the peer refuses, a call already running when the engine attaches.
    @Suite struct CallEdgeTests {
        static func calls(_ run: KernelTraceRun, _ name: Syscall) -> [KernelCall] {
            run.calls.filter { $0.syscallNumber == Int32(name.rawValue) }
        }

        /// A recv interrupted by a handler that raises ends with EINTR (the program made another socket call
        /// next); a recv interrupted ten times and retried by Python each time (PEP 475) is one call from its
        /// first attempt, with the bytes it finally got. Between the attempts the thread returns through
        /// rt_sigreturn and Python's handler runs: none of that is a socket call.
        @Test func interruptedCallsAreOneCallOrEINTR() throws {
            let script = #"""
                import signal, socket, threading
                srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
                a = socket.create_connection(srv.getsockname()); b, _ = srv.accept()
                class Alarm(Exception): pass
                def stop(*_): raise Alarm()
                signal.signal(signal.SIGALRM, stop)
                signal.setitimer(signal.ITIMER_REAL, 0.05)
                try:
                    a.recv(16)
                except Alarm:
                    pass
                a.send(b"x")
                signal.signal(signal.SIGALRM, lambda *_: None)
                signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
                threading.Timer(0.25, lambda: b.send(b"late")).start()
                data = a.recv(16)
                signal.setitimer(signal.ITIMER_REAL, 0)
                print(data.decode())
                """#
            let run = try KernelTraceTests.traceExchange(script)
            #expect(run.exitStatus == 0)
            let receives = Self.calls(run, .recvfrom).filter { $0.socket?.isTCP == true }
            // a's two recvs (b's recv of "x" is not made).
            try #require(receives.count == 2, "\(receives.map(\.returnValue))")
            let (first, second) = (receives[0], receives[1])
            #expect(first.returnValue == -Int64(EINTR) && first.unfinished)
            #expect(first.tracedCall.map { $0.event.errno } == "EINTR")
            #expect(second.returnValue == 4 && second.data == Array("late".utf8))
            let late = try #require(Self.calls(run, .sendto).first { $0.data == Array("late".utf8) })
            #expect(second.start < late.start, "the retried recv began at its first attempt, before the send")
            #expect(late.start.totalNanoseconds - second.start.totalNanoseconds > 150_000_000)
            #expect(!run.calls.contains { [-512, -513, -514, -516].contains($0.returnValue) })
        }

        /// A refused connect: the kernel releases the socket's port and resets its addresses, but the socket keeps
        /// the port it sent its SYN from (getsockname shows it), and its remote end is where connect aimed.
        @Test func refusedConnectKeepsItsPortAndAim() throws {
            let script = #"""
                import socket, sys
                probe = socket.socket(); probe.bind(("127.0.0.1", 0)); closed = probe.getsockname()[1]; probe.close()
                s = socket.socket()
                refused = s.connect_ex(("127.0.0.1", closed))
                open(sys.argv[1], "w").write("%d %d %d" % (refused, s.getsockname()[1], closed))
                s.close()
                """#
            let path = try KernelTraceTests.scriptFile(script)
            let answer = path + ".out"
            defer { try? FileManager.default.removeItem(atPath: path) }
            defer { try? FileManager.default.removeItem(atPath: answer) }
            var options = KernelTracer.Options()
            options.command = ["python3", path, answer]
            let run = try KernelTracer(options).run()
            let words = ((try? String(contentsOfFile: answer, encoding: .utf8)) ?? "")
                .split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
            try #require(words.count == 3 && words[0] == Int(ECONNREFUSED), "\(words)")
            let connect = try #require(Self.calls(run, .connect).last)
            #expect(connect.returnValue == -Int64(ECONNREFUSED))
            #expect(connect.socket?.local == SocketAddress(ip: .v4(0), port: UInt16(words[1])))
            #expect(connect.socket?.remote == nil, "the kernel no longer shows it connected")
            let traced = try #require(connect.tracedCall)
            #expect(traced.remote == SocketAddress(ip: .v4(0x7f00_0001), port: UInt16(words[2])))
            #expect(run.sockets[connect.socket!.inode]?.remote == traced.remote)
        }

        /// -p of a server blocked in accept(2): the accept entered before the engine watched, and is recorded
        /// when it returns, from the registers, as having started when the engine attached.
        @Test func aCallInFlightAtAttachIsRecordedWhenItEnds() throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = [
                "-c",
                """
                import socket
                srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
                print(srv.getsockname()[1], flush=True)
                c, _ = srv.accept(); c.close()
                """,
            ]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            let port = try #require(UInt16(firstLine(output)))
            #expect(blockedInSyscall(process.processIdentifier, [43, 288]), "the server never blocked in accept")
            var options = KernelTracer.Options()
            options.attach = process.processIdentifier
            let tracer = try KernelTracer(options)
            let before = Date().timeIntervalSince1970
            let run = try tracer.run(started: {
                let s = try? Socket(family: .ipv4, type: .stream)
                try? s?.connect(to: SocketAddress(ip: .v4(0x7f00_0001), port: port))
                try? s?.close()
            })
            process.waitUntilExit()
            let accept = try #require(Self.calls(run, .accept4).first, "\(run.calls.map(\.syscallNumber))")
            #expect(accept.succeeded && accept.socket?.local?.port == port)
            let started = Double(accept.start.totalNanoseconds) / 1e9
            #expect(started >= before - 0.01 && started <= Date().timeIntervalSince1970, "started at the attach")
            #expect(Self.calls(run, .close).contains { $0.fdArgument == accept.fd }, "then the accepted socket's close")
        }
    }
}

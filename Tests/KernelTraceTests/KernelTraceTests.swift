import Foundation
import KernelTrace
import PacketCapture
import PacketWire
import Sockets
import SystemCalls
import SyscallTrace
import TestSupport
import Testing
import Timeline

/// The eBPF engine on real programs: a Python TCP exchange on loopback run under it through `sh -c` (so the fork
/// and exec hooks must follow the shell's child), with the Python hook for source lines. Needs root, as CI.
/// Serialized, nested suites included: stop requests are process-wide, as signals are, and the lifecycle tests
/// count the programs loaded in the kernel.
@Suite(.serialized) struct KernelTraceTests {
    /// A listener thread and a client in one Python process: the server's calls run on another thread (tid), the
    /// client's on the main one. The port is the kernel's choice.
    static let exchange = #"""
        import socket, threading
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        def serve():
            conn, _ = srv.accept()
            data = conn.recv(64)
            conn.sendall(data.upper())
            conn.close()
        t = threading.Thread(target=serve)
        t.start()
        cli = socket.create_connection(("127.0.0.1", port))
        cli.sendall(b"ping")
        reply = cli.recv(64)
        cli.close()
        t.join()
        srv.close()
        print(reply.decode())
        """#

    /// Writes `script` to a temporary file and returns its path.
    static func scriptFile(_ script: String) throws -> String {
        let path = NSTemporaryDirectory() + "kt-\(UUID().uuidString).py"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Runs `sh -c "python3 SCRIPT"` under the engine with the Python hook installed.
    static func traceExchange(_ script: String = exchange, settle: (KernelTraceRun) -> Void = { _ in }) throws
        -> KernelTraceRun
    {
        let path = try scriptFile(script)
        defer { try? FileManager.default.removeItem(atPath: path) }
        guard let hook = PythonHook.install() else { throw KernelTraceTestError("cannot install the Python hook") }
        defer { PythonHook.remove(hook) }
        var options = KernelTracer.Options()
        options.command = ["sh", "-c", "python3 \(path) > /dev/null"]
        options.environment = PythonHook.environment(Linux.environment(), hookDirectory: hook)
        options.noteFD = PythonHook.noteFD
        return try KernelTracer(options).run(settle: settle)
    }

    /// A call on an IPv4 or IPv6 socket.
    static func onIPSocket(_ call: KernelCall) -> Bool {
        call.socket.map { $0.family == AF_INET || $0.family == AF_INET6 } ?? false
    }

    @Test func callRecordsOfEachKind() throws {
        let run = try Self.traceExchange()
        #expect(run.exitStatus == 0)
        #expect(run.warnings.isEmpty, "\(run.warnings)")
        #expect(run.counters == KernelTraceCounters())
        // Every traced call, numbered in order. Without HOME, glibc asks nscd over a Unix socket (socket, connect,
        // close) when a program looks a user up: bash does, and `python3` may be a bash script (pyenv's shim). Those
        // calls are real and traced too, but not the script's.
        let calls = run.calls
        #expect(calls.map(\.number) == Array(1...calls.count))
        #expect(zip(calls, calls.dropFirst()).allSatisfy { $0.start <= $1.start })
        #expect(calls.allSatisfy { $0.start <= $0.end })

        // The script's own calls are on IP sockets.
        let inet = calls.filter(Self.onIPSocket)
        // Only python's, in one process: the fork/exec hooks followed sh's child into python3.
        #expect(Set(inet.map(\.comm)) == ["python3"], "\(inet.map(\.comm))")
        #expect(Set(inet.map(\.pid)).count == 1)
        func only(_ name: Syscall, _ where: (KernelCall) -> Bool = { _ in true }) -> KernelCall? {
            let found = inet.filter { $0.syscallNumber == Int32(name.rawValue) && `where`($0) }
            #expect(found.count == 1, "\(name): \(found.count) calls")
            return found.first
        }
        let listen = try #require(only(.listen))
        let port = try #require(listen.socket?.local?.port)
        #expect(listen.socket?.tcpState == .listen)
        #expect(listen.source?.hasPrefix("kt-") == true && listen.source?.contains("srv.listen(4)") == true)
        let connect = try #require(only(.connect))
        #expect(connect.returnValue == 0)
        #expect(connect.socket?.remote == SocketAddress(ip: .v4(0x7f00_0001), port: port))
        #expect(connect.socket?.tcpState == .established)
        #expect(connect.socket?.inode != 0)
        #expect(connect.source?.contains("socket.create_connection") == true, "\(connect.source ?? "nil")")
        #expect(describeAddress(connect.address) == "127.0.0.1:\(port)")
        let accept = try #require(only(.accept4))
        #expect(accept.tid != accept.pid, "the listener thread accepts")
        #expect(accept.fd == Int32(truncatingIfNeeded: accept.returnValue))
        #expect(accept.socket?.remote == connect.socket?.local)
        // sendall is sendto(2) with no address; recv is recvfrom(2): the first bytes are kept.
        let ping = try #require(only(.sendto) { $0.tid == connect.tid })
        #expect(ping.data == Array("ping".utf8) && ping.dataCount == 4 && ping.returnValue == 4)
        #expect(ping.socket?.pointer == connect.socket?.pointer)
        let pong = try #require(only(.recvfrom) { $0.tid == connect.tid })
        #expect(pong.data == Array("PING".utf8))
        #expect(pong.arguments[2] == 64)
        let closes = inet.filter { $0.syscallNumber == Int32(Syscall.close.rawValue) }
        #expect(closes.count == 3, "client, accepted and listening sockets: \(closes.map(\.fd))")
        let clientClose = try #require(closes.first { $0.socket?.pointer == connect.socket?.pointer })
        // The server closes right after its reply: its FIN may have reached the client before the client's close,
        // or while it ran. A socket that reached TIME_WAIT before the state was read reads CLOSED: the kernel has
        // put a timewait sock in its place and closed this one.
        switch clientClose.stateBefore.map(TCPState.init(rawValue:)) {
        case .established?:
            #expect([.finWait1, .finWait2, .closing, .closed].contains(clientClose.socket?.tcpState))
        case .closeWait?: #expect([.lastAck, .closed].contains(clientClose.socket?.tcpState))
        case let other: Issue.record("state before the client's close: \(String(describing: other))")
        }
        // Both ends closed and every FIN acknowledged, as the packet records show it: the session need not ask the
        // kernel's socket table whether the connection can still send.
        let ends = try #require(connect.socket.flatMap { s in s.local.flatMap { l in s.remote.map { (l, $0) } } })
        #expect(run.closedConnections.contains { Set([$0.0, $0.1]) == Set([ends.0, ends.1]) })
        let set = try #require(only(.setsockopt))
        let traced = try #require(set.tracedCall)
        #expect(traced.args.map(\.0) == ["fd", "level", "option", "value"])
        #expect(traced.args.last.map { "\($0.1)" } == "1")

        // In the ptrace engine's shape: the same argument names, sockets by inode.
        let sockets = run.sockets
        #expect(sockets[listen.socket!.inode]?.listening == true)
        #expect(sockets[connect.socket!.inode]?.remote == SocketAddress(ip: .v4(0x7f00_0001), port: port))
        #expect(run.tracedCalls.count == calls.count)
        #expect(connect.tracedCall?.args.map(\.0) == ["fd", "addr"])
        // The processes: sh forked, its child exec'd python3, python3 started a thread, everything exited.
        #expect(run.processEvents.contains { if case .fork(_, true) = $0.what { $0.comm == "sh" } else { false } })
        #expect(run.processEvents.contains { $0.what == .exec && $0.comm == "python3" })
        #expect(
            run.processEvents.contains { if case .fork(_, false) = $0.what { $0.comm == "python3" } else { false } })
    }

    @Test func packetContexts() throws {
        let run = try Self.traceExchange()
        let calls = run.calls
        let connect = try #require(
            calls.first { $0.syscallNumber == Int32(Syscall.connect.rawValue) && Self.onIPSocket($0) })
        let accept = try #require(
            calls.first { $0.syscallNumber == Int32(Syscall.accept4.rawValue) && Self.onIPSocket($0) })
        let client = try #require(connect.socket)
        let server = try #require(accept.socket)
        let clientEnd = try #require(client.local)
        let serverEnd = try #require(client.remote)
        func call(_ number: Int) -> KernelCall? { calls.first { $0.number == number } }
        let packets = run.packets.filter {
            guard let k = $0.key else { return false }
            let ends = [
                SocketAddress(ip: k.source, port: k.sourcePort),
                SocketAddress(ip: k.destination, port: k.destinationPort),
            ]
            return Set(ends) == [clientEnd, serverEnd]
        }
        func from(_ end: SocketAddress, _ flags: UInt8, length: Int? = nil) -> [KernelPacket] {
            packets.filter {
                $0.key!.sourcePort == end.port && $0.key!.flags == flags && (length == nil || $0.key!.length == length)
            }
        }
        let syn: UInt8 = 0x02
        let ack: UInt8 = 0x10
        let synAck: UInt8 = 0x12
        let psh: UInt8 = 0x08
        let fin: UInt8 = 0x01

        // Built by the sender's own call, on its own socket: SYN in connect, data in sendto, FIN in close.
        let sent = try #require(from(clientEnd, syn).first)
        #expect(sent.context == .call(connect.number, ownSocket: true), "\(sent.context)")
        #expect(sent.socketPointer == client.pointer && sent.socketInode == client.inode)
        #expect(sent.task.traced && sent.task.tid == connect.tid)
        let ping = try #require(from(clientEnd, psh | ack, length: 4).first)
        guard case .call(let n, true) = ping.context, let pingCall = call(n) else {
            Issue.record("ping built in \(ping.context)")
            return
        }
        #expect(pingCall.syscallNumber == Int32(Syscall.sendto.rawValue) && pingCall.tid == connect.tid)
        #expect(ping.time >= pingCall.start && ping.time <= pingCall.end, "the packet is inside its call")
        let pong = try #require(from(serverEnd, psh | ack, length: 4).first)
        guard case .call(let m, true) = pong.context, let pongCall = call(m) else {
            Issue.record("pong built in \(pong.context)")
            return
        }
        #expect(pongCall.syscallNumber == Int32(Syscall.sendto.rawValue) && pongCall.tid == accept.tid)
        for (end, socket) in [(clientEnd, client), (serverEnd, server)] {
            let finPacket = try #require(from(end, fin | ack).first)
            guard case .call(let c, true) = finPacket.context, let closeCall = call(c) else {
                Issue.record("FIN from \(end) built in \(finPacket.context)")
                continue
            }
            #expect(closeCall.syscallNumber == Int32(Syscall.close.rawValue))
            #expect(closeCall.socket?.pointer == socket.pointer)
        }
        // Built by the kernel receiving a packet (NET_RX), on the receiver's socket: the SYN/ACK of the listener
        // (on its request socket, not the client's), and the ACK of data.
        let answer = try #require(from(serverEnd, synAck).first)
        guard case .softirq(.netRX, _) = answer.context else {
            Issue.record("SYN/ACK built in \(answer.context)")
            return
        }
        #expect(answer.socketPointer != client.pointer && answer.socketPointer != 0)
        let pingAck = from(serverEnd, ack, length: 0).first { $0.key!.ack == ping.key!.seq &+ 4 }
        let pongAck = from(clientEnd, ack, length: 0).first { $0.key!.ack == pong.key!.seq &+ 4 }
        let dataAcks = [pingAck, pongAck].compactMap { $0 }
        #expect(!dataAcks.isEmpty, "a pure ACK of data (the other one may ride on the reply or the FIN)")
        for a in dataAcks {
            // Usually on receipt (NET_RX). A delayed ACK goes out when its timer fires (TIMER), or from the
            // receiving socket's own recv as it reads (tcp_cleanup_rbuf), which a busy machine makes likelier.
            switch a.context {
            case .softirq(.netRX, _), .softirq(.timer, _): break
            case .call(let n, ownSocket: true):
                #expect(
                    call(n).map { Syscall(rawValue: Int($0.syscallNumber))?.receives == true } == true,
                    "ACK of data built in call #\(n), not a receive")
            default:
                Issue.record("ACK of data built in \(a.context)")
                continue
            }
            #expect([client.pointer, server.pointer].contains(a.socketPointer))
            #expect(a.socketPointer == (a.key!.sourcePort == clientEnd.port ? client.pointer : server.pointer))
        }
        // Every packet of the connection has a key and a traced or softirq context (both ends are traced).
        #expect(packets.count >= 8)
        #expect(!packets.contains { $0.context == .untraced })
    }
}

struct KernelTraceTestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A sockaddr as bytes, read back as an IP address and port.
func describeAddress(_ bytes: [UInt8]) -> String? {
    var storage = sockaddr_storage()
    withUnsafeMutableBytes(of: &storage) { $0.copyBytes(from: bytes.prefix($0.count)) }
    return SocketAddress(storage: storage)?.description
}

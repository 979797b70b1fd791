import Glibc
import PacketWire
import Sockets
import Testing
import Timeline
import Tracing

@testable import SyscallTrace

/// Attribution by content, without privileges: synthetic calls and packets, timestamps deliberately misleading.
@Suite struct TraceAttributionTests {
    static let client = SocketAddress(ip: .v4(0x7F00_0001), port: 40000)
    static let server = SocketAddress(ip: .v4(0x7F00_0002), port: 49152)

    static func t(_ us: Int64) -> Timestamp { Timestamp(totalNanoseconds: 1_000_000_000_000 + us * 1000) }

    static func call(_ id: Int, _ s: Syscall, _ ret: Int64, at us: Int64, how: Int32? = nil) -> TracedCall {
        var c = TracedCall(
            id: id, pid: 10, tid: 10, comm: "python3", syscall: s, returnValue: ret, start: t(us),
            end: t(us + 5))
        c.socket = 7
        c.fd = 3
        c.how = how
        return c
    }

    static func packet(
        _ frame: Int, from: SocketAddress, to: SocketAddress, _ flags: TCPFlags, seq: UInt32,
        ack: UInt32, len: Int = 0, at us: Int64, win: UInt16 = 64
    ) -> PacketEvent {
        var p = PacketEvent(frame: frame, timestamp: t(us), proto: .tcp, length: len)
        p.source = from.ip
        p.destination = to.ip
        p.sourcePort = from.port
        p.destinationPort = to.port
        p.flags = flags
        p.seq = seq
        p.ack = ack
        p.stream = 0
        p.window = win
        return p
    }

    var sockets: [UInt64: SocketRecord] {
        var s = SocketRecord(inode: 7, family: 2, type: 1, owner: "python3[10]")
        s.local = Self.client
        s.remote = Self.server
        return [7: s]
    }

    @Test func seedClientConversation() {
        let c = Self.client
        let s = Self.server
        // Two sends (3 + 4 bytes), one recv of 10 bytes, then a recv of 0 (EOF), then close.
        let calls = [
            Self.call(1, .connect, 0, at: 0), Self.call(2, .sendto, 3, at: 100), Self.call(3, .sendto, 4, at: 200),
            Self.call(4, .recvfrom, 10, at: 900), Self.call(5, .recvfrom, 0, at: 950),
            Self.call(6, .close, 0, at: 1000),
        ]
        var packets = [
            Self.packet(1, from: c, to: s, .syn, seq: 0, ack: 0, at: 10),
            Self.packet(2, from: s, to: c, [.syn, .ack], seq: 0, ack: 1, at: 11),
            Self.packet(3, from: c, to: s, .ack, seq: 1, ack: 1, at: 12),
            // The first send's segment is stamped after the second call started: content decides, not time.
            Self.packet(4, from: c, to: s, [.psh, .ack], seq: 1, ack: 1, len: 3, at: 210),
            Self.packet(5, from: s, to: c, .ack, seq: 1, ack: 4, at: 211),
            Self.packet(6, from: c, to: s, [.psh, .ack], seq: 4, ack: 1, len: 4, at: 212),
            // The reply arrives long before recv is entered.
            Self.packet(7, from: s, to: c, [.psh, .ack], seq: 1, ack: 8, len: 10, at: 300),
            Self.packet(8, from: c, to: s, .ack, seq: 8, ack: 11, at: 301),
            Self.packet(9, from: s, to: c, [.fin, .ack], seq: 11, ack: 8, at: 302),
            Self.packet(10, from: c, to: s, [.fin, .ack], seq: 8, ack: 12, at: 1003),
            Self.packet(11, from: s, to: c, .ack, seq: 12, ack: 9, at: 1004),
            // The first data segment again: a retransmission, by the kernel.
            Self.packet(12, from: c, to: s, [.psh, .ack], seq: 1, ack: 12, len: 3, at: 1200),
        ]
        let related = TraceAttributor(calls: calls, sockets: sockets).attribute(&packets)
        #expect(related.count == packets.count)
        let byFrame = Dictionary(uniqueKeysWithValues: packets.map { ($0.frame, $0) })
        #expect(byFrame[1]?.call == 1 && byFrame[1]?.byKernel == false)
        #expect(byFrame[2]?.byKernel == true && byFrame[2]?.reason == "SYN/ACK of a listening socket")
        #expect(byFrame[3]?.call == 1 && byFrame[3]?.byKernel == false)
        #expect(byFrame[4]?.call == 2)
        #expect(byFrame[5]?.byKernel == true && byFrame[5]?.reason == "ACK of data")
        #expect(byFrame[6]?.call == 3)
        #expect(byFrame[7]?.consumedBy == 4 && byFrame[7]?.call == nil)
        #expect(byFrame[8]?.reason == "ACK of data")
        #expect(byFrame[9]?.consumedBy == 5)
        #expect(byFrame[10]?.call == 6 && byFrame[10]?.byKernel == false)
        #expect(byFrame[11]?.reason == "ACK of FIN")
        #expect(byFrame[12]?.byKernel == true && byFrame[12]?.reason == "retransmission of bytes from call #2")
    }

    @Test func shutdownOwnsTheFINAndRSTForAClosedPortIsTheKernels() {
        let c = Self.client
        let s = Self.server
        let calls = [
            Self.call(1, .connect, 0, at: 0), Self.call(2, .shutdown, 0, at: 50, how: 1),
            Self.call(3, .close, 0, at: 90),
        ]
        var packets = [
            Self.packet(1, from: c, to: s, .syn, seq: 0, ack: 0, at: 10),
            Self.packet(2, from: s, to: c, [.syn, .ack], seq: 0, ack: 1, at: 11),
            Self.packet(3, from: c, to: s, .ack, seq: 1, ack: 1, at: 12),
            Self.packet(4, from: c, to: s, [.fin, .ack], seq: 1, ack: 1, at: 95),
        ]
        TraceAttributor(calls: calls, sockets: sockets).attribute(&packets)
        #expect(packets[3].call == 2)

        var refused = [
            Self.packet(1, from: c, to: s, .syn, seq: 0, ack: 0, at: 10),
            Self.packet(2, from: s, to: c, [.rst, .ack], seq: 1, ack: 1, at: 11, win: 0),
        ]
        TraceAttributor(calls: [Self.call(1, .connect, -111, at: 0)], sockets: sockets).attribute(&refused)
        #expect(refused[0].call == 1)
        #expect(refused[1].byKernel && refused[1].reason == "RST: no socket listening on this port")
    }

    @Test func unrelatedTrafficIsNotClaimed() {
        let other = SocketAddress(ip: .v4(0x7F00_0009), port: 1234)
        var packets = [Self.packet(1, from: other, to: Self.server, .syn, seq: 0, ack: 0, at: 10)]
        let related = TraceAttributor(calls: [Self.call(1, .connect, 0, at: 0)], sockets: sockets).attribute(&packets)
        #expect(related.isEmpty)
        #expect(packets[0].call == nil)
    }
}

@Suite struct PythonHookTests {
    @Test func appliesToPythonInterpretersOnly() {
        #expect(PythonHook.applies(to: ["python3", "x.py"]))
        #expect(PythonHook.applies(to: ["/usr/bin/python3.11"]))
        #expect(!PythonHook.applies(to: ["curl", "http://x"]))
    }

    @Test func keepsTheUsersPythonPathAfterTheHook() {
        let env = PythonHook.environment(["PYTHONPATH": "/mine", "HOME": "/root"], hookDirectory: "/tmp/h")
        #expect(env["PYTHONPATH"] == "/tmp/h:/mine")
        #expect(env["PACKETFLOW_NOTE_FD"] == String(PythonHook.noteFD))
        #expect(env["HOME"] == "/root")
    }

    @Test func hookFileIsWrittenAndRemoved() {
        guard let dir = PythonHook.install() else {
            Issue.record("cannot write to /tmp")
            return
        }
        #expect(access(dir + "/sitecustomize.py", R_OK) == 0)
        PythonHook.remove(dir)
        #expect(access(dir, F_OK) != 0)
    }
}

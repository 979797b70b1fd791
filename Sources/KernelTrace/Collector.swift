import CKernelTrace
import Glibc
import PacketWire
import Sockets

/// Decodes the ring buffer's records as they are drained, and at the end numbers the calls and resolves the
/// packets' references to them.
final class Collector {
    /// REALTIME - MONOTONIC at the current drain.
    var offset: Int64
    var calls: [KernelCall] = []
    var packets: [PendingPacket] = []
    var processEvents: [KernelProcessEvent] = []
    var warnings: [String] = []
    var malformed: UInt64 = 0
    /// The Python hook's current line per thread (kernel tid) when it writes notes instead of keeping a buffer.
    var notes: [UInt32: String] = [:]
    /// The last line and command name decoded per thread: a loop's calls repeat them, and a string per record
    /// was most of the decoding's cost.
    var lastLine: [UInt32: (bytes: [UInt8], text: String)] = [:]
    var comms: [UInt32: (bytes: [UInt8], text: String)] = [:]

    /// A packet whose context still names calls by their kernel ids.
    struct PendingPacket {
        var packet: KernelPacket
        var softirq: UInt8
        var traced: Bool
        var exiting: Bool
        var callID: UInt64
        var callSocket: UInt64
        var lastCallID: UInt64
        var syscall: Int32
    }

    init(offset: Int64) { self.offset = offset }

    func time(_ ktime: UInt64) -> Timestamp { Timestamp(totalNanoseconds: Int64(bitPattern: ktime) &+ offset) }

    func take(_ data: UnsafeRawPointer, _ size: Int) {
        guard size >= MemoryLayout<kt_header>.size else {
            malformed += 1
            return
        }
        let header = data.load(as: kt_header.self)
        switch Int(header.kind) {
        case Int(KT_EVENT_CALL.rawValue):
            guard size >= MemoryLayout<kt_call>.size else {
                malformed += 1
                return
            }
            let c = data.load(as: kt_call.self)
            let lineLength = min(Int(c.line_len), size - MemoryLayout<kt_call>.size)
            let line = UnsafeRawBufferPointer(start: data + MemoryLayout<kt_call>.size, count: lineLength)
            call(c, line: line)
        case Int(KT_EVENT_PACKET.rawValue):
            guard size >= MemoryLayout<kt_packet>.size else {
                malformed += 1
                return
            }
            packet(data.load(as: kt_packet.self))
        case Int(KT_EVENT_TASK.rawValue):
            guard size >= MemoryLayout<kt_task_event>.size else {
                malformed += 1
                return
            }
            task(data.load(as: kt_task_event.self))
        case Int(KT_EVENT_NOTE.rawValue):
            guard size >= MemoryLayout<kt_note_event>.size - Int(KT_LINE_MAX) else {
                malformed += 1
                return
            }
            let ids = data.load(fromByteOffset: MemoryLayout<kt_header>.size, as: kt_task_ids.self)
            let textOffset = MemoryLayout<kt_note_event>.offset(of: \kt_note_event.text)!
            let length = data.load(
                fromByteOffset: MemoryLayout<kt_note_event>.offset(of: \kt_note_event.len)!,
                as: UInt32.self)
            let text = UnsafeRawBufferPointer(
                start: data + textOffset, count: min(Int(length), max(0, size - textOffset)))
            note(ids, text)
        default:
            malformed += 1
        }
    }

    func call(_ c: kt_call, line: UnsafeRawBufferPointer) {
        var fdArgument: Int32? = c.fd
        let nr = c.nr
        if nr == 41 || nr == 53 { fdArgument = nil }  // socket, socketpair
        let unfinished = c.flags & UInt8(KT_CALL_UNFINISHED) != 0
        var fd = fdArgument
        // socket(2) and accept(2) are recorded on the descriptor they made, as the ptrace engine records them.
        if nr == 41 || nr == 43 || nr == 288 { fd = c.ret >= 0 && !unfinished ? Int32(truncatingIfNeeded: c.ret) : nil }
        let args = withUnsafeBytes(of: c.args) { Array($0.bindMemory(to: UInt64.self)) }
        var source: String?
        if !line.isEmpty {
            if let last = lastLine[c.task.kernel_tid], last.bytes.elementsEqual(line) {
                source = last.text
            } else {
                let text = String(decoding: line, as: UTF8.self)
                lastLine[c.task.kernel_tid] = (Array(line), text)
                source = text
            }
        } else if let note = notes[c.task.kernel_tid] {
            source = note
        }
        calls.append(
            KernelCall(
                number: 0, kernelID: c.id, pid: Int32(bitPattern: c.task.pid), tid: Int32(bitPattern: c.task.tid),
                comm: comm(c.task), syscallNumber: nr, fd: fd, fdArgument: fdArgument,
                socket: c.flags & UInt8(KT_CALL_HAS_SOCKET) != 0 ? Self.socket(c.socket) : nil,
                stateBefore: c.flags & UInt8(KT_CALL_HAS_SOCKET) != 0 && nr != 41 ? c.state_before : nil,
                arguments: args, returnValue: c.ret, unfinished: unfinished, start: time(c.start),
                end: time(c.header.time),
                address: withUnsafeBytes(of: c.addr) { Array($0.prefix(Int(c.addr_len))) }, addressAt: c.addr_from,
                data: withUnsafeBytes(of: c.data) { Array($0.prefix(Int(c.data_len))) }, dataAt: c.data_from,
                dataCount: Int(c.data_total),
                words: withUnsafeBytes(of: c.words) { Array($0.prefix(Int(c.words_len))) }, wordsAt: c.words_from,
                source: source))
    }

    func packet(_ p: kt_packet) {
        var key: KernelPacketKey?
        if p.flags & UInt8(KT_PACKET_IP) != 0 {
            let v6 = p.ether_type == 0x86dd
            let transport = p.flags & UInt8(KT_PACKET_TRANSPORT) != 0
            let tcp = p.ip_proto == 6 && transport
            key = KernelPacketKey(
                source: Self.address(p.saddr, v6: v6), destination: Self.address(p.daddr, v6: v6),
                ipProtocol: p.ip_proto, sourcePort: transport ? p.sport : 0, destinationPort: transport ? p.dport : 0,
                seq: tcp ? p.seq : 0, ack: tcp ? p.ack : 0, flags: tcp ? p.tcp_flags : 0, length: Int(p.payload_len))
        }
        let traced = p.flags & UInt8(KT_PACKET_TRACED) != 0
        let packet = KernelPacket(
            time: time(p.header.time), key: key, context: .untraced,
            task: KernelTask(
                pid: Int32(bitPattern: p.task.pid), tid: Int32(bitPattern: p.task.tid), comm: comm(p.task),
                traced: traced),
            socketPointer: p.sock, socketInode: p.inode != 0 ? p.inode : nil, socketState: p.sock_state,
            ifindex: Int32(bitPattern: p.ifindex), ipID: p.ip_id, window: p.window, length: Int(p.skb_len))
        packets.append(
            PendingPacket(
                packet: packet, softirq: p.softirq, traced: traced, exiting: p.flags & UInt8(KT_PACKET_EXITING) != 0,
                callID: p.call_id, callSocket: p.call_sock, lastCallID: p.last_call_id, syscall: p.syscall))
    }

    func task(_ t: kt_task_event) {
        let what: KernelProcessEvent.What
        switch t.what {
        case UInt32(KT_TASK_FORK.rawValue):
            what = .fork(
                childKernelTID: Int32(bitPattern: t.child_kernel_tid),
                newProcess: t.child_kernel_tid == t.child_kernel_pid)
        case UInt32(KT_TASK_EXEC.rawValue): what = .exec
        case UInt32(KT_TASK_EXIT.rawValue): what = .exit(code: t.exit_code, wholeProcess: t.group_dead != 0)
        default:
            malformed += 1
            return
        }
        processEvents.append(
            KernelProcessEvent(
                time: time(t.header.time), pid: Int32(bitPattern: t.task.pid), tid: Int32(bitPattern: t.task.tid),
                comm: Self.string(t.task.comm), what: what))
    }

    /// How process `pid` (the tracer's namespace) ended, as a shell gives it, when its last thread's exit was seen.
    func exitStatus(of pid: Int32) -> Int32? {
        for event in processEvents.reversed() where event.pid == pid {
            if case .exit(let code, true) = event.what { return KernelTracer.Root.shellStatus(code) }
        }
        return nil
    }

    /// "PFN1 file:line statement" before a socket method, "PFN0" after (the hook without ctypes).
    func note(_ ids: kt_task_ids, _ text: UnsafeRawBufferPointer) {
        let note = String(decoding: text, as: UTF8.self)
        if note.hasPrefix("PFN1 ") {
            notes[ids.kernel_tid] = String(note.dropFirst(5))
        } else if note.hasPrefix("PFN0") {
            notes[ids.kernel_tid] = nil
        }
    }

    /// Numbers the calls by start (ties by kernel id, the entry order) and, `resolvingPackets`, each packet's calls
    /// (without, the packets keep the context they were recorded with).
    func finish(exitStatus: Int32?, detached: Bool, globals: kt_globals?, resolvingPackets: Bool = true)
        -> KernelTraceRun
    {
        calls.sort { ($0.start, $0.kernelID) < ($1.start, $1.kernelID) }
        var number: [UInt64: Int] = [:]
        for i in calls.indices {
            calls[i].number = i + 1
            number[calls[i].kernelID] = i + 1
        }
        let resolved =
            !resolvingPackets
            ? packets.map(\.packet)
            : packets.map { pending -> KernelPacket in
                var p = pending.packet
                let inCall = pending.callID != 0 ? number[pending.callID] : nil
                if pending.softirq != 0 {
                    p.context = .softirq(Softirq(vector: pending.softirq - 1), interrupted: inCall)
                } else if pending.traced, let inCall {
                    p.context = .call(inCall, ownSocket: p.socketPointer != 0 && p.socketPointer == pending.callSocket)
                } else if pending.traced {
                    p.context = .afterCall(
                        lastCall: pending.lastCallID != 0 ? number[pending.lastCallID] : nil,
                        syscall: pending.syscall >= 0 ? pending.syscall : nil, exiting: pending.exiting)
                }
                return p
            }
        var counters = KernelTraceCounters()
        counters.malformedRecords = malformed
        if let g = globals {
            let c = withUnsafeBytes(of: g.counters) { Array($0.bindMemory(to: UInt64.self)) }
            counters.lostCalls = c[Int(KT_LOST_CALLS.rawValue)]
            counters.lostPackets = c[Int(KT_LOST_PACKETS.rawValue)]
            counters.lostTaskEvents = c[Int(KT_LOST_TASKS.rawValue)]
            counters.lostNotes = c[Int(KT_LOST_NOTES.rawValue)]
            counters.unreadableHeaders = c[Int(KT_UNREADABLE_HEADERS.rawValue)]
            counters.unreadableUserMemory = c[Int(KT_UNREADABLE_USER.rawValue)]
        }
        var warnings = self.warnings
        let lost = counters.lostCalls + counters.lostPackets + counters.lostTaskEvents + counters.lostNotes
        if lost > 0 {
            warnings.append(
                "the kernel side lost \(counters.lostCalls) calls and \(counters.lostPackets) packet records "
                    + "(ring buffer full): a larger ring buffer or fewer events would keep them")
        }
        if counters.unreadableHeaders > 0 {
            warnings.append("\(counters.unreadableHeaders) packets' headers could not be read in the kernel")
        }
        if counters.malformedRecords > 0 {
            warnings.append("\(counters.malformedRecords) records from the kernel side were malformed and skipped")
        }
        return KernelTraceRun(
            calls: calls, packets: resolved, processEvents: processEvents, exitStatus: exitStatus, detached: detached,
            counters: counters, warnings: warnings)
    }

    func comm(_ ids: kt_task_ids) -> String {
        withUnsafeBytes(of: ids.comm) { raw in
            let name = raw.prefix { $0 != 0 }
            if let known = comms[ids.kernel_tid], known.bytes.elementsEqual(name) { return known.text }
            let text = String(decoding: name, as: UTF8.self)
            comms[ids.kernel_tid] = (Array(name), text)
            return text
        }
    }

    static func string<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    static func address<T>(_ bytes: T, v6: Bool) -> IPAddress {
        withUnsafeBytes(of: bytes) { b in
            if v6 {
                var hi: UInt64 = 0
                var lo: UInt64 = 0
                for i in 0..<8 { hi = hi << 8 | UInt64(b[i]) }
                for i in 8..<16 { lo = lo << 8 | UInt64(b[i]) }
                return .v6(hi, lo)
            }
            return .v4(UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3]))
        }
    }

    static func socket(_ s: kt_socket) -> KernelSocket {
        let family = Int32(s.family)
        var local: SocketAddress?
        var remote: SocketAddress?
        if family == AF_INET || family == AF_INET6 {
            let v6 = family == AF_INET6
            local = SocketAddress(ip: address(s.local_addr, v6: v6), port: s.local_port)
            let r = SocketAddress(ip: address(s.remote_addr, v6: v6), port: s.remote_port)
            if r.port != 0 { remote = r }
        }
        return KernelSocket(
            pointer: s.sock, inode: s.inode, family: family, type: Int32(s.type), ipProtocol: Int32(s.protocol),
            state: s.state, local: local, remote: remote)
    }
}

/// A traced task forked, exec'd or exited.
public struct KernelProcessEvent: Sendable {
    public enum What: Sendable, Hashable {
        /// `childKernelTID` is the new task's id in the initial pid namespace; `newProcess` false for a thread.
        case fork(childKernelTID: Int32, newProcess: Bool)
        case exec
        /// `code` as wait(2) encodes it; `wholeProcess` when the last thread of the process exited.
        case exit(code: Int32, wholeProcess: Bool)
    }

    public var time: Timestamp
    public var pid: Int32
    public var tid: Int32
    public var comm: String
    public var what: What
}

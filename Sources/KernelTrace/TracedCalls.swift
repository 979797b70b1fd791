import PacketWire
import Sockets
import SyscallTrace
import Timeline

// The eBPF engine's calls in the ptrace engine's shape (SyscallTrace's TracedCall and SocketRecord), so the
// session, attribution and every renderer take them unchanged. The arguments are decoded by the ptrace engine's
// own decoder (SyscallDecoder), from the registers at entry and the bytes the BPF program copied from the
// program's memory at the call's exit: both engines show the same arguments by construction.

/// The bytes the BPF program copied from a traced thread for one call, at the addresses it read them from. The
/// decoder reads them as it reads a live thread's memory; an address the program did not copy reads as
/// unreadable (an empty preview, a placeholder), as memory the ptrace engine cannot read does.
struct CopiedMemory: TraceeMemory {
    var regions: [(at: UInt64, bytes: [UInt8])]

    init(_ call: KernelCall) {
        regions = [(call.addressAt, call.address), (call.dataAt, call.data), (call.wordsAt, call.words)]
            .filter { $0.0 != 0 && !$0.1.isEmpty }
    }

    func read(at address: UInt64, count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        for region in regions where address >= region.at && address - region.at < UInt64(region.bytes.count) {
            let offset = Int(address - region.at)
            return Array(region.bytes[offset..<min(region.bytes.count, offset + count)])
        }
        return []
    }
}

extension KernelCall {
    /// The registers as the decoder takes them: the six arguments at entry and the result.
    var registers: SyscallRegisters {
        func argument(_ i: Int) -> UInt64 { i < arguments.count ? arguments[i] : 0 }
        return SyscallRegisters(
            number: UInt64(bitPattern: Int64(syscallNumber)), arg1: argument(0), arg2: argument(1),
            arg3: argument(2), arg4: argument(3), arg5: argument(4), arg6: argument(5),
            result: UInt64(bitPattern: returnValue))
    }

    /// The address connect(2) was given, for a socket the kernel no longer shows connected: a refused connect
    /// leaves its socket with no remote end, but its SYN and the RST went to this one (the ptrace engine keeps it
    /// so too).
    var connectedTo: SocketAddress? {
        guard syscallNumber == Int32(Syscall.connect.rawValue), let socket, socket.isTCP || socket.isUDP else {
            return nil
        }
        return SyscallDecoder.address(.connect, registers, CopiedMemory(self)).0
    }

    /// The call as the ptrace engine records it; nil for a system call it does not decode (never recorded).
    public var tracedCall: TracedCall? {
        guard let syscall = Syscall(rawValue: Int(syscallNumber)) else { return nil }
        var call = TracedCall(
            id: number, pid: pid, tid: tid, comm: comm, syscall: syscall, returnValue: returnValue, start: start,
            end: end)
        call.fd = fd
        call.source = source
        let r = registers
        let memory = CopiedMemory(self)
        let (address, addressText) = SyscallDecoder.address(syscall, r, memory)
        var made: [Int32] = []
        switch syscall {
        case .socketpair: made = SyscallDecoder.socketPair(r, ok: returnValue >= 0, memory)
        case .accept, .accept4: if returnValue >= 0 { made = [Int32(truncatingIfNeeded: returnValue)] }
        case .shutdown: call.how = Int32(truncatingIfNeeded: r.arg2)
        default: break
        }
        call.args = SyscallDecoder.arguments(
            syscall, entry: r, result: returnValue, fd: fdArgument, addressText: addressText, made: made, memory)
        if let socket {
            call.socket = socket.inode
            call.local = socket.local
            call.remote = socket.remote ?? (syscall == .connect && (socket.isTCP || socket.isUDP) ? address : nil)
            call.state = socket.tcpState
        }
        return call
    }
}

extension KernelTraceRun {
    /// The calls as the ptrace engine's ``TracedCall``s, same numbering.
    public var tracedCalls: [TracedCall] {
        // Decoding each call's arguments takes ~0.5 µs: a long trace on both cores.
        mapInHalves(count: calls.count) { calls[$0].compactMap(\.tracedCall) }
    }

    /// The sockets the calls used, by inode, as the ptrace engine's table: family and type, the owner (the first
    /// process that used it), where it was last seen bound and connected, and whether it listened.
    public var sockets: [UInt64: SocketRecord] {
        var table: [UInt64: SocketRecord] = [:]
        for call in calls {
            guard let s = call.socket, s.inode != 0 else { continue }
            var record =
                table[s.inode]
                ?? SocketRecord(inode: s.inode, family: s.family, type: s.type, owner: "\(call.comm)[\(call.pid)]")
            if let local = s.local, local.port != 0 || record.local == nil { record.local = local }
            if let remote = s.remote ?? (record.remote == nil ? call.connectedTo : nil) { record.remote = remote }
            if call.syscallNumber == Int32(Syscall.listen.rawValue) && call.succeeded { record.listening = true }
            table[s.inode] = record
        }
        return table
    }
}

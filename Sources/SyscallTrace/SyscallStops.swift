import Glibc
import PacketWire
import Sockets
import SystemCalls
import Timeline

/// The syscall stops: which calls are worth an exit stop, recording a finished call into the calls and the socket
/// table, and the seccomp filter injected for descriptors that became sockets.
extension StopLoop {
    func syscallStop(tid: Int32, _ held: inout HeldDuplicate) -> Resumption {
        guard let regs = kernel.registers(tid) else { return .resume() }
        let thread = threads[tid]
        if let injection = thread?.injection {
            return injectionStop(tid: tid, injection: injection, regs: regs)
        }
        if let t = thread, let pending = t.pending, t.inSyscall {
            t.pending = nil
            t.inSyscall = false
            if Self.isRestart(Int64(bitPattern: regs.result)) {
                t.interrupted = pending
                return .resume()
            }
            let sockets = finish(tid: tid, pending: pending, regs: regs, &held)
            if useSeccomp, !sockets.isEmpty, let process = processes[t.tgid] {
                let missing = Array(Set(sockets).subtracting(process.covered)).sorted()
                if !missing.isEmpty { return cover(missing, tid: tid, process: process) }
            }
            return .resume()
        }
        if !useSeccomp {
            // Attach mode sees every call's entry and exit; an exit without a recorded entry is skipped.
            if !regs.atEntry || thread?.inSyscall == true {
                thread?.inSyscall = false
                return .resume()
            }
        }
        guard let call = Syscall(rawValue: Int(truncatingIfNeeded: regs.number)) else {
            if !useSeccomp { thread?.inSyscall = true }
            return .resume()
        }
        let tgid = thread?.tgid ?? tid
        let fdArg = regs.fdArgument
        let memory = KernelMemory(kernel: kernel, tid: tid)
        if call == .write, let noteFD, fdArg == noteFD {
            // A note from the Python hook: remember it for this thread's next calls and swallow the write.
            let bytes = SyscallDecoder.bytes(memory, regs.arg2, min(Int(clamping: regs.arg3), 4096))
            let text = String(decoding: bytes, as: UTF8.self)
            if text.hasPrefix("PFA "), let address = UInt64(text.dropFirst(4)) {
                thread?.noteAddress = address
            }
            thread?.note = text.hasPrefix("PFN1 ") ? String(text.dropFirst(5)) : nil
            kernel.skipSyscall(tid, returning: Int64(clamping: regs.arg3))
            if !useSeccomp { thread?.inSyscall = true }
            return .resume()
        }
        var entry: FDEntry?
        if call != .socket && call != .socketpair {
            entry = table[tgid, fdArg]
            if entry == nil, let found = table.entry(pid: tgid, thread: tid, fd: fdArg, &held) {
                entry = found
                table[tgid, fdArg] = found
                if case .socket(let inode) = found, table[inode] == nil {
                    _ = table.learn(inode: inode, pid: tgid, thread: tid, fd: fdArg, owner: owner(tgid), &held)
                }
            }
            var isSocket = false
            if case .socket = entry { isSocket = true }
            let changesTable = call == .dup || call == .dup2 || call == .dup3 || call == .fcntl
            if call.isFileDescriptorIO && !isSocket && !changesTable {
                // Not a socket: let it run without an exit stop, which keeps file I/O cheap. After close the number
                // may be reopened as anything (open(2) is not traced), so forget what it was.
                if call == .close { table.closed(tgid, fdArg) }
                if !useSeccomp { thread?.inSyscall = true }
                return .resume()
            }
            if call == .fcntl && regs.arg2 != 0 && regs.arg2 != UInt64(F_DUPFD_CLOEXEC) {
                // Only F_DUPFD and F_DUPFD_CLOEXEC change the table.
                if !useSeccomp { thread?.inSyscall = true }
                return .resume()
            }
        }
        if let thread, let address = thread.noteAddress { readNote(thread, tid: tid, address: address) }
        var pending = Pending(syscall: call, regs: regs, start: kernel.now(), fd: fdArg, entry: entry)
        if call == .socket || call == .socketpair { pending.fd = nil }
        if let earlier = thread?.interrupted {
            thread?.interrupted = nil
            if earlier.syscall == call && earlier.fd == pending.fd {
                // The kernel restarted the interrupted call: one call, which began at the first attempt.
                pending.start = earlier.start
            } else {
                finish(tid: tid, pending: earlier, regs: nil, &held)
            }
        }
        if call == .close, case .socket(let inode) = entry, table[inode]?.isTCP == true {
            // The state before close(2), read through a duplicate that is closed again before the call runs (so it
            // never delays the FIN); the state after is derived from it, which avoids scanning /proc/net/tcp.
            pending.stateBefore = table.refresh(inode: inode, pid: tgid, thread: tid, fd: fdArg, &held)
        }
        (pending.address, pending.addressText) = SyscallDecoder.address(call, regs, memory)
        thread?.pending = pending
        thread?.inSyscall = true
        return .resume(toExit: true)
    }

    /// Reads the line the Python hook keeps for `thread` (see ``PythonHook``): the first 256 bytes, the rest of the
    /// 1 KiB buffer only when the line is longer. A line equal to the thread's previous one reuses its string.
    func readNote(_ thread: ThreadState, tid: Int32, address: UInt64) {
        let base = noteScratch.baseAddress!
        var count = kernel.readMemory(tid, at: address, into: UnsafeMutableRawBufferPointer(start: base, count: 256))
        var end = count > 0 ? memchr(base, 0, count) : nil
        if count == 256, end == nil {
            let rest = UnsafeMutableRawBufferPointer(start: base + 256, count: noteScratch.count - 256)
            let more = kernel.readMemory(tid, at: address + 256, into: rest)
            if more > 0 {
                count += more
                end = memchr(base + 256, 0, more)
            }
        }
        let length = end.map { base.distance(to: $0) } ?? max(count, 0)
        guard length > 0 else {
            thread.note = nil
            return
        }
        let line = UnsafeRawBufferPointer(start: base, count: length)
        if let last = thread.lastNote, last.bytes.elementsEqual(line) {
            thread.note = last.text
            return
        }
        let text = String(decoding: line, as: UTF8.self)
        thread.lastNote = (Array(line), text)
        thread.note = text
    }

    /// Starts the injected seccomp(2) that covers `fds`; the thread is at the exit stop of the call that made them.
    func cover(_ fds: [Int32], tid: Int32, process: ProcessState) -> Resumption {
        switch kernel.injectFilter(tid, gated: Syscall.fdGated.map { Int32($0.rawValue) }, fds: fds) {
        case .failure(let error):
            uncovered(fds, process: process, why: error.message)
            return .resume()
        case .success(let saved):
            threads[tid]?.injection = Injection(saved: saved, fds: fds)
            return .throughInjection
        }
    }

    /// The injected call's entry stop, then its exit stop, where the thread gets its own registers back.
    func injectionStop(tid: Int32, injection: Injection, regs: SyscallRegisters) -> Resumption {
        if !injection.sawEntry && regs.atEntry {
            threads[tid]?.injection?.sawEntry = true
            return .throughInjection
        }
        kernel.restoreRegisters(tid, injection.saved)
        threads[tid]?.injection = nil
        let tgid = threads[tid]?.tgid ?? tid
        if let process = processes[tgid] {
            if regs.result == 0 {
                process.covered.formUnion(injection.fds)
            } else {
                let error = Errno(rawValue: Int32(truncatingIfNeeded: -Int64(bitPattern: regs.result)))
                uncovered(injection.fds, process: process, why: error.message)
            }
        }
        return .restored(raise: injection.signal, tgid: tgid)
    }

    func uncovered(_ fds: [Int32], process: ProcessState, why: String) {
        // Not retried for these numbers: the next attempt would most likely fail the same way.
        process.covered.formUnion(fds)
        warnings.append(
            "\(process.comm): read/write/close on descriptor \(fds.map(String.init).joined(separator: ", ")) are not "
                + "traced (adding a seccomp filter failed: \(why)); their bytes are missing from the attribution")
    }

    /// ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK: a tracer sees these at the exit stop of
    /// a call a signal interrupted; the program never does.
    static func isRestart(_ result: Int64) -> Bool { [-512, -513, -514, -516].contains(result) }

    /// Records a finished call (regs nil: the thread died inside it, or a signal interrupted it and the program saw
    /// EINTR) and updates the descriptor and socket tables. Returns the socket descriptors the call made, which the
    /// seccomp filter must cover.
    @discardableResult
    func finish(tid: Int32, pending: Pending, regs: SyscallRegisters?, _ held: inout HeldDuplicate) -> [Int32] {
        let tgid = threads[tid]?.tgid ?? tid
        guard let process = processes[tgid] else { return [] }
        let result: Int64 = regs.map { Int64(bitPattern: $0.result) } ?? -Int64(EINTR)
        let r = pending.regs
        var call = TracedCall(
            id: calls.count + 1, pid: tgid, tid: tid, comm: process.comm, syscall: pending.syscall,
            returnValue: result, start: pending.start, end: kernel.now())
        call.fd = pending.fd
        call.source = threads[tid]?.note
        var inode: UInt64?
        if case .socket(let i) = pending.entry { inode = i }
        let ok = result >= 0
        let memory = KernelMemory(kernel: kernel, tid: tid)
        var sockets: [Int32] = []
        var made: [Int32] = []

        switch pending.syscall {
        case .socket:
            if ok, case .socket(let i)? = table.entry(pid: tgid, thread: tid, fd: Int32(result), &held) {
                table.opened(tgid, Int32(result), socket: i)
                sockets.append(Int32(result))
                inode = i
                call.fd = Int32(result)
                table[i] = SocketRecord(
                    inode: i, family: Int32(truncatingIfNeeded: r.arg1), type: Int32(truncatingIfNeeded: r.arg2) & 0xf,
                    owner: call.actor)
            }
        case .socketpair:
            made = SyscallDecoder.socketPair(r, ok: ok, memory)
            for fd in made where ok && fd >= 0 {
                if case .socket(let i)? = table.entry(pid: tgid, thread: tid, fd: fd, &held) {
                    table.opened(tgid, fd, socket: i)
                    sockets.append(fd)
                    table[i] = SocketRecord(
                        inode: i, family: Int32(truncatingIfNeeded: r.arg1),
                        type: Int32(truncatingIfNeeded: r.arg2) & 0xf, owner: call.actor)
                    inode = inode ?? i
                }
            }
        case .accept, .accept4:
            if ok, case .socket(let i)? = table.entry(pid: tgid, thread: tid, fd: Int32(result), &held) {
                table.opened(tgid, Int32(result), socket: i)
                sockets.append(Int32(result))
                let listener = inode.flatMap { table[$0] }
                table[i] = SocketRecord(
                    inode: i, family: listener?.family ?? 0, type: listener?.type ?? 1, owner: call.actor)
                inode = i
                call.fd = Int32(result)
                made = [Int32(result)]
            }
        case .dup, .dup2, .dup3, .fcntl:
            if ok, let old = pending.fd {
                table.duplicated(tgid, old, to: Int32(result))
                if inode != nil { sockets.append(Int32(result)) }
            }
            guard inode != nil else { return sockets }
        case .close:
            if let fd = pending.fd { table.closed(tgid, fd) }
            guard inode != nil else { return sockets }
        case .listen:
            if ok, let i = inode { table[i]?.listening = true }
        case .shutdown:
            call.how = Int32(truncatingIfNeeded: r.arg2)
        default:
            break
        }
        call.args = SyscallDecoder.arguments(
            pending.syscall, entry: r, result: result, fd: pending.fd, addressText: pending.addressText, made: made,
            memory)
        guard let socketInode = inode else { return sockets }
        call.socket = socketInode
        var state: TCPState?
        if table[socketInode] == nil, let fd = call.fd {
            state = table.learn(inode: socketInode, pid: tgid, thread: tid, fd: fd, owner: owner(tgid), &held)
        }
        // Where the socket is now, seen through a duplicate of the tracee's descriptor. A socket socket(2) just
        // made is unbound and CLOSED: nothing to ask.
        if pending.syscall == .socket, var s = table[socketInode], s.family == AF_INET || s.family == AF_INET6 {
            s.local = SocketAddress(ip: s.family == AF_INET ? IPAddress.anyV4 : IPAddress.anyV6, port: 0)
            table[socketInode] = s
            if s.isTCP { state = .closed }
        } else if pending.syscall != .close, let fd = call.fd, ok || pending.syscall == .connect {
            state = table.refresh(inode: socketInode, pid: tgid, thread: tid, fd: fd, &held)
        }
        if var s = table[socketInode] {
            if s.remote == nil, pending.syscall == .connect, s.isTCP || s.isUDP { s.remote = pending.address }
            table[socketInode] = s
            call.local = s.local
            call.remote = s.remote
            if pending.syscall == .close, s.isTCP {
                call.state =
                    table.isOpen(socketInode)
                    ? pending.stateBefore : SocketTable.stateAfterClose(pending.stateBefore)
            } else if s.isTCP {
                call.state = state
            }
        }
        calls.append(call)
        return sockets
    }
}

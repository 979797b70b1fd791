import CTraceShims
import Glibc
import PacketWire
import Sockets
import Timeline

extension Tracer {
    // MARK: system calls

    func syscallStop(tid: Int32) {
        var regs = ctrace_regs()
        guard ctrace_get_regs(tid, &regs) == 0 else {
            resume(tid)
            return
        }
        let thread = threads[tid]
        if let injection = thread?.injection {
            injectionStop(tid: tid, injection: injection, regs: regs)
            return
        }
        if let t = thread, let pending = t.pending, t.inSyscall {
            t.pending = nil
            t.inSyscall = false
            if Self.isRestart(Int64(bitPattern: regs.rax)) {
                t.interrupted = pending
                resume(tid)
                return
            }
            coverRequest.removeAll(keepingCapacity: true)
            finish(tid: tid, pending: pending, regs: regs)
            if useSeccomp, !coverRequest.isEmpty, let process = processes[t.tgid] {
                let missing = Array(Set(coverRequest).subtracting(process.covered)).sorted()
                if !missing.isEmpty {
                    cover(missing, tid: tid, process: process)
                    return
                }
            }
            resume(tid)
            return
        }
        if !useSeccomp {
            // Attach mode sees every call's entry and exit; an exit without a recorded entry is skipped.
            if regs.rax != UInt64(bitPattern: -Int64(ENOSYS)) || thread?.inSyscall == true {
                thread?.inSyscall = false
                resume(tid)
                return
            }
        }
        guard let call = Syscall(rawValue: Int(regs.orig_rax)) else {
            if !useSeccomp { thread?.inSyscall = true }
            resume(tid)
            return
        }
        let tgid = thread?.tgid ?? tid
        let fdArg = Int32(truncatingIfNeeded: regs.rdi)
        if call == .write, let noteFD = options.noteFD, fdArg == noteFD {
            // A note from the Python hook: remember it for this thread's next calls and swallow the write.
            let length = min(Int(regs.rdx), 4096)
            let bytes = Self.readMemory(tid, regs.rsi, length)
            let text = String(decoding: bytes, as: UTF8.self)
            if text.hasPrefix("PFA "), let address = UInt64(text.dropFirst(4)) {
                thread?.noteAddress = address
            }
            thread?.note = text.hasPrefix("PFN1 ") ? String(text.dropFirst(5)) : nil
            _ = ctrace_skip_syscall(tid, Int64(regs.rdx))
            if !useSeccomp { thread?.inSyscall = true }
            resume(tid)
            return
        }
        var entry: FDEntry?
        if call != .socket && call != .socketpair {
            entry = processes[tgid]?.fds[fdArg]
            if entry == nil, let found = self.entry(pid: tgid, fd: fdArg) {
                entry = found
                processes[tgid]?.fds[fdArg] = found
                if case .socket(let inode) = found, sockets[inode] == nil {
                    learnSocket(inode: inode, pid: tgid, fd: fdArg, family: 0, type: 0)
                }
            }
            var isSocket = false
            if case .socket = entry { isSocket = true }
            let changesTable = call == .dup || call == .dup2 || call == .dup3 || call == .fcntl
            if call.isFileDescriptorIO && !isSocket && !changesTable {
                // Not a socket: let it run without an exit stop, which keeps file I/O cheap. After close the number
                // may be reopened as anything (open(2) is not traced), so forget what it was.
                if call == .close { processes[tgid]?.fds.closed(fdArg) }
                if !useSeccomp { thread?.inSyscall = true }
                resume(tid)
                return
            }
            if call == .fcntl && regs.rsi != 0 && regs.rsi != 1030 {
                // Only F_DUPFD and F_DUPFD_CLOEXEC change the table.
                if !useSeccomp { thread?.inSyscall = true }
                resume(tid)
                return
            }
        }
        if let thread, let address = thread.noteAddress { readNote(thread, tid: tid, address: address) }
        var pending = Pending(syscall: call, regs: regs, start: Self.now(), fd: fdArg, entry: entry)
        if call == .socket || call == .socketpair { pending.fd = nil }
        if let earlier = thread?.interrupted {
            thread?.interrupted = nil
            if earlier.syscall == call && earlier.fd == pending.fd {
                // The kernel restarted the interrupted call: one call, which began at the first attempt.
                pending.start = earlier.start
            } else {
                finish(tid: tid, pending: earlier, regs: nil)
            }
        }
        if call == .close, case .socket(let inode) = entry, sockets[inode]?.isTCP == true {
            // The state before close(2), read through a duplicate that is closed again before the call runs (so it
            // never delays the FIN); the state after is derived from it, which avoids scanning /proc/net/tcp.
            refresh(inode: inode, pid: tgid, fd: fdArg)
            pending.stateBefore = lastState
        }
        switch call {
        case .connect, .bind:
            (pending.address, pending.addressText) = Self.readAddress(tid, regs.rsi, Int(regs.rdx))
        case .sendto:
            if regs.r8 != 0 { (pending.address, pending.addressText) = Self.readAddress(tid, regs.r8, Int(regs.r9)) }
        default: break
        }
        thread?.pending = pending
        thread?.inSyscall = true
        resume(tid, needExit: true)
    }

    /// Reads the line the Python hook keeps for `thread` (see ``PythonHook``): the first 256 bytes, the rest of the
    /// 1 KiB buffer only when the line is longer. A line equal to the thread's previous one reuses its string.
    func readNote(_ thread: ThreadState, tid: Int32, address: UInt64) {
        let base = noteScratch.baseAddress!
        var count = ctrace_read_memory(tid, UInt(address), base, 256)
        var end = count > 0 ? memchr(base, 0, count) : nil
        if count == 256, end == nil {
            let more = ctrace_read_memory(tid, UInt(address + 256), base + 256, noteScratch.count - 256)
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
    func cover(_ fds: [Int32], tid: Int32, process: ProcessState) {
        let gated = Syscall.fdGated.map { Int32($0.rawValue) }
        var saved = ctrace_saved_regs()
        let ok = gated.withUnsafeBufferPointer { g in
            fds.withUnsafeBufferPointer { f in
                ctrace_inject_filter(tid, g.baseAddress, Int32(g.count), f.baseAddress, Int32(f.count), &saved) == 0
            }
        }
        guard ok else {
            uncovered(fds, process: process, why: Errno(rawValue: errno).message)
            resume(tid)
            return
        }
        threads[tid]?.injection = Injection(saved: saved, fds: fds)
        releaseDuplicate()
        _ = ctrace_ptrace(PT.syscall, tid, 0, 0)
    }

    /// The injected call's entry stop, then its exit stop, where the thread gets its own registers back.
    func injectionStop(tid: Int32, injection: Injection, regs: ctrace_regs) {
        if !injection.sawEntry && regs.rax == UInt64(bitPattern: -Int64(ENOSYS)) {
            threads[tid]?.injection?.sawEntry = true
            _ = ctrace_ptrace(PT.syscall, tid, 0, 0)
            return
        }
        var saved = injection.saved
        _ = ctrace_restore_regs(tid, &saved)
        threads[tid]?.injection = nil
        let tgid = threads[tid]?.tgid ?? tid
        if let process = processes[tgid] {
            if regs.rax == 0 {
                process.covered.formUnion(injection.fds)
            } else {
                uncovered(injection.fds, process: process, why: Errno(rawValue: Int32(truncatingIfNeeded: -Int64(bitPattern: regs.rax))).message)
            }
        }
        resume(tid)
        if injection.signal != 0 { _ = ctrace_tgkill(tgid, tid, injection.signal) }
    }

    func uncovered(_ fds: [Int32], process: ProcessState, why: String) {
        // Not retried for these numbers: the next attempt would most likely fail the same way.
        process.covered.formUnion(fds)
        warnings.append(
            "\(process.comm): read/write/close on descriptor \(fds.map(String.init).joined(separator: ", ")) are not "
                + "traced (adding a seccomp filter failed: \(why)); their bytes are missing from the attribution")
    }

    /// Sockets of ours a launched program inherits (open without close-on-exec).
    static func inheritedSockets() -> [Int32] {
        ProcFiles.names(in: "/proc/self/fd").compactMap { name -> Int32? in
            guard let fd = Int32(name), fcntl(fd, F_GETFD) & FD_CLOEXEC == 0,
                case .socket? = fdEntry(pid: getpid(), fd: fd)
            else { return nil }
            return fd
        }.sorted()
    }

    /// ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK: a tracer sees these at the exit stop of
    /// a call a signal interrupted; the program never does.
    static func isRestart(_ result: Int64) -> Bool { [-512, -513, -514, -516].contains(result) }

    /// Records a finished call (regs nil: the thread died inside it, or a signal interrupted it and the program saw
    /// EINTR) and updates the descriptor and socket tables.
    func finish(tid: Int32, pending: Pending, regs: ctrace_regs?) {
        let tgid = threads[tid]?.tgid ?? tid
        guard let process = processes[tgid] else { return }
        lastState = nil
        let result: Int64 = regs.map { Int64(bitPattern: $0.rax) } ?? -Int64(EINTR)
        let r = pending.regs
        var call = TracedCall(
            id: calls.count + 1, pid: tgid, tid: tid, comm: process.comm, syscall: pending.syscall,
            returnValue: result, start: pending.start, end: Self.now())
        call.fd = pending.fd
        call.source = threads[tid]?.note
        var inode: UInt64?
        if case .socket(let i) = pending.entry { inode = i }
        let ok = result >= 0

        switch pending.syscall {
        case .socket:
            let family = Int32(truncatingIfNeeded: r.rdi)
            let type = Int32(truncatingIfNeeded: r.rsi) & 0xf
            call.args = [("domain", .string(Self.familyName(family))), ("type", .string(Self.typeName(type)))]
            if ok, let e = self.entry(pid: tgid, fd: Int32(result)), case .socket(let i) = e {
                process.fds.opened(Int32(result), socket: i)
                coverRequest.append(Int32(result))
                inode = i
                call.fd = Int32(result)
                sockets[i] = SocketRecord(inode: i, family: family, type: type, owner: call.actor)
            }
        case .socketpair:
            var pair: [Int32] = [-1, -1]
            if ok {
                pair = Self.readInt32s(tid, r.r10, 2) ?? pair
                for fd in pair where fd >= 0 {
                    if let e = self.entry(pid: tgid, fd: fd), case .socket(let i) = e {
                        process.fds.opened(fd, socket: i)
                        coverRequest.append(fd)
                        sockets[i] = SocketRecord(
                            inode: i, family: Int32(truncatingIfNeeded: r.rdi),
                            type: Int32(truncatingIfNeeded: r.rsi) & 0xf, owner: call.actor)
                        inode = inode ?? i
                    }
                }
            }
            call.args = [("domain", .string(Self.familyName(Int32(truncatingIfNeeded: r.rdi)))), ("sv", .string("[\(pair[0]), \(pair[1])]"))]
        case .accept, .accept4:
            call.args = [("fd", .int(Int(pending.fd ?? -1)))]
            if ok, let e = self.entry(pid: tgid, fd: Int32(result)), case .socket(let i) = e {
                process.fds.opened(Int32(result), socket: i)
                coverRequest.append(Int32(result))
                let listener = inode.flatMap { sockets[$0] }
                sockets[i] = SocketRecord(inode: i, family: listener?.family ?? 0, type: listener?.type ?? 1, owner: call.actor)
                inode = i
                call.fd = Int32(result)
                call.args.append(("newfd", .int(Int(result))))
            }
        case .dup, .dup2, .dup3, .fcntl:
            if ok, let old = pending.fd {
                process.fds.duplicated(old, to: Int32(result))
                if inode != nil { coverRequest.append(Int32(result)) }
            }
            guard inode != nil else { return }
            call.args = [("oldfd", .int(Int(pending.fd ?? -1)))]
        case .close:
            if let fd = pending.fd { process.fds.closed(fd) }
            guard inode != nil else { return }
            call.args = [("fd", .int(Int(pending.fd ?? -1)))]
        case .connect, .bind:
            call.args = [("fd", .int(Int(pending.fd ?? -1))), ("addr", .string(pending.addressText ?? "?"))]
        case .listen:
            call.args = [("fd", .int(Int(pending.fd ?? -1))), ("backlog", .int(Int(Int32(truncatingIfNeeded: r.rsi))))]
            if ok, let i = inode { sockets[i]?.listening = true }
        case .shutdown:
            let how = Int32(truncatingIfNeeded: r.rsi)
            call.how = how
            call.args = [("fd", .int(Int(pending.fd ?? -1))), ("how", .string(["SHUT_RD", "SHUT_WR", "SHUT_RDWR"][Int(max(0, min(how, 2)))]))]
        case .setsockopt, .getsockopt:
            call.args = [("fd", .int(Int(pending.fd ?? -1)))] + Self.socketOption(tid: tid, pending.syscall, r, ok: ok)
        case .write, .sendto:
            let count = ok ? Int(result) : Int(r.rdx)
            let data = Self.readMemory(tid, r.rsi, min(count, 256))
            call.args = [("fd", .int(Int(pending.fd ?? -1))), ("data", .bytes(count: count, preview: TextEscaper.preview(data, limit: 256)))]
            if let a = pending.addressText { call.args.append(("addr", .string(a))) }
        case .read, .recvfrom:
            call.args = [("fd", .int(Int(pending.fd ?? -1))), ("size", .int(Int(r.rdx)))]
            if ok {
                let data = Self.readMemory(tid, r.rsi, min(Int(result), 256))
                call.args.append(("data", .bytes(count: Int(result), preview: TextEscaper.preview(data, limit: 256))))
            }
        default:
            call.args = [("fd", .int(Int(pending.fd ?? -1)))]
        }
        guard let socketInode = inode else { return }
        call.socket = socketInode
        if sockets[socketInode] == nil, let fd = call.fd {
            learnSocket(inode: socketInode, pid: tgid, fd: fd, family: 0, type: 0)
        }
        // Where the socket is now, seen through a duplicate of the tracee's descriptor. A socket socket(2) just
        // made is unbound and CLOSED: nothing to ask.
        if pending.syscall == .socket, var s = sockets[socketInode], s.family == AF_INET || s.family == AF_INET6 {
            s.local = SocketAddress(ip: s.family == AF_INET ? IPAddress.anyV4 : IPAddress.anyV6, port: 0)
            sockets[socketInode] = s
            if s.isTCP { lastState = .closed }
        } else if pending.syscall != .close, let fd = call.fd, ok || pending.syscall == .connect {
            refresh(inode: socketInode, pid: tgid, fd: fd)
        }
        if var s = sockets[socketInode] {
            if s.remote == nil, pending.syscall == .connect, s.isTCP || s.isUDP { s.remote = pending.address }
            sockets[socketInode] = s
            call.local = s.local
            call.remote = s.remote
            if pending.syscall == .close, s.isTCP {
                let shared = processes.values.contains { !$0.fds.descriptors(of: socketInode).isEmpty }
                call.state = shared ? pending.stateBefore : Self.stateAfterClose(pending.stateBefore)
            } else if s.isTCP, call.state == nil {
                call.state = lastState
            }
        }
        calls.append(call)
    }
}

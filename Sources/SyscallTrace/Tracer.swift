import CTraceShims
import Glibc
import PacketWire
import Sockets
import Synchronization
import Timeline

/// Why tracing could not start or went wrong, as one line the user can act on.
public struct TraceError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ message: String) { description = message }
}

// ptrace(2) requests, options and events (linux/ptrace.h), which Swift's Glibc does not import as enums.
enum PT {
    static let cont: Int32 = 7
    static let kill: Int32 = 8
    static let detach: Int32 = 17
    static let syscall: Int32 = 24
    static let setOptions: Int32 = 0x4200
    static let getEventMsg: Int32 = 0x4201
    static let seize: Int32 = 0x4206
    static let interrupt: Int32 = 0x4207
    static let listen: Int32 = 0x4208

    static let traceSysGood: UInt = 0x1
    static let traceFork: UInt = 0x2
    static let traceVfork: UInt = 0x4
    static let traceClone: UInt = 0x8
    static let traceExec: UInt = 0x10
    static let traceSeccomp: UInt = 0x80
    static let exitKill: UInt = 0x10_0000

    static let eventFork: Int32 = 1
    static let eventVfork: Int32 = 2
    static let eventClone: Int32 = 3
    static let eventExec: Int32 = 4
    static let eventSeccomp: Int32 = 7
    static let eventStop: Int32 = 128
}

/// Set from the SIGINT/SIGTERM handler: 1 = stop requested, 2 = also forward the signal to the program (it came
/// from kill(1), not from the terminal, so the program did not get it itself).
let traceInterrupt = Atomic<Int>(0)
/// How many stop requests arrived: the second one kills a launched program.
let traceInterruptCount = Atomic<Int>(0)

/// What the tracer saw: the calls on sockets in order, the sockets, and how the program ended.
public struct TraceResult: Sendable {
    public var calls: [TracedCall]
    public var sockets: [UInt64: SocketRecord]
    /// The traced program's exit status (128 + signal when killed), nil after a detach.
    public var exitStatus: Int32?
    public var detached: Bool
    /// Things the tracer could not do, one line each (e.g. a socket whose read/write calls could not be followed).
    public var warnings: [String] = []
}

/// Runs or attaches to a program under `ptrace(2)` and records its socket calls.
///
/// Launch mode installs a seccomp-bpf filter in the child so it stops only at the calls of ``Syscall/traced``;
/// read/write/close (``Syscall/fdGated``) stop only for descriptor numbers that have been sockets: when a call
/// returns a socket on a number not yet covered, the tracer makes the thread call seccomp(2) once more to stack a
/// filter for that number. So file I/O does not stop at all, and a number once covered stays covered (filters can
/// only be added), which is harmless because the descriptor table tells a file on that number from a socket. Attach mode (`-p`) cannot install a filter into a running process and
/// stops at every call instead. Forks, vforks, clones and exec are followed.
public final class Tracer {
    public struct Options: Sendable {
        public var command: [String] = []
        public var attach: Int32?
        public var environment: [String: String] = [:]
        /// The descriptor number whose write(2)s carry Python hook notes (never a real descriptor: negative).
        public var noteFD: Int32?
        public init() {}
    }

    struct Pending {
        var syscall: Syscall
        var regs: ctrace_regs
        var start: Timestamp
        var fd: Int32?
        var entry: FDEntry?
        var address: SocketAddress?
        /// The address as shown: "127.0.0.2:49152", a Unix socket's path, "@name" for an abstract one.
        var addressText: String?
        var stateBefore: TCPState?
    }

    /// A seccomp(2) call the tracer put into a thread at a syscall-exit-stop (see ctrace_inject_filter).
    struct Injection {
        var saved: ctrace_saved_regs
        var fds: [Int32]
        var sawEntry = false
        /// A signal that arrived meanwhile, raised again once the registers are back.
        var signal: Int32 = 0
    }

    /// A class: the stop handlers look a thread up once and change it in place (a struct in the dictionary was
    /// copied whole, registers and all, at every stop).
    final class ThreadState {
        var tgid: Int32
        var pending: Pending?
        var note: String?
        var inSyscall = false
        var injection: Injection?
        /// Where this thread's Python hook keeps the line of the socket method it is in (see PythonHook).
        var noteAddress: UInt64?
        /// The last line read from that buffer, as bytes and as text: a loop's calls repeat it.
        var lastNote: (bytes: [UInt8], text: String)?
        /// A call a signal interrupted with a kernel restart code: the kernel runs it again (then it is one call
        /// that started here) or the program sees EINTR (then it is recorded so at the thread's next call).
        var interrupted: Pending?

        init(tgid: Int32) { self.tgid = tgid }
    }

    final class ProcessState {
        var fds = FDTable()
        var comm: String
        var pidfd: Int32 = -1
        /// Descriptor numbers whose read/write/close the process's seccomp filters send to the tracer. Filters are
        /// inherited by fork and kept by exec, and so is this.
        var covered: Set<Int32> = []
        init(comm: String) { self.comm = comm }
        func copy() -> ProcessState {
            let p = ProcessState(comm: comm)
            p.fds = fds
            p.covered = covered
            return p
        }
    }

    let options: Options
    var threads: [Int32: ThreadState] = [:]
    var processes: [Int32: ProcessState] = [:]
    var calls: [TracedCall] = []
    var sockets: [UInt64: SocketRecord] = [:]
    var mainPid: Int32 = 0
    var exitStatus: Int32?
    var useSeccomp = true
    var detaching = false
    /// Threads sent a SIGSTOP to bring them to a stop for detaching: a launched program's processes are traced
    /// through PTRACE_TRACEME, not seized, so PTRACE_INTERRUPT cannot stop them. That SIGSTOP is not passed on.
    var stoppedToDetach: Set<Int32> = []
    /// Children reported by fork/clone events whose first stop has not been seen, and stops seen before the event.
    var unknownStops: Set<Int32> = []
    /// Socket descriptors a finished call produced: they must be covered by the filter (launch mode).
    var coverRequest: [Int32] = []
    var warnings: [String] = []

    public init(_ options: Options) { self.options = options }

    /// Runs until every traced process has exited (or, after Ctrl-C in attach mode, has been detached).
    public func run() throws(TraceError) -> TraceResult {
        guard tracingSupported else { throw TraceError("packetflow trace: unsupported architecture (x86_64 only)") }
        if let pid = options.attach {
            try attach(pid)
        } else {
            try launch()
        }
        loop()
        for p in processes.values where p.pidfd >= 0 { Glibc.close(p.pidfd) }
        return TraceResult(
            calls: Self.numberedByStart(calls), sockets: sockets, exitStatus: exitStatus,
            detached: options.attach != nil, warnings: warnings)
    }

    /// A call is recorded when it returns, so with several threads or processes the numbers followed the order of
    /// returns: a recv that waited got a higher number than calls that started after it. The timeline reads top
    /// to bottom by start, so the calls are numbered by start (ties by return); the array keeps return order,
    /// which the byte accounting of attribution follows.
    static func numberedByStart(_ calls: [TracedCall]) -> [TracedCall] {
        var out = calls
        let order = calls.indices.sorted { (calls[$0].start, calls[$0].id) < (calls[$1].start, calls[$1].id) }
        for (n, i) in order.enumerated() { out[i].id = n + 1 }
        return out
    }

    // MARK: starting

    func launch() throws(TraceError) {
        guard let file = options.command.first else { throw TraceError("no command given") }
        var argv: [UnsafeMutablePointer<CChar>?] = options.command.map { strdup($0) } + [nil]
        var env: [UnsafeMutablePointer<CChar>?] = options.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in env { free(p) }
        }
        let numbers = Syscall.alwaysTraced.map { Int32($0.rawValue) }
        let gated = Syscall.fdGated.map { Int32($0.rawValue) }
        // Read/write/close are traced from the start for the hook's note descriptor and for sockets the program
        // inherits from us; every other number is added when it becomes a socket.
        let initial = (options.noteFD.map { [$0] } ?? []) + Self.inheritedSockets()
        let pid = numbers.withUnsafeBufferPointer { nrs in
            gated.withUnsafeBufferPointer { g in
                initial.withUnsafeBufferPointer { fds in
                    argv.withUnsafeMutableBufferPointer { a in
                        env.withUnsafeMutableBufferPointer { e in
                            ctrace_spawn_traced(
                                file, a.baseAddress, e.baseAddress, nrs.baseAddress, Int32(nrs.count), g.baseAddress,
                                Int32(g.count), fds.baseAddress, Int32(fds.count))
                        }
                    }
                }
            }
        }
        if pid < 0 { throw TraceError("fork failed: \(Errno(rawValue: errno).message)") }
        mainPid = pid
        var status: Int32 = 0
        while waitpid(pid, &status, 0x4000_0000) < 0 && errno == EINTR {}
        if status & 0x7f != 0x7f {
            // The child never reached its SIGSTOP: PTRACE_TRACEME failed.
            let code = (status >> 8) & 0xff
            throw TraceError(
                code == 126
                    ? "ptrace is not permitted here: run as root, or allow it (sysctl kernel.yama.ptrace_scope=0; in a "
                        + "container add --cap-add SYS_PTRACE and an unconfined seccomp profile)"
                    : "the program exited before tracing started (status \(code))")
        }
        let opts =
            PT.traceSysGood | PT.traceFork | PT.traceVfork | PT.traceClone | PT.traceExec | PT.traceSeccomp
            | PT.exitKill
        if ctrace_ptrace(PT.setOptions, pid, 0, opts) != 0 {
            let e = errno
            kill(pid, SIGKILL)
            throw TraceError("PTRACE_SETOPTIONS failed: \(Errno(rawValue: e).message)")
        }
        threads[pid] = ThreadState(tgid: pid)
        let process = ProcessState(comm: Self.comm(of: pid))
        process.covered = Set(initial)
        processes[pid] = process
        _ = ctrace_ptrace(PT.cont, pid, 0, 0)
    }

    func attach(_ pid: Int32) throws(TraceError) {
        useSeccomp = false
        mainPid = pid
        // EPERM means it exists but is not ours to signal: PTRACE_SEIZE below says what to do about that.
        guard kill(pid, 0) == 0 || errno == EPERM else {
            throw TraceError("no process \(pid): \(Errno(rawValue: errno).message)")
        }
        let opts = PT.traceSysGood | PT.traceFork | PT.traceVfork | PT.traceClone | PT.traceExec
        let process = ProcessState(comm: Self.comm(of: pid))
        processes[pid] = process
        // Threads may start while we attach; read the task list until it stops growing.
        var attached: Set<Int32> = []
        for _ in 0..<3 {
            let tids = ProcFiles.names(in: "/proc/\(pid)/task").compactMap { Int32($0) }
            let fresh = tids.filter { !attached.contains($0) }
            if fresh.isEmpty { break }
            for tid in fresh {
                if ctrace_ptrace(PT.seize, tid, 0, opts) != 0 {
                    let e = errno
                    if attached.isEmpty {
                        throw TraceError(
                            e == EPERM
                                ? "cannot attach to \(pid): not permitted (another user's or a setuid process needs root; "
                                    + "for your own, sysctl kernel.yama.ptrace_scope=0)"
                                : "cannot attach to \(pid): \(Errno(rawValue: e).message)")
                    }
                    continue
                }
                attached.insert(tid)
                threads[tid] = ThreadState(tgid: pid)
                _ = ctrace_ptrace(PT.interrupt, tid, 0, 0)
            }
        }
        // Descriptors opened before we came: learn the sockets among them.
        for name in ProcFiles.names(in: "/proc/\(pid)/fd") {
            guard let fd = Int32(name), let entry = Self.fdEntry(pid: pid, fd: fd) else { continue }
            process.fds[fd] = entry
            if case .socket(let inode) = entry { learnSocket(inode: inode, pid: pid, fd: fd, family: 0, type: 0) }
        }
    }

    // MARK: the wait loop

    func loop() {
        var status: Int32 = 0
        while !threads.isEmpty || !unknownStops.isEmpty {
            let flag = traceInterrupt.load(ordering: .relaxed)
            if flag != 0 { handleInterrupt(flag) }
            let tid = waitpid(-1, &status, 0x4000_0000)
            if tid < 0 {
                if errno == EINTR { continue }
                break  // ECHILD: nothing left
            }
            handle(tid: tid, status: status)
        }
    }

    func handleInterrupt(_ flag: Int) {
        traceInterrupt.store(0, ordering: .relaxed)
        // After the command itself has exited, what is left are processes it started and left running (`sleep &`):
        // signalling the command does nothing then, so Ctrl-C (or SIGTERM) detaches from them, as strace does,
        // and they go on untraced.
        let commandGone = options.attach == nil && exitStatus != nil
        if options.attach != nil || commandGone {
            // Detach: each thread must be in a ptrace stop to be released, so interrupt them all and release each
            // at its next stop.
            detaching = true
            for (tid, thread) in threads where ctrace_ptrace(PT.interrupt, tid, 0, 0) != 0 {
                stoppedToDetach.insert(tid)
                _ = ctrace_tgkill(thread.tgid, tid, SIGSTOP)
            }
        } else if traceInterruptCount.load(ordering: .relaxed) >= 2 {
            kill(mainPid, SIGKILL)
        } else if flag == 2 {
            kill(mainPid, SIGINT)
        }
    }

    func resume(_ tid: Int32, signal: Int32 = 0, needExit: Bool = false) {
        releaseDuplicate()
        if threads[tid]?.injection != nil {
            // Mid-injection the thread runs on borrowed registers: go through the injected call's stops and hold
            // any signal until its own registers are back.
            if signal != 0 { threads[tid]?.injection?.signal = signal }
            _ = ctrace_ptrace(PT.syscall, tid, 0, 0)
            return
        }
        if detaching {
            _ = ctrace_ptrace(PT.detach, tid, 0, UInt(signal))
            threads[tid] = nil
            return
        }
        let request = !useSeccomp || needExit ? PT.syscall : PT.cont
        _ = ctrace_ptrace(request, tid, 0, UInt(signal))
    }

    func handle(tid: Int32, status: Int32) {
        // Every path resumes through resume() or cover(), which close it first; this is the backstop.
        defer { releaseDuplicate() }
        let low = status & 0x7f
        if low == 0 || (low != 0x7f) {
            // Exited or killed.
            if tid == mainPid {
                exitStatus = low == 0 ? (status >> 8) & 0xff : 128 + low
            }
            if let t = threads[tid], let pending = t.pending ?? t.interrupted {
                // Killed mid-call: keep the call, with no result.
                finish(tid: tid, pending: pending, regs: nil)
            }
            if let t = threads.removeValue(forKey: tid), t.tgid == tid, let p = processes.removeValue(forKey: tid),
                p.pidfd >= 0
            {
                Glibc.close(p.pidfd)
            }
            unknownStops.remove(tid)
            return
        }
        let sig = (status >> 8) & 0xff
        let event = status >> 16
        if threads[tid] == nil {
            // A new child's first stop can arrive before its parent's fork event; remember it.
            unknownStops.insert(tid)
            threads[tid] = ThreadState(tgid: Self.tgid(of: tid) ?? tid)
            let tgid = threads[tid]!.tgid
            if processes[tgid] == nil { processes[tgid] = ProcessState(comm: Self.comm(of: tgid)) }
            if sig == SIGSTOP && event == 0 || event == PT.eventStop {
                unknownStops.remove(tid)
                resume(tid)
                return
            }
        }
        switch (sig, event) {
        case (SIGTRAP, PT.eventSeccomp):
            syscallStop(tid: tid)
        case (SIGTRAP | 0x80, 0):
            syscallStop(tid: tid)
        case (SIGTRAP, PT.eventFork), (SIGTRAP, PT.eventVfork), (SIGTRAP, PT.eventClone):
            var msg: UInt = 0
            _ = ctrace_ptrace(PT.getEventMsg, tid, 0, UInt(bitPattern: withUnsafeMutablePointer(to: &msg) { $0 }))
            let child = Int32(truncatingIfNeeded: msg)
            let parentTgid = threads[tid]?.tgid ?? tid
            let childTgid = Self.tgid(of: child) ?? child
            if threads[child] == nil { threads[child] = ThreadState(tgid: childTgid) }
            threads[child]!.tgid = childTgid
            if childTgid != parentTgid {
                // A forked child's thread is the forking thread's copy, hook buffer included.
                threads[child]!.noteAddress = threads[tid]?.noteAddress
            }
            if childTgid != parentTgid, let parent = processes[parentTgid] {
                // A new process starts with a copy of its parent's descriptors.
                let copy = parent.copy()
                if let existing = processes[childTgid] { copy.pidfd = existing.pidfd }
                processes[childTgid] = copy
            }
            resume(tid)
        case (SIGTRAP, PT.eventExec):
            let tgid = threads[tid]?.tgid ?? tid
            if let p = processes[tgid] {
                p.comm = Self.comm(of: tgid)
                p.fds.afterExec { Self.fdEntry(pid: tgid, fd: $0) }
            }
            threads[tid]?.note = nil
            threads[tid]?.noteAddress = nil
            resume(tid)
        case (_, PT.eventStop):
            // Group stop (a real SIGSTOP) with PTRACE_SEIZE: stay stopped but listen; interrupt stop: go on.
            if detaching {
                resume(tid)
            } else if sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU {
                _ = ctrace_ptrace(PT.listen, tid, 0, 0)
            } else {
                resume(tid)
            }
        case (SIGSTOP, 0) where unknownStops.contains(tid):
            unknownStops.remove(tid)
            resume(tid)
        default:
            // A signal for the program: deliver it (but not the SIGSTOP that only brought it here to detach).
            let ours = sig == SIGSTOP && stoppedToDetach.remove(tid) != nil
            resume(tid, signal: ours ? 0 : sig)
        }
    }

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

    /// Scratch space for the hook's line: one stop is handled at a time.
    let noteScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 16)

    deinit { noteScratch.deallocate() }

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

    var lastState: TCPState?

    /// What close(2) of the last descriptor does to a TCP socket (RFC 793 / tcp_close()).
    static func stateAfterClose(_ before: TCPState?) -> TCPState? {
        switch before {
        case .established?, .synReceived?: .finWait1
        case .closeWait?: .lastAck
        case .finWait1?, .finWait2?, .closing?, .lastAck?, .timeWait?: before
        case nil: nil
        default: .closed
        }
    }

    func learnSocket(inode: UInt64, pid: Int32, fd: Int32, family: Int32, type: Int32) {
        let owner = "\(processes[pid]?.comm ?? "?")[\(pid)]"
        sockets[inode] = SocketRecord(inode: inode, family: family, type: type, owner: owner)
        refresh(inode: inode, pid: pid, fd: fd)
    }

    /// getsockname/getpeername/TCP_INFO on a duplicate obtained with pidfd_getfd(2) (see ``duplicate(pid:fd:)``:
    /// it is closed before the thread runs again, so it never keeps the socket alive past the program's own close).
    func refresh(inode: UInt64, pid: Int32, fd: Int32) {
        lastState = nil
        let dup = duplicate(pid: pid, fd: fd)
        guard dup >= 0 else {
            if duplicatesRefused { refreshFromKernelTables(inode: inode, pid: pid) }
            return
        }
        guard var s = sockets[inode] else { return }
        var value: Int32 = 0
        var len = socklen_t(4)
        if s.family == 0, getsockopt(dup, SOL_SOCKET, SO_DOMAIN, &value, &len) == 0 { s.family = value }
        len = 4
        if s.type == 0, getsockopt(dup, SOL_SOCKET, SO_TYPE, &value, &len) == 0 { s.type = value }
        // A connected TCP socket's two ends never change: skip two calls per recorded call once both are known.
        let settled = s.isTCP && s.remote != nil && (s.local?.port ?? 0) != 0
        var storage = sockaddr_storage()
        len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let gotLocal = settled ? -1 : withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(dup, $0, &len) }
        }
        if gotLocal == 0, let a = SocketAddress(storage: storage), a.port != 0 || s.local == nil { s.local = a }
        len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        storage = sockaddr_storage()
        let gotRemote = settled ? -1 : withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(dup, $0, &len) }
        }
        if gotRemote == 0, let a = SocketAddress(storage: storage) { s.remote = a }
        if s.isTCP {
            var info = [UInt8](repeating: 0, count: 256)
            len = 256
            if getsockopt(dup, Int32(IPPROTO_TCP), 11 /* TCP_INFO */, &info, &len) == 0, len > 0 {
                lastState = TCPState(rawValue: info[0])
            }
        }
        sockets[inode] = s
    }

    /// Where a socket is and its TCP state from the kernel's tables when its descriptor cannot be duplicated.
    func refreshFromKernelTables(inode: UInt64, pid: Int32) {
        guard var s = sockets[inode] else { return }
        guard let (entry, family, type) = KernelTCPTable.socket(inode: inode, inNetworkOf: pid) else {
            // The kernel hashes every TCP socket but a CLOSED one (fresh, merely bound, refused, or reset).
            if s.isTCP { lastState = .closed }
            return
        }
        if s.family == 0 { s.family = family }
        if s.type == 0 { s.type = type }
        if entry.local.port != 0 || s.local == nil { s.local = entry.local }
        if entry.remote.port != 0 { s.remote = entry.remote }
        if s.isTCP { lastState = entry.state }
        sockets[inode] = s
    }

    /// Set when pidfd_open(2) or pidfd_getfd(2) is refused (a container's seccomp profile without CAP_SYS_PTRACE
    /// answers EPERM; kernels before 5.3 and 5.6 lack them): descriptors are then told apart through
    /// /proc/PID/fd, sockets are found by inode through sock_diag or /proc/PID/net, and the call is not tried again.
    var duplicatesRefused = false

    /// The duplicate of one tracee descriptor that the current stop works on: what the descriptor is (fstat) and
    /// where its socket is (getsockname, TCP_INFO) come from one pidfd_getfd(2) instead of a readlink of
    /// /proc/PID/fd/N plus a duplicate per question.
    var held: (pid: Int32, fd: Int32, dup: Int32)?

    /// A duplicate (in this process) of descriptor `fd` of process `pid`, or -1. Closed by ``releaseDuplicate()``
    /// before the tracee runs again.
    func duplicate(pid: Int32, fd: Int32) -> Int32 {
        if let h = held {
            if h.pid == pid && h.fd == fd { return h.dup }
            releaseDuplicate()
        }
        guard !duplicatesRefused else {
            errno = EPERM
            return -1
        }
        guard fd >= 0, let process = processes[pid] else {
            errno = fd < 0 ? EBADF : ESRCH
            return -1
        }
        func refused() -> Int32 {
            let error = errno
            if error == EPERM || error == ENOSYS || error == EACCES { duplicatesRefused = true }
            errno = error
            return -1
        }
        if process.pidfd < 0 { process.pidfd = ctrace_pidfd_open(pid) }
        guard process.pidfd >= 0 else { return refused() }
        let dup = ctrace_pidfd_getfd(process.pidfd, fd)
        guard dup >= 0 else { return refused() }
        held = (pid, fd, dup)
        return dup
    }

    func releaseDuplicate() {
        if let h = held {
            Glibc.close(h.dup)
            held = nil
        }
    }

    /// What descriptor `fd` of `pid` is: a socket's inode is the st_ino of a duplicate (the number in
    /// `socket:[inode]`). Falls back to /proc when no duplicate can be had; nil when the number is not open.
    func entry(pid: Int32, fd: Int32) -> FDEntry? {
        guard fd >= 0 else { return nil }
        let dup = duplicate(pid: pid, fd: fd)
        guard dup >= 0 else {
            return errno == EBADF ? nil : Self.fdEntry(pid: pid, fd: fd)
        }
        var st = stat()
        guard fstat(dup, &st) == 0 else { return Self.fdEntry(pid: pid, fd: fd) }
        return st.st_mode & S_IFMT == S_IFSOCK ? .socket(UInt64(st.st_ino)) : .other
    }

    // MARK: helpers

    static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(seconds: Int64(ts.tv_sec), nanoseconds: UInt32(ts.tv_nsec))
    }

    static func readMemory(_ pid: Int32, _ address: UInt64, _ length: Int) -> [UInt8] {
        guard length > 0, address != 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: length)
        let n = buffer.withUnsafeMutableBytes { ctrace_read_memory(pid, UInt(address), $0.baseAddress, length) }
        guard n > 0 else { return [] }
        if n < length { buffer.removeLast(length - n) }
        return buffer
    }

    /// A sockaddr in the tracee's memory: the IP address and port when it is one, and how to show it.
    static func readAddress(_ pid: Int32, _ address: UInt64, _ length: Int) -> (SocketAddress?, String?) {
        let bytes = readMemory(pid, address, min(max(length, 0), MemoryLayout<sockaddr_storage>.size))
        guard bytes.count >= 2 else { return (nil, nil) }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { $0.copyBytes(from: bytes) }
        if let ip = SocketAddress(storage: storage) { return (ip, ip.description) }
        return (nil, describeAddress(bytes))
    }

    /// A sockaddr that is not an IP one: a Unix socket's path (glibc's name-service lookups connect to
    /// /var/run/nscd/socket, for instance), "@name" for an abstract one, or its family.
    static func describeAddress(_ bytes: [UInt8]) -> String {
        let family = bytes.count >= 2 ? Int(bytes[0]) | Int(bytes[1]) << 8 : -1
        guard family == Int(AF_UNIX) else { return "family \(family)" }
        let path = bytes.dropFirst(2)
        guard let first = path.first else { return "(unnamed)" }
        if first == 0 {
            return "@" + TextEscaper.escape(path.dropFirst().prefix { $0 != 0 })
        }
        return TextEscaper.escape(path.prefix { $0 != 0 })
    }

    /// /proc/PID/fd/N -> "socket:[inode]" or anything else; nil when the number is not open.
    static func fdEntry(pid: Int32, fd: Int32) -> FDEntry? {
        guard fd >= 0, let target = ProcFiles.linkTarget("/proc/\(pid)/fd/\(fd)") else { return nil }
        return parseLink(target)
    }

    static func parseLink(_ target: String) -> FDEntry {
        guard target.hasPrefix("socket:["), target.hasSuffix("]"),
            let inode = UInt64(target.dropFirst(8).dropLast())
        else { return .other }
        return .socket(inode)
    }

    static func comm(of pid: Int32) -> String {
        ProcFiles.contents("/proc/\(pid)/comm")?.split(separator: "\n").first.map(String.init) ?? "?"
    }

    static func tgid(of tid: Int32) -> Int32? {
        let status = ProcFiles.contents("/proc/\(tid)/status") ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("Tgid:") }.flatMap { Int32($0.dropFirst(5).trimmingSpaces) }
    }

    /// A socket option call's level, option and value as strace shows them: names where known (`SOL_TCP`,
    /// `TCP_NODELAY`), an int value, `SO_LINGER`'s two fields, or the text of `TCP_CONGESTION`. A value is read
    /// from the program's memory: what setsockopt was given, or what getsockopt returned.
    static func socketOption(tid: Int32, _ call: Syscall, _ r: ctrace_regs, ok: Bool) -> [(String, ArgumentValue)] {
        let level = Int32(truncatingIfNeeded: r.rsi)
        let option = Int32(truncatingIfNeeded: r.rdx)
        var args: [(String, ArgumentValue)] = [
            ("level", SocketOptionNames.level(level).map { .string($0) } ?? .int(Int(level))),
            ("option", SocketOptionNames.option(level: level, option).map { .string($0) } ?? .int(Int(option))),
        ]
        guard ok, r.r10 != 0 else { return args }
        // setsockopt is given the length; getsockopt returns it through a pointer.
        guard let length = call == .getsockopt ? readInt32s(tid, r.r8, 1)?[0] : Int32(truncatingIfNeeded: r.r8),
            length > 0
        else { return args }
        if SocketOptionNames.isText(level: level, option) {
            let bytes = readMemory(tid, r.r10, min(Int(length), 64))
            args.append(("value", .string(String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self))))
        } else if SocketOptionNames.isLinger(level: level, option), length >= 8, let l = readInt32s(tid, r.r10, 2) {
            args += [("l_onoff", .int(Int(l[0]))), ("l_linger", .int(Int(l[1])))]
        } else if length == 4, let v = readInt32s(tid, r.r10, 1) {
            args.append(("value", .int(Int(v[0]))))
        }
        return args
    }

    /// `n` ints from the program's memory (a socketpair's descriptors, a socket option), or nil when unreadable.
    static func readInt32s(_ pid: Int32, _ address: UInt64, _ n: Int) -> [Int32]? {
        let bytes = readMemory(pid, address, 4 * n)
        guard bytes.count == 4 * n else { return nil }
        return bytes.withUnsafeBytes { raw in (0..<n).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self) } }
    }

    static func familyName(_ f: Int32) -> String {
        switch f {
        case 1: "AF_UNIX"
        case 2: "AF_INET"
        case 10: "AF_INET6"
        case 16: "AF_NETLINK"
        case 17: "AF_PACKET"
        default: "\(f)"
        }
    }

    static func typeName(_ t: Int32) -> String {
        switch t {
        case 1: "SOCK_STREAM"
        case 2: "SOCK_DGRAM"
        case 3: "SOCK_RAW"
        case 5: "SOCK_SEQPACKET"
        default: "\(t)"
        }
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return s
    }
}

/// Installs SIGINT/SIGTERM handlers that ask the tracer to stop: a terminal's Ctrl-C already reached the program
/// (same process group), a kill(1) aimed at packetflow is forwarded; a second one kills the program.
public func installTraceSignalHandlers() {
    var unblock = sigset_t()
    sigemptyset(&unblock)
    sigaddset(&unblock, SIGINT)
    sigaddset(&unblock, SIGTERM)
    pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
    var sa = sigaction()
    sa.__sigaction_handler.sa_sigaction = { _, info, _ in
        let fromKill = info.map { $0.pointee.si_code <= 0 } ?? false
        traceInterruptCount.add(1, ordering: .relaxed)
        traceInterrupt.store(fromKill ? 2 : 1, ordering: .relaxed)
    }
    sa.sa_flags = SA_SIGINFO  // no SA_RESTART: waitpid must return EINTR so the loop sees the flag
    sigaction(SIGINT, &sa, nil)
    sigaction(SIGTERM, &sa, nil)
}

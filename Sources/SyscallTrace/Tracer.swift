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

    /// Scratch space for the hook's line: one stop is handled at a time.
    let noteScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 16)

    deinit { noteScratch.deallocate() }

    var lastState: TCPState?

    /// Set when pidfd_open(2) or pidfd_getfd(2) is refused (a container's seccomp profile without CAP_SYS_PTRACE
    /// answers EPERM; kernels before 5.3 and 5.6 lack them): descriptors are then told apart through
    /// /proc/PID/fd, sockets are found by inode through sock_diag or /proc/PID/net, and the call is not tried again.
    var duplicatesRefused = false

    /// The duplicate of one tracee descriptor that the current stop works on: what the descriptor is (fstat) and
    /// where its socket is (getsockname, TCP_INFO) come from one pidfd_getfd(2) instead of a readlink of
    /// /proc/PID/fd/N plus a duplicate per question.
    var held: (pid: Int32, fd: Int32, dup: Int32)?

    // MARK: helpers

    static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(seconds: Int64(ts.tv_sec), nanoseconds: UInt32(ts.tv_nsec))
    }

    static func comm(of pid: Int32) -> String {
        ProcFiles.contents("/proc/\(pid)/comm")?.split(separator: "\n").first.map(String.init) ?? "?"
    }

    static func tgid(of tid: Int32) -> Int32? {
        let status = ProcFiles.contents("/proc/\(tid)/status") ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("Tgid:") }.flatMap { Int32($0.dropFirst(5).trimmingSpaces) }
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

import Glibc
import PacketWire
import Sockets
import SystemCalls
import Timeline

/// Why tracing could not start or went wrong, as one line the user can act on.
public struct TraceError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ message: String) { description = message }
}

/// What the tracer saw: the calls on sockets in order, the sockets, and how the program ended.
public struct TraceResult: Sendable {
    public var calls: [TracedCall]
    public var sockets: [UInt64: SocketRecord]
    /// The traced program's exit status (128 + signal when killed), nil after a detach.
    public var exitStatus: Int32?
    public var detached: Bool
    /// Things the tracer could not do, one line each (e.g. a socket whose read/write calls could not be followed).
    public var warnings: [String] = []
    /// TCP connections (one end, the other) the engine saw closed at both ends on the wire, so that nothing more
    /// can come from them: the eBPF engine's packet records tell it; the ptrace engine sees no packets (empty).
    public var closedConnections: [(SocketAddress, SocketAddress)] = []
}

/// The engine's former name, kept for the programs that use it.
public typealias Tracer = PtraceEngine

/// The ptrace trace engine: runs or attaches to a program under `ptrace(2)` and records its socket calls.
///
/// Launch mode installs a seccomp-bpf filter in the child so it stops only at the calls of ``Syscall/traced``;
/// read/write/close (``Syscall/fdGated``) stop only for descriptor numbers that have been sockets: when a call
/// returns a socket on a number not yet covered, the tracer makes the thread call seccomp(2) once more to stack a
/// filter for that number. So file I/O does not stop at all, and a number once covered stays covered (filters can
/// only be added), which is harmless because the descriptor table tells a file on that number from a socket.
/// Attach mode (`-p`) cannot install a filter into a running process and stops at every call instead. Forks,
/// vforks, clones and exec are followed.
///
/// The engine produces calls and the sockets they used (a ``TraceResult``); capture and attribution are the
/// session's. Inside, the ``StopLoop`` answers the stops, the ``SyscallDecoder`` turns registers into arguments and
/// the ``SocketTable`` follows descriptors and sockets, all through one ``PtraceKernel``.
public final class PtraceEngine {
    public struct Options: Sendable {
        public var command: [String] = []
        public var attach: Int32?
        public var environment: [String: String] = [:]
        /// The descriptor number whose write(2)s carry Python hook notes (never a real descriptor: negative).
        public var noteFD: Int32?
        public init() {}
    }

    let options: Options
    let kernel: any PtraceKernel
    let requests: () -> StopRequest?

    public convenience init(_ options: Options) {
        self.init(options, kernel: LinuxKernel(), requests: StopRequest.fromSignalHandler)
    }

    /// An engine over `kernel` (a scripted one in tests), told of Ctrl-C by `requests`.
    init(_ options: Options, kernel: any PtraceKernel, requests: @escaping () -> StopRequest?) {
        self.options = options
        self.kernel = kernel
        self.requests = requests
    }

    /// Runs until every traced process has exited (or, after Ctrl-C in attach mode, has been detached); `started`
    /// is called once the program runs traced (every thread seized, or the command launched).
    public func run(started: () -> Void = {}) throws(TraceError) -> TraceResult {
        guard tracingSupported else { throw TraceError("packetflow trace: unsupported architecture (x86_64 only)") }
        let loop = StopLoop(
            kernel: kernel, useSeccomp: options.attach == nil, noteFD: options.noteFD, requests: requests)
        if let pid = options.attach {
            try attach(pid, loop)
        } else {
            try launch(loop)
        }
        started()
        loop.run()
        loop.table.closeAll()
        return TraceResult(
            calls: Self.numberedByStart(loop.calls), sockets: loop.table.sockets, exitStatus: loop.exitStatus,
            detached: options.attach != nil, warnings: loop.warnings)
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

    func launch(_ loop: StopLoop) throws(TraceError) {
        guard !options.command.isEmpty else { throw TraceError("no command given") }
        // Read/write/close are traced from the start for the hook's note descriptor and for sockets the program
        // inherits from us; every other number is added when it becomes a socket.
        let initial = (options.noteFD.map { [$0] } ?? []) + kernel.inheritedSockets()
        let filter = LaunchFilter(
            always: Syscall.alwaysTraced.map { Int32($0.rawValue) }, gated: Syscall.fdGated.map { Int32($0.rawValue) },
            fds: initial)
        let pid: Int32
        switch kernel.spawnTraced(options.command, environment: options.environment, filter: filter) {
        case .success(let child): pid = child
        case .failure(let error): throw TraceError("fork failed: \(error.message)")
        }
        loop.mainPid = pid
        var first: WaitResult
        repeat { first = kernel.wait(pid) } while first == .interrupted
        guard case .report(_, .stopped) = first else {
            // The child never reached its SIGSTOP: PTRACE_TRACEME failed.
            let code: Int32 = if case .report(_, .exited(let code)) = first { code } else { 0 }
            throw TraceError(
                code == 126
                    ? "ptrace is not permitted here: run as root, or allow it (sysctl kernel.yama.ptrace_scope=0; in a "
                        + "container add --cap-add SYS_PTRACE and an unconfined seccomp profile)"
                    : "the program exited before tracing started (status \(code))")
        }
        let opts =
            PT.traceSysGood | PT.traceFork | PT.traceVfork | PT.traceClone | PT.traceExec | PT.traceSeccomp
            | PT.exitKill
        if let error = kernel.ptrace(.setOptions(opts), pid) {
            _ = kernel.kill(pid, SIGKILL)
            throw TraceError("PTRACE_SETOPTIONS failed: \(error.message)")
        }
        loop.addThread(pid, of: pid)
        loop.addProcess(pid, covered: Set(initial))
        _ = kernel.ptrace(.cont(signal: 0), pid)
    }

    func attach(_ pid: Int32, _ loop: StopLoop) throws(TraceError) {
        loop.mainPid = pid
        // EPERM means it exists but is not ours to signal: PTRACE_SEIZE below says what to do about that.
        if let error = kernel.kill(pid, 0), error.rawValue != EPERM {
            throw TraceError("no process \(pid): \(error.message)")
        }
        let opts = PT.traceSysGood | PT.traceFork | PT.traceVfork | PT.traceClone | PT.traceExec
        loop.addProcess(pid)
        // Threads may start while we attach; read the task list until it stops growing. A thread that cannot be
        // seized is left out: a main thread that called pthread_exit is a zombie until the others end.
        var attached: Set<Int32> = []
        var tried: Set<Int32> = []
        var refused: Errno?
        for _ in 0..<3 {
            let fresh = kernel.threadIDs(pid).filter { !tried.contains($0) }
            if fresh.isEmpty { break }
            for tid in fresh {
                tried.insert(tid)
                if let error = kernel.ptrace(.seize(options: opts), tid) {
                    refused = refused ?? error
                    continue
                }
                attached.insert(tid)
                loop.addThread(tid, of: pid)
                _ = kernel.ptrace(.interrupt, tid)
            }
        }
        guard let live = attached.contains(pid) ? pid : attached.min() else {
            throw cannotAttach(pid, refused ?? Errno(rawValue: ESRCH))
        }
        // Descriptors opened before we came: learn the sockets among them, through a thread that is alive (a
        // leader that has ended shows none).
        var held = HeldDuplicate()
        defer { held.release(kernel) }
        for fd in kernel.descriptorNumbers(live) {
            guard let entry = loop.table.procEntry(pid: live, fd: fd) else { continue }
            loop.table[pid, fd] = entry
            if case .socket(let inode) = entry {
                _ = loop.table.learn(inode: inode, pid: pid, thread: live, fd: fd, owner: loop.owner(pid), &held)
            }
        }
    }
}

extension PtraceEngine {
    /// Why PTRACE_SEIZE of `pid` was refused, in one line that says what to do. The kernel answers EPERM for three
    /// different things, which /proc/PID/status tells apart: a zombie (State Z), a process another tracer holds
    /// (TracerPid), and a process we may not trace.
    func cannotAttach(_ pid: Int32, _ error: Errno) -> TraceError {
        guard error.rawValue == EPERM else { return TraceError("cannot attach to \(pid): \(error.message)") }
        let status = kernel.status(pid)
        let name = { (pid: Int32) in "\(self.kernel.command(pid) ?? "?")[\(pid)]" }
        if status?.state == "Z" {
            let parent = status?.parent.map { " \(name($0))" } ?? ""
            return TraceError(
                "cannot attach to \(pid): it has already exited (a zombie its parent\(parent) has not collected yet); "
                    + "there is nothing left to trace")
        }
        if let tracer = status?.tracer, tracer != 0 {
            return TraceError(
                "cannot attach to \(pid): it is already traced by \(name(tracer)); a process can have only one "
                    + "tracer: stop that one first")
        }
        return TraceError(
            "cannot attach to \(pid): not permitted (another user's or a setuid process needs root; "
                + "for your own, sysctl kernel.yama.ptrace_scope=0)")
    }
}

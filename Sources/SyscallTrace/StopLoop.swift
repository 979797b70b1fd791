import Glibc
import PacketWire
import Sockets
import Synchronization
import Timeline

/// Set from the SIGINT/SIGTERM handler (``PtraceEngine/requestStop(fromKill:)``), for whichever engine runs: 1 =
/// stop requested, 2 = also forward the signal to the program (it came from kill(1), not from the terminal, so the
/// program did not get it itself).
let traceInterrupt = Atomic<Int>(0)
/// How many stop requests arrived: the second one kills a launched program.
let traceInterruptCount = Atomic<Int>(0)

/// A request to stop tracing (SIGINT or SIGTERM reached packetflow), as either engine takes it.
package struct StopRequest: Equatable, Sendable {
    /// It came from kill(1), not from the terminal: the program did not get it, so it is passed on.
    package var forward: Bool
    /// How many requests arrived so far: the second one kills a launched program.
    package var count: Int

    /// The request the signal handler left (see ``PtraceEngine/requestStop(fromKill:)``), taken once.
    package static func fromSignalHandler() -> StopRequest? {
        let flag = traceInterrupt.exchange(0, ordering: .relaxed)
        guard flag != 0 else { return nil }
        return StopRequest(forward: flag == 2, count: traceInterruptCount.load(ordering: .relaxed))
    }

    /// Forgets requests left from before a run.
    package static func reset() {
        traceInterrupt.store(0, ordering: .relaxed)
        traceInterruptCount.store(0, ordering: .relaxed)
    }
}

/// The ptrace stop loop: waits for the traced threads' stops and answers each one, following threads and processes
/// through fork, clone, exec and exit, and records the socket calls they make.
///
/// Every stop is handled in two steps: its work (decoding a call, asking about a socket), which returns how the
/// thread goes on (a ``Resumption``), then the duplicate of a tracee descriptor the work used is closed and the
/// thread is resumed. The loop reaches the kernel only through ``PtraceKernel``.
final class StopLoop {
    /// A call whose entry stop has been seen: what was known then.
    struct Pending {
        var syscall: Syscall
        var regs: SyscallRegisters
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
        var saved: SavedRegisters
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

    /// A traced process; its descriptor table is in the ``SocketTable``.
    final class ProcessState {
        var comm: String
        /// Descriptor numbers whose read/write/close the process's seccomp filters send to the tracer. Filters are
        /// inherited by fork and kept by exec, and so is this.
        var covered: Set<Int32>

        init(comm: String, covered: Set<Int32> = []) {
            self.comm = comm
            self.covered = covered
        }
    }

    /// How a thread goes on after a stop.
    enum Resumption: Equatable {
        /// Runs on (PTRACE_CONT, or PTRACE_SYSCALL without a filter or when the call's exit stop is wanted),
        /// delivering `signal`; released instead when detaching.
        case resume(signal: Int32 = 0, toExit: Bool = false)
        /// PTRACE_SYSCALL through the stops of an injected call.
        case throughInjection
        /// Stays in its group-stop but reports what happens next (PTRACE_LISTEN).
        case listen
        /// Back on its own registers after an injection: runs on, then gets the signal held meanwhile.
        case restored(raise: Int32, tgid: Int32)
        /// Nothing to resume: the thread is gone.
        case none
    }

    let kernel: any PtraceKernel
    /// A launched program stops only at the calls its seccomp filter sends; an attached one at every call.
    let useSeccomp: Bool
    /// The descriptor number whose write(2)s carry Python hook notes.
    let noteFD: Int32?
    /// Where stop requests (Ctrl-C) come from.
    let requests: () -> StopRequest?
    /// The launched or attached process: its exit status is the trace's.
    var mainPid: Int32 = 0
    var threads: [Int32: ThreadState] = [:]
    var processes: [Int32: ProcessState] = [:]
    let table: SocketTable
    var calls: [TracedCall] = []
    var exitStatus: Int32?
    var warnings: [String] = []
    var detaching = false
    /// Threads sent a SIGSTOP to bring them to a stop for detaching: a launched program's processes are traced
    /// through PTRACE_TRACEME, not seized, so PTRACE_INTERRUPT cannot stop them. That SIGSTOP is not passed on.
    var stoppedToDetach: Set<Int32> = []
    /// New threads whose first stop has not been seen: children reported by a fork/clone event, and children whose
    /// first stop came before that event. Every child a tracee makes starts with a stop of the tracer's (a SIGSTOP,
    /// or PTRACE_EVENT_STOP when seized), which must not reach the program.
    var unknownStops: Set<Int32> = []

    /// Scratch space for the hook's line: one stop is handled at a time.
    let noteScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 16)

    init(kernel: any PtraceKernel, useSeccomp: Bool, noteFD: Int32?, requests: @escaping () -> StopRequest?) {
        self.kernel = kernel
        self.useSeccomp = useSeccomp
        self.noteFD = noteFD
        self.requests = requests
        table = SocketTable(kernel: kernel)
    }

    deinit { noteScratch.deallocate() }

    /// A process the loop starts with or meets: `comm` from /proc, an empty descriptor table.
    func addProcess(_ pid: Int32, covered: Set<Int32> = []) {
        processes[pid] = ProcessState(comm: kernel.command(pid) ?? "?", covered: covered)
        table.processStarted(pid)
    }

    func addThread(_ tid: Int32, of tgid: Int32) { threads[tid] = ThreadState(tgid: tgid) }

    /// "python3[1234]": how a socket's owner is named.
    func owner(_ pid: Int32) -> String { "\(processes[pid]?.comm ?? "?")[\(pid)]" }

    // MARK: the wait loop

    /// Runs until every traced thread has exited or been released.
    func run() {
        while !threads.isEmpty || !unknownStops.isEmpty {
            if let request = requests() { handle(request) }
            switch kernel.wait(-1) {
            case .interrupted: continue
            case .noChildren: return
            case .report(let tid, let status): handle(tid: tid, status: status)
            }
        }
    }

    func handle(_ request: StopRequest) {
        // After the command itself has exited, what is left are processes it started and left running (`sleep &`):
        // signalling the command does nothing then, so Ctrl-C (or SIGTERM) detaches from them, as strace does,
        // and they go on untraced.
        let commandGone = useSeccomp && exitStatus != nil
        if !useSeccomp || commandGone {
            // Detach: each thread must be in a ptrace stop to be released, so interrupt them all and release each
            // at its next stop.
            detaching = true
            for tid in threads.keys.sorted() where kernel.ptrace(.interrupt, tid) != nil {
                stoppedToDetach.insert(tid)
                _ = kernel.tgkill(threads[tid]?.tgid ?? tid, tid, SIGSTOP)
            }
        } else if request.count >= 2 {
            _ = kernel.kill(mainPid, SIGKILL)
        } else if request.forward {
            _ = kernel.kill(mainPid, SIGINT)
        }
    }

    /// One waitpid report: the stop's work, then the duplicate it held is closed, then the thread goes on.
    func handle(tid: Int32, status: WaitStatus) {
        var held = HeldDuplicate()
        let resumption = work(tid: tid, status: status, &held)
        held.release(kernel)
        perform(resumption, tid: tid)
    }

    func perform(_ resumption: Resumption, tid: Int32) {
        switch resumption {
        case .none: break
        case .listen: _ = kernel.ptrace(.listen, tid)
        case .throughInjection: _ = kernel.ptrace(.syscall(signal: 0), tid)
        case .resume(let signal, let toExit): resume(tid, signal: signal, toExit: toExit)
        case .restored(let signal, let tgid):
            resume(tid)
            if signal != 0 { _ = kernel.tgkill(tgid, tid, signal) }
        }
    }

    func resume(_ tid: Int32, signal: Int32 = 0, toExit: Bool = false) {
        if threads[tid]?.injection != nil {
            // Mid-injection the thread runs on borrowed registers: go through the injected call's stops and hold
            // any signal until its own registers are back.
            if signal != 0 { threads[tid]?.injection?.signal = signal }
            _ = kernel.ptrace(.syscall(signal: 0), tid)
            return
        }
        if detaching {
            _ = kernel.ptrace(.detach(signal: signal), tid)
            threads[tid] = nil
            return
        }
        _ = kernel.ptrace(!useSeccomp || toExit ? .syscall(signal: signal) : .cont(signal: signal), tid)
    }

    func work(tid: Int32, status: WaitStatus, _ held: inout HeldDuplicate) -> Resumption {
        switch status {
        case .exited(let code):
            ended(tid: tid, status: code, &held)
            return .none
        case .killed(let signal):
            ended(tid: tid, status: 128 + signal, &held)
            return .none
        case .stopped(let signal, let event):
            return stopped(tid: tid, signal: signal, event: event, &held)
        }
    }

    /// A thread exited or was killed. A process ends with its last thread: the kernel reports a thread-group leader's
    /// end only after its other threads' (a main thread that called pthread_exit waits for them, and its status is
    /// then the process's), and a leader that had already ended when we attached is never reported at all.
    func ended(tid: Int32, status: Int32, _ held: inout HeldDuplicate) {
        let tgid = threads[tid]?.tgid ?? tid
        if let t = threads[tid], let pending = t.pending ?? t.interrupted {
            // Killed mid-call: keep the call, with no result.
            finish(tid: tid, pending: pending, regs: nil, &held)
        }
        if let t = threads.removeValue(forKey: tid), t.tgid == tid, processes.removeValue(forKey: tid) != nil {
            table.processExited(tid)
        }
        if tid == mainPid || tgid == mainPid && !threads.values.contains(where: { $0.tgid == mainPid }) {
            exitStatus = status
        }
        unknownStops.remove(tid)
    }

    func stopped(tid: Int32, signal sig: Int32, event: Int32, _ held: inout HeldDuplicate) -> Resumption {
        if threads[tid] == nil {
            // A new child's first stop can arrive before its parent's fork event; remember it.
            unknownStops.insert(tid)
            let tgid = kernel.status(tid)?.tgid ?? tid
            addThread(tid, of: tgid)
            if processes[tgid] == nil { addProcess(tgid) }
            if sig == SIGSTOP && event == 0 || event == PT.eventStop {
                unknownStops.remove(tid)
                return .resume()
            }
        }
        switch (sig, event) {
        case (SIGTRAP, PT.eventSeccomp), (SIGTRAP | 0x80, 0):
            return syscallStop(tid: tid, &held)
        case (SIGTRAP, PT.eventFork), (SIGTRAP, PT.eventVfork), (SIGTRAP, PT.eventClone):
            newThread(parent: tid)
            return .resume()
        case (SIGTRAP, PT.eventExec):
            let tgid = threads[tid]?.tgid ?? tid
            if let p = processes[tgid] {
                p.comm = kernel.command(tgid) ?? "?"
                table.processExecuted(tgid)
            }
            threads[tid]?.note = nil
            threads[tid]?.noteAddress = nil
            return .resume()
        case (_, PT.eventStop):
            // Group stop (a real SIGSTOP) with PTRACE_SEIZE: stay stopped but listen; interrupt stop or a seized
            // child's first stop: go on.
            unknownStops.remove(tid)
            if detaching { return .resume() }
            return [SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU].contains(sig) ? .listen : .resume()
        case (SIGSTOP, 0) where unknownStops.contains(tid):
            unknownStops.remove(tid)
            return .resume()
        default:
            // A signal for the program: deliver it (but not the SIGSTOP that only brought it here to detach).
            let ours = sig == SIGSTOP && stoppedToDetach.remove(tid) != nil
            return .resume(signal: ours ? 0 : sig)
        }
    }

    /// A fork, vfork or clone event of `parent`: the new thread, and a new process unless it is a thread.
    func newThread(parent tid: Int32) {
        // Unreadable (the parent was killed meanwhile): the child, if any, is met at its first stop instead.
        guard let message = kernel.eventMessage(tid) else { return }
        let child = Int32(truncatingIfNeeded: message)
        let parentTgid = threads[tid]?.tgid ?? tid
        let childTgid = kernel.status(child)?.tgid ?? child
        let thread: ThreadState
        if let known = threads[child] {
            thread = known
        } else {
            // Reported before its first stop (the usual order): that stop is still to come.
            thread = ThreadState(tgid: childTgid)
            threads[child] = thread
            unknownStops.insert(child)
        }
        thread.tgid = childTgid
        guard childTgid != parentTgid else { return }
        // A forked child's thread is the forking thread's copy, hook buffer included.
        thread.noteAddress = threads[tid]?.noteAddress
        if let parent = processes[parentTgid] {
            // A new process starts with a copy of its parent's descriptors.
            processes[childTgid] = ProcessState(comm: parent.comm, covered: parent.covered)
            table.processForked(from: parentTgid, to: childTgid)
        }
    }
}

import CKernelTrace
import CLibBPF
import Glibc
import PacketWire
import Sockets
import SyscallTrace
import SystemCalls
import Timeline

/// Runs or attaches to a program and records its socket calls and the kernel context of its packets with the
/// eBPF engine, without stopping the program at any call.
///
/// Creating a tracer loads and attaches the BPF program, so a machine where the engine cannot work is known before
/// anything runs (``KernelTraceUnavailable``); ``run(started:settle:)`` then launches the command (or registers the
/// running process) and drains the records until every traced process has exited. The launched child is
/// registered with the program before it execs (it waits on a pipe until a task storage entry exists for it,
/// created through its pidfd): pids are not enough, since the tracer and the program may be in different pid
/// namespaces, and a pidfd names the task itself. Its children and threads are followed in the kernel from
/// sched_process_fork on. Dropping the tracer (or the death of this process) detaches everything.
/// One tracer per process at a time: stop requests go through process-wide flags, as signals do.
public final class KernelTracer {
    public struct Options: Sendable {
        /// The command to launch (argv; the first word is looked up in PATH).
        public var command: [String] = []
        /// A running process to follow instead (all its threads, and what it forks from now on).
        public var attach: Int32?
        /// The launched command's environment (default: this process's).
        public var environment: [String: String] = Linux.environment()
        /// The descriptor number whose write(2)s carry the Python hook's notes (``SyscallTrace/PythonHook``).
        public var noteFD: Int32?
        /// Size of the ring buffer between the program and this process (rounded up to a power of two).
        public var ringBufferBytes = KernelTracer.defaultRingBufferBytes
        /// How often records are drained: the program wakes the reader only when the ring is a quarter full, since
        /// a wake-up per record nearly doubled the traced program's run time.
        public var drainIntervalMilliseconds: Int32 = 10
        public init() {}
    }

    let options: Options
    let program: KernelProgram

    /// The ring buffer's default size: 4 MiB kept every record of the benchmark's 1000 exchanges.
    public static let defaultRingBufferBytes = 4 << 20

    /// Loads and attaches the BPF program (or takes the one `loading` loaded meanwhile, with its note descriptor);
    /// throws why the engine cannot work here.
    public init(_ options: Options, loading: KernelProgramLoad? = nil) throws(KernelTraceUnavailable) {
        self.options = options
        if let loading {
            program = try loading.wait()
        } else {
            program = try KernelProgram(noteFD: options.noteFD, ringBytes: options.ringBufferBytes)
        }
    }

    /// Whether the engine can load here, without tracing anything: nil when it can, else why not.
    public static func availability() -> KernelTraceUnavailable? {
        do {
            _ = try KernelProgram(noteFD: nil, ringBytes: 1 << 16)
            return nil
        } catch {
            return error
        }
    }

    /// Asks a running ``run(started:settle:)`` to stop, from any thread or a signal handler: a launched program
    /// gets the signal itself from the terminal (or, with `forward`, from here); once it has exited, or for an
    /// attached process, the tracer detaches and what is left runs on untraced; a second request kills a launched
    /// program.
    /// The same request as the ptrace engine's (one set of flags for both engines).
    public static func requestStop(forward: Bool = false) { Tracer.requestStop(fromKill: forward) }

    /// Launches the command or registers the attached process (then calls `started`), drains records until every
    /// traced process has exited (or a stop request detaches), then calls `settle` with what was recorded so far
    /// (the session waits there for the wire to go quiet, or until the calls' connections have nothing left to
    /// send: packets sent after the exit, such as the ACK of a FIN, are still recorded meanwhile) and detaches.
    public func run(started: () -> Void = {}, settle: (KernelTraceRun) -> Void = { _ in })
        throws(KernelTraceError) -> KernelTraceRun
    {
        StopRequest.reset()
        let collector = Collector(offset: Clocks.realtimeOffset())
        let context = Unmanaged.passUnretained(collector).toOpaque()
        guard
            let ring = ring_buffer__new(
                program.eventsFD,
                { ctx, data, size in
                    guard let ctx, let data else { return 0 }
                    Unmanaged<Collector>.fromOpaque(ctx).takeUnretainedValue().take(UnsafeRawPointer(data), size)
                    return 0
                }, context, nil)
        else {
            throw .failed("cannot read the BPF ring buffer: \(Errno(rawValue: errno).message)")
        }
        defer { ring_buffer__free(ring) }

        var root = options.attach != nil ? try attach(options.attach!, collector) : try launch()
        defer { close(root.pidfd) }
        // The loop sleeps until the drain interval has passed, the program asks for a drain (its records fill a
        // quarter of the ring), or the root exits (its pidfd becomes readable). Not on the ring's readiness, which
        // libbpf's poll waits for: the ring is readable as soon as it holds one record, so the reader would wake
        // for nearly every record and take a core from the program it traces.
        let epoll = kt_epoll_create()
        guard epoll >= 0 else {
            throw .failed("cannot wait for the BPF ring buffer: \(Errno(rawValue: errno).message)")
        }
        defer { close(epoll) }
        _ = kt_epoll_add(epoll, program.eventsFD, 1)
        let watching = kt_epoll_add(epoll, root.pidfd, 0) == 0
        started()
        var leftRunning = false
        while true {
            _ = kt_epoll_wait(epoll, options.drainIntervalMilliseconds)
            collector.offset = Clocks.realtimeOffset()
            _ = ring_buffer__consume(ring)
            if root.alive {
                root.check()
                // It stays readable: a loop waiting for the root's children must sleep again.
                if !root.alive && watching { kt_epoll_remove(epoll, root.pidfd) }
            }
            let live = program.globals()?.live_processes ?? 0
            if !root.alive && live <= 0 { break }
            if let request = StopRequest.fromSignalHandler() {
                if options.attach != nil || !root.alive {
                    leftRunning = !root.alive
                    break
                } else if request.count >= 2 {
                    kill(root.pid, SIGKILL)
                } else if request.forward {
                    kill(root.pid, SIGINT)
                }
            }
        }
        // What the program queued between the last drain and its exit, before the session settles on it (the
        // records of its last packets tell which connections are closed).
        _ = ring_buffer__consume(ring)
        if !root.isChild && !root.alive && !leftRunning {
            // An attached process is not our child, so wait(2) cannot say how it ended; the program saw its last
            // thread exit, with the status wait(2) would have given its parent.
            root.exitStatus = collector.exitStatus(of: root.pid)
        }
        // The settling needs the sockets, the packets' keys and the counters (lost records), not the packets' calls.
        settle(
            collector.finish(
                exitStatus: root.exitStatus, detached: options.attach != nil, globals: program.globals(),
                resolvingPackets: false))
        collector.offset = Clocks.realtimeOffset()
        _ = ring_buffer__consume(ring)
        program.detach()
        _ = ring_buffer__consume(ring)
        if leftRunning, let live = program.globals()?.live_processes, live > 0 {
            collector.warnings.append("\(live) processes the command started go on running untraced")
        }
        return collector.finish(
            exitStatus: root.exitStatus, detached: options.attach != nil, globals: program.globals())
    }

    /// The launched command or attached process, watched for its end.
    struct Root {
        var pid: Int32
        /// Open for as long as the run: both ways of starting one fail without it.
        var pidfd: Int32
        var isChild: Bool
        var alive = true
        var exitStatus: Int32?

        /// A wait(2) status as a shell gives it: the exit code, or 128 + the signal that killed it.
        static func shellStatus(_ status: Int32) -> Int32 {
            status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        }

        mutating func check() {
            if isChild {
                var status: Int32 = 0
                let r = waitpid(pid, &status, WNOHANG)
                guard r == pid || (r < 0 && errno == ECHILD) else { return }
                alive = false
                if r == pid { exitStatus = Self.shellStatus(status) }
            } else {
                // A pidfd is readable once the process has exited.
                var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 0) > 0 { alive = false }
            }
        }
    }

    func launch() throws(KernelTraceError) -> Root {
        guard let file = options.command.first else { throw .failed("no command given") }
        var release: Int32 = -1
        let pid = Linux.withExecArrays(options.command, options.environment) { argv, env in
            kt_spawn_gated(file, argv, env, &release)
        }
        if pid < 0 { throw .failed("fork failed: \(Errno(rawValue: errno).message)") }
        var pidfd: Int32 = -1
        let refused: Errno?
        do throws(Errno) {
            pidfd = try Linux.pidfdOpen(ProcessID(rawValue: pid)).rawValue
            refused = program.register(pidfd: pidfd)
        } catch {
            refused = error
        }
        if let refused {
            // The child exits without running the command: nothing runs untraced.
            close(release)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            if pidfd >= 0 { close(pidfd) }
            throw .unavailable(.registrationRefused(refused))
        }
        var go: UInt8 = 1
        _ = write(release, &go, 1)
        close(release)
        return Root(pid: pid, pidfd: pidfd, isChild: true)
    }

    func attach(_ pid: Int32, _ collector: Collector) throws(KernelTraceError) -> Root {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else {
            throw .failed("no process \(pid): \(Errno(rawValue: errno).message)")
        }
        if let parent = Self.exitedParent(pid) {
            // pidfd_open and the registration would succeed, and the run end at once with nothing traced.
            throw .failed(
                "cannot attach to \(pid): it has already exited (a zombie its parent\(parent) has not collected "
                    + "yet); there is nothing left to trace")
        }
        let leader: Int32
        do throws(Errno) { leader = try Linux.pidfdOpen(ProcessID(rawValue: pid)).rawValue } catch {
            if error.rawValue == ESRCH { throw .failed("no process \(pid): \(error.message)") }
            throw .unavailable(.registrationRefused(error))
        }
        if let refused = program.register(pidfd: leader, running: true) {
            close(leader)
            throw .unavailable(.registrationRefused(refused))
        }
        // Threads may start while we register; read the task list until it stops growing. A thread started after
        // its creator was registered is followed by the program itself.
        var registered: Set<Int32> = [pid]
        for _ in 0..<3 {
            let fresh = ProcFiles.names(in: "/proc/\(pid)/task").compactMap { Int32($0) }.filter {
                !registered.contains($0)
            }
            if fresh.isEmpty { break }
            for tid in fresh {
                registered.insert(tid)
                let refused: Errno?
                do throws(Errno) {
                    let fd = try Linux.pidfdOpen(ProcessID(rawValue: tid), thread: true)
                    refused = program.register(pidfd: fd.rawValue, running: true)
                    try? fd.close()
                } catch {
                    refused = error
                }
                if let refused, refused.rawValue != ESRCH {
                    collector.warnings.append(
                        "thread \(tid) of \(pid) is not followed (\(refused.message)): its calls are missing")
                }
            }
        }
        return Root(pid: pid, pidfd: leader, isChild: false)
    }

    /// For a process every thread of which has exited (a zombie not yet collected), " comm[ppid]" naming its
    /// parent (empty when unknown); nil for a process with a thread still running. A main thread that called
    /// pthread_exit is a zombie while the others run on: that process is still there to trace.
    static func exitedParent(_ pid: Int32) -> String? {
        func status(_ path: String) -> ProcessStatus? { ProcFiles.contents(path).map(ProcessStatus.init(parsing:)) }
        guard let process = status("/proc/\(pid)/status"), process.state == "Z" else { return nil }
        for tid in ProcFiles.names(in: "/proc/\(pid)/task") {
            if let thread = status("/proc/\(pid)/task/\(tid)/status"), thread.state != "Z" { return nil }
        }
        guard let ppid = process.parent, ppid > 0 else { return "" }
        return " \(ProcFiles.command(of: ppid) ?? "?")[\(ppid)]"
    }
}

/// The BPF program loading on a thread of its own. Loading is most of the engine's fixed cost (the kernel verifies
/// every program; libbpf reads the kernel's BTF to place each field), and needs nothing a trace session sets up
/// before it runs the command (the capture, the Python hook): the session starts it first and takes the program
/// when it needs it.
public final class KernelProgramLoad: Sendable {
    private let loading: Concurrently<Result<KernelProgram, KernelTraceUnavailable>>

    /// Starts loading the program, configured for the Python hook's note descriptor (nil: no hook).
    public init(noteFD: Int32?, ringBytes: Int = KernelTracer.defaultRingBufferBytes) {
        loading = Concurrently {
            Result { () throws(KernelTraceUnavailable) in try KernelProgram(noteFD: noteFD, ringBytes: ringBytes) }
        }
    }

    /// The loaded program, or why it could not be loaded; waits for the loading to end. Once only.
    func wait() throws(KernelTraceUnavailable) -> KernelProgram { try loading.value().get() }
}

/// Turns the program's CLOCK_MONOTONIC times (bpf_ktime_get_ns) into CLOCK_REALTIME, libpcap's clock.
enum Clocks {
    /// REALTIME - MONOTONIC, from the tightest of three monotonic/realtime/monotonic readings. The two clocks slew
    /// together; only a step of the wall clock changes the difference, so it is read again at every drain.
    static func realtimeOffset() -> Int64 {
        var best: (gap: Int64, offset: Int64) = (.max, 0)
        for _ in 0..<3 {
            var a = timespec()
            var r = timespec()
            var b = timespec()
            clock_gettime(CLOCK_MONOTONIC, &a)
            clock_gettime(CLOCK_REALTIME, &r)
            clock_gettime(CLOCK_MONOTONIC, &b)
            let m1 = Int64(a.tv_sec) * 1_000_000_000 + Int64(a.tv_nsec)
            let m2 = Int64(b.tv_sec) * 1_000_000_000 + Int64(b.tv_nsec)
            let real = Int64(r.tv_sec) * 1_000_000_000 + Int64(r.tv_nsec)
            if m2 - m1 < best.gap { best = (m2 - m1, real - (m1 + (m2 - m1) / 2)) }
        }
        return best.offset
    }
}

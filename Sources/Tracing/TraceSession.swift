/// Tracing: one trace, end to end. A ``TraceSession`` starts (or attaches to) a program through a trace engine,
/// captures the wire meanwhile, waits for the packets that follow the program's end, and attributes every packet
/// to the call that sent it or to the kernel. The result is a ``TraceRun`` that any renderer draws, as
/// `LabScenario.run` gives a `LabResult` for the lab.
///
/// Engines (``TraceEngine``) produce calls; the session does the rest, so a second engine changes nothing here but
/// the engine it is given.
import Dispatch
import Glibc
import KernelTrace
import PacketCapture
import PacketFiles
import PacketWire
import Sockets
import SyscallTrace
import SystemCalls
import Timeline

/// Which engine watches the program's calls.
public enum EngineChoice: String, Sendable, CaseIterable {
    /// eBPF when it can load here, else ptrace (with one line saying why).
    case auto
    /// eBPF only: kernel-truth attribution, the program never stopped; fails where it cannot load.
    case ebpf
    /// ptrace and seccomp: works everywhere ptrace is allowed.
    case ptrace
}

/// What to trace and what to keep.
public struct TraceOptions: Sendable {
    /// The engine; ``EngineChoice/auto`` by default.
    public var engine: EngineChoice = .auto
    /// The program to run, or empty with `attach`.
    public var command: [String] = []
    /// Attach to this running process instead of starting one.
    public var attach: Int32?
    /// The program's environment (the session adds the Python hook's entries).
    public var environment: [String: String] = [:]
    /// The interface to capture on, or nil for calls only (`--no-capture`).
    public var interface: String? = "lo"
    /// A capture filter in pcap-filter syntax.
    public var filter: String?
    /// Keep packets of sockets the program does not own too.
    public var allPackets = false
    /// Write every captured packet to this pcapng file, each with a comment naming its call.
    public var pcapngPath: String?
    /// How many bytes of each packet's payload to keep in memory (``TraceRun/captured``): enough for a preview
    /// (text and JSON Lines show 64) or for the picture's details panel (4 KiB). The whole packets go to `-w`
    /// through a spool file, never through memory.
    public var payloadBytes = 4096
    /// Install the start-up hook that names Python source lines.
    public var pythonHook = true

    public init() {}
}

/// What one trace saw: the calls, the packets with their causes, what went wrong on the way, and how the program
/// ended.
public struct TraceRun: Sendable {
    /// The calls, numbered by start (the order the timeline prints them).
    public var calls: [CallEvent]
    /// The packets to show: those of the program's sockets (every packet with `allPackets`), attributed.
    public var packets: [PacketEvent]
    /// Every captured packet, attributed, in capture order (what `-w` writes).
    public var allPackets: [PacketEvent]
    /// What was kept of each captured packet (its headers, the payload's first ``TraceOptions/payloadBytes``), in
    /// capture order (`allPackets[i]` is `captured[i]`).
    public var captured: [KeptPacket]
    /// Whether packets were captured at all.
    public var capturing: Bool
    /// The kernel's capture counters at the end.
    public var statistics: CaptureStatistics?
    /// The engine that traced: "ebpf" or "ptrace" (the JSON Lines `"engine"`).
    public var engine: String
    /// The traced program's exit status (128 + signal when killed), nil after a detach.
    public var exitStatus: Int32?
    public var detached: Bool
}

/// Runs one trace. Messages that cannot wait for the end (the Python hook cannot be installed, packets were
/// dropped) go to `warn` as they happen, one line each.
public final class TraceSession {
    public let options: TraceOptions
    /// Makes the engine for a set of tracer options, or nil to choose by ``TraceOptions/engine``.
    let makeEngine: ((Tracer.Options) throws(TraceError) -> any TraceEngine)?
    let warn: (String) -> Void

    public init(_ options: TraceOptions, warn: @escaping (String) -> Void) {
        self.options = options
        self.makeEngine = nil
        self.warn = warn
    }

    /// A session with an engine of the caller's making (a test's scripted engine, say).
    public init(
        _ options: TraceOptions, engine: @escaping (Tracer.Options) throws(TraceError) -> any TraceEngine,
        warn: @escaping (String) -> Void
    ) {
        self.options = options
        self.makeEngine = engine
        self.warn = warn
    }

    /// Makes Ctrl-C (SIGINT) and kill(1) (SIGTERM) stop a trace as the command does, whichever engine runs it: a
    /// launched program gets the signal (forwarded when it came from kill, not from the terminal); an attached
    /// program, or what a finished one left running, is detached; a second signal kills a launched program.
    public static func installSignalHandlers() {
        Linux.unblock([SIGINT, SIGTERM])
        var sa = sigaction()
        sa.__sigaction_handler.sa_sigaction = { _, info, _ in
            // Atomic stores only: safe in a signal handler.
            let fromKill = info.map { $0.pointee.si_code <= 0 } ?? false
            Tracer.requestStop(fromKill: fromKill)  // both engines read the same request
        }
        sa.sa_flags = SA_SIGINFO  // no SA_RESTART: the ptrace engine's waitpid must return EINTR to see the flag
        sigaction(SIGINT, &sa, nil)
        sigaction(SIGTERM, &sa, nil)
    }

    /// The engine the options ask for. `auto` tries eBPF and says in one line why it falls back to ptrace.
    /// `loading`: the eBPF program, loading since the session started.
    func engine(for tracerOptions: Tracer.Options, loading: KernelProgramLoad?) throws(TraceError) -> any TraceEngine {
        if let makeEngine { return try makeEngine(tracerOptions) }
        switch options.engine {
        case .ptrace:
            return Tracer(tracerOptions)
        case .ebpf:
            do throws(KernelTraceUnavailable) { return try KernelEngine(tracerOptions, loading: loading) } catch {
                throw TraceError("the eBPF engine cannot trace here: \(error) (or use --engine ptrace)")
            }
        case .auto:
            do throws(KernelTraceUnavailable) { return try KernelEngine(tracerOptions, loading: loading) } catch {
                warn(Self.fallback(error))
                return Tracer(tracerOptions)
            }
        }
    }

    /// The one line `auto` prints when it traces with ptrace instead: why eBPF cannot, and what would let it. It is
    /// printed before ptrace is tried, so when ptrace then fails too (as a user without privileges) its own error
    /// follows: one line per missing privilege, each saying what to do.
    static func fallback(_ why: KernelTraceUnavailable) -> String {
        "eBPF engine unavailable: \(why); tracing with ptrace"
    }

    /// Why `name` cannot be executed (searched on PATH when it has no slash, as execvp does) and the status a
    /// shell exits with for it (127 not found, 126 found but not runnable), or nil.
    public static func cannotRun(_ name: String) -> (reason: String, status: Int32)? {
        func problem(_ path: String) -> Int32? {
            var st = stat()
            guard stat(path, &st) == 0 else { return errno }
            if st.st_mode & S_IFMT == S_IFDIR { return EISDIR }
            return access(path, X_OK) == 0 ? nil : errno
        }
        func failure(_ error: Int32) -> (String, Int32) {
            (Errno(rawValue: error).message, error == ENOENT ? 127 : 126)
        }
        if name.contains("/") { return problem(name).map(failure) }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":", omittingEmptySubsequences: false) {
            if problem((dir.isEmpty ? "." : String(dir)) + "/" + name) == nil { return nil }
        }
        return ("command not found", 127)
    }

    /// Traces until the program has ended (or, attached, until Ctrl-C detached from it), then attributes.
    public func run() throws(TraceError) -> TraceRun {
        let cmd = options.command
        guard tracingSupported else { throw TraceError("packetflow trace: unsupported architecture (x86_64 only)") }

        let inherited = Self.openDescriptors()
        // The eBPF program loads meanwhile (most of that engine's fixed cost): it needs only to know whether the
        // Python hook will write notes. Its descriptors are close-on-exec, as bpf(2) makes them.
        let willHook = options.attach == nil && options.pythonHook
        let loading =
            makeEngine == nil && options.engine != .ptrace
            ? KernelProgramLoad(noteFD: willHook ? PythonHook.noteFD : nil) : nil
        var capture: BackgroundCapture?
        if let interface = options.interface {
            do {
                // Not immediate mode: the kernel hands packets over in blocks (when one fills or every 4 ms), so
                // the capture thread wakes a few hundred times a second instead of once per packet and leaves the
                // traced program its CPU. Attribution is by content, so the later delivery changes nothing. The
                // stop waits one timeout for the last block: 10 ms made every trace wait that much at its end.
                var captureOptions = LiveCapture.Options(interface: interface, filter: options.filter)
                captureOptions.immediate = false
                captureOptions.readTimeoutMilliseconds = 4
                // Memory follows the packet count, not the bytes: a traced 1 GB transfer keeps a few megabytes.
                capture = try BackgroundCapture(
                    captureOptions,
                    retention: .summaries(payloadBytes: options.payloadBytes, spool: options.pcapngPath != nil))
            } catch {
                if error.kind == .permission {
                    throw TraceError(
                        "capturing on \(interface) needs root or CAP_NET_RAW: run with sudo, or use --no-capture")
                }
                throw TraceError("cannot capture on \(interface): \(error)")
            }
        }
        // The -w file is created before the program runs, so a bad path fails at once, not after a long trace.
        var writer: PcapngWriter?
        if let path = options.pcapngPath, let capture {
            do {
                writer = try PcapngWriter(path: path)
                try writer?.addInterface(linkType: capture.linkType, name: options.interface)
            } catch {
                _ = try? capture.stop()
                throw TraceError("\(error)")
            }
        }

        // Our own descriptors (the capture socket) must not leak into the traced program; the user's inherited
        // ones must. The Swift runtime's eventfd is ours too, though it was open before we looked.
        for fd in Self.openDescriptors() where !inherited.contains(fd) || Self.isEventFD(fd) {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }

        var tracerOptions = Tracer.Options()
        tracerOptions.attach = options.attach
        tracerOptions.command = cmd
        tracerOptions.environment = options.environment
        var hookDirectory: String?
        // The hook goes into every command's environment, not only a `python3 …` one: a shebang script (pytest),
        // `sh -c "python3 …"` or a Makefile start Python processes that should name their lines too. Other
        // programs only inherit a PYTHONPATH entry that holds a sitecustomize.py.
        if options.attach == nil && options.pythonHook {
            if PythonHook.applies(to: cmd), let option = PythonHook.disablingOption(in: cmd) {
                warn(
                    "\(cmd[0]) \(option) does not load the hook that names source lines: calls will have none "
                        + "(run without \(option) to get them)")
            }
            if let dir = PythonHook.install() {
                hookDirectory = dir
                tracerOptions.environment = PythonHook.environment(tracerOptions.environment, hookDirectory: dir)
                tracerOptions.noteFD = PythonHook.noteFD
            } else {
                warn(
                    "cannot write the Python hook to \(PythonHook.temporaryDirectory): calls will have no source lines")
            }
        }
        defer { if let hookDirectory { PythonHook.remove(hookDirectory) } }

        // Packets after the program exited (its FIN's ACK, the peer's FIN) still belong in the picture: the engine
        // waits, still watching, for a quiet wire, or only until every traced connection has nothing left to send.
        // A program we detached from goes on talking, and what it sends now no call of ours caused: no wait then.
        // Once settled nothing more is the program's: the capture stops there, on another core (the stop waits a
        // read timeout for the kernel's last block), while the engine finishes its records.
        var stopping: Concurrently<Result<CaptureRecording, CaptureError>>?
        let settle = { (result: TraceResult) in
            guard let capture else { return }
            if !result.detached || result.exitStatus != nil {
                let connections = TraceSettling(result.sockets, closedOnTheWire: result.closedConnections)
                capture.waitUntilQuiet(idle: .milliseconds(100), limit: .seconds(1), settled: connections.settled)
            }
            stopping = Self.stop(capture)
        }
        // With -p, say when the program is being traced: eBPF takes a moment to load, and stops nothing that
        // would show it (strace says so too).
        let attached = { [options, warn] (engine: any TraceEngine) in
            if let pid = options.attach {
                warn("attached to \(pid) (\(engine.name)): Ctrl-C detaches and leaves it running")
            }
        }
        var engine: any TraceEngine
        let result: TraceResult
        do {
            engine = try self.engine(for: tracerOptions, loading: loading)
            do {
                let first = engine
                result = try engine.run(started: { attached(first) }, settle: settle)
            } catch  where options.engine == .auto && (engine as? KernelEngine)?.unavailable != nil {
                // The program was never started (nothing ran untraced): trace it with ptrace instead.
                if let why = (engine as? KernelEngine)?.unavailable { warn(Self.fallback(why)) }
                let ptrace = Tracer(tracerOptions)
                engine = ptrace
                result = try ptrace.run(started: { attached(ptrace) }, settle: settle)
            }
        } catch {
            if let stopping { _ = stopping.value() } else { _ = try? capture?.stop() }
            throw error
        }
        for line in result.warnings { warn(line) }

        // Steps that do not wait for each other run on both cores: the capture's stop (begun when the wire settled)
        // beside the calls' events, the kernel's contexts beside the attribution.
        if stopping == nil, let capture { stopping = Self.stop(capture) }
        // The calls' events on both cores (9000 calls: ~7 ms on one).
        let traced = result.calls
        let calls = mapInHalves(count: traced.count) { traced[$0].map(\.event) }
        var packets: [PacketEvent] = []
        var shown: [PacketEvent] = []
        var raw: [KeptPacket] = []
        var spool: PacketSpool?
        var statistics: CaptureStatistics?
        if let stopping {
            do {
                let stopped = try stopping.value().get()
                raw = stopped.packets
                spool = stopped.spool
                statistics = stopped.statistics
                // Nothing is lost silently: a packet the kernel dropped cannot be attributed.
                if let stats = stopped.statistics, stats.droppedByKernel > 0 || stats.droppedByInterface > 0 {
                    warn(
                        "the kernel dropped \(stats.droppedByKernel) packets (interface: \(stats.droppedByInterface)); "
                            + "some calls may show fewer packets than they sent")
                }
            } catch {
                throw TraceError("capture failed: \(error)")
            }
            let captured = raw.map(\.decoded)
            nonisolated(unsafe) let watcher = engine
            let contexts = Concurrently { watcher.contexts(of: captured) }
            var builder = PacketEventBuilder()
            packets = raw.enumerated().map { i, p in
                builder.event(frame: i + 1, info: p.info, decoded: p.decoded, payload: p.payload[...])
            }
            let related = TraceAttributor(calls: result.calls, sockets: result.sockets).attribute(&packets)
            KernelContext.apply(contexts.value(), to: &packets, calls: calls)
            // When every packet is related (frames are numbered one by one), all are shown without a copy of each.
            let all = options.allPackets || related.count == packets.count
            shown = all ? packets : packets.filter { related.contains($0.frame) }
        }

        let run = TraceRun(
            calls: calls, packets: shown, allPackets: packets, captured: raw,
            capturing: capture != nil, statistics: statistics, engine: engine.name, exitStatus: result.exitStatus,
            detached: result.detached)
        if let writer, let spool, let path = options.pcapngPath {
            do {
                try Self.write(run, packets: spool, to: writer)
            } catch {
                throw TraceError("\(path): \(error)")
            }
        }
        return run
    }

    /// Stops `capture` on another core and hands back what it recorded.
    static func stop(_ capture: BackgroundCapture) -> Concurrently<Result<CaptureRecording, CaptureError>> {
        Concurrently {
            do throws(CaptureError) { return .success(try capture.finish(closeInBackground: true)) } catch {
                return .failure(error)
            }
        }
    }

    /// Every captured packet, each with a comment naming the call that sent it (Wireshark shows packet comments).
    static func write(_ run: TraceRun, packets spool: PacketSpool, to writer: PcapngWriter) throws {
        let byId = Dictionary(uniqueKeysWithValues: run.calls.map { ($0.id, $0) })
        try spool.forEachPacket { i, info, bytes in
            // The spool holds the packets the summaries were made from, one for one; a packet beyond them (never
            // expected) is written without a comment rather than trusted.
            let comments = run.allPackets.indices.contains(i) ? [Self.comment(run.allPackets[i], calls: byId)] : []
            try writer.writePacket(
                bytes, timestamp: info.timestamp, originalLength: info.originalLength, comments: comments)
        }
        spool.close()
        try writer.close()
    }

    /// The pcapng comment of a packet: who sent it and from which line, or why a kernel did.
    public static func comment(_ p: PacketEvent, calls: [Int: CallEvent]) -> String {
        var parts: [String] = []
        if let kernel = p.kernel {
            parts.append("kernel: \(kernel.text(.en))")
        } else if let c = p.call, let call = calls[c] {
            var s = "pid \(call.pid ?? 0) \(call.comm ?? "?") #\(c) \(call.name)"
            if let src = call.source { s += " at \(src)" }
            parts.append(s)
        }
        if let c = p.consumedBy, let call = calls[c] {
            var s = "consumed by pid \(call.pid ?? 0) \(call.comm ?? "?") #\(c) \(call.name)"
            if let src = call.source { s += " at \(src)" }
            parts.append(s)
        }
        if parts.isEmpty || (p.call == nil && !p.byKernel) {
            parts.insert("sent by \(p.sender ?? "?") (not traced)", at: 0)
        }
        if let context = p.context { parts.append(Self.built(context, calls: calls)) }
        return parts.joined(separator: "; ")
    }

    /// Where the kernel built a packet, as the eBPF engine saw it: "built in call #3 sendto", "built in softirq
    /// NET_RX (during #4 recvfrom)", "built after call #5 close, as the process exited", "built by curl[812], not
    /// traced".
    static func built(_ context: PacketContext, calls: [Int: CallEvent]) -> String {
        func call(_ n: Int) -> String { "#\(n)" + (calls[n].map { " \($0.name)" } ?? "") }
        switch context {
        case .call(let n, let own):
            return "built in call \(call(n))" + (own ? "" : " on another socket")
        case .softirq(let name, let during):
            return "built in softirq \(name)" + (during.map { " (during \(call($0)))" } ?? "")
        case .afterCall(let last, let exiting):
            return "built " + (last.map { "after call \(call($0))" } ?? "outside any call")
                + (exiting ? ", as the process exited" : "")
        case .untraced(let task):
            return "built by \(task ?? "a task"), not traced"
        }
    }

    static func openDescriptors() -> Set<Int32> { Set(ProcFiles.names(in: "/proc/self/fd").compactMap { Int32($0) }) }

    static func isEventFD(_ fd: Int32) -> Bool { ProcFiles.linkTarget("/proc/self/fd/\(fd)") == "anon_inode:[eventfd]" }

    /// This process's environment, for a traced program that should see what a shell would give it.
    public static func currentEnvironment() -> [String: String] { Linux.environment() }
}

import ArgumentParser
import Glibc
import PacketReading
import PacketCapture
import PacketFiles
import PacketWire
import Render
import Sockets
import SyscallTrace
import Timeline

struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Run a program (or attach to one) and show which of its calls put each packet on the wire.",
        discussion: """
            The program runs under ptrace with a seccomp-bpf filter, so it stops only at socket-related calls; forks, \
            threads and exec are followed. Packets are captured at the same time and each is attributed by its \
            content (4-tuple, sequence numbers) to the call that sent it, or marked as sent by a kernel by itself \
            with the reason. For Python programs each call also names the source line that made it. Needs root \
            (ptrace and CAP_NET_RAW); the program's exit code is passed through.

            Examples:
              packetflow trace -- python3 client.py
              packetflow trace --format jsonl -w out.pcapng -- curl -s http://127.0.0.1:8000/
              packetflow trace -p 1234            (Ctrl-C detaches and leaves it running)
            """
    )

    @Option(name: .short, help: "Interface to capture on.")
    var interface: String = "lo"

    @Option(name: .short, help: "Capture filter (pcap-filter syntax).")
    var filter: String?

    @Option(name: .short, help: "Attach to this running process instead of starting one.")
    var pid: Int32?

    @Option(name: .short, help: "Also write the packets to this pcapng file, each with a comment naming its call.")
    var write: String?

    @Flag(name: .customLong("no-capture"), help: "Do not capture packets: show the calls only.")
    var noCapture = false

    @Flag(name: .customLong("all-packets"), help: "Also show packets of sockets the program does not own.")
    var allPackets = false

    @OptionGroup var display: DisplayOptions

    @Argument(parsing: .captureForPassthrough, help: "The command to run, after --.")
    var command: [String] = []

    /// Why `name` cannot be executed (searched on PATH when it has no slash, as execvp does) and the status a
    /// shell exits with for it (127 not found, 126 found but not runnable), or nil.
    static func cannotRun(_ name: String) -> (reason: String, status: Int32)? {
        func problem(_ path: String) -> Int32? {
            var st = stat()
            guard stat(path, &st) == 0 else { return errno }
            if st.st_mode & S_IFMT == S_IFDIR { return EISDIR }
            return access(path, X_OK) == 0 ? nil : errno
        }
        func failure(_ error: Int32) -> (String, Int32) {
            (String(cString: strerror(error)), error == ENOENT ? 127 : 126)
        }
        if name.contains("/") { return problem(name).map(failure) }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":", omittingEmptySubsequences: false) {
            if problem((dir.isEmpty ? "." : String(dir)) + "/" + name) == nil { return nil }
        }
        return ("command not found", 127)
    }

    func validate() throws {
        var cmd = command
        if cmd.first == "--" { cmd.removeFirst() }
        if pid == nil && cmd.isEmpty { throw ValidationError("give a command after -- or attach with -p PID") }
        if pid != nil && !cmd.isEmpty { throw ValidationError("-p attaches to a running process: drop the command") }
        if noCapture && write != nil { throw ValidationError("-w needs packets: drop --no-capture") }
    }

    func run() throws {
        var cmd = command
        if cmd.first == "--" { cmd.removeFirst() }
        guard tracingSupported else { throw CLIError("packetflow trace: unsupported architecture (x86_64 only)") }
        if pid == nil, let problem = Self.cannotRun(cmd[0]) {
            // As a shell says it, before anything is traced or printed (strace does the same).
            warn("cannot run \(cmd[0]): \(problem.reason)")
            throw ExitCode(problem.status)
        }
        installTraceSignalHandlers()

        let inherited = Self.openDescriptors()
        var capture: BackgroundCapture?
        if !noCapture {
            do {
                // Not immediate mode: the kernel hands packets over in blocks (when one fills or every 10 ms), so
                // the capture thread wakes a hundred times a second instead of once per packet and leaves the two
                // stops per traced call their CPU. Attribution is by content, so the later delivery changes nothing.
                var captureOptions = LiveCapture.Options(interface: interface, filter: filter)
                captureOptions.immediate = false
                captureOptions.readTimeoutMilliseconds = 10
                capture = try BackgroundCapture(captureOptions)
            } catch {
                if error.kind == .permission {
                    throw CLIError(
                        "capturing on \(interface) needs root or CAP_NET_RAW: run with sudo, or use --no-capture")
                }
                throw CLIError("cannot capture on \(interface): \(error)")
            }
        }
        // The -w file is created before the program runs, so a bad path fails at once, not after a long trace.
        var writer: PcapngWriter?
        if let write, let capture {
            do {
                writer = try PcapngWriter(path: write)
                try writer?.addInterface(linkType: capture.linkType, name: interface)
            } catch {
                _ = try? capture.stop()
                throw CLIError("\(error)")
            }
        }

        // Our own descriptors (the capture socket) must not leak into the traced program; the user's inherited
        // ones must. The Swift runtime's eventfd is ours too, though it was open before we looked.
        for fd in Self.openDescriptors() where !inherited.contains(fd) || Self.isEventFD(fd) {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }

        var options = Tracer.Options()
        options.attach = pid
        options.command = cmd
        options.environment = Self.currentEnvironment()
        var hookDirectory: String?
        // The hook goes into every command's environment, not only a `python3 …` one: a shebang script (pytest),
        // `sh -c "python3 …"` or a Makefile start Python processes that should name their lines too. Other
        // programs only inherit a PYTHONPATH entry that holds a sitecustomize.py.
        if pid == nil {
            if PythonHook.applies(to: cmd), let option = PythonHook.disablingOption(in: cmd) {
                warn("\(cmd[0]) \(option) does not load the hook that names source lines: calls will have none "
                    + "(run without \(option) to get them)")
            }
            if let dir = PythonHook.install() {
                hookDirectory = dir
                options.environment = PythonHook.environment(options.environment, hookDirectory: dir)
                options.noteFD = PythonHook.noteFD
            } else {
                warn("cannot write the Python hook to /tmp: calls will have no source lines")
            }
        }
        defer { if let hookDirectory { PythonHook.remove(hookDirectory) } }

        let result: TraceResult
        do {
            result = try Tracer(options).run()
        } catch {
            _ = try? capture?.stop()
            throw CLIError(error.description)
        }
        for line in result.warnings { warn(line) }

        var packets: [PacketEvent] = []
        var shown: [PacketEvent] = []
        var raw: [CapturedPacket] = []
        if let capture {
            // Packets after the program exited (its FIN's ACK, the peer's FIN) still belong in the picture: wait
            // for a quiet wire, or only until every traced connection has nothing left to send. A program we
            // detached from goes on talking, and what it sends now no call of ours caused: no wait then.
            if !result.detached || result.exitStatus != nil {
                let connections = TraceSettling(result.sockets)
                capture.waitUntilQuiet(idle: .milliseconds(100), limit: .seconds(1), settled: connections.settled)
            }
            do {
                let stopped = try capture.stop(closeInBackground: true)
                raw = stopped.packets
                // Nothing is lost silently: a packet the kernel dropped cannot be attributed.
                if let stats = stopped.statistics, stats.droppedByKernel > 0 || stats.droppedByInterface > 0 {
                    warn("the kernel dropped \(stats.droppedByKernel) packets (interface: \(stats.droppedByInterface)); "
                        + "some calls may show fewer packets than they sent")
                }
            } catch {
                throw CLIError("capture failed: \(error)")
            }
            var builder = PacketEventBuilder()
            packets = raw.map { builder.event(for: $0) }
            let related = TraceAttributor(calls: result.calls, sockets: result.sockets).attribute(&packets)
            shown = allPackets ? packets : packets.filter { related.contains($0.frame) }
        }

        let calls = result.calls.map(\.event)
        let title = pid.map { "pid \($0)" } ?? shellCommandLine(cmd)
        let text: String
        switch display.effectiveFormat {
        case .jsonl:
            text = TimelineEvent.order(calls: calls, packets: shown).map {
                switch $0 {
                case .call(let i): JSONLines.line(.call(calls[i])) + "\n"
                case .packet(let j): JSONLines.line(.packet(shown[j])) + "\n"
                }
            }.joined()
        case .text:
            text = TraceText(language: display.lang, color: display.useColor).render(
                command: title, calls: calls, packets: shown, captured: capture != nil)
        case .mermaid, .html:
            // A lifeline per traced process (the calls' actors); the peers it talked to get theirs from their
            // endpoints.
            var actors: [String] = []
            for c in calls where !actors.contains(c.actor) { actors.append(c.actor) }
            var diagram = FlowDiagram(
                title: "packetflow trace — \(title)", language: display.lang,
                lifelines: actors.map { Lifeline(id: $0, label: $0) }, calls: calls, packets: shown,
                payloads: FlowDiagram.payloads(of: raw))
            diagram.statesAtReturn = true
            text = display.effectiveFormat == .html ? HTMLPage.render(diagram) : MermaidDiagram.render(diagram)
        }
        do {
            try display.deliver(text, name: "trace")
        } catch let stop as ExitCode where stop == .success {
            // stdout's reader left (`| head`): say nothing more, but still write -w, pass the exit code through
            // and let the defers remove the hook directory.
        }

        if let write, let writer {
            do {
                let byId = Dictionary(uniqueKeysWithValues: calls.map { ($0.id, $0) })
                for (packet, event) in zip(raw, packets) {
                    try packet.bytes.withUnsafeBytes {
                        try writer.writePacket(
                            $0, timestamp: packet.info.timestamp, originalLength: packet.info.originalLength,
                            comments: [TraceText.comment(event, calls: byId)])
                    }
                }
                try writer.close()
            } catch {
                throw CLIError("\(write): \(error)")
            }
        }

        if let status = result.exitStatus, status != 0 { throw ExitCode(status) }
    }

    static func openDescriptors() -> Set<Int32> { Set(ProcFiles.names(in: "/proc/self/fd").compactMap { Int32($0) }) }

    static func isEventFD(_ fd: Int32) -> Bool { ProcFiles.linkTarget("/proc/self/fd/\(fd)") == "anon_inode:[eventfd]" }

    static func currentEnvironment() -> [String: String] {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return env
    }
}

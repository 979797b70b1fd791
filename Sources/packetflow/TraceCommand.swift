import ArgumentParser
import Glibc
import PacketCapture
import PacketFiles
import PacketReading
import PacketWire
import Render
import Sockets
import SyscallTrace
import Timeline
import Tracing

extension EngineChoice: ExpressibleByArgument {}

struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Run a program (or attach to one) and show which of its calls put each packet on the wire.",
        discussion: """
            Two engines watch the program. eBPF (the default where it loads: root, a kernel with BTF) records its \
            socket calls from the kernel without stopping it, and says for each packet where the kernel built it: \
            inside which call, in which softirq, or by an untraced task. ptrace (--engine ptrace, or where eBPF \
            cannot load: --engine auto then says why in one line) stops the program at its socket calls only, \
            through a seccomp-bpf filter. Both follow forks, threads and exec and show the same calls; JSON Lines \
            name the engine on every object and the kernel's context on every packet. Packets are captured \
            meanwhile and each is attributed to the call that sent it, or marked as sent by a kernel by itself with \
            the reason. For Python programs each call also names the source line that made it. Needs root (BPF or \
            ptrace, and CAP_NET_RAW); the program's exit code is passed through.

            Examples:
              packetflow trace -- python3 client.py
              packetflow trace --format jsonl -w out.pcapng -- curl -s http://127.0.0.1:8000/
              packetflow trace --engine ptrace -- ./server
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

    @Option(
        name: .long,
        help: """
            Which engine watches the calls: ebpf (the kernel says which call built each packet; the program is never \
            stopped), ptrace (works wherever ptrace is allowed), or auto: eBPF when it can load, else ptrace.
            """)
    var engine: EngineChoice = .auto

    @Flag(name: .customLong("no-capture"), help: "Do not capture packets: show the calls only.")
    var noCapture = false

    @Flag(name: .customLong("all-packets"), help: "Also show packets of sockets the program does not own.")
    var allPackets = false

    @OptionGroup var display: DisplayOptions

    @Argument(parsing: .captureForPassthrough, help: "The command to run, after --.")
    var command: [String] = []

    func validate() throws {
        var cmd = command
        // The command is taken as it comes, options and all, so an option of ours that is misspelled before `--`
        // arrives here as the command's first word: it must be refused, never executed.
        if let first = cmd.first, first != "--", first.hasPrefix("-") {
            // The command takes everything, so --help arrives here too (the usage line says to ask for it).
            if first == "--help" || first == "-h" { throw CleanExit.helpRequest(self) }
            throw ValidationError("Unknown option '\(first)'")
        }
        if cmd.first == "--" { cmd.removeFirst() }
        if pid == nil && cmd.isEmpty { throw ValidationError("give a command after -- or attach with -p PID") }
        if pid != nil && !cmd.isEmpty { throw ValidationError("-p attaches to a running process: drop the command") }
        if noCapture && write != nil { throw ValidationError("-w needs packets: drop --no-capture") }
    }

    func run() throws {
        var cmd = command
        if cmd.first == "--" { cmd.removeFirst() }
        guard tracingSupported else { throw CLIError("packetflow trace: unsupported architecture (x86_64 only)") }
        if pid == nil, let problem = TraceSession.cannotRun(cmd[0]) {
            // As a shell says it, before anything is traced or printed (strace does the same).
            warn("cannot run \(cmd[0]): \(problem.reason)")
            throw ExitCode(problem.status)
        }
        TraceSession.installSignalHandlers()

        var options = TraceOptions()
        options.command = cmd
        options.attach = pid
        options.environment = TraceSession.currentEnvironment()
        options.interface = noCapture ? nil : interface
        options.filter = filter
        options.allPackets = allPackets
        options.pcapngPath = write
        // A preview in text and JSON Lines, 4 KiB for the picture's details panel (as read keeps).
        options.payloadBytes = display.picture == nil ? 256 : 4096
        options.engine = engine
        let run: TraceRun
        do {
            run = try TraceSession(options, warn: warn).run()
        } catch {
            throw CLIError(error.description)
        }

        let calls = run.calls
        let shown = run.packets
        let title = pid.map { "pid \($0)" } ?? shellCommandLine(cmd)
        let text: String
        switch display.effectiveFormat {
        case .jsonl:
            text = JSONLines.lines(calls: calls, packets: shown, order: .byTime, engine: run.engine)
        case .text:
            text = TraceText(language: display.lang, color: display.useColor).render(
                command: title, calls: calls, packets: shown, captured: run.capturing)
        case .mermaid, .html:
            let diagram = FlowDiagram.trace(
                title: title, language: display.lang, calls: calls, packets: shown,
                payloads: KeptPacket.payloadsByFrame(run.captured))
            text = display.effectiveFormat == .html ? HTMLPage.render(diagram) : MermaidDiagram.render(diagram)
        }
        try display.deliver(text, name: "trace")

        // Ends here, as the traced program did: a long trace's records (tens of thousands of calls and packets, each
        // with its strings) are freed with the process, not one by one (~10 ms a thousand exchanges).
        Glibc.exit(run.exitStatus ?? 0)
    }
}

import ArgumentParser
import Glibc
import PacketReading
import PacketWire
import Render
import SocketLab
import Sockets
import Timeline

struct LabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Run socket calls step by step and show which call sent which packet.",
        discussion: """
            Each step is one socket call; after it the lab waits until the wire is quiet, so every packet is shown \
            under the call during which it was sent. Packets a kernel sent on its own (the SYN/ACK of a listening \
            socket, ACKs) are marked. Capturing needs root or CAP_NET_RAW; --no-capture shows calls and TCP states.

            As root the lab runs in a network namespace of its own, with its own lo: no program or TIME_WAIT left \
            on this host's 127.0.0.2:49152 can take its port, and no other traffic reaches its capture. Without \
            root, or with --hosts host (to watch it with tcpdump -i lo), it uses this host's lo; if its port is \
            taken there, the error says by what (a program and its pid, or which connection's TIME_WAIT and for \
            how long) and what to do.

            Examples:
              packetflow lab                         the seed: 127.0.0.1 → 127.0.0.2:49152
              packetflow lab --lang ja               labels in Japanese, as the seed draws them
              packetflow lab --message 'hello' --format jsonl
              packetflow lab --server '[::1]:49152' --client-ip ::1
              packetflow lab --format html -o lab.html   one page with an SVG diagram (--open to view it)
              packetflow lab --format mermaid            a sequenceDiagram for GitHub Markdown
              packetflow lab --hosts host                on this host's lo, shared with other programs
              packetflow lab --list
            """
    )

    @Argument(help: "The scenario to run (see --list).")
    var scenario: String = "basic"

    @Flag(name: .long, help: "List the scenarios and what each shows.")
    var list = false

    @Option(name: .long, help: "The message the client sends.")
    var message: String?

    @Option(name: .long, help: "The server's address and port.")
    var server: String = "127.0.0.2:49152"

    @Option(name: .customLong("client-ip"), help: "The client's address.")
    var clientIP: String = "127.0.0.1"

    @Option(name: .customLong("client-port"), help: "Fix the client's port (the seed's run got 61867).")
    var clientPort: UInt16?

    @Option(name: .short, help: "Interface to capture on.")
    var interface: String = "lo"

    @Option(name: .long, help: "Quiet gap, in milliseconds, that ends the wait after each step.")
    var settle: Int = 120

    @Flag(name: .long, help: "Add a plain-language note under each packet and each TCP state change.")
    var explain = false

    @Option(
        name: .long,
        help: """
            Where the two sides run: loopback (a network namespace of the lab's own as root, else this host's lo), \
            host (this host's lo), or netns (two network namespaces and a veth pair; needs root).
            """)
    var hosts: LabHosts = .loopback

    @Flag(name: .customLong("no-capture"), help: "Do not capture packets: show calls and TCP states only.")
    var noCapture = false

    @OptionGroup var display: DisplayOptions

    func validate() throws {
        if !list && LabScenario.named(scenario) == nil {
            throw ValidationError(
                "unknown scenario '\(scenario)'; known: \(LabScenario.all.map(\.name).joined(separator: ", "))")
        }
        guard (1...5000).contains(settle) else { throw ValidationError("--settle must be 1 to 5000 milliseconds") }
        // sendall of nothing sends nothing, and the server's recv would wait for ever.
        if message?.isEmpty == true { throw ValidationError("--message needs at least one character to send") }
    }

    func run() throws {
        if list {
            let width = LabScenario.all.map(\.name.count).max() ?? 0
            for s in LabScenario.all {
                let summary = display.lang == .ja ? s.summaryJa : s.summary
                try emit(s.name.padding(width) + "  " + summary + "\n")
            }
            return
        }
        var config = LabConfiguration()
        do {
            config.server = try SocketAddress(parsing: server, defaultPort: 49152)
        } catch {
            throw CLIError("--server: \(error)")
        }
        guard let ip = IPAddress(clientIP.trimmingBrackets) else {
            throw CLIError("--client-ip: '\(clientIP)' is not an IPv4 or IPv6 address")
        }
        guard ip.isIPv6 == config.server.ip.isIPv6 else {
            throw CLIError("--client-ip \(clientIP) and --server \(server) must both be IPv4 or both IPv6")
        }
        config.clientIP = ip
        config.clientPort = clientPort
        if let message { config.message = message }
        config.capture = !noCapture
        config.interface = interface
        config.settle = .milliseconds(settle)
        config.language = display.lang == .ja ? .ja : .en
        config.hosts = hosts
        if hosts == .netns, geteuid() != 0 {
            throw CLIError(
                "--hosts netns needs root (it creates network namespaces); run as root or use --hosts loopback")
        }
        guard let scenario = LabScenario.named(scenario) else { return }

        let result: LabResult
        do {
            result = try scenario.run(config)
        } catch {
            throw CLIError(error.description)
        }
        let report = LabReport(
            scenario: scenario.name, summary: display.lang == .ja ? scenario.summaryJa : scenario.summary,
            calls: result.calls, packets: result.packets, captured: result.captured,
            serverAddress: result.serverAddress, clientAddress: result.clientAddress,
            droppedByKernel: result.statistics?.droppedByKernel)
        let text: String
        switch display.effectiveFormat {
        case .jsonl: text = report.jsonLines
        case .text: text = report.text(language: display.lang, color: display.useColor, explain: explain)
        case .mermaid: text = MermaidDiagram.render(report.diagram(language: display.lang))
        case .html: text = HTMLPage.render(report.diagram(language: display.lang))
        }
        try display.deliver(text, name: "lab-\(scenario.name)")
        if let stats = result.statistics, stats.droppedByKernel > 0 || stats.droppedByInterface > 0 {
            warn("the kernel dropped \(stats.droppedByKernel) packets (interface: \(stats.droppedByInterface))")
        }
    }
}

extension LabHosts: ExpressibleByArgument {}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }

    var trimmingBrackets: Substring {
        hasPrefix("[") && hasSuffix("]") ? dropFirst().dropLast() : self[...]
    }
}

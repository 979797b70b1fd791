import ArgumentParser
import Glibc
import PacketCapture
import PacketFiles
import PacketReading
import PacketWire
import Render
import Timeline

/// Flags shared by `read` and `capture`: what to print about each packet.
struct PacketOutputOptions: ParsableArguments {
    @Option(name: .short, help: "Stop after N packets (counting those that pass the filter).")
    var count: Int?

    @Option(name: .short, help: "BPF filter, compiled by libpcap (e.g. 'tcp port 49152').")
    var filter: String?

    @Flag(name: .customShort("S"), help: "Absolute TCP sequence numbers (default: relative, as Wireshark).")
    var absolute = false

    @Flag(name: .long, help: "Print each packet's payload as text (UTF-8 as is, other bytes escaped).")
    var payload = false

    @Flag(name: .customShort("n"), help: "Numeric addresses and ports, as tcpdump -n/-nn: always so here.")
    var numeric: Int

    @Flag(
        name: .customLong("count"),
        help: "Print only how many packets there are (that pass the filter), as tcpdump --count.")
    var countOnly = false

    // tcpdump's display flags: each changes the text line as it changes tcpdump's.

    @Flag(name: .customShort("v"), help: "As tcpdump -v: IP header fields and checksums (-vv: more).")
    var verbose: Int

    @Flag(name: .customShort("e"), help: "As tcpdump -e: the link-level header (MAC addresses, cooked header, AF).")
    var linkHeader = false

    @Flag(name: .customShort("q"), help: "As tcpdump -q: quick output, less protocol information.")
    var quick = false

    @Flag(
        name: .customShort("t"),
        help: ArgumentHelp(
            "As tcpdump: -t no time, -tt epoch seconds, -ttt since the previous packet, -tttt date and time, "
                + "-ttttt since the first packet."))
    var time: Int

    @Flag(name: [.customShort("#"), .customLong("number")], help: "As tcpdump -#: number each packet.")
    var number = false

    @Flag(name: .customShort("A"), help: "As tcpdump -A: the bytes after the link header as ASCII (-AA: all).")
    var ascii: Int

    @Flag(name: .customShort("x"), help: "As tcpdump -x: the bytes after the link header in hex (-xx: all).")
    var hexOnly: Int

    @Flag(
        name: .customShort("X"),
        help: "As tcpdump -X: the bytes after the link header in hex and ASCII (-XX: with the link header).")
    var hex: Int

    func validate() throws {
        if let count, count < 1 { throw ValidationError("-c needs a positive number of packets") }
        if time > 5 { throw ValidationError("-t is given at most five times (-ttttt: time since the first packet)") }
    }

    /// tcpdump's display flags as the text line takes them.
    var displayFlags: TcpdumpFlags {
        var f = TcpdumpFlags()
        f.verbosity = min(verbose, 3)
        f.linkHeader = linkHeader
        f.quick = quick
        f.time = TcpdumpFlags.TimeFormat(rawValue: time) ?? .clock
        f.numbered = number
        // tcpdump prints one dump, preferring hex and ASCII to hex to ASCII.
        if hex > 0 {
            f.dump = .hexASCII(withLink: hex > 1)
        } else if hexOnly > 0 {
            f.dump = .hex(withLink: hexOnly > 1)
        } else if ascii > 0 {
            f.dump = .ascii(withLink: ascii > 1)
        }
        return f
    }

    /// The first display flag given (for a message saying it does not fit a view), or nil.
    var displayFlag: String? {
        if verbose > 0 { return "-" + String(repeating: "v", count: verbose) }
        if linkHeader { return "-e" }
        if quick { return "-q" }
        if time > 0 { return "-" + String(repeating: "t", count: time) }
        if number { return "-#" }
        if ascii > 0 { return "-" + String(repeating: "A", count: ascii) }
        if hexOnly > 0 { return "-" + String(repeating: "x", count: hexOnly) }
        if hex > 0 { return "-" + String(repeating: "X", count: hex) }
        return nil
    }

    /// One line when a display flag or --payload meets a view that prints no packet lines (`view` names it and what
    /// it prints instead), or nil.
    func conflict(with view: String) -> ValidationError? {
        guard let flag = displayFlag ?? (payload ? "--payload" : nil) else { return nil }
        return ValidationError("\(flag) changes packet lines; \(view)")
    }

    var packetText: PacketText { PacketText(absoluteSequence: absolute, payload: payload, flags: displayFlags) }
}

struct ReadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Read pcap and pcapng files: packet lines, JSON Lines, conversations, flow diagrams.",
        discussion: """
            Classic pcap (micro- and nanosecond, either byte order) and pcapng. Times are UTC.
            Relative sequence numbers, stream indexes and JSON Lines fields agree with tshark's.

            Examples:
              packetflow read trace.pcap                     one line per packet, like tcpdump -nn
              packetflow read -vv -e -X trace.pcap           tcpdump's flags, printed as tcpdump prints them
              packetflow read -f 'tcp port 49152' -c 20 trace.pcapng
              packetflow read --format jsonl trace.pcap      the JSON Lines contract, one packet per line
              packetflow read --conversations trace.pcap     like tshark -q -z conv,tcp -z conv,udp
              packetflow read --flow --stream 0 trace.pcap   the sequence diagram of TCP stream 0
              packetflow read -f 'tcp port 443' -w https.pcapng big.pcap   keep only some packets
              tcpdump -w - -i lo | packetflow read -
            """
    )

    @Argument(help: ArgumentHelp("Capture files to read; - reads standard input.", valueName: "files"))
    var arguments: [String] = []

    @Option(
        name: .customShort("r"),
        help: ArgumentHelp("A capture file, as tcpdump -r (may be repeated).", valueName: "file"))
    var readFiles: [String] = []

    /// The files in the order given: those after -r, then the positional ones.
    var files: [String] { readFiles + arguments }

    @OptionGroup var packets: PacketOutputOptions

    @Flag(name: .long, help: "Print TCP and UDP conversation tables instead of packets.")
    var conversations = false

    @Flag(name: .long, help: "Draw the sequence diagram of each TCP stream (or the one --stream names).")
    var flow = false

    @Option(name: .long, help: "With --flow: only this TCP stream (tcp.stream in Wireshark).")
    var stream: Int?

    @Option(
        name: .short,
        help: ArgumentHelp(
            "Write the packets that pass -f and -c to this pcapng file (- for stdout) instead of printing them, "
                + "with their interfaces and comments, as tcpdump -r IN -w OUT.", valueName: "file"))
    var write: String?

    @OptionGroup var display: DisplayOptions

    // Capture's flags, taken here only to say in one line why they do not apply to files.

    @Option(name: .customShort("Q"), help: .hidden)
    var direction: String?

    @Option(name: .customShort("s"), help: .hidden)
    var snapshotLength: String?

    @Flag(name: .customShort("D"), help: .hidden)
    var listInterfaces = false

    func validate() throws {
        if listInterfaces { throw ValidationError("-D lists the interfaces to capture on: packetflow capture -D") }
        if files.isEmpty { throw ValidationError("name at least one capture file (or - for standard input)") }
        if let write {
            if conversations || flow || stream != nil || display.format != .text || display.output != nil
                || display.open || packets.payload || packets.displayFlag != nil || packets.countOnly
            {
                throw ValidationError("-w writes the selected packets to a file: drop the options that print them")
            }
            if isInput(write) { throw ValidationError("-w \(write) is also an input file: writing would erase it") }
        }
        if let output = display.output, isInput(output) {
            throw ValidationError("-o \(output) is also an input file: writing would erase it")
        }
        if conversations && flow { throw ValidationError("--conversations and --flow are separate views; pick one") }
        let picture = display.effectiveFormat == .mermaid || display.effectiveFormat == .html
        if stream != nil && !flow && !picture {
            throw ValidationError("--stream selects a stream for --flow or a picture; add --flow")
        }
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("standard input (-) can be read only once") }
        if picture && files.count > 1 {
            throw ValidationError(
                "--format \(display.effectiveFormat.rawValue) draws one file at a time; name one file")
        }
        if picture && conversations { throw ValidationError("--conversations is a table: use --format text") }
        if packets.countOnly {
            if conversations || flow || display.format != .text || display.open || packets.payload
                || packets.displayFlag != nil
            {
                throw ValidationError("--count prints only the number of packets: drop the options that print them")
            }
        } else if conversations {
            if let e = packets.conflict(with: "--conversations prints tables of conversations") { throw e }
        } else if flow || picture {
            if let e = packets.conflict(with: "a flow diagram draws arrows, not lines (use --format text, no --flow)") {
                throw e
            }
        } else if display.format == .jsonl {
            if let e = packets.conflict(with: "--format jsonl writes JSON objects (use --format text)") { throw e }
        }
        if direction != nil {
            throw ValidationError(
                "-Q picks the direction of a live capture; a file holds what was captured (filter it: -f inbound, "
                    + "-f outbound on a Linux cooked capture)")
        }
        if snapshotLength != nil {
            throw ValidationError("-s sets how much of each packet a live capture keeps; a file already has its cut")
        }
    }

    /// Whether `path` names an existing file that is also one of the inputs (same inode), which writing would
    /// truncate before it is read.
    func isInput(_ path: String) -> Bool {
        var out = stat()
        var input = stat()
        guard path != "-", stat(path, &out) == 0 else { return false }
        return files.contains {
            $0 != "-" && stat($0, &input) == 0 && input.st_ino == out.st_ino && input.st_dev == out.st_dev
        }
    }

    func run() throws {
        var options = ReadOptions(
            files: files,
            mode: write != nil || packets.countOnly
                ? .select
                : .make(display.effectiveFormat, conversations: conversations, flow: flow, stream: stream))
        options.text = packets.packetText
        options.filter = packets.filter
        options.count = packets.count
        options.color = display.useColor
        options.language = display.lang
        options.pcapngPath = write
        options.countOnly = packets.countOnly
        options.progress = isatty(STDERR_FILENO) == 1 && isatty(STDOUT_FILENO) == 0
        // Lines and tables stream to stdout; -o sends stdout to the file (pictures are delivered whole).
        if display.picture == nil { try display.redirectStandardOutput() }
        let complete: Bool
        do {
            complete = try CaptureFiles(options).run(
                sink: OutputSink(fileDescriptor: STDOUT_FILENO), deliver: { try display.deliver($0, name: "read") },
                warn: warn)
        } catch ReadFilesError.read(.output(let error)) {
            throw outputFailure(error)
        } catch let error as ReadFilesError {
            throw CLIError(error.description)
        }
        if !complete { throw ExitCode.failure }
    }
}

extension PipelineMode {
    /// The mode for an output format, given the view flags.
    static func make(_ format: OutputFormat, conversations: Bool, flow: Bool, stream: Int?) -> PipelineMode {
        if conversations { return .conversations }
        switch format {
        case .mermaid: return .flow(stream: stream, picture: .mermaid)
        case .html: return .flow(stream: stream, picture: .html)
        case .text: return flow ? .flow(stream: stream, picture: nil) : .lines(.text)
        case .jsonl: return flow ? .flow(stream: stream, picture: nil) : .lines(.jsonl)
        }
    }
}

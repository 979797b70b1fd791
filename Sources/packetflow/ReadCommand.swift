import ArgumentParser
import Glibc
import PacketCapture
import PacketFiles
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

    @Flag(name: .customShort("X"), help: "Print each packet's bytes in hex and ASCII.")
    var hex = false

    @Flag(name: .customShort("n"), help: "Numeric addresses and ports, as tcpdump -n/-nn: always so here.")
    var numeric: Int

    func validate() throws {
        if let count, count < 1 { throw ValidationError("-c needs a positive number of packets") }
    }

    var packetText: PacketText { PacketText(absoluteSequence: absolute, payload: payload, hex: hex) }
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

    func validate() throws {
        if files.isEmpty { throw ValidationError("name at least one capture file (or - for standard input)") }
        if let write {
            if conversations || flow || stream != nil || display.format != .text || display.output != nil
                || display.open || packets.payload || packets.hex
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
            throw ValidationError("--format \(display.effectiveFormat.rawValue) draws one file at a time; name one file")
        }
        if picture && conversations { throw ValidationError("--conversations is a table: use --format text") }
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

    /// The last frame of each TCP stream of a capture file, numbered as the pipeline numbers them; as far as the
    /// file is readable (the reading pass reports where it is not).
    static func streamEnds(of path: String) -> [Int] {
        var ends: [Int] = []
        var builder = PacketEventBuilder()
        guard let reader = try? CaptureFileReader(path: path) else { return [] }
        _ = try? reader.forEachPacket { record in
            let decoded = PacketDecoder.decode(record.bytes, linkType: record.info.linkType)
            let t = builder.track(info: record.info, decoded: decoded)
            if t.hasStream {
                if t.stream == ends.count { ends.append(record.frameNumber) } else { ends[t.stream] = record.frameNumber }
            }
            return true
        }
        return ends
    }

    func run() throws {
        let mode = write != nil ? PipelineMode.select : PipelineMode.make(
            display.effectiveFormat, conversations: conversations, flow: flow, stream: stream)
        var writer: PcapngWriter?
        if let write {
            do { writer = try PcapngWriter(path: write) } catch { throw CLIError(error.description) }
        }
        // Lines and tables stream to stdout; -o sends stdout to the file (pictures are delivered whole below).
        if display.picture == nil { try display.redirectStandardOutput() }
        var pipeline = PacketPipeline(mode: mode, text: packets.packetText, filter: packets.filter,
                                      count: packets.count, color: display.useColor, language: display.lang)
        let progress = isatty(STDERR_FILENO) == 1 && isatty(STDOUT_FILENO) == 0
        var failed = false
        for path in files {
            if pipeline.done { break }
            pipeline.reset()
            if case .flow(nil, nil) = mode, path != "-" { pipeline.streamEnds = Self.streamEnds(of: path) }
            do {
                let reader = try CaptureFileReader(path: path)
                defer { reader.warnings.forEach { warn($0) } }
                var handleError: Error?
                // -w: each input interface becomes an interface of the output, described when first used.
                var outputInterface: [Int: Int] = [:]
                _ = try reader.forEachPacket { record in
                    do {
                        let selected = try pipeline.handle(
                            frame: record.frameNumber, info: record.info, bytes: record.bytes,
                            comments: record.comments)
                        if selected, let writer {
                            // A failure here is the output's (a full disk), not the input's: it ends the run.
                            do throws(CaptureFileError) {
                                let index = record.info.interfaceIndex
                                if outputInterface[index] == nil {
                                    let described = reader.interfaces.indices.contains(index)
                                        ? reader.interfaces[index] : nil
                                    outputInterface[index] = try writer.addInterface(
                                        linkType: record.info.linkType, snapLength: described?.snapLength ?? 0,
                                        name: described?.name)
                                }
                                try writer.writePacket(
                                    record.bytes, timestamp: record.info.timestamp,
                                    originalLength: record.info.originalLength, interface: outputInterface[index]!,
                                    comments: record.comments)
                            } catch {
                                throw CLIError(error.description)
                            }
                        }
                    } catch {
                        handleError = error
                        return false
                    }
                    if progress, record.frameNumber & 0x3_FFFF == 0 {
                        warnProgress("\(reader.path): \(record.frameNumber) packets\r")
                    }
                    return !pipeline.done
                }
                if let handleError { throw handleError }
                if pipeline.pictureTooLarge {
                    let picture = display.effectiveFormat == .html ? "an HTML page" : "a Mermaid diagram"
                    throw CLIError(
                        "\(path): \(picture) holds at most "
                            + "\(PacketPipeline.pictureLimit) packets; pick a TCP stream (--stream N; "
                            + "--conversations lists them) or a count (-c N)")
                }
                if progress { warnProgress("\u{1b}[2K") }
                pipeline.finishFile(title: "packetflow read — \(path)")
                if let picture = pipeline.picture { try display.deliver(picture, name: "read") }
            } catch let error as CaptureFileError {
                // Every valid record has been shown; say where the file went bad.
                pipeline.finishFile()
                warn(error.description)
                failed = true
            } catch let error as CaptureError {
                pipeline.flush()
                throw CLIError(error.description)
            }
        }
        if let writer {
            do { try writer.close() } catch { throw CLIError(error.description) }
        }
        if failed { throw ExitCode.failure }
    }
}

/// Progress text on stderr without a newline (it is overwritten by the next update).
func warnProgress(_ text: String) {
    var t = text
    t.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

import ArgumentParser
import Glibc
import PacketCapture
import PacketFiles
import PacketReading
import PacketWire
import Sockets
import SystemCalls

/// The self-pipe SIGINT and SIGTERM write to, kept until the process exits: another Ctrl-C while the file is
/// finished must find it open.
nonisolated(unsafe) private var stopPipe: WakePipe?

struct CaptureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Capture live packets (libpcap): the same lines as `read`, or a pcapng file with -w.",
        discussion: """
            Needs root or CAP_NET_RAW. Printed to a terminal, each packet shows at once; to a file, a pipe or \
            with -w, the kernel hands packets over in blocks (each at most 0.1 s late), as tcpdump does, so \
            bursts are not lost. Ctrl-C stops, flushes, and prints how many packets were captured and how many \
            the kernel dropped.

            Examples:
              packetflow capture                              loopback, one line per packet
              packetflow capture -i any -f 'tcp port 49152' --format jsonl
              packetflow capture -c 100 -w x.pcapng           then: packetflow read x.pcapng, tshark -r x.pcapng
            """
    )

    @Option(name: .short, help: "Interface to capture on.")
    var interface: String = "lo"

    @Option(name: .short, help: "Write packets to this pcapng file (- for stdout) instead of printing them.")
    var write: String?

    @Option(name: .customShort("B"), help: "Kernel capture buffer in KiB, as tcpdump -B (default: libpcap's, 2 MiB).")
    var bufferSize: Int32?

    @OptionGroup var packets: PacketOutputOptions

    @OptionGroup var display: DisplayOptions

    @OptionGroup var tcpdumpCapture: CaptureFlagOptions

    @Argument(
        help: ArgumentHelp(
            "A BPF filter as tcpdump takes it, after the options (packetflow capture -i lo tcp port 49152).",
            valueName: "expression"))
    var expression: [String] = []

    /// -f, or the words after the options, as tcpdump joins them.
    var filter: String? {
        if expression.isEmpty { return packets.filter }
        return expression.joined(separator: " ")
    }

    func validate() throws {
        if packets.filter != nil && !expression.isEmpty {
            throw ValidationError("give the filter once: with -f, or after the options")
        }
        // Measured on lo in immediate mode: with a ring of 64 KiB the kernel dropped every packet; with 100 KiB and
        // more it captured them.
        if let b = bufferSize, !(128...(1 << 21)).contains(b) {
            throw ValidationError("-B takes 128 to 2097152 KiB (with 64 KiB the kernel dropped every packet on lo)")
        }
        try tcpdumpCapture.check(packets: packets, display: display, writing: write != nil)
        if display.picture != nil {
            throw ValidationError(
                "capture prints packets as they come (text or jsonl); for a picture, capture with -w FILE.pcapng, "
                    + "then packetflow read --format html FILE.pcapng")
        }
    }

    /// The buffering timeout when packets come in blocks: what one waits at most after a packet's arrival, and
    /// after Ctrl-C for the last block. tcpdump uses 1 s for files and 0.1 s for a terminal; at a high rate blocks
    /// fill long before either.
    static let bufferingTimeoutMilliseconds: Int32 = 100

    func run() throws {
        if try tcpdumpCapture.listIfAsked() { return }
        let capture: LiveCapture
        do {
            var options = LiveCapture.Options(interface: interface, filter: filter)
            options.bufferSize = bufferSize.map { $0 * 1024 }
            // A wake-up per packet only for a person watching the lines in a terminal. A file, a pipe or -w gets
            // the kernel's blocks, as tcpdump writing a file does: with immediate mode a 2 MiB ring on lo holds 32
            // packets, and packetflow lost packets where tcpdump lost none.
            options.immediate = write == nil && display.output == nil && isatty(STDOUT_FILENO) == 1
            options.readTimeoutMilliseconds = Self.bufferingTimeoutMilliseconds
            tcpdumpCapture.configure(&options)
            capture = try LiveCapture(options)
        } catch {
            throw CLIError(error.description)
        }
        try tcpdumpCapture.apply(to: capture)
        try display.redirectStandardOutput()
        let stop = try Self.stopOnSignals()

        var options = LiveReadingOptions()
        options.mode = packets.countOnly ? .select : .lines(display.format == .jsonl ? .jsonl : .text)
        options.text = packets.packetText
        options.count = packets.count
        options.pcapngPath = write
        options.interfaceName = interface
        options.progress = isatty(STDERR_FILENO) == 1
        let result = LiveReading(capture: capture, options: options).run(
            sink: OutputSink(fileDescriptor: STDOUT_FILENO), stop: stop)
        if let error = result.captureError { warn(error.description) }
        if let error = result.pcapngError, result.captured == 0 { throw CLIError(error.description) }
        warn("\(result.captured) packets captured, \(result.statistics?.droppedByKernel ?? 0) dropped by kernel")
        if packets.countOnly, result.outputError == nil { try emit(countLine(result.captured)) }
        if let error = result.outputError { throw outputFailure(error) }
        if let error = result.pcapngError { throw CLIError(error.description) }
    }

    /// Makes SIGINT and SIGTERM write a byte to a self-pipe and returns its read end, which the reading loop polls.
    /// The handlers and the pipe stay until the process exits: another Ctrl-C while the file is finished must not
    /// kill it half-written.
    static func stopOnSignals() throws -> FileDescriptor {
        // Non-blocking: a burst of signals must never block the handler.
        let pipe: WakePipe
        do throws(Errno) { pipe = try WakePipe() } catch {
            throw CLIError("cannot make the pipe Ctrl-C stops the capture through: \(error.message)")
        }
        stopPipe = pipe
        packetflow.stopOnSignals(writingTo: pipe.writeDescriptor)
        return FileDescriptor(rawValue: pipe.readDescriptor)
    }
}

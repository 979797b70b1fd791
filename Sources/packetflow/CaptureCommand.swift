import ArgumentParser
import Glibc
import PacketCapture
import PacketFiles
import PacketReading
import PacketWire

/// Set by SIGINT/SIGTERM; the capture loop checks it between `dispatch` calls.
nonisolated(unsafe) private var stopRequested: sig_atomic_t = 0
/// In immediate mode libpcap's poll can wait indefinitely and retries after EINTR, so the handler also calls
/// `pcap_breakloop`, which libpcap documents as safe in a signal handler (it wakes the poll through an eventfd).
nonisolated(unsafe) private var activeCapture: LiveCapture?

struct CaptureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Capture live packets (libpcap): the same lines as `read`, or a pcapng file with -w.",
        discussion: """
            Needs root or CAP_NET_RAW. Ctrl-C stops, flushes, and prints how many packets were captured and how
            many the kernel dropped.

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

    @Argument(help: ArgumentHelp(
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

    func run() throws {
        if try tcpdumpCapture.listIfAsked() { return }
        let capture: LiveCapture
        do {
            var options = LiveCapture.Options(interface: interface, filter: filter)
            options.bufferSize = bufferSize.map { $0 * 1024 }
            tcpdumpCapture.configure(&options)
            capture = try LiveCapture(options)
        } catch {
            throw CLIError(error.description)
        }
        try tcpdumpCapture.apply(to: capture)
        var writer: PcapngWriter?
        if let write {
            writer = try PcapngWriter(path: write)
            try writer?.addInterface(linkType: capture.linkType, name: interface)
        }
        // libpcap already applied the filter in the kernel.
        try display.redirectStandardOutput()
        var pipeline = PacketPipeline(
            mode: packets.countOnly ? .select : .lines(display.format == .jsonl ? .jsonl : .text),
            text: packets.packetText, filter: nil, count: nil)
        activeCapture = capture
        defer { activeCapture = nil }
        signal(SIGINT) { _ in
            stopRequested = 1
            activeCapture?.breakLoop()
        }
        signal(SIGTERM) { _ in
            stopRequested = 1
            activeCapture?.breakLoop()
        }
        signal(SIGPIPE, SIG_IGN)
        var captured = 0
        var writeError: CaptureFileError?
        let limit = packets.count ?? Int.max
        let source = LivePackets(capture)
        var outputError: OutputError?
        loop: while stopRequested == 0 && captured < limit && writeError == nil && outputError == nil {
            source.batch = Int32(clamping: min(limit - captured, 1 << 16))
            do {
                _ = try source.readPackets { record in
                    guard captured < limit else { return false }
                    captured += 1
                    if let writer {
                        do throws(CaptureFileError) {
                            try writer.writePacket(record.bytes, timestamp: record.info.timestamp,
                                                   originalLength: record.info.originalLength)
                        } catch {
                            writeError = error
                        }
                    } else {
                        do throws(ReadError) {
                            try pipeline.handle(frame: record.frameNumber, info: record.info, bytes: record.bytes)
                        } catch {
                            if case .output(let e) = error {
                                outputError = e
                                return false
                            }
                        }
                    }
                    return true
                }
            } catch {
                warn("\(error)")
                break loop
            }
            do throws(OutputError) { try pipeline.flush() } catch { outputError = error }
            if writer != nil, isatty(STDERR_FILENO) == 1 { warnProgress("\(captured) packets\r") }
        }
        if outputError == nil {
            do throws(OutputError) { try pipeline.flush() } catch { outputError = error }
        }
        let stats = capture.statistics()
        if let writer {
            writer.setStatistics(interface: 0, received: stats?.received, dropped: stats?.droppedByKernel)
            do { try writer.close() } catch { writeError = writeError ?? error }
        }
        capture.close()
        warn("\(captured) packets captured, \(stats?.droppedByKernel ?? 0) dropped by kernel")
        if packets.countOnly, outputError == nil { try emit(CaptureFlagOptions.countLine(captured)) }
        if let outputError { throw outputFailure(outputError) }
        if let writeError { throw CLIError(writeError.description) }
    }
}

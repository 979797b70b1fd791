import ArgumentParser
import PacketCapture
import Render

extension CaptureDirection: ExpressibleByArgument {}

/// tcpdump's capture flags for `capture`: -D, -Q and -s (and, with PacketOutputOptions' --count, what they need).
/// Kept apart from CaptureCommand, which calls them at four places.
struct CaptureFlagOptions: ParsableArguments {
    @Flag(
        name: [.customShort("D"), .customLong("list-interfaces")],
        help: "List the interfaces to capture on, as tcpdump -D prints them, and stop.")
    var listInterfaces = false

    @Option(
        name: .customShort("Q"),
        help: ArgumentHelp(
            "Keep only the packets the interface received (in), sent (out), or both (inout), as tcpdump -Q.",
            valueName: "direction"))
    var direction: CaptureDirection?

    @Option(
        name: .customShort("s"),
        help: ArgumentHelp(
            "Keep at most this many bytes of each packet, as tcpdump -s (0: 262144, the default).",
            valueName: "snaplen"))
    var snapshotLength: Int32?

    func validate() throws {
        if let s = snapshotLength, !(0...262_144).contains(s) {
            throw ValidationError("-s takes 0 to 262144 bytes (0 is 262144, as in tcpdump)")
        }
    }

    /// The refusals that need the other option groups: a display flag that cannot shape what is printed.
    func check(packets: PacketOutputOptions, display: DisplayOptions, writing: Bool) throws {
        if packets.countOnly, writing || packets.displayFlag != nil || packets.payload || display.format != .text {
            throw ValidationError("--count prints only the number of packets: drop the options that print them")
        }
        if writing, packets.displayFlag != nil || packets.payload {
            throw ValidationError("-w writes the packets to a file: drop the options that print them")
        }
        if display.format == .jsonl,
            let e = packets.conflict(with: "--format jsonl writes JSON objects (use --format text)")
        {
            throw e
        }
    }

    /// -D: tcpdump's list on standard output. False when it was not asked for.
    func listIfAsked() throws -> Bool {
        guard listInterfaces else { return false }
        let all: [CaptureInterface]
        do { all = try CaptureInterface.all() } catch { throw CLIError(error.description) }
        try emit(all.enumerated().map { $0.element.tcpdumpLine(number: $0.offset + 1) + "\n" }.joined())
        return true
    }

    /// -s before the capture opens.
    func configure(_ options: inout LiveCapture.Options) {
        if let s = snapshotLength { options.snapshotLength = s == 0 ? 262_144 : s }
    }

    /// -Q once it is open.
    func apply(to capture: LiveCapture) throws {
        guard let direction else { return }
        do { try capture.setDirection(direction) } catch { throw CLIError(error.description) }
    }
}

import ArgumentParser
import Glibc
import Render

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, jsonl
}

extension Language: ExpressibleByArgument {}

/// Presentation flags shared by the commands that draw diagrams.
struct DisplayOptions: ParsableArguments {
    @Option(name: .long, help: "Output format: text (a sequence diagram) or jsonl (one JSON object per line).")
    var format: OutputFormat = .text

    @Option(name: .long, help: "Language of labels and notes: en or ja.")
    var lang: Language = .en

    @Flag(name: .long, help: "Never use colour (the default when output is not a terminal or NO_COLOR is set).")
    var noColor = false

    @Flag(name: .long, help: "Always use colour.")
    var color = false

    func validate() throws {
        if noColor && color { throw ValidationError("--color and --no-color contradict each other; pick one") }
    }

    var useColor: Bool {
        if noColor { return false }
        if color { return true }
        return isatty(STDOUT_FILENO) == 1 && getenv("NO_COLOR") == nil
    }
}

/// Writes to stdout without buffering surprises when the reader is a pipe that goes away.
func emit(_ text: String) {
    var t = text
    t.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(STDOUT_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { exit(0) }  // EPIPE: the reader closed (e.g. `| head`); stop quietly like tcpdump.
            offset += n
        }
    }
}

func warn(_ text: String) {
    var t = "packetflow: " + text + "\n"
    t.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

import ArgumentParser
import Glibc
import PacketReading
import Render
import SystemCalls
import Timeline

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, jsonl, mermaid, html
}

extension Language: ExpressibleByArgument {}

/// Presentation flags shared by the commands that draw diagrams.
struct DisplayOptions: ParsableArguments {
    @Option(
        name: .long,
        help: """
            Output format: text (for the terminal: packet lines, or a sequence diagram), jsonl (one JSON object \
            per line), mermaid (a Mermaid sequenceDiagram for Markdown) or html (one self-contained page with an \
            SVG diagram).
            """)
    var format: OutputFormat = .text

    @Option(name: .shortAndLong, help: "Write the output to this file instead of standard output.")
    var output: String?

    @Flag(name: .long, help: "Open the HTML page in the default browser (implies --format html when none is given).")
    var open = false

    @Option(name: .long, help: "Language of labels and notes: en or ja.")
    var lang: Language = .en

    @Flag(name: .long, help: "Never use colour (the default when output is not a terminal or NO_COLOR is set).")
    var noColor = false

    @Flag(name: .long, help: "Always use colour.")
    var color = false

    func validate() throws {
        if noColor && color { throw ValidationError("--color and --no-color contradict each other; pick one") }
        if open && format != .html && format != .text {
            throw ValidationError("--open shows an HTML page; use it with --format html (or without --format)")
        }
    }

    /// The format after `--open`, which only makes sense for HTML.
    var effectiveFormat: OutputFormat { open ? .html : format }

    var useColor: Bool {
        if noColor { return false }
        if color { return true }
        if output != nil || effectiveFormat != .text { return false }
        return isatty(STDOUT_FILENO) == 1 && getenv("NO_COLOR") == nil
    }
}

/// The reader of standard output has gone (`| head`): the command stops writing, runs its cleanup (the trace's
/// hook directory, a capture's counts) as the error unwinds, and `PacketFlow.main` then ends the process as a
/// closed pipe ends any program: by SIGPIPE (status 141 in a shell), as cat and grep do.
struct OutputClosed: Error {}

/// Writes `text` to standard output.
func emit(_ text: String) throws {
    do throws(OutputError) { try OutputSink(fileDescriptor: STDOUT_FILENO).write(text) } catch {
        throw outputFailure(error)
    }
}

/// How a command ends when its output cannot be written: as a closed pipe ends a program when the reader left;
/// with one line and status 1 when output is lost (a full disk).
func outputFailure(_ error: OutputError) -> Error {
    if error == .closed { return OutputClosed() }
    warn(error.description)
    return ExitCode.failure
}

extension DisplayOptions {
    /// Writes a command's whole output where the flags say: standard output, `-o FILE`, or (with `--open`) a
    /// file that is then opened in the default browser.
    /// Whether the format is a whole picture (Mermaid, HTML) rather than a stream of lines.
    var picture: OutputFormat? { effectiveFormat == .mermaid || effectiveFormat == .html ? effectiveFormat : nil }

    /// For commands that stream their output (read, capture): makes `-o FILE` the standard output.
    func redirectStandardOutput() throws {
        guard let output else { return }
        do throws(Errno) {
            let fd = try FileDescriptor.open(output, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
            dup2(fd.rawValue, STDOUT_FILENO)
            try? fd.close()
        } catch {
            throw CLIError("\(output): \(error.message)")
        }
    }

    func deliver(_ text: String, name: String) throws {
        if open && output == nil {
            // A page of our own for the browser: a fresh name (the tool usually runs as root, and a predictable name
            // in /tmp lets anyone plant a symlink there that the write would follow).
            let path = try writeTemporaryPage(text, name: name)
            openInBrowser(path)
            return
        }
        guard let path = output else {
            try emit(text)
            return
        }
        try writeFile(path, text)
        if open { openInBrowser(path) }
    }
}

/// Writes `text` to a new file $TMPDIR/packetflow-NAME-XXXXXX.html created as mkstemps(3) creates it (O_EXCL, so
/// never through a planted symlink), readable by all like any page, and returns its path.
func writeTemporaryPage(_ text: String, name: String) throws -> String {
    let directory = Linux.temporaryDirectory
    var template = Array("\(directory)/packetflow-\(name)-XXXXXX.html".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, 5) }
    guard fd >= 0 else { throw CLIError("cannot create a page in \(directory): \(Errno(rawValue: errno).message)") }
    let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    _ = fchmod(fd, 0o644)
    try write(text, to: FileDescriptor(rawValue: fd), path: path)
    return path
}

/// Creates or truncates `path` and writes `text` to it.
func writeFile(_ path: String, _ text: String) throws {
    let fd: FileDescriptor
    do throws(Errno) { fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644) } catch {
        throw CLIError("cannot write \(path): \(error.message)")
    }
    try write(text, to: fd, path: path)
}

/// Writes all of `text` and closes `fd`; a failure names `path`.
private func write(_ text: String, to fd: FileDescriptor, path: String) throws {
    defer { try? fd.close() }
    var t = text
    let failure = t.withUTF8 { bytes -> Errno? in
        do throws(Errno) { try fd.writeAll(UnsafeRawBufferPointer(bytes)) } catch { return error }
        return nil
    }
    if let failure { throw CLIError("cannot write \(path): \(failure.message)") }
}

/// `xdg-open FILE` when a desktop session could show it; otherwise one line saying where the file is.
/// Without DISPLAY or WAYLAND_DISPLAY, xdg-open would start a text browser in this terminal, so it is not tried.
func openInBrowser(_ path: String) {
    let hasDesktop = getenv("DISPLAY") != nil || getenv("WAYLAND_DISPLAY") != nil
    if hasDesktop {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("xdg-open"), strdup(path), nil]
        defer { argv.forEach { free($0) } }
        if posix_spawnp(&pid, "xdg-open", nil, nil, argv, environ) == 0 {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            if status == 0 { return }
        }
    }
    warn("no browser to open it with; the page is \(path)")
}

import Foundation
import PacketFiles
import PacketReading
import PacketWire
import Render
import TestSupport
import Timeline

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

enum View { case text, jsonl, conversations, payloadHex }

/// What `packetflow read` prints for a file, through the same engine as the CLI (CaptureFiles, writing to a
/// temporary file), and the lines it reports on stderr (a file that went bad).
func render(_ path: String, _ view: View, absolute: Bool = false) -> (output: String, warnings: [String]) {
    let mode: PipelineMode =
        switch view {
        case .text, .payloadHex: .lines(.text)
        case .jsonl: .lines(.jsonl)
        case .conversations: .conversations
        }
    var options = ReadOptions(files: [path], mode: mode)
    var flags = TcpdumpFlags()
    if view == .payloadHex { flags.dump = .hexASCII(withLink: true) }
    options.text = PacketText(absoluteSequence: absolute, payload: view == .payloadHex, flags: flags)
    var template = Array("/tmp/packetflow-read-test-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    precondition(fd >= 0, "mkstemp failed")
    let name = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    defer {
        close(fd)
        unlink(name)
    }
    var warnings: [String] = []
    do {
        _ = try CaptureFiles(options).run(
            sink: OutputSink(fileDescriptor: fd), deliver: { _ in }, warn: { warnings.append($0) })
    } catch {
        warnings.append("\(error)")
    }
    let output = (try? String(contentsOfFile: name, encoding: .utf8)) ?? ""
    return (output, warnings)
}

/// Runs a tool and returns its stdout; nil when the tool is not installed.
func run(_ tool: String, _ arguments: [String], environment: [String: String] = [:]) throws -> String? {
    guard let path = installedTool(tool) else { return nil }
    return try runProcess(path, arguments, environment: environment).stdout
}

/// The fixtures with golden outputs: real captures (lo, -i any v1 and v2, nanosecond, two interfaces,
/// mid-connection) and generated ones (a traffic mix with port reuse and IPv6, malformed packets).
let goldenCaptures = [
    "lo-usec.pcap", "lo-nsec.pcap", "any-sll.pcap", "any-sll2.pcap", "two-interfaces.pcapng",
    "mid-connection.pcap", "mix.pcap", "bad-packets.pcap",
]

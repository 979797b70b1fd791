import Foundation
import TestSupport
import PacketFiles
import PacketWire
import Render
import Timeline

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

enum View { case text, jsonl, conversations, payloadHex }

/// What `packetflow read` prints for a file, built from the same library calls as the CLI's pipeline,
/// followed by the reader's error line (if any) as the CLI writes it on stderr.
func render(_ path: String, _ view: View, absolute: Bool = false) -> (output: String, error: CaptureFileError?) {
    var out = OutputBuffer()
    var builder = PacketEventBuilder()
    var table = ConversationTable()
    var json = JSONWriter()
    let text = PacketText(absoluteSequence: absolute, payload: view == .payloadHex, hex: view == .payloadHex)
    var failure: CaptureFileError?
    do throws(CaptureFileError) {
        let reader = try CaptureFileReader(path: path)
        while let r = try reader.next() {
            let d = PacketDecoder.decode(r.bytes, linkType: r.info.linkType)
            switch view {
            case .conversations:
                // As the CLI does it: peek at the addressing, decode fully only when the peek is unsure.
                switch PacketDecoder.peekFlow(r.bytes, linkType: r.info.linkType) {
                case .flow(let f): table.add(f, info: r.info)
                case .noFlow: table.add(noFlow: r.info)
                case .undecided: table.add(d, info: r.info)
                }
            case .text, .payloadHex:
                let t = builder.track(info: r.info, decoded: d)
                text.write(t, info: r.info, decoded: d, bytes: r.bytes, into: &out)
            case .jsonl:
                let e = builder.event(frame: r.frameNumber, info: r.info, decoded: d, payload: [])
                json.bytes.removeAll(keepingCapacity: true)
                JSONLines.write(e, into: &json, lab: false)
                out.append(json.bytes)
                out.byte(0x0a)
            }
        }
    } catch {
        failure = error
    }
    if view == .conversations {
        ConversationReport.write(table, proto: 6, into: &out)
        ConversationReport.write(table, proto: 17, into: &out)
    }
    return (out.text, failure)
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

// libFuzzer target for what `packetflow read` does with a whole capture file (built by scripts/fuzz.sh, not by
// SwiftPM): the reader, then every view: text lines, JSON Lines, the conversation tables, the terminal flow
// diagram and the HTML and Mermaid pictures. Unlike the decoder target, timestamps, interfaces and comments come
// from the file, so far-apart or backwards times (a time difference that overflows) are covered too.
import PacketFiles
import PacketWire
import Render
import Timeline

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    guard let reader = try? CaptureFileReader(bytes: input, name: "fuzz", bufferSize: 4096) else { return 0 }
    var lines = PacketEventBuilder()
    var events = PacketEventBuilder()
    var conversations = ConversationTable()
    var packets: [PacketEvent] = []
    var out = OutputBuffer()
    var flags = TcpdumpFlags()
    if size & 2 == 0 { flags.dump = .hexASCII(withLink: true) }
    let text = PacketText(absoluteSequence: size & 1 == 0, payload: true, flags: flags)
    do {
        try reader.forEach { record in
            let d = PacketDecoder.decode(record.bytes, linkType: record.info.linkType)
            let t = lines.track(info: record.info, decoded: d)
            text.write(t, info: record.info, decoded: d, bytes: record.bytes, into: &out)
            PacketJSON.write(
                frame: record.frameNumber, t, info: record.info, decoded: d, comments: record.comments,
                into: &out)
            switch PacketDecoder.peekFlow(record.bytes, linkType: record.info.linkType) {
            case .flow(let f): conversations.add(f, info: record.info)
            case .noFlow: conversations.add(noFlow: record.info)
            case .undecided: conversations.add(d, info: record.info)
            }
            if packets.count < 64 {
                var e = events.event(frame: record.frameNumber, info: record.info, decoded: d, payload: [])
                e.comments = record.comments
                e.sender = e.sourceEndpoint?.description
                packets.append(e)
            }
            out.clear()
        }
    } catch {
        precondition(error is CaptureFileError)
    }
    ConversationReport.write(conversations, proto: 6, into: &out, drain: { $0.clear() })
    ConversationReport.write(conversations, proto: 17, into: &out, drain: { $0.clear() })
    if let first = packets.first {
        let diagram = SequenceDiagram(
            leftActor: first.sourceEndpoint?.description ?? "?",
            rightActor: first.destinationEndpoint?.description ?? "?")
        _ = diagram.render(calls: [], packets: packets, origin: first.timestamp)
        let flow = FlowDiagram(
            title: "fuzz", lifelines: FlowDiagram.endpointLifelines(for: packets),
            packets: packets)
        _ = HTMLPage.render(flow)
        _ = MermaidDiagram.render(flow)
    }
    return 0
}

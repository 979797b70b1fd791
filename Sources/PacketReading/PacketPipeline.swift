import Glibc
import PacketCapture
import PacketWire
import Render
import Timeline

/// What `read` and `capture` print for a stream of packets.
public enum PipelineMode: Sendable {
    case lines(LineFormat)
    case conversations
    /// Sequence diagrams of TCP streams: in the terminal, or (`picture`) one Mermaid or HTML diagram of them all.
    case flow(stream: Int?, picture: PictureFormat?)
    /// Nothing printed: the caller writes the packets that `handle` accepts to a file (`read -w`).
    case select

    public enum LineFormat: Sendable { case text, jsonl }
    public enum PictureFormat: Sendable { case mermaid, html }

}

/// The per-packet path shared by `read` and `capture`: filter, decode, track streams, render into one reusable
/// buffer that goes out in large `write(2)`s. Nothing here allocates per packet for IPv4 TCP/UDP text output.
/// A struct held in the caller's local variable (not a class), so the per-packet path reaches its state without
/// dynamic exclusivity checks.
public struct PacketPipeline: ~Copyable {
    public let mode: PipelineMode
    /// Where the lines, tables and terminal diagrams go.
    public let sink: OutputSink
    /// One line for the reader, outside the output (an empty stream selection).
    let warn: (String) -> Void
    public let text: PacketText
    /// Lines take tcpdump's display flags (`text.flags`); decided once, so the plain line pays one test a packet.
    private let styled: Bool
    /// What those flags remember from line to line (`-ttt`), across files as in tcpdump.
    private var lineState = TcpdumpLineState()
    public let filterExpression: String?
    /// Packets still to print (`-c`); nil for no limit.
    public var remaining: Int?
    public private(set) var printed = 0

    private var out = OutputBuffer(capacity: 1 << 17)
    private var builder = PacketEventBuilder()
    private var conversations = ConversationTable()
    private var flows: [Int: [PacketEvent]] = [:]
    /// Payload bytes by frame, for the HTML page's details panel (at most `pictureBytes` a packet).
    private var payloads: [Int: [UInt8]] = [:]
    private static let pictureBytes = 4096
    /// The Mermaid or HTML text once a file is finished in picture mode.
    public private(set) var picture: String?
    private var filters: [UInt32: BPFFilter] = [:]
    private var lastFilter: (link: UInt32, filter: BPFFilter)?
    /// Colour and language of the flow diagrams and pictures.
    public let color: Bool
    public let language: Language

    public init(
        mode: PipelineMode, text: PacketText, filter: String?, count: Int?, color: Bool = false,
        language: Language = .en, sink: OutputSink = OutputSink(fileDescriptor: STDOUT_FILENO),
        warn: @escaping (String) -> Void = { _ in }
    ) {
        self.mode = mode
        self.sink = sink
        self.warn = warn
        self.text = text
        self.styled = !text.flags.isPlain
        self.filterExpression = filter
        self.remaining = count
        self.color = color
        self.language = language
    }

    /// A fresh file: stream indexes, relative numbers and conversations start again (as tshark numbers them).
    public mutating func reset() {
        builder = PacketEventBuilder()
        conversations = ConversationTable()
        flows = [:]
        payloads = [:]
        streamEnds = nil
        nextStream = 0
        pictured = 0
    }

    public var done: Bool { remaining.map { $0 <= 0 } ?? false || pictureTooLarge }

    /// The most packets one Mermaid or HTML picture holds. 100 000 packets make a 180 MB page; beyond that a
    /// browser struggles and Mermaid gives up long before, so the reader is asked to pick a stream or a count.
    public static let pictureLimit = 100_000
    /// Set (and reading stops) when a picture would hold more than `pictureLimit` packets.
    public private(set) var pictureTooLarge = false
    private var pictured = 0

    /// Compiles the filter for a link type (once per link type); throws when libpcap rejects it.
    public mutating func filter(for link: LinkType) throws(CaptureError) -> BPFFilter? {
        guard let expression = filterExpression, !expression.isEmpty else { return nil }
        if let last = lastFilter, last.link == link.rawValue { return last.filter }
        let f: BPFFilter
        if let cached = filters[link.rawValue] {
            f = cached
        } else {
            f = try BPFFilter(expression, linkType: link)
            filters[link.rawValue] = f
        }
        lastFilter = (link.rawValue, f)
        return f
    }

    /// Handles one packet. Every packet is decoded and tracked (so stream indexes and relative numbers agree
    /// with tshark's, which numbers all packets); only those that pass the filter are shown. Returns whether it
    /// was (within `-c`), which is all `.select` does.
    @discardableResult
    public mutating func handle(frame: Int, info: CaptureInfo, bytes: ByteView, comments: [String] = [])
        throws(ReadError) -> Bool
    {
        if done { return false }
        var show = true
        let filter: BPFFilter?
        do throws(CaptureError) { filter = try self.filter(for: info.linkType) } catch { throw .filter(error) }
        if let f = filter {
            show = f.matches(bytes, capturedLength: info.capturedLength, originalLength: info.originalLength)
        }
        if case .select = mode {
            if show { count() }
            return show
        }
        if case .conversations = mode {
            // Addresses, ports and TCP flags are all a conversation needs: peek, decode fully only when unsure.
            if show {
                switch PacketDecoder.peekFlow(bytes, linkType: info.linkType) {
                case .flow(let f): conversations.add(f, info: info)
                case .noFlow: conversations.add(noFlow: info)
                case .undecided: conversations.add(PacketDecoder.decode(bytes, linkType: info.linkType), info: info)
                }
                count()
            }
            return show
        }
        let decoded = PacketDecoder.decode(bytes, linkType: info.linkType)
        switch mode {
        case .conversations, .select:
            break
        case .lines(let format):
            let t = builder.track(info: info, decoded: decoded)
            guard show else { return false }
            switch format {
            case .text:
                if styled {
                    writeStyled(t, info: info, decoded: decoded, bytes: bytes)
                } else {
                    text.write(t, info: info, decoded: decoded, bytes: bytes, into: &out)
                }
            case .jsonl:
                // Byte for byte JSONLines.write(builder.event(...), into:, lab: false), without the event.
                PacketJSON.write(frame: frame, t, info: info, decoded: decoded, comments: comments, into: &out)
                out.byte(0x0a)
            }
            if out.count >= 1 << 16 {
                do throws(OutputError) { try flush() } catch { throw .output(error) }
            }
        case .flow(let only, let picture):
            // Every packet is tracked (stream numbers depend on all of them); only the shown ones become events.
            let t = builder.track(info: info, decoded: decoded)
            guard show, t.hasStream, only == nil || only == t.stream else { return false }
            let stream = t.stream
            if picture != nil {
                pictured += 1
                if pictured > Self.pictureLimit {
                    pictureTooLarge = true
                    return false
                }
            }
            var e = PacketEventBuilder.event(
                frame: frame, info: info, decoded: decoded, payload: Self.payload(decoded, bytes, limit: 80), track: t)
            e.sender = e.sourceEndpoint?.description
            e.comments = comments
            flows[stream, default: []].append(e)
            if picture == nil {
                do throws(OutputError) { try printCompleteStreams(after: frame) } catch { throw .output(error) }
            }
            if picture == .html {
                let p = Self.payload(decoded, bytes, limit: Self.pictureBytes)
                if !p.isEmpty { payloads[frame] = Array(p) }
            }
        }
        if show { count() }
        return show
    }

    /// A line with tcpdump's display flags; out of `handle`, which stays as small as the plain line needs.
    @inline(never)
    private mutating func writeStyled(_ t: PacketTrack, info: CaptureInfo, decoded: DecodedPacket, bytes: ByteView) {
        // -# counts the packets shown, this one included.
        text.write(t, info: info, decoded: decoded, bytes: bytes, number: printed + 1, state: &lineState, into: &out)
    }

    /// One more packet shown, towards `-c`.
    private mutating func count() {
        printed += 1
        if let r = remaining { remaining = r - 1 }
    }

    private static func payload(_ d: DecodedPacket, _ bytes: ByteView, limit: Int) -> ArraySlice<UInt8> {
        guard d.capturedPayloadLength > 0, let p = bytes.slice(d.payloadOffset, min(d.capturedPayloadLength, limit))
        else { return [] }
        return p.copyBytes()[...]
    }

    /// Prints what is collected until the end of a file (conversation tables, flow diagrams) and flushes.
    public mutating func finishFile(title: String = "PacketFlow") throws(OutputError) {
        switch mode {
        case .lines, .select: break
        case .conversations:
            let sink = self.sink
            let drain: (inout OutputBuffer) throws(OutputError) -> Void = { (o) throws(OutputError) in
                try o.withBytes { (bytes) throws(OutputError) in try sink.write(bytes) }
                o.clear()
            }
            try ConversationReport.write(conversations, proto: 6, into: &out, drain: drain)
            try ConversationReport.write(conversations, proto: 17, into: &out, drain: drain)
        case .flow(let only, let picture):
            if flows.isEmpty, let only {
                warn("no TCP stream \(only) in this input")
            }
            if let picture {
                // One diagram of every drawn stream, a lifeline per endpoint; the HTML page picks streams itself.
                let events = flows.values.joined().sorted { $0.frame < $1.frame }
                let diagram = FlowDiagram(
                    title: title, language: language, lifelines: FlowDiagram.endpointLifelines(for: events),
                    packets: events, payloads: payloads)
                self.picture = picture == .html ? HTMLPage.render(diagram) : MermaidDiagram.render(diagram)
                return
            }
            for stream in flows.keys.sorted() { try printStream(stream, flows[stream]!) }
            flows = [:]
        }
        try flush()
    }

    /// The last frame of each TCP stream of the file being read (index = stream), from a first pass over it
    /// (`ReadCommand.streamEnds(of:)`): with it the terminal flow diagrams of every stream are printed as soon as
    /// a stream and all before it are complete, so memory follows the streams open at once, not the file's packets.
    public var streamEnds: [Int]?
    private var nextStream = 0

    /// Prints the buffered streams that are complete once `frame` has been handled, in stream order.
    private mutating func printCompleteStreams(after frame: Int) throws(OutputError) {
        guard let ends = streamEnds else { return }
        while nextStream < ends.count, ends[nextStream] <= frame {
            if let events = flows.removeValue(forKey: nextStream) { try printStream(nextStream, events) }
            nextStream += 1
        }
    }

    /// One stream's terminal diagram, the initiator on the left.
    private mutating func printStream(_ stream: Int, _ events: [PacketEvent]) throws(OutputError) {
        guard let first = events.first, let a = first.sourceEndpoint, let b = first.destinationEndpoint else { return }
        // The initiator on the left: the sender of the first SYN without ACK, else the first sender.
        var left = a
        var right = b
        if let syn = events.first(where: { $0.flags == .syn }), let s = syn.sourceEndpoint,
            let d = syn.destinationEndpoint
        {
            left = s
            right = d
        }
        var diagram = SequenceDiagram(
            leftActor: left.description, rightActor: right.description,
            language: language, color: color)
        diagram.arrowWidth = 56
        out.append("\nTCP stream \(stream)\n")
        out.append(diagram.header(left: nil, right: nil))
        out.append(diagram.render(calls: [], packets: events, origin: first.timestamp))
        try flush()
    }

    /// Writes what the buffer holds to the sink.
    public mutating func flush() throws(OutputError) {
        guard out.count > 0 else { return }
        let sink = self.sink
        try out.withBytes { (bytes) throws(OutputError) in try sink.write(bytes) }
        out.clear()
    }
}

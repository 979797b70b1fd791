import PacketWire
import Timeline

/// The terminal sequence diagram: each call as a numbered step, each packet it caused as an arrow between the two
/// columns (`[Server] <─── SYN ─── [Client]`, as the seed draws it), kernel-sent packets marked (dimmed in
/// colour), and the sockets' TCP states after the step.
public struct SequenceDiagram {
    public var leftActor: String
    public var rightActor: String
    public var language: Language
    public var color: Bool
    /// Minimum arrow length in cells.
    public var arrowWidth = 52
    /// Adds a plain-language note under each packet and each TCP state change (`--explain`).
    public var explain = false

    public init(leftActor: String, rightActor: String, language: Language = .en, color: Bool = false) {
        self.leftActor = leftActor
        self.rightActor = rightActor
        self.language = language
        self.color = color
    }

    // ANSI styles, empty without colour.
    private var bold: String { color ? "\u{1b}[1m" : "" }
    private var dim: String { color ? "\u{1b}[2m" : "" }
    private var reset: String { color ? "\u{1b}[0m" : "" }
    private var red: String { color ? "\u{1b}[31m" : "" }
    private var cyan: String { color ? "\u{1b}[36m" : "" }
    private var green: String { color ? "\u{1b}[32m" : "" }
    private var yellow: String { color ? "\u{1b}[33m" : "" }

    /// The header naming the two columns and their addresses.
    public func header(left: String?, right: String?) -> String {
        let l = language.column(leftActor) + (left.map { " \($0)" } ?? "")
        let r = language.column(rightActor) + (right.map { " \($0)" } ?? "")
        return "\(bold)\(l)\(reset)  ⇄  \(bold)\(r)\(reset)\n"
    }

    /// Renders the steps in order with the packets attributed to each; packets with no call come first.
    public func render(calls: [CallEvent], packets: [PacketEvent], origin: Timestamp? = nil) -> String {
        let t0 = origin ?? calls.first?.start ?? packets.first?.timestamp ?? Timestamp(seconds: 0, nanoseconds: 0)
        var byCall: [Int: [PacketEvent]] = [:]
        var orphans: [PacketEvent] = []
        for p in packets {
            if let c = p.call { byCall[c, default: []].append(p) } else { orphans.append(p) }
        }
        var out = ""
        for p in orphans { out += packetLine(p, origin: t0) + explanation(p) }
        var previous: [String: TCPState] = [:]
        for c in calls {
            out += stepLine(c, origin: t0)
            let ps = byCall[c.id] ?? []
            for p in ps { out += packetLine(p, origin: t0) + explanation(p) }
            if !c.tcpStates.isEmpty {
                let states = c.tcpStates.map { "\(language.actorName($0.0)) \($0.1.name)" }.joined(separator: "  ")
                out += "      \(dim)\(language.statesLabel): \(reset)\(states)\n"
                for (actor, state) in c.tcpStates where previous[actor] != state {
                    if explain, previous[actor] != nil || state != .closed,
                        let text = Explanations.state(state, language)
                    {
                        out += "      \(dim)  ↳ \(language.actorName(actor)) \(state.name): \(text)\(reset)\n"
                    }
                    previous[actor] = state
                }
            }
        }
        return out
    }

    /// The `--explain` note under a packet, or nothing.
    func explanation(_ p: PacketEvent) -> String {
        guard explain, let text = Explanations.packet(p, language) else { return "" }
        return "                 \(dim)↳ \(text)\(reset)\n"
    }

    public func stepLine(_ c: CallEvent, origin: Timestamp) -> String {
        let args = FlowText.arguments(c)
        let result = c.errno == nil ? FlowText.result(c) : "\(red)\(FlowText.result(c))\(reset)"
        let source = c.source.map { "  \(dim)\($0)\(reset)" } ?? ""
        let note = c.note.map { "\n      \(dim)\($0)\(reset)" } ?? ""
        let time = FlowText.offset(c.start, origin)
        return "\n\(bold)\(pad(String(c.id), 3)) \(language.actorName(c.actor))\(reset) \(c.name)(\(args)) = \(result)"
            + "  \(dim)\(time)\(reset)\(source)\(note)\n"
    }

    /// The arrow's label: the packet as the other renderers name it, with SYN options and the payload's text.
    public func label(_ p: PacketEvent) -> String {
        var text = ""
        appendLabel(p, to: &text)
        return text
    }

    /// ``label(_:)`` appended to `out`.
    public func appendLabel(_ p: PacketEvent, to out: inout String) {
        FlowText.appendPacket(p, to: &out)
        if p.flags != nil, let o = p.synOptions, !o.isEmpty {
            out += " ["
            out += o
            out += "]"
        }
        if let preview = p.payloadPreview {
            out += " \""
            out += preview
            out += "\""
        }
    }

    public func packetLine(_ p: PacketEvent, origin: Timestamp) -> String {
        let text = " \(label(p)) "
        let width = max(arrowWidth, displayWidth(text) + 6)
        let fill = width - displayWidth(text) - 1
        let leftFill = fill / 2
        let rightFill = fill - leftFill
        let toLeft = p.sender == rightActor || (p.sender != leftActor && p.sender != nil)
        let arrow: String
        if toLeft {
            arrow = "<" + String(repeating: "─", count: leftFill) + text + String(repeating: "─", count: rightFill)
        } else {
            arrow = String(repeating: "─", count: leftFill) + text + String(repeating: "─", count: rightFill) + ">"
        }
        var tint = toLeft ? cyan : green
        if p.flags?.contains(.rst) == true || p.proto.isICMP { tint = red }
        if p.byKernel { tint = dim + tint }
        var note = ""
        if p.byKernel {
            note = "  \(dim)(\(language.kernelPrefix): \(p.kernel?.text(language) ?? ""))\(reset)"
        }
        if let problem = p.problem { note += "  \(yellow)[\(problem)]\(reset)" }
        let frame = pad("#\(p.frame)", 5)
        let time = pad(FlowText.offset(p.timestamp, origin), 13)
        var comments = ""
        for c in p.comments {
            let line = c.split(whereSeparator: \.isNewline).joined(separator: " ")
            comments += "                 \(dim)\(language.commentLabel): \(line)\(reset)\n"
        }
        return "  \(dim)\(frame)\(time)\(reset)\(language.column(leftActor)) \(tint)\(arrow)\(reset) "
            + "\(language.column(rightActor))\(note)\n\(comments)"
    }

}

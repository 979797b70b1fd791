import PacketWire
import Timeline

/// Where the text timeline draws each packet: the program's end in a left column (its process and socket, padded
/// to one width, so the program's sockets line up), the other end on the right, and an arrow from sender to
/// receiver. A flow keeps the sides its first packet gave it: when both ends are traced (a client and a server
/// in the same trace), the end that sent first, usually the client, stays on the left. An end is the program's
/// when the attribution found a traced socket sending from it.
public struct PacketColumns {
    public struct Row: Sendable {
        public var left: String
        public var right: String
        /// The packet goes from the left end to the right one.
        public var rightward: Bool
        /// `left.count`, counted once per end (counting characters walks the string).
        public var leftWidth: Int
    }

    /// One per packet; nil for a packet without ports (ICMP, ARP), drawn as "source → destination".
    public var rows: [Row?] = []
    public var width = 0

    /// One end of one flow.
    private struct End: Hashable {
        var flow: ConversationKey
        var endpoint: Endpoint
    }

    public init(packets: [PacketEvent]) {
        // Who owns each end of each flow: the attribution names the traced process whose socket sent a packet
        // (`sender`), or leaves the source address there when no traced socket did.
        var owners: [End: String] = [:]
        // The key orders its two ends itself.
        func flow(_ s: Endpoint, _ d: Endpoint) -> ConversationKey { ConversationKey(s, d, proto: 0) }
        for p in packets {
            guard let s = p.sourceEndpoint, let d = p.destinationEndpoint, let sender = p.sender,
                sender != s.description
            else { continue }
            owners[End(flow: flow(s, d), endpoint: s)] = sender
        }
        var leftEnd: [ConversationKey: Endpoint] = [:]
        // Each end's label and width, made once: a flow has many packets (1000 exchanges, ~10 000 packets).
        var labels: [End: (text: String, width: Int)] = [:]
        rows.reserveCapacity(packets.count)
        for p in packets {
            guard let s = p.sourceEndpoint, let d = p.destinationEndpoint else {
                rows.append(nil)
                continue
            }
            let key = flow(s, d)
            func owner(_ end: Endpoint) -> String? { owners[End(flow: key, endpoint: end)] }
            let left = leftEnd[key] ?? (owner(s) != nil || owner(d) == nil ? s : d)
            leftEnd[key] = left
            let right = left == s ? d : s
            func label(_ end: Endpoint) -> (text: String, width: Int) {
                let end = End(flow: key, endpoint: end)
                if let known = labels[end] { return known }
                let text = owners[end].map { "\($0) \(end.endpoint)" } ?? end.endpoint.description
                labels[end] = (text, text.count)
                return (text, text.count)
            }
            let l = label(left)
            let row = Row(left: l.text, right: label(right).text, rightward: left == s, leftWidth: l.width)
            width = max(width, row.leftWidth)
            rows.append(row)
        }
    }
}

/// The text timeline of a trace: calls and packets in time order, each packet with the call that sent it or the
/// reason a kernel sent it, and the call that consumed its data.
public struct TraceText {
    public var language: Language
    public var color: Bool

    public init(language: Language, color: Bool) {
        self.language = language
        self.color = color
    }

    private var dim: String { color ? "\u{1b}[2m" : "" }
    private var bold: String { color ? "\u{1b}[1m" : "" }
    private var reset: String { color ? "\u{1b}[0m" : "" }

    public func render(command: String, calls: [CallEvent], packets: [PacketEvent], captured: Bool) -> String {
        let ja = language == .ja
        // One string appended to in place: a busy trace has tens of thousands of lines.
        var out = (ja ? "PacketFlow トレース: " : "PacketFlow trace: ") + command + "\n"
        out.reserveCapacity(out.utf8.count + 110 * (calls.count + packets.count))
        // Each call's name by id (names, not whole calls: copying 9000 calls with their strings took ~1.5 ms).
        let names = Dictionary(uniqueKeysWithValues: calls.map { ($0.id, $0.name) })
        let order = TimelineEvent.order(calls: calls, packets: packets, by: .byTime)
        let t0: Timestamp
        switch order.first {
        case .call(let i)?: t0 = calls[i].start
        case .packet(let j)?: t0 = packets[j].timestamp
        case nil: t0 = Timestamp(seconds: 0, nanoseconds: 0)
        }
        let diagram = SequenceDiagram(leftActor: "", rightActor: "", language: language, color: false)
        let columns = PacketColumns(packets: packets)
        // The lines of `range` of the events: each line depends only on its own event, so a long timeline is
        // written in two halves on two cores (a trace of 1000 exchanges has ~19 000 lines, ~30 ms on one).
        func lines(_ range: Range<Int>) -> String {
            var out = ""
            out.reserveCapacity(110 * range.count)
            for position in order[range] {
                switch position {
                case .call(let i):
                    let c = calls[i]
                    appendOffset(c.start, t0, to: &out)
                    out += " "
                    out += bold
                    out += "#"
                    out += String(c.id)
                    out += " "
                    out += c.actor
                    out += reset
                    out += " "
                    out += c.name
                    out += "("
                    for (i, arg) in c.args.enumerated() {
                        if i > 0 { out += ", " }
                        out += arg.1.description
                    }
                    out += ") = "
                    if let errno = c.errno {
                        out += "-1 "
                        out += errno
                    } else {
                        out += c.result.map { String($0) } ?? "?"
                    }
                    if let l = c.local {
                        out += "  "
                        out += l.description
                        if let r = c.remote {
                            out += " → "
                            out += r.description
                        }
                    }
                    if let s = c.tcpStates.first {
                        out += "  "
                        out += s.1.name
                    }
                    out += "\n"
                    if let src = c.source {
                        out += "               "
                        out += dim
                        out += src
                        out += reset
                        out += "\n"
                    }
                case .packet(let j):
                    let p = packets[j]
                    out += dim
                    appendOffset(p.timestamp, t0, to: &out)
                    out += reset
                    out += "   "
                    let src = p.sourceEndpoint?.description ?? p.source?.description ?? "?"
                    if let row = columns.rows[j] {
                        out += row.left
                        for _ in row.leftWidth..<columns.width { out += " " }
                        out += row.rightward ? " ── " : " <── "
                        diagram.appendLabel(p, to: &out)
                        out += row.rightward ? " ──> " : " ── "
                        out += row.right
                    } else {
                        out += src
                        out += " → "
                        out += p.destinationEndpoint?.description ?? p.destination?.description ?? "?"
                        out += " "
                        diagram.appendLabel(p, to: &out)
                    }
                    if p.byKernel {
                        out += "  "
                        out += dim
                        out += "("
                        out += language.kernelPrefix
                        if case .softirq(let name, _)? = p.context {
                            // Where the eBPF engine saw the kernel build it.
                            out += " "
                            out += name
                        }
                        out += ": "
                        out += p.kernel?.text(language) ?? ""
                        out += ")"
                        out += reset
                    } else if let c = p.call, let name = names[c] {
                        out += ja ? "  ← #\(c) \(name) が送信" : "  ← sent by #\(c) \(name)"
                    } else if p.sender == src {
                        if case .untraced(let task?)? = p.context {
                            out += ja ? "  (トレース外の相手 \(task))" : "  (peer \(task), not traced)"
                        } else {
                            out += ja ? "  (トレース外の相手)" : "  (peer, not traced)"
                        }
                    }
                    if let c = p.consumedBy, let name = names[c] {
                        out += ja ? "  → #\(c) \(name) が受信" : "  → consumed by #\(c) \(name)"
                    }
                    out += "\n"
                }
            }
            return out
        }
        let parts = inHalves(count: order.count, minimum: 4096, lines)
        for part in parts { out += part }
        let kernel = packets.filter(\.byKernel).count
        if captured {
            out +=
                ja
                ? "\n\(calls.count) 回の呼び出し、\(packets.count) パケット (うちカーネルが自ら送信: \(kernel))\n"
                : "\n\(calls.count) calls, \(packets.count) packets (\(kernel) sent by a kernel on its own)\n"
        } else {
            out += ja ? "\n\(calls.count) 回の呼び出し (キャプチャなし)\n" : "\n\(calls.count) calls (no capture)\n"
        }
        return out
    }

    /// "   +12.345ms": the diagrams' time offset, right-aligned in 12 columns.
    func appendOffset(_ t: Timestamp, _ t0: Timestamp, to out: inout String) {
        let text = FlowText.offset(t, t0)
        for _ in text.utf8.count..<max(12, text.utf8.count) { out += " " }
        out += text
    }
}

/// The command as one line a shell would run again: plain words as they are, others in single quotes, and
/// those with a newline or another control character in bash's $'…' (a `python3 -c` script stays one line).
public func shellCommandLine(_ words: [String]) -> String {
    let plain = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-".unicodeScalars)
    return words.map { word -> String in
        if !word.isEmpty, word.unicodeScalars.allSatisfy({ plain.contains($0) || $0.value >= 0x80 }) { return word }
        guard word.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            return "'" + word.map { $0 == "'" ? "'\\''" : String($0) }.joined() + "'"
        }
        var out = "$'"
        for scalar in word.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "'": out += "\\'"
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                out += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "'"
    }.joined(separator: " ")
}

extension FlowDiagram {
    /// A trace as the Mermaid and HTML renderers draw it: a lifeline per traced process (the calls' actors), in
    /// order of their first call; the peers it talked to get theirs from their endpoints. States are read when a
    /// call returns.
    public static func trace(
        title: String, language: Language, calls: [CallEvent], packets: [PacketEvent], payloads: [Int: [UInt8]]
    ) -> FlowDiagram {
        var actors: [String] = []
        for c in calls where !actors.contains(c.actor) { actors.append(c.actor) }
        var diagram = FlowDiagram(
            title: "packetflow trace — \(title)", language: language,
            lifelines: actors.map { Lifeline(id: $0, label: $0) }, calls: calls, packets: packets, payloads: payloads)
        diagram.statesAtReturn = true
        return diagram
    }
}

/// A Mermaid `sequenceDiagram` of a flow, for GitHub Markdown: a participant per lifeline, `Note over` for calls
/// and TCP state changes, `->>` for packets a call sent and dotted `-->>` for packets a kernel sent on its own.
///
/// Participants are named `p0`, `p1`, … so any lifeline id (an address, `curl[42]`) is safe; every label goes
/// through `escape`, so no label can end a statement or start a comment.
public enum MermaidDiagram {
    public static func render(_ d: FlowDiagram) -> String {
        var ids: [String: String] = [:]
        var out = "sequenceDiagram\n"
        if !d.title.isEmpty { out += "    title \(escape(d.title))\n" }
        for (i, l) in d.lifelines.enumerated() {
            ids[l.id] = "p\(i)"
            let label = l.shownAddress.map { "\(l.label) \($0)" } ?? l.label
            out += "    participant p\(i) as \(escape(label))\n"
        }
        for row in d.rows {
            switch row {
            case .call(let c):
                // A call by an actor with no lifeline (a trace's helper process) still shows, over everyone.
                let over = ids[c.actor] ?? (d.lifelines.isEmpty ? nil : "p0,p\(d.lifelines.count - 1)")
                guard let over else { continue }
                // The program's line (trace of a Python program) on a second line of the note.
                let source = c.source.map { "<br/>" + escape($0) } ?? ""
                out += "    Note over \(over): \(escape(FlowText.call(c)))\(source)\n"
            case .states(_, let changes):
                for (actor, state) in changes {
                    guard let id = ids[actor] else { continue }
                    out += "    Note over \(id): \(escape("\(d.language.statesLabel) → \(state)"))\n"
                }
            case .packet(let p):
                guard let from = d.sender(of: p).flatMap({ ids[$0] }), let to = d.receiver(of: p).flatMap({ ids[$0] })
                else { continue }
                var label = "[\(p.frame)] " + FlowText.packet(p)
                if let k = FlowText.kernel(p, d.language) { label += " (\(k))" }
                out += "    \(from)\(p.byKernel ? "-->>" : "->>")\(to): \(escape(label))\n"
            }
        }
        return out
    }

    /// Replaces what Mermaid reads as syntax inside a label with its entity codes (`#59;` for `;`): `;` ends a
    /// statement, `#` starts an entity, `:` separates a message, `<` `>` are HTML to GitHub, `%%` starts a
    /// comment, and a newline ends the line.
    public static func escape(_ s: String) -> String {
        s.substituting {
            switch $0 {
            case ";": "#59;"
            case "#": "#35;"
            case ":": "#58;"
            case "<": "#lt;"
            case ">": "#gt;"
            case "%": "#37;"
            case "\n", "\r", "\r\n": " "
            default: nil
            }
        }
    }
}

extension String {
    /// The string with each character `replacement` names replaced (the escapers of Mermaid and HTML).
    func substituting(_ replacement: (Character) -> String?) -> String {
        var out = ""
        out.reserveCapacity(utf8.count)
        for ch in self {
            if let r = replacement(ch) { out += r } else { out.append(ch) }
        }
        return out
    }
}

import PacketWire
import Timeline

/// One self-contained HTML page of a flow: no network fetches, everything inline. The flow is embedded as JSON in
/// `<script type="application/json" id="flow-data">`; a small inline script draws the SVG sequence diagram (a
/// lifeline per actor, one `<g class="packet" data-frame="N">` per packet arrow), the stream picker, the pages
/// and the details panel. URL fragment `#stream=1&page=2&frame=7&theme=dark` opens a given view.
public enum HTMLPage {
    /// Packets per page in the browser: an SVG of tens of thousands of arrows stops being usable.
    public static let packetsPerPage = 200

    /// - Parameter payloadLimit: at most this many payload bytes per packet go into the page, so a bulk
    ///   transfer does not make a page of hundreds of megabytes.
    public static func render(_ d: FlowDiagram, payloadLimit: Int = 4096) -> String {
        let json = data(d, payloadLimit: payloadLimit)
        let lang = d.language.rawValue
        return """
            <!DOCTYPE html>
            <html lang="\(lang)">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="generator" content="packetflow">
            <title>\(escapeHTML(d.title))</title>
            <style>\(css)</style>
            </head>
            <body>
            <header>
              <h1>\(escapeHTML(d.title))</h1>
              <div id="controls">
                <span id="summary"></span>
                <label id="stream-picker"><span id="stream-label"></span> <select id="stream"></select></label>
                <span id="pager"><button id="prev" type="button"></button> <span id="page"></span> <button id="next" type="button"></button></span>
                <button id="theme" type="button"></button>
              </div>
            </header>
            <main>
              <div id="view"><svg id="diagram" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="\(escapeHTML(d.title))"></svg></div>
              <aside id="details"></aside>
            </main>
            <script type="application/json" id="flow-data">\(json)</script>
            <script>\(script)</script>
            </body>
            </html>

            """
    }

    /// The JSON the page's script reads. `<` is written as `\u003c` so no string can close the script element.
    static func data(_ d: FlowDiagram, payloadLimit: Int) -> String {
        let l = d.language
        var w = JSONWriter()
        w.beginObject()
        w.field("title", d.title)
        w.field("lang", l.rawValue)
        w.field("perPage", packetsPerPage)
        w.key("strings")
        w.beginObject()
        for (k, v) in strings(l) { w.field(k, v) }
        w.endObject()
        w.beginArray("lifelines")
        for lane in d.lifelines {
            w.beginObject()
            w.field("id", lane.id)
            w.field("label", lane.label)
            w.field("address", lane.shownAddress)
            w.endObject()
        }
        w.endArray()
        let origin = d.origin
        let callText = Dictionary(
            d.calls.map {
                ($0.id, "\(l.actorName($0.actor)): \(FlowText.call($0))" + ($0.source.map { "\n\($0)" } ?? ""))
            }
        ) { a, _ in a }
        w.beginArray("rows")
        for row in d.rows {
            w.beginObject()
            switch row {
            case .call(let c):
                w.field("kind", "call")
                w.field("id", c.id)
                w.field("actor", c.actor)
                w.field("text", FlowText.call(c))
                w.field("t", FlowText.offset(c.start, origin))
                w.field("note", c.note)
                w.field("source", c.source)
            case .states(let call, let changes):
                w.field("kind", "state")
                w.field("call", call)
                w.beginArray("changes")
                for (actor, state) in changes {
                    w.beginObject()
                    w.field("actor", actor)
                    w.field("state", state)
                    w.endObject()
                }
                w.endArray()
            case .packet(let p):
                w.field("kind", "packet")
                w.field("frame", p.frame)
                w.field("t", FlowText.offset(p.timestamp, origin))
                w.field("from", d.sender(of: p))
                w.field("to", d.receiver(of: p))
                w.field("label", FlowText.packet(p))
                w.field("kernel", FlowText.kernel(p, l))
                w.field("stream", p.stream)
                w.field("cls", style(p))
                w.field("callId", p.call)
                w.field("call", p.call.flatMap { callText[$0] })
                if !p.comments.isEmpty {
                    w.beginArray("comments")
                    for c in p.comments { w.string(c) }
                    w.endArray()
                }
                w.beginArray("fields")
                for (k, v) in fields(p, origin: origin) {
                    w.beginObject()
                    w.field("k", k)
                    w.field("v", v)
                    w.endObject()
                }
                w.endArray()
                if let bytes = d.payloads[p.frame] {
                    w.field("payloadLen", bytes.count)
                    w.field("payload", hex(bytes.prefix(max(payloadLimit, 0))))
                } else {
                    w.field("preview", p.payloadPreview)
                }
            }
            w.endObject()
        }
        w.endArray()
        w.endObject()
        var out: [UInt8] = []
        out.reserveCapacity(w.bytes.count)
        for b in w.bytes {
            if b == UInt8(ascii: "<") { out += Array("\\u003c".utf8) } else { out.append(b) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func style(_ p: PacketEvent) -> String {
        if p.flags?.contains(.rst) == true || p.proto.isICMP { return "rst" }
        if p.flags?.contains(.syn) == true { return "syn" }
        if p.flags?.contains(.fin) == true { return "fin" }
        return p.length > 0 ? "data" : ""
    }

    /// The decoded fields, named as Wireshark's columns and tcpdump name them (not translated).
    static func fields(_ p: PacketEvent, origin: Timestamp) -> [(String, String)] {
        var f: [(String, String)] = [("Frame", "\(p.frame)"), ("Time", FlowText.offset(p.timestamp, origin))]
        f.append(("Timestamp", epochString(p.timestamp)))
        f.append(("Source", p.sourceEndpoint?.description ?? p.source?.description ?? "?"))
        f.append(("Destination", p.destinationEndpoint?.description ?? p.destination?.description ?? "?"))
        f.append(("Protocol", p.proto.description))
        if let flags = p.flags { f.append(("Flags", flags.names.joined(separator: ", "))) }
        if let seq = p.seq { f.append(("Seq (relative)", "\(seq)")) }
        if let ack = p.ack { f.append(("Ack (relative)", "\(ack)")) }
        if let win = p.window { f.append(("Window", "\(win)")) }
        f.append(("Length", "\(p.length)"))
        if let s = p.stream { f.append(("Stream", "\(s)")) }
        if let o = p.synOptions, !o.isEmpty { f.append(("SYN options", o)) }
        if let s = p.summary { f.append(("Info", s)) }
        for a in p.analysis { f.append(("Analysis", a)) }
        if let problem = p.problem { f.append(("Problem", problem)) }
        if p.truncated { f.append(("Truncated", "yes")) }
        return f
    }

    static func strings(_ l: Language) -> [(String, String)] {
        switch l {
        case .en:
            [
                ("stream", "Stream"), ("allStreams", "All streams"), ("page", "Page"), ("prev", "‹ Prev"),
                ("next", "Next ›"), ("theme", "Dark / light"), ("details", "Packet details"),
                ("hint", "Click or hover an arrow to see the packet: its fields, the call that sent it, its payload."),
                ("fields", "Decoded fields"), ("call", "Sent during call"), ("noCall", "No call in this timeline"),
                ("kernel", "Sent by a kernel on its own"), ("payload", "Payload"), ("hex", "Hex"),
                ("text", "UTF-8 text"), ("noPayload", "No payload"), ("bytes", "bytes"), ("shown", "first"),
                ("packets", "packets"), ("calls", "calls"), ("state", l.statesLabel), ("comments", "Packet comments"),
            ]
        case .ja:
            [
                ("stream", "ストリーム"), ("allStreams", "すべてのストリーム"), ("page", "ページ"), ("prev", "‹ 前へ"),
                ("next", "次へ ›"), ("theme", "ダーク / ライト"), ("details", "パケットの詳細"),
                ("hint", "矢印をクリック(またはホバー)すると、パケットのフィールド、送信した呼び出し、ペイロードを表示します。"),
                ("fields", "デコードしたフィールド"), ("call", "送信した呼び出し"), ("noCall", "このタイムラインに呼び出しなし"),
                ("kernel", "カーネルが自ら送信"), ("payload", "ペイロード"), ("hex", "16進"), ("text", "UTF-8 テキスト"),
                ("noPayload", "ペイロードなし"), ("bytes", "バイト"), ("shown", "先頭"), ("packets", "パケット"),
                ("calls", "呼び出し"), ("state", l.statesLabel), ("comments", "パケットのコメント"),
            ]
        }
    }

    static func hex(_ bytes: some Collection<UInt8>) -> String {
        let digits = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(bytes.count * 2)
        for b in bytes {
            s.append(digits[Int(b >> 4)])
            s.append(digits[Int(b & 0xf)])
        }
        return s
    }

    public static func escapeHTML(_ s: String) -> String {
        s.substituting {
            switch $0 {
            case "&": "&amp;"
            case "<": "&lt;"
            case ">": "&gt;"
            case "\"": "&quot;"
            case "'": "&#39;"
            default: nil
            }
        }
    }
}

import PacketWire
import Timeline

/// The packet object of the JSON Lines contract written straight into an `OutputBuffer`: byte for byte what
/// `JSONLines.write(_:into:lab: false)` writes (a test holds them together), without building strings for
/// numbers, addresses and keys, so `read --format jsonl` does not allocate per packet.
public enum PacketJSON {
    public static func write(_ p: PacketEvent, into o: inout OutputBuffer) {
        o.append(#"{"type":"packet","frame":"#)
        o.decimal(p.frame)
        o.append(#","ts":"#)
        o.epoch(p.timestamp)
        o.append(#","src":"#)
        address(p.source, into: &o)
        o.append(#","dst":"#)
        address(p.destination, into: &o)
        o.append(#","sport":"#)
        number(p.sourcePort.map(UInt64.init), into: &o)
        o.append(#","dport":"#)
        number(p.destinationPort.map(UInt64.init), into: &o)
        o.append(#","proto":"#)
        string(p.proto, into: &o)
        o.append(#","flags":"#)
        if let flags = p.flags {
            o.byte(UInt8(ascii: "["))
            var first = true
            for (flag, name) in TCPFlags.ordered where flags.contains(flag) {
                if !first { o.byte(UInt8(ascii: ",")) }
                first = false
                o.byte(UInt8(ascii: "\""))
                o.append(name)
                o.byte(UInt8(ascii: "\""))
            }
            o.byte(UInt8(ascii: "]"))
        } else {
            o.append("null")
        }
        o.append(#","seq":"#)
        number(p.seq.map(UInt64.init), into: &o)
        o.append(#","ack":"#)
        number(p.ack.map(UInt64.init), into: &o)
        o.append(#","len":"#)
        o.decimal(p.length)
        o.append(#","win":"#)
        number(p.window.map(UInt64.init), into: &o)
        o.append(#","stream":"#)
        if let s = p.stream { o.decimal(s) } else { o.append("null") }
        if let s = p.summary {
            o.append(#","info":"#)
            string(s, into: &o)
        }
        if !p.analysis.isEmpty {
            o.append(#","analysis":["#)
            for (i, a) in p.analysis.enumerated() {
                if i > 0 { o.byte(UInt8(ascii: ",")) }
                string(a, into: &o)
            }
            o.byte(UInt8(ascii: "]"))
        }
        if p.truncated { o.append(#","truncated":true"#) }
        if let problem = p.problem {
            o.append(#","problem":"#)
            string(problem, into: &o)
        }
        o.byte(UInt8(ascii: "}"))
    }

    static func address(_ a: IPAddress?, into o: inout OutputBuffer) {
        guard let a else { return o.append("null") }
        o.byte(UInt8(ascii: "\""))
        o.address(a)
        o.byte(UInt8(ascii: "\""))
    }

    static func number(_ v: UInt64?, into o: inout OutputBuffer) {
        if let v { o.decimal(v, minimumWidth: 1) } else { o.append("null") }
    }

    /// A JSON string with the same escapes as `JSONWriter`.
    static func string(_ s: String, into o: inout OutputBuffer) {
        o.byte(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): o.append(#"\""#)
            case UInt8(ascii: "\\"): o.append(#"\\"#)
            case 0x0a: o.append(#"\n"#)
            case 0x0d: o.append(#"\r"#)
            case 0x09: o.append(#"\t"#)
            case 0..<0x20:
                o.append(#"\u00"#)
                o.hex(UInt64(b), width: 2)
            default: o.byte(b)
            }
        }
        o.byte(UInt8(ascii: "\""))
    }
}

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
        o.append(#","interface":"#)
        optionalString(p.interface, into: &o)
        o.append(#","src":"#)
        address(p.source, into: &o)
        o.append(#","dst":"#)
        address(p.destination, into: &o)
        o.append(#","sport":"#)
        number(p.sourcePort.map(UInt64.init), into: &o)
        o.append(#","dport":"#)
        number(p.destinationPort.map(UInt64.init), into: &o)
        o.append(#","proto":"#)
        string(p.proto.description, into: &o)
        o.append(#","flags":"#)
        flags(p.flags, into: &o)
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
        comments(p.comments, into: &o)
        o.byte(UInt8(ascii: "}"))
    }

    /// The same object straight from the decoded packet and its `PacketTrack` (what `read --format jsonl` uses):
    /// byte for byte `write(builder.event(...))`, without building the event's strings and arrays.
    public static func write(
        frame: Int, _ t: PacketTrack, info: CaptureInfo, decoded d: DecodedPacket, comments: [String] = [],
        into o: inout OutputBuffer
    ) {
        o.append(#"{"type":"packet","frame":"#)
        o.decimal(frame)
        o.append(#","ts":"#)
        o.epoch(info.timestamp)
        o.append(#","interface":"#)
        optionalString(info.interfaceName, into: &o)
        o.append(#","src":"#)
        address(d.source, into: &o)
        o.append(#","dst":"#)
        address(d.destination, into: &o)
        var sport: UInt16?
        var dport: UInt16?
        var window: UInt16?
        var flags: TCPFlags?
        var length = d.payloadLength
        var summary: String?
        switch d.transport {
        case .tcp(let h):
            sport = h.sourcePort
            dport = h.destinationPort
            window = h.window
            flags = h.flags
        case .udp(let h):
            sport = h.sourcePort
            dport = h.destinationPort
        case .icmp(let h):
            summary = h.summary
            length = 0
        case .unknown: break
        case nil: length = 0
        }
        o.append(#","sport":"#)
        number(sport.map(UInt64.init), into: &o)
        o.append(#","dport":"#)
        number(dport.map(UInt64.init), into: &o)
        o.append(#","proto":""#)
        // The names `PacketEventBuilder` gives `proto`; none of them needs escaping.
        switch d.transport {
        case .tcp: o.append("TCP")
        case .udp: o.append("UDP")
        case .icmp(let h): o.append(h.isV6 ? "ICMPv6" : "ICMP")
        case .unknown(let proto): o.decimal(proto)
        case nil:
            switch d.network {
            case .arp: o.append("ARP")
            case .unknown(let type):
                o.append("ethertype 0x")
                var width = 1
                while width < 4 && type >> UInt16(4 * width) != 0 { width += 1 }
                o.hex(UInt64(type), width: width)
            default: o.append("?")
            }
        }
        o.append(#"","flags":"#)
        Self.flags(flags, into: &o)
        o.append(#","seq":"#)
        number(t.hasStream ? UInt64(t.relativeSeq) : nil, into: &o)
        o.append(#","ack":"#)
        number(t.hasStream ? UInt64(t.relativeAck) : nil, into: &o)
        o.append(#","len":"#)
        o.decimal(length)
        o.append(#","win":"#)
        number(window.map(UInt64.init), into: &o)
        o.append(#","stream":"#)
        if t.hasStream { o.decimal(t.stream) } else { o.append("null") }
        if let summary {
            o.append(#","info":"#)
            string(summary, into: &o)
        }
        if !t.analysis.isEmpty {
            o.append(#","analysis":["#)
            var first = true
            t.analysis.forEachName { element($0, first: &first, into: &o) }
            o.byte(UInt8(ascii: "]"))
        }
        if PacketEventBuilder.isTruncated(info, d) { o.append(#","truncated":true"#) }
        if let problem = info.holds(networkEnd: d.networkEnd) ? d.problem : d.problem(capturedAs: info) {
            o.append(#","problem":"#)
            string(problem.description, into: &o)
        }
        Self.comments(comments, into: &o)
        o.byte(UInt8(ascii: "}"))
    }

    /// `,"comments":["…"]` when a pcapng packet has comments; nothing otherwise.
    static func comments(_ comments: [String], into o: inout OutputBuffer) {
        guard !comments.isEmpty else { return }
        o.append(#","comments":["#)
        for (i, c) in comments.enumerated() {
            if i > 0 { o.byte(UInt8(ascii: ",")) }
            string(c, into: &o)
        }
        o.byte(UInt8(ascii: "]"))
    }

    /// `["SYN","ACK"]` in TCPFlags.ordered's order, or null: the one writer of both packet paths.
    static func flags(_ flags: TCPFlags?, into o: inout OutputBuffer) {
        guard let flags else { return o.append("null") }
        o.byte(UInt8(ascii: "["))
        var first = true
        @inline(__always) func flag(_ f: TCPFlags, _ name: StaticString) {
            if flags.contains(f) { element(name, first: &first, into: &o) }
        }
        // TCPFlags.ordered, without touching its array of strings.
        flag(.fin, "FIN")
        flag(.syn, "SYN")
        flag(.rst, "RST")
        flag(.psh, "PSH")
        flag(.ack, "ACK")
        flag(.urg, "URG")
        flag(.ece, "ECE")
        flag(.cwr, "CWR")
        o.byte(UInt8(ascii: "]"))
    }

    /// One name (no escaping needed) as the next element of an array.
    @inline(__always) static func element(_ name: StaticString, first: inout Bool, into o: inout OutputBuffer) {
        if !first { o.byte(UInt8(ascii: ",")) }
        first = false
        o.byte(UInt8(ascii: "\""))
        o.append(name)
        o.byte(UInt8(ascii: "\""))
    }

    static func address(_ a: IPAddress?, into o: inout OutputBuffer) {
        guard let a else { return o.append("null") }
        o.byte(UInt8(ascii: "\""))
        o.address(a)
        o.byte(UInt8(ascii: "\""))
    }

    static func optionalString(_ s: String?, into o: inout OutputBuffer) {
        if let s { string(s, into: &o) } else { o.append("null") }
    }

    static func number(_ v: UInt64?, into o: inout OutputBuffer) {
        if let v { o.decimal(v, minimumWidth: 1) } else { o.append("null") }
    }

    /// A JSON string with the same escapes as `JSONWriter`.
    static func string(_ s: String, into o: inout OutputBuffer) {
        o.byte(UInt8(ascii: "\""))
        // Most strings (an interface's name on every packet) need no escape: one copy, not a test per byte.
        var plain = s
        let copied = plain.withUTF8 { u -> Bool in
            guard !u.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else {
                return false
            }
            o.append(UnsafeRawBufferPointer(u))
            return true
        }
        if copied { return o.byte(UInt8(ascii: "\"")) }
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

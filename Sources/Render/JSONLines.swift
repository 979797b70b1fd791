/// Render: the ways a timeline reaches people. JSON Lines (the contract other tools read), packet lines as tcpdump
/// prints them, the terminal sequence diagram and trace timeline, Mermaid and a self-contained HTML page.
///
/// Renderers decide how things look (columns, arrows, colours, words), never why a packet was sent: that is the
/// attribution's `KernelReason` or call, decided in Timeline and Tracing, and every renderer words it from
/// `KernelReason.text(_:)`. The `--explain` notes (``Explanations``) only choose a sentence from what the packet
/// and its cause already say.
import PacketWire
import Timeline

/// Appends JSON to a byte buffer without Foundation, in a fixed key order so output is stable and diffable.
public struct JSONWriter {
    public var bytes: [UInt8] = []
    /// One entry per open object or array: whether it already has a member (so the next needs a comma).
    private var hasMember: [Bool] = []
    /// True right after a key, when the value must not be preceded by a comma.
    private var afterKey = false

    public init() { bytes.reserveCapacity(512) }

    public mutating func beginObject() {
        valuePrefix()
        bytes.append(UInt8(ascii: "{"))
        hasMember.append(false)
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        hasMember.removeLast()
    }

    public mutating func beginArray(_ key: String) {
        self.key(key)
        valuePrefix()
        bytes.append(UInt8(ascii: "["))
        hasMember.append(false)
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        hasMember.removeLast()
    }

    public mutating func key(_ k: String) {
        valuePrefix()
        appendString(k)
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    /// Writes the comma that separates members, except for a key's value and a container's first member.
    private mutating func valuePrefix() {
        if afterKey {
            afterKey = false
            return
        }
        guard let last = hasMember.last else { return }
        if last { bytes.append(UInt8(ascii: ",")) }
        hasMember[hasMember.count - 1] = true
    }

    public mutating func string(_ s: String) {
        valuePrefix()
        appendString(s)
    }

    public mutating func int<T: BinaryInteger>(_ v: T) {
        valuePrefix()
        bytes.append(contentsOf: String(v).utf8)
    }

    public mutating func bool(_ v: Bool) {
        valuePrefix()
        bytes.append(contentsOf: (v ? "true" : "false").utf8)
    }

    public mutating func null() {
        valuePrefix()
        bytes.append(contentsOf: "null".utf8)
    }

    /// A number written exactly as given (e.g. a timestamp with nine decimals).
    public mutating func raw(_ literal: String) {
        valuePrefix()
        bytes.append(contentsOf: literal.utf8)
    }

    public mutating func field(_ k: String, _ v: String?) {
        key(k)
        if let v { string(v) } else { null() }
    }

    public mutating func field<T: BinaryInteger>(_ k: String, _ v: T?) {
        key(k)
        if let v { int(v) } else { null() }
    }

    public mutating func field(_ k: String, _ v: Bool) {
        key(k)
        bool(v)
    }

    private mutating func appendString(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [0x5c, 0x22])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [0x5c, 0x5c])
            case 0x0a: bytes.append(contentsOf: [0x5c, UInt8(ascii: "n")])
            case 0x0d: bytes.append(contentsOf: [0x5c, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [0x5c, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [0x5c, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xf)]])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// Epoch seconds with nine decimals, exact (no floating point).
public func epochString(_ t: Timestamp) -> String {
    let ns = String(t.nanoseconds)
    return "\(t.seconds)." + String(repeating: "0", count: 9 - ns.count) + ns
}

/// The JSON Lines contract: one `call` or `packet` object per line.
public enum JSONLines {
    /// Calls and packets, one object per line, in the timeline's order (``TimelineEvent/order(calls:packets:by:)``).
    /// A trace names its `engine` on every object, and on every packet the `context` the engine saw it built in.
    public static func lines(
        calls: [CallEvent], packets: [PacketEvent], order: TimelineEvent.Order, engine: String? = nil
    ) -> String {
        TimelineEvent.order(calls: calls, packets: packets, by: order).map {
            switch $0 {
            case .call(let i): line(.call(calls[i]), engine: engine) + "\n"
            case .packet(let j): line(.packet(packets[j]), engine: engine) + "\n"
            }
        }.joined()
    }

    public static func line(_ event: TimelineEvent, engine: String? = nil) -> String {
        var w = JSONWriter()
        switch event {
        case .call(let c): write(c, into: &w, engine: engine)
        case .packet(let p): write(p, into: &w, engine: engine)
        }
        return String(decoding: w.bytes, as: UTF8.self)
    }

    public static func write(_ c: CallEvent, into w: inout JSONWriter, engine: String? = nil) {
        w.beginObject()
        w.field("type", "call")
        w.field("id", c.id)
        w.field("actor", c.actor)
        w.field("name", c.name)
        w.key("args")
        w.beginObject()
        for (k, v) in c.args {
            w.key(k)
            switch v {
            case .int(let i): w.int(i)
            case .string(let s): w.string(s)
            case .bool(let b): w.bool(b)
            case .bytes(let count, let preview):
                w.beginObject()
                w.field("len", count)
                w.field("text", preview)
                w.endObject()
            case .null: w.null()
            }
        }
        w.endObject()
        w.field("result", c.result)
        w.field("errno", c.errno)
        w.key("ts_start")
        w.raw(epochString(c.start))
        w.key("ts_end")
        w.raw(epochString(c.end))
        w.field("local", c.local)
        w.field("remote", c.remote)
        w.key("tcp_state")
        w.beginObject()
        for (k, v) in c.tcpStates { w.field(k, v.name) }
        w.endObject()
        if c.pid != nil || c.source != nil || c.comm != nil {
            w.field("pid", c.pid)
            w.field("tid", c.tid)
            w.field("comm", c.comm)
            w.field("fd", c.fd)
            w.field("source", c.source)
        }
        if let note = c.note { w.field("note", note) }
        if let engine { w.field("engine", engine) }
        w.endObject()
    }

    public static func write(_ p: PacketEvent, into w: inout JSONWriter, lab: Bool = true, engine: String? = nil) {
        w.beginObject()
        w.field("type", "packet")
        w.field("frame", p.frame)
        w.key("ts")
        w.raw(epochString(p.timestamp))
        // `read`'s packets say which interface of the file they came from; the lab captures on one.
        if !lab { w.field("interface", p.interface) }
        w.field("src", p.source?.description)
        w.field("dst", p.destination?.description)
        w.field("sport", p.sourcePort)
        w.field("dport", p.destinationPort)
        w.field("proto", p.proto.description)
        if let flags = p.flags {
            w.beginArray("flags")
            for name in flags.names { w.string(name) }
            w.endArray()
        } else {
            w.key("flags")
            w.null()
        }
        w.field("seq", p.seq)
        w.field("ack", p.ack)
        w.field("len", p.length)
        w.field("win", p.window)
        w.field("stream", p.stream)
        if lab {
            w.field("call", p.call)
            w.field("sender", p.sender)
            w.field("by_kernel", p.byKernel)
            if p.byKernel { w.field("reason", p.reason) }
            if p.consumedBy != nil { w.field("consumed_by", p.consumedBy) }
        }
        if let s = p.summary { w.field("info", s) }
        if !p.analysis.isEmpty {
            w.beginArray("analysis")
            for a in p.analysis { w.string(a) }
            w.endArray()
        }
        if p.truncated { w.field("truncated", true) }
        if let problem = p.problem { w.field("problem", problem) }
        if !p.comments.isEmpty {
            w.beginArray("comments")
            for c in p.comments { w.string(c) }
            w.endArray()
        }
        if let engine {
            w.field("engine", engine)
            w.field("context", p.context?.label)
        }
        w.endObject()
    }
}

import PacketWire

/// A value in a call's arguments, kept typed so JSON and text render it faithfully.
public enum ArgumentValue: Sendable, Equatable, CustomStringConvertible {
    case int(Int)
    case string(String)
    case bool(Bool)
    /// Data passed to or returned by a call: its length and its text (escaped, at most a few hundred bytes).
    case bytes(count: Int, preview: String)
    case null

    public var description: String {
        switch self {
        case .int(let v): "\(v)"
        case .string(let s): s
        case .bool(let b): b ? "true" : "false"
        case .bytes(let count, let preview):
            "\"\(preview.count > 40 ? String(preview.prefix(40)) + "…" : preview)\" (\(count) bytes)"
        case .null: "null"
        }
    }
}

/// One socket call: who made it, with what, what it returned, and the TCP states right after it.
/// This is the `"type":"call"` object of the JSON Lines contract.
public struct CallEvent: Sendable, Equatable {
    public var id: Int
    /// "server" or "client" in the lab; the process or socket name in a trace.
    public var actor: String
    public var name: String
    public var args: [(String, ArgumentValue)]
    /// The call's return value (0 for success of calls that return nothing useful, bytes for send/recv, the new
    /// descriptor for socket/accept), or nil when it failed.
    public var result: Int?
    /// The errno name ("ECONNREFUSED") when the call failed.
    public var errno: String?
    public var start: Timestamp
    public var end: Timestamp
    public var local: String?
    public var remote: String?
    /// TCP state of each socket the lab watches, after the call: [("server", "LISTEN"), ("client", ...)].
    public var tcpStates: [(String, TCPState)]
    /// A one-line note for the reader (e.g. what the kernel did meanwhile).
    public var note: String?

    // Trace-only fields (nil in the lab).
    public var pid: Int?
    public var tid: Int?
    public var comm: String?
    public var fd: Int?
    public var source: String?

    public init(
        id: Int, actor: String, name: String, args: [(String, ArgumentValue)] = [], result: Int?,
        errno: String? = nil, start: Timestamp, end: Timestamp, local: String? = nil, remote: String? = nil,
        tcpStates: [(String, TCPState)] = []
    ) {
        self.id = id
        self.actor = actor
        self.name = name
        self.args = args
        self.result = result
        self.errno = errno
        self.start = start
        self.end = end
        self.local = local
        self.remote = remote
        self.tcpStates = tcpStates
    }

    /// Every field (written out only because tuples are not Equatable).
    public static func == (a: CallEvent, b: CallEvent) -> Bool {
        a.id == b.id && a.actor == b.actor && a.name == b.name && a.args.map(\.0) == b.args.map(\.0)
            && a.args.map(\.1) == b.args.map(\.1) && a.result == b.result && a.errno == b.errno
            && a.start == b.start && a.end == b.end && a.local == b.local && a.remote == b.remote
            && a.tcpStates.map(\.0) == b.tcpStates.map(\.0) && a.tcpStates.map(\.1) == b.tcpStates.map(\.1)
            && a.note == b.note && a.pid == b.pid && a.tid == b.tid && a.comm == b.comm && a.fd == b.fd
            && a.source == b.source
    }
}

/// One packet as the timeline shows it: the `"type":"packet"` object of the JSON Lines contract.
public struct PacketEvent: Sendable {
    public var frame: Int
    public var timestamp: Timestamp
    /// `CaptureInfo.interfaceName`: which interface of the capture file the packet was captured on.
    public var interface: String?
    public var source: IPAddress?
    public var destination: IPAddress?
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?
    /// What the packet carries above the network layer.
    public var proto: PacketProtocol
    public var flags: TCPFlags?
    public var seq: UInt32?
    public var ack: UInt32?
    /// TCP or UDP payload length.
    public var length: Int
    public var window: UInt16?
    public var stream: Int?
    /// MSS, window scale, SACK permitted of SYN segments, for the diagram.
    public var synOptions: String?
    /// Up to 64 bytes of payload as text (escaped where not UTF-8), for the diagram.
    public var payloadPreview: String?
    public var summary: String?
    /// The id of the call during which (lab) or by which (trace) the packet was sent.
    public var call: Int?
    /// "server" / "client" in the lab; the sending side's actor in a trace.
    public var sender: String?
    /// Why a kernel sent the packet by itself rather than as the direct effect of a call; nil for a call's packet.
    public var kernel: KernelReason?
    /// True when a kernel sent the packet by itself rather than as the direct effect of a call.
    public var byKernel: Bool { kernel != nil }
    /// The kernel's reason as the JSON Lines contract words it.
    public var reason: String? { kernel?.text(.en) }
    public var consumedBy: Int?
    public var problem: String?
    public var truncated: Bool = false
    public var analysis: [String] = []
    /// For an ICMP error: the ends of the datagram it quotes (the one that could not be delivered).
    public var quotedSource: Endpoint?
    public var quotedDestination: Endpoint?
    /// Where the kernel built the packet, when the trace engine could see it (eBPF).
    public var context: PacketContext?
    /// The packet's comments in a pcapng file (what Wireshark shows as packet comments; a trace's `-w` writes the
    /// call that sent each packet there).
    public var comments: [String] = []

    public init(frame: Int, timestamp: Timestamp, proto: PacketProtocol, length: Int) {
        self.frame = frame
        self.timestamp = timestamp
        self.proto = proto
        self.length = length
    }

    public var sourceEndpoint: Endpoint? {
        guard let source, let sourcePort else { return nil }
        return Endpoint(source, sourcePort)
    }

    public var destinationEndpoint: Endpoint? {
        guard let destination, let destinationPort else { return nil }
        return Endpoint(destination, destinationPort)
    }
}

/// What a packet carries above the network layer, as the timeline names it.
public enum PacketProtocol: Hashable, Sendable, CustomStringConvertible {
    case tcp, udp, icmp, icmpv6, arp
    /// Another IP protocol, by number.
    case ip(UInt8)
    /// A link-layer frame of another ethertype.
    case ethertype(UInt16)
    /// Nothing decoded above the link layer.
    case unknown

    /// The JSON Lines `proto`: "TCP", "UDP", "ICMP", "ICMPv6", "ARP", the protocol number, "ethertype 0x86dd", "?".
    public var description: String {
        switch self {
        case .tcp: "TCP"
        case .udp: "UDP"
        case .icmp: "ICMP"
        case .icmpv6: "ICMPv6"
        case .arp: "ARP"
        case .ip(let n): String(n)
        case .ethertype(let type): "ethertype 0x" + String(type, radix: 16)
        case .unknown: "?"
        }
    }

    /// ICMP for IPv4 or IPv6.
    public var isICMP: Bool { self == .icmp || self == .icmpv6 }
}

public enum TimelineEvent: Sendable {
    case call(CallEvent)
    case packet(PacketEvent)

    public var timestamp: Timestamp {
        switch self {
        case .call(let c): c.start
        case .packet(let p): p.timestamp
        }
    }
}

extension TimelineEvent {
    /// Calls and packets in the order they happened (a call by its start), as positions: `.call(i)` is `calls[i]`.
    /// At the same instant calls come first, then each kind in its own order. Sorting positions rather than the
    /// events themselves keeps a busy trace's 20 000 events, each full of strings, from being moved and
    /// reference-counted over and over.
    public enum Position: Sendable, Equatable {
        case call(Int)
        case packet(Int)
    }

    /// How calls and packets are put in one sequence.
    public enum Order: Sendable {
        /// As they happened: a call at its start, a packet at its capture (a trace, where calls overlap).
        case byTime
        /// Each call followed by the packets attributed to it, packets of no call first (the lab, which runs one
        /// call at a time and attributes each packet to the call during which it was sent).
        case byCall
    }

    /// The one rule for the order of events, used by every output that lists them (JSON Lines, the timelines).
    public static func order(calls: [CallEvent], packets: [PacketEvent], by order: Order) -> [Position] {
        switch order {
        case .byTime:
            return byTime(calls: calls, packets: packets)
        case .byCall:
            var byCall: [Int: [Int]] = [:]
            var out: [Position] = []
            out.reserveCapacity(calls.count + packets.count)
            for (j, p) in packets.enumerated() {
                if let c = p.call { byCall[c, default: []].append(j) } else { out.append(.packet(j)) }
            }
            for (i, c) in calls.enumerated() {
                out.append(.call(i))
                // A call id appears once; its packets go under its first appearance.
                for j in byCall.removeValue(forKey: c.id) ?? [] { out.append(.packet(j)) }
            }
            return out
        }
    }

    private static func byTime(calls: [CallEvent], packets: [PacketEvent]) -> [Position] {
        var keys: [(time: Timestamp, position: Int)] = []
        keys.reserveCapacity(calls.count + packets.count)
        for (i, c) in calls.enumerated() { keys.append((c.start, i)) }
        for (j, p) in packets.enumerated() { keys.append((p.timestamp, calls.count + j)) }
        keys.sort { $0.time < $1.time || ($0.time == $1.time && $0.position < $1.position) }
        return keys.map { $0.position < calls.count ? .call($0.position) : .packet($0.position - calls.count) }
    }
}

/// What stream tracking and TCP analysis say about one packet: plain values only (no strings, no arrays), so the
/// per-packet path of `read` copies it without reference counting.
public struct PacketTrack: Sendable, Equatable {
    /// Wireshark's `tcp.stream`; -1 when the packet is not TCP between two IP addresses.
    public var stream: Int = -1
    /// Relative sequence and acknowledgment numbers (Wireshark's `tcp.seq`, `tcp.ack`); 0 without a stream.
    public var relativeSeq: UInt32 = 0
    public var relativeAck: UInt32 = 0
    public var analysis: TCPAnalysisFlags = []

    public init() {}

    public var hasStream: Bool { stream >= 0 }
}

/// Turns captured packets into packet events: decoding, stream index and relative sequence numbers.
public struct PacketEventBuilder: Sendable {
    public var streams = TCPStreamTable()
    /// Wireshark-style `tcp.analysis.*` flags, reported in `PacketEvent.analysis`.
    public var analyzer = TCPAnalyzer()
    public private(set) var frameCount = 0

    public init() {}

    public mutating func event(for packet: CapturedPacket) -> PacketEvent {
        let decoded = packet.decode()
        frameCount += 1
        return event(frame: frameCount, info: packet.info, decoded: decoded, payload: packet.payload(of: decoded))
    }

    /// Tracks one packet (stream index, relative numbers, analysis) without building a `PacketEvent`: the line
    /// and JSON writers of `read` work from this and the decoded packet, so nothing per packet allocates or
    /// needs reference counting. `event(frame:info:decoded:payload:)` is built on it.
    public mutating func track(info: CaptureInfo, decoded d: DecodedPacket) -> PacketTrack {
        var t = PacketTrack()
        guard case .tcp(let tcp) = d.transport, let s = d.source, let u = d.destination else { return t }
        let segment = streams.track(
            source: Endpoint(s, tcp.sourcePort), destination: Endpoint(u, tcp.destinationPort), tcp: tcp,
            payloadLength: d.payloadLength)
        t.stream = segment.stream
        t.relativeSeq = segment.relativeSeq
        t.relativeAck = segment.relativeAck
        t.analysis = analyzer.analyze(segment, tcp: tcp, payloadLength: d.payloadLength, time: info.timestamp)
        return t
    }

    /// The event's `truncated`: the record was cut, or decoding stopped at a missing network or transport header.
    public static func isTruncated(_ info: CaptureInfo, _ d: DecodedPacket) -> Bool {
        if info.isTruncated { return true }
        if case .truncated(let layer)? = d.problem { return layer == .transport || layer == .network }
        return false
    }

    public mutating func event(frame: Int, info: CaptureInfo, decoded d: DecodedPacket, payload: ArraySlice<UInt8>)
        -> PacketEvent
    {
        Self.event(frame: frame, info: info, decoded: d, payload: payload, track: track(info: info, decoded: d))
    }

    /// The event of a packet already tracked: a reader that needs the full event of a few packets only (one TCP
    /// stream) tracks every packet, which is cheap, and builds events for the ones it keeps.
    public static func event(
        frame: Int, info: CaptureInfo, decoded d: DecodedPacket, payload: ArraySlice<UInt8>, track t: PacketTrack
    ) -> PacketEvent {
        var e = PacketEvent(frame: frame, timestamp: info.timestamp, proto: .unknown, length: d.payloadLength)
        e.interface = info.interfaceName
        e.source = d.source
        e.destination = d.destination
        e.truncated = Self.isTruncated(info, d)
        if let problem = d.problem(capturedAs: info) { e.problem = problem.description }
        switch d.transport {
        case .tcp(let tcp):
            e.proto = .tcp
            e.sourcePort = tcp.sourcePort
            e.destinationPort = tcp.destinationPort
            e.flags = tcp.flags
            e.window = tcp.window
            if t.hasStream {
                e.stream = t.stream
                e.seq = t.relativeSeq
                e.ack = t.relativeAck
                if !t.analysis.isEmpty { e.analysis = t.analysis.names }
            }
            if tcp.flags.contains(.syn) { e.synOptions = Self.describeSYNOptions(tcp.options) }
        case .udp(let udp):
            e.proto = .udp
            e.sourcePort = udp.sourcePort
            e.destinationPort = udp.destinationPort
        case .icmp(let icmp):
            e.proto = icmp.isV6 ? .icmpv6 : .icmp
            e.summary = icmp.summary
            e.length = 0
            if let q = icmp.quoted, let sp = q.sourcePort, let dp = q.destinationPort {
                e.quotedSource = Endpoint(q.source, sp)
                e.quotedDestination = Endpoint(q.destination, dp)
            }
        case .unknown(let proto):
            e.proto = .ip(proto)
        case nil:
            switch d.network {
            case .arp: e.proto = .arp
            case .unknown(let type): e.proto = .ethertype(type)
            default: e.proto = .unknown
            }
            e.length = 0
        }
        if !payload.isEmpty, e.proto == .tcp || e.proto == .udp {
            e.payloadPreview = TextEscaper.preview(payload, limit: 64)
        }
        return e
    }

    static func describeSYNOptions(_ o: TCPOptions) -> String {
        var parts: [String] = []
        if let mss = o.mss { parts.append("mss \(mss)") }
        if o.sackPermitted { parts.append("sackOK") }
        if o.timestamp != nil { parts.append("TS") }
        if let ws = o.windowScale { parts.append("wscale \(ws)") }
        return parts.joined(separator: ",")
    }
}

/// Shows bytes as text: valid UTF-8 as it is (Japanese included), control characters and invalid bytes escaped.
public enum TextEscaper {
    /// At most about `limit` bytes of text, cut at a character boundary, with "…" when cut.
    public static func preview(_ bytes: some Collection<UInt8>, limit: Int) -> String {
        let all = Array(bytes)
        guard all.count > limit else { return escape(all) }
        var end = max(limit, 0)
        // Back off over UTF-8 continuation bytes (at most three) so a character is not split.
        var steps = 0
        while end > 0, steps < 3, all[end] & 0xc0 == 0x80 {
            end -= 1
            steps += 1
        }
        return escape(all[..<end]) + "…"
    }

    public static func escape(_ bytes: some Collection<UInt8>) -> String {
        let all = Array(bytes)
        var out = ""
        var i = 0
        // Decode scalar by scalar so one bad byte is escaped without hiding the good text around it.
        while i < all.count {
            let lead = all[i]
            let width =
                lead < 0x80 ? 1 : lead >> 5 == 0b110 ? 2 : lead >> 4 == 0b1110 ? 3 : lead >> 3 == 0b11110 ? 4 : 0
            if width > 0, i + width <= all.count {
                var it = all[i..<(i + width)].makeIterator()
                var decoder = UTF8()
                if case .scalarValue(let scalar) = decoder.decode(&it) {
                    appendEscaped(scalar, to: &out)
                    i += width
                    continue
                }
            }
            appendHex(lead, to: &out)
            i += 1
        }
        return out
    }

    static let hexDigits = Array("0123456789abcdef".unicodeScalars)

    /// `\xNN` for a byte or a control character.
    static func appendHex(_ value: UInt8, to out: inout String) {
        out += "\\x"
        out.unicodeScalars.append(hexDigits[Int(value >> 4)])
        out.unicodeScalars.append(hexDigits[Int(value & 0xf)])
    }

    static func appendEscaped(_ s: Unicode.Scalar, to out: inout String) {
        switch s {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\\": out += "\\\\"
        default:
            if s.value < 0x20 || s.value == 0x7f || (s.value >= 0x80 && s.value < 0xa0) {
                appendHex(UInt8(s.value), to: &out)
            } else {
                out.unicodeScalars.append(s)
            }
        }
    }
}

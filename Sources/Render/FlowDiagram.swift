import PacketWire
import Timeline

/// One vertical line of a sequence diagram: an endpoint, a process, or one of the lab's two actors.
public struct Lifeline: Sendable, Equatable {
    /// What `CallEvent.actor`, `PacketEvent.sender` and `CallEvent.tcpStates` name ("server", "client", a pid).
    public var id: String
    /// What the reader sees ("Server", "サーバー", "curl[4242]").
    public var label: String
    /// "127.0.0.2:49152", a bare address, or nil. Packets whose sender is not a lifeline id are matched by it.
    public var address: String?

    /// The address to print under the label, unless the label already is the address (an endpoint lifeline).
    public var shownAddress: String? { address == label ? nil : address }

    public init(id: String, label: String, address: String? = nil) {
        self.id = id
        self.label = label
        self.address = address
    }
}

/// What the Mermaid and HTML renderers draw, built by any command (`lab`, `read`, `trace`) from its own events.
///
/// Guarantees, once built: every packet has a sender and a receiver lifeline (endpoints that no lifeline
/// claims get a lifeline of their own, named by the endpoint), and `rows` puts each call before the packets
/// attributed to it. Renderers only format; nothing here decides what a packet means.
public struct FlowDiagram: Sendable {
    public var title: String
    public var language: Language
    /// Set once, by init (with `index`).
    public private(set) var lifelines: [Lifeline]
    /// Lifelines by id and by address, so a capture with thousands of endpoints is not searched line by line for
    /// every packet.
    private var index: LifelineIndex
    /// Calls in order; each is drawn on the lifeline named by its `actor`.
    public var calls: [CallEvent]
    /// Packets in capture order.
    public var packets: [PacketEvent]
    /// The transport payload of each packet, by frame number, for the HTML details panel. Optional: a packet
    /// without an entry shows its `payloadPreview` only.
    public var payloads: [Int: [UInt8]]
    /// When the calls' TCP states were read: false when the wire was quiet after each call (the lab waits for
    /// that), true when the call returned (trace). It decides where a state change is drawn: before the next call,
    /// or right after the call's own packets (close's FIN, before the peer's ACK of it).
    public var statesAtReturn = false

    public init(
        title: String, language: Language = .en, lifelines: [Lifeline], calls: [CallEvent] = [],
        packets: [PacketEvent], payloads: [Int: [UInt8]] = [:]
    ) {
        self.title = title
        self.language = language
        self.lifelines = lifelines
        self.index = LifelineIndex(lifelines)
        self.calls = calls
        self.packets = packets
        self.payloads = payloads
        // Endpoints no lifeline claims get their own (appended through the index, not re-indexing each time).
        var all = lifelines
        for p in packets {
            if resolve(p.sourceEndpoint, p.source) == nil && !(p.sender.map(hasLifeline) ?? false) {
                let l = Self.endpointLifeline(p.sourceEndpoint, p.source)
                index.add(l, at: all.count)
                all.append(l)
            }
            if receiver(of: p, count: all.count) == nil {
                let l = Self.endpointLifeline(p.destinationEndpoint, p.destination)
                index.add(l, at: all.count)
                all.append(l)
            }
        }
        self.lifelines = all
    }

    /// The first lifeline with each id, and with each address or id (what ``resolve(_:_:)`` matches).
    struct LifelineIndex: Sendable {
        var ids: [String: Int] = [:]
        var idsOrAddresses: [String: Int] = [:]
        var addresses: [String: Int] = [:]
        var idAt: [String] = []

        init(_ lifelines: [Lifeline]) {
            for (i, l) in lifelines.enumerated() { add(l, at: i) }
        }

        mutating func add(_ l: Lifeline, at i: Int) {
            idAt.append(l.id)
            if ids[l.id] == nil { ids[l.id] = i }
            if idsOrAddresses[l.id] == nil { idsOrAddresses[l.id] = i }
            if let a = l.address {
                if idsOrAddresses[a] == nil { idsOrAddresses[a] = i }
                if addresses[a] == nil { addresses[a] = i }
            }
        }
    }

    /// The payload bytes of captured packets, numbered as `PacketEventBuilder` numbers frames (from 1).
    public static func payloads(of captured: [CapturedPacket], firstFrame: Int = 1) -> [Int: [UInt8]] {
        var out: [Int: [UInt8]] = [:]
        for (i, packet) in captured.enumerated() {
            let bytes = packet.payload(of: packet.decode())
            if !bytes.isEmpty { out[firstFrame + i] = Array(bytes) }
        }
        return out
    }

    /// One lifeline per endpoint, in order of first appearance: what `read` draws for a capture with no calls.
    public static func endpointLifelines(for packets: [PacketEvent]) -> [Lifeline] {
        var seen: [Lifeline] = []
        var ids: Set<String> = []
        for p in packets {
            for l in [
                endpointLifeline(p.sourceEndpoint, p.source), endpointLifeline(p.destinationEndpoint, p.destination),
            ]
            where ids.insert(l.id).inserted {
                seen.append(l)
            }
        }
        return seen
    }

    static func endpointLifeline(_ endpoint: Endpoint?, _ address: IPAddress?) -> Lifeline {
        let name = endpoint?.description ?? address?.description ?? "?"
        return Lifeline(id: name, label: name, address: name == "?" ? nil : name)
    }

    func hasLifeline(_ id: String) -> Bool { index.ids[id] != nil }

    /// The lifeline whose address (or id) is this endpoint, or else whose address is this bare address.
    func resolve(_ endpoint: Endpoint?, _ address: IPAddress?) -> String? {
        let name = endpoint?.description ?? address?.description ?? "?"
        if let i = index.idsOrAddresses[name] { return index.idAt[i] }
        if let address, let i = index.addresses[address.description] { return index.idAt[i] }
        return nil
    }

    /// The lifeline that sent `p`: its `sender` when that names a lifeline, else the one owning its source.
    public func sender(of p: PacketEvent) -> String? {
        if let s = p.sender, hasLifeline(s) { return s }
        return resolve(p.sourceEndpoint, p.source)
    }

    /// The lifeline `p` went to: the one owning its destination, else (two lifelines) the other one.
    public func receiver(of p: PacketEvent) -> String? {
        receiver(of: p, count: lifelines.count)
    }

    /// ``receiver(of:)`` while the lifelines are being gathered (`count` of them so far).
    private func receiver(of p: PacketEvent, count: Int) -> String? {
        let from = sender(of: p)
        if let to = resolve(p.destinationEndpoint, p.destination), to != from { return to }
        if count == 2, let from {
            // The other of the two.
            return index.idAt.first { $0 != from }
        }
        return resolve(p.destinationEndpoint, p.destination)
    }

    /// One thing drawn on one row of the diagram.
    public enum Row: Sendable {
        case call(CallEvent)
        /// TCP states that changed with this call: (lifeline id, new state). An initial CLOSED is not a change. A
        /// state keyed by something other than a lifeline (a trace's "fd 3") is on the call's actor's line, as
        /// "fd 3: ESTABLISHED".
        case states(call: Int, [(actor: String, state: String)])
        case packet(PacketEvent)
    }

    /// Calls and packets in the order they happened (a call by its start, as the text timeline and JSON Lines
    /// order them); each call's TCP state changes come before the next call, or after its own packets
    /// (`statesAtReturn`).
    /// Ordering by time rather than grouping a call's packets under it keeps a kernel's packet in place: the
    /// SYN/ACK a traced client receives belongs to no call of its own, but falls between its SYN and its ACK.
    public var rows: [Row] {
        var out: [Row] = []
        out.reserveCapacity(calls.count * 2 + packets.count)
        var last: [String: TCPState] = [:]
        var pendingStates: (row: Row, call: Int, end: Timestamp)?
        // Where a call's state change goes when states are read at its return: after the last packet the call
        // sent (close's FIN, then the peer's ACK of it), or else before the first packet after the return.
        var lastSent: [Int: Int] = [:]
        if statesAtReturn { for (j, p) in packets.enumerated() { if let c = p.call { lastSent[c] = j } } }
        for position in TimelineEvent.order(calls: calls, packets: packets, by: .byTime) {
            switch position {
            case .packet(let j):
                if let states = pendingStates, lastSent[states.call] == nil, packets[j].timestamp > states.end,
                    statesAtReturn
                {
                    out.append(states.row)
                    pendingStates = nil
                }
                out.append(.packet(packets[j]))
                if let states = pendingStates, lastSent[states.call] == j {
                    out.append(states.row)
                    pendingStates = nil
                }
            case .call(let i):
                if let states = pendingStates { out.append(states.row) }
                pendingStates = nil
                let c = calls[i]
                out.append(.call(c))
                var changed: [(actor: String, state: String)] = []
                for (key, state) in c.tcpStates {
                    // The lab names its two actors; a trace names the socket ("fd 3"), drawn on the process's line.
                    let own = hasLifeline(key)
                    let track = own ? key : c.actor + " " + key
                    guard last[track] != state else { continue }
                    if last[track] != nil || state != .closed {
                        changed.append(own ? (key, state.name) : (c.actor, "\(key): \(state.name)"))
                    }
                    last[track] = state
                }
                if !changed.isEmpty { pendingStates = (.states(call: c.id, changed), c.id, c.end) }
            }
        }
        if let states = pendingStates { out.append(states.row) }
        return out
    }

    /// The time every offset is measured from: the first call or packet.
    public var origin: Timestamp {
        let times = (calls.first.map { [$0.start] } ?? []) + (packets.first.map { [$0.timestamp] } ?? [])
        return times.min() ?? Timestamp(seconds: 0, nanoseconds: 0)
    }
}

/// Texts shared by the Mermaid and HTML renderers, so both say the same thing as the terminal diagram.
public enum FlowText {
    /// "5 connect(127.0.0.2:49152) = 0", "3 connect(…) = -1 ECONNREFUSED".
    static func call(_ c: CallEvent) -> String { "\(c.id) \(c.name)(\(arguments(c))) = \(result(c))" }

    static func arguments(_ c: CallEvent) -> String { c.args.map { $0.1.description }.joined(separator: ", ") }

    /// "0", "53", "-1 ECONNREFUSED", or "?" for a call that never returned.
    static func result(_ c: CallEvent) -> String {
        if let errno = c.errno { return "-1 \(errno)" }
        return c.result.map { "\($0)" } ?? "?"
    }

    /// "SYN seq=0 win=65495", "PSH/ACK seq=1:54 ack=1 win=64 len=53", "ICMP port unreachable".
    static func packet(_ p: PacketEvent) -> String {
        var text = ""
        appendPacket(p, to: &text)
        return text
    }

    /// ``packet(_:)`` appended to `out` (a trace renders tens of thousands of these).
    static func appendPacket(_ p: PacketEvent, to out: inout String) {
        if let flags = p.flags {
            out += flags.label
            if let seq = p.seq {
                out += " seq="
                out += String(seq)
                if p.length > 0 {
                    out += ":"
                    out += String(seq &+ UInt32(truncatingIfNeeded: p.length))
                }
            }
            if let ack = p.ack, flags.contains(.ack) {
                out += " ack="
                out += String(ack)
            }
            if let win = p.window {
                out += " win="
                out += String(win)
            }
            if p.length > 0 {
                out += " len="
                out += String(p.length)
            }
        } else {
            out += p.proto.description
            if let s = p.summary {
                out += " "
                out += s
            }
            if p.proto == .udp {
                out += " len="
                out += String(p.length)
            }
        }
    }

    /// "kernel: ACK of data" / "カーネルが送信: 受信データへのACK", or nil for a packet a call sent.
    static func kernel(_ p: PacketEvent, _ language: Language) -> String? {
        guard let kernel = p.kernel else { return nil }
        return "\(language.kernelPrefix): \(kernel.text(language))"
    }

    /// "+12.345ms" from the diagram's origin.
    public static func offset(_ t: Timestamp, _ origin: Timestamp) -> String {
        let micros = t.nanoseconds(since: origin) / 1000
        let a = micros.magnitude
        let frac = String(a % 1000)
        return "\(micros < 0 ? "-" : "+")\(a / 1000).\(String(repeating: "0", count: 3 - frac.count))\(frac)ms"
    }
}

extension Language {
    /// "Server" / "サーバー" for the lab's actors; other names pass through.
    public func lifelineLabel(_ actor: String) -> String {
        switch (self, actor) {
        case (.en, "server"): "Server"
        case (.en, "client"): "Client"
        default: actorName(actor)
        }
    }
}

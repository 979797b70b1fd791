import PacketWire

/// Says which call each packet belongs to and whether a kernel sent it by itself.
///
/// The lab runs one call at a time and waits until the wire is quiet before the next, so a packet belongs to the
/// call during whose window (its start until the next call's start) it was captured. Within that window the
/// packet's content decides who sent it and why: a SYN/ACK comes from a listening socket's kernel, a pure ACK
/// acknowledges data or a FIN, a segment that repeats sequence space already sent is a retransmission.
public struct Attributor: Sendable {
    /// Maps a packet's source to the actor that owns it ("server", "client", "client 2", ...).
    public var actorOf: @Sendable (Endpoint?, IPAddress?) -> String?

    public init(actorOf: @escaping @Sendable (Endpoint?, IPAddress?) -> String?) { self.actorOf = actorOf }

    /// Per direction of a TCP stream: the highest sequence number sent so far and where the FIN was.
    struct DirectionState {
        var highestNext: UInt32 = 0
        var sent = false
        var finNext: UInt32?
        var lastWindow: UInt16?
        var lastAck: UInt32?
        /// The last segment sent this way was a keep-alive probe, so the peer's next pure ACK answers it.
        var probing = false
    }

    /// Fills `call`, `sender`, `byKernel` and `reason` of each packet. `calls` must be in execution order.
    public func attribute(_ packets: inout [PacketEvent], calls: [CallEvent]) {
        var directions: [StreamDirection: DirectionState] = [:]
        let starts = calls.map(\.start)
        for i in packets.indices {
            var p = packets[i]
            // The call whose window holds the packet: the last call that started at or before it.
            var stepIndex: Int?
            var lo = 0, hi = starts.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if starts[mid] <= p.timestamp { lo = mid + 1 } else { hi = mid }
            }
            if lo > 0 { stepIndex = lo - 1 }
            p.sender = actorOf(p.sourceEndpoint, p.source)
            // Calls that ran at the same time (the lab's `together`): prefer the overlapping call of the sender.
            if let s = stepIndex, calls[s].actor != p.sender {
                var j = s - 1
                while j >= 0, calls[j].end > calls[s].start {
                    if calls[j].actor == p.sender {
                        stepIndex = j
                        break
                    }
                    j -= 1
                }
            }
            let step = stepIndex.map { calls[$0] }
            p.call = step?.id

            if p.proto == "TCP", let flags = p.flags, let stream = p.stream, let src = p.sourceEndpoint,
                let dst = p.destinationEndpoint, let seq = p.seq, let ack = p.ack
            {
                let mineKey = StreamDirection(stream: stream, fromSource: src)
                let theirsKey = StreamDirection(stream: stream, fromSource: dst)
                var mine = directions[mineKey] ?? DirectionState()
                let theirs = directions[theirsKey] ?? DirectionState()
                let spaceLength =
                    UInt32(p.length) + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
                let next = seq &+ spaceLength
                let isRetransmission = mine.sent && spaceLength > 0 && Int32(bitPattern: next &- mine.highestNext) <= 0
                    && !flags.contains(.rst)
                let isKeepAlive = mine.sent && spaceLength <= 1 && p.length <= 1 && !flags.contains(.syn)
                    && !flags.contains(.fin) && !flags.contains(.rst) && seq == mine.highestNext &- 1

                var reason: String?
                var kernel: Bool?
                if isKeepAlive {
                    reason = "keep-alive probe"
                } else if isRetransmission {
                    reason = flags.contains(.syn) ? "SYN retransmitted: no SYN/ACK yet" : "retransmission"
                } else if flags.contains(.syn) && flags.contains(.ack) {
                    reason = "SYN/ACK of a listening socket"
                } else if flags.contains(.rst) {
                    if !mine.sent && flags.contains(.ack) {
                        reason = "RST: no socket listening on this port"
                    } else if step?.actor != p.sender {
                        reason = "RST from the \(p.sender ?? "peer")'s kernel"
                    } else if step?.name == "close" {
                        // The actor's own close aborted the connection (SO_LINGER 0, or unread data): its call
                        // sent this RST, not a kernel on its own.
                        reason = "RST: close aborted the connection"
                        kernel = false
                    }
                } else if spaceLength == 0 {
                    // A pure ACK: of the peer's FIN, of the handshake (part of connect), of new data, or the same
                    // acknowledgment again with a new window (an update) or without one (a duplicate).
                    let advanced = PureACK.advances(ack, over: mine.lastAck)
                    if theirs.probing, !advanced {
                        reason = "ACK of keep-alive probe"
                    } else if mine.lastAck == nil, mine.highestNext == 1, theirs.highestNext == 1, ack == 1 {
                        // The handshake's third segment: part of connect when the connecting side runs it, the
                        // client's kernel finishing a non-blocking connect or a SYN retry otherwise.
                        reason = step?.name == "connect" && step?.actor == p.sender ? nil : "ACK completing the handshake"
                    } else {
                        reason = PureACK.reason(
                            ack: ack, previousAck: mine.lastAck, peerFINNext: theirs.finNext, window: p.window,
                            previousWindow: mine.lastWindow)
                    }
                } else if let actor = step?.actor, actor != p.sender {
                    reason = "sent by the \(p.sender ?? "peer")'s kernel while the \(actor) ran \(step?.name ?? "a call")"
                }
                p.byKernel = kernel ?? (reason != nil)
                p.reason = reason
                mine.probing = isKeepAlive

                if !mine.sent || Int32(bitPattern: next &- mine.highestNext) > 0 { mine.highestNext = next }
                if spaceLength > 0 || !mine.sent { mine.sent = true }
                if flags.contains(.fin) { mine.finNext = next }
                mine.lastWindow = p.window
                if flags.contains(.ack) { mine.lastAck = ack }
                directions[mineKey] = mine
            } else if p.proto == "ICMP" || p.proto == "ICMPv6" {
                p.byKernel = true
                p.reason = p.summary.map { "ICMP \($0)" } ?? "ICMP"
            } else if p.proto == "ARP" {
                p.byKernel = true
                p.reason = "ARP: address resolution"
            } else if let actor = step?.actor, let sender = p.sender, actor != sender {
                p.byKernel = true
                p.reason = "sent by the \(sender)'s kernel"
            }
            packets[i] = p
        }
    }
}

/// Why a kernel sent a pure ACK (no data, SYN, FIN or RST), from what it acknowledges; shared by the lab's and
/// the tracer's attribution.
public enum PureACK {
    /// True when `ack` acknowledges more than `previous` did (or is the first acknowledgment).
    public static func advances(_ ack: UInt32, over previous: UInt32?) -> Bool {
        previous.map { Int32(bitPattern: ack &- $0) > 0 } ?? true
    }

    /// "ACK of FIN" when it acknowledges the peer's FIN, "ACK of data" when it acknowledges new bytes, "window
    /// update" when only the window changed, "duplicate ACK" otherwise.
    public static func reason(
        ack: UInt32, previousAck: UInt32?, peerFINNext: UInt32?, window: UInt16?, previousWindow: UInt16?
    ) -> String {
        let advanced = advances(ack, over: previousAck)
        if let fin = peerFINNext, ack == fin, advanced { return "ACK of FIN" }
        if advanced { return "ACK of data" }
        return previousWindow != window ? "window update" : "duplicate ACK"
    }
}

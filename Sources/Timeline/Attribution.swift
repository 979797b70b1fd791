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

    /// Per direction of a TCP stream: what it sent, and whether its last segment was a keep-alive probe (so the
    /// peer's next pure ACK answers it).
    struct DirectionState {
        var sent = SegmentDirection()
        var probing = false
    }

    /// The lab's actors are roles ("the client"); a packet whose sender no actor owns is "the peer".
    static func party(_ sender: String?) -> Party { sender.map { .role($0) } ?? .peer }

    /// Fills `call`, `sender` and `kernel` of each packet. `calls` must be in execution order.
    public func attribute(_ packets: inout [PacketEvent], calls: [CallEvent]) {
        var directions: [StreamDirection: DirectionState] = [:]
        let starts = calls.map(\.start)
        for i in packets.indices {
            var p = packets[i]
            // The call whose window holds the packet: the last call that started at or before it.
            var stepIndex: Int?
            var lo = 0
            var hi = starts.count
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

            if p.proto == .tcp, let flags = p.flags, let stream = p.stream, let src = p.sourceEndpoint,
                let dst = p.destinationEndpoint, let rawSeq = p.seq, let rawAck = p.ack
            {
                let seq = SequenceNumber(rawSeq)
                let ack = SequenceNumber(rawAck)
                let mineKey = StreamDirection(stream: stream, fromSource: src)
                let theirsKey = StreamDirection(stream: stream, fromSource: dst)
                var mine = directions[mineKey] ?? DirectionState()
                let theirs = directions[theirsKey] ?? DirectionState()
                let space = SegmentDirection.space(length: p.length, flags: flags)
                let isRetransmission = mine.sent.isRetransmission(seq: seq, length: p.length, flags: flags)
                let isKeepAlive = mine.sent.isKeepAlive(seq: seq, length: p.length, flags: flags)
                let sender = Self.party(p.sender)

                var reason: KernelReason?
                if isKeepAlive {
                    reason = .keepAliveProbe
                } else if isRetransmission {
                    reason = flags.contains(.syn) ? .synRetransmission : .retransmission(call: nil)
                } else if flags.contains(.syn) && flags.contains(.ack) {
                    reason = .synAckOfListener
                } else if flags.contains(.rst) {
                    if !mine.sent.hasSent && flags.contains(.ack) {
                        reason = .refusedReset
                    } else if step?.actor != p.sender {
                        reason = .resetFrom(sender)
                    }
                    // Otherwise the actor's own close aborted the connection (SO_LINGER 0, or unread data): its
                    // call sent this RST, not a kernel on its own.
                } else if space == 0 {
                    // A pure ACK: of the peer's FIN, of the handshake (part of connect), of new data, or the same
                    // acknowledgment again with a new window (an update) or without one (a duplicate).
                    if theirs.probing, !mine.sent.advances(ack) {
                        reason = .keepAliveAck
                    } else if mine.sent.lastAck == nil, mine.sent.highestNext == SequenceNumber(1),
                        theirs.sent.highestNext == SequenceNumber(1), rawAck == 1
                    {
                        // The handshake's third segment: part of connect when the connecting side runs it, the
                        // client's kernel finishing a non-blocking connect or a SYN retry otherwise.
                        reason = step?.name == "connect" && step?.actor == p.sender ? nil : .handshakeAck
                    } else {
                        reason = mine.sent.pureAckReason(ack: ack, window: p.window, peer: theirs.sent)
                    }
                } else if let actor = step?.actor, actor != p.sender {
                    reason = .sentDuring(sender: sender, actor: .role(actor), call: step?.name)
                }
                p.kernel = reason
                mine.probing = isKeepAlive
                mine.sent.record(seq: seq, length: p.length, flags: flags, ack: ack, window: p.window)
                directions[mineKey] = mine
            } else if p.proto.isICMP {
                p.kernel = .icmp(summary: p.summary, undelivered: nil)
            } else if p.proto == .arp {
                p.kernel = .arp
            } else if let actor = step?.actor, let sender = p.sender, actor != sender {
                p.kernel = .sentBy(.role(sender))
            }
            packets[i] = p
        }
    }
}

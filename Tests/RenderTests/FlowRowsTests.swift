import PacketWire
import Render
import Testing
import Timeline

/// The order the diagrams (HTML and Mermaid) draw a trace in: calls and packets by time, state changes in place.
@Suite struct FlowRowsTests {
    static let process = "python3[7]"
    static let client = Endpoint(.v4(0x7f00_0001), 40000)
    static let server = Endpoint(.v4(0x7f00_0002), 49152)

    static func at(_ microseconds: Int) -> Timestamp {
        Timestamp(seconds: 1_700_000_000, nanoseconds: UInt32(microseconds * 1000))
    }

    static func packet(_ frame: Int, _ t: Int, _ flags: TCPFlags, fromClient: Bool, call: Int?) -> PacketEvent {
        var p = PacketEvent(frame: frame, timestamp: at(t), proto: .tcp, length: 0)
        let (from, to) = fromClient ? (client, server) : (server, client)
        (p.source, p.sourcePort, p.destination, p.destinationPort) = (from.address, from.port, to.address, to.port)
        p.flags = flags
        p.stream = 0
        p.call = call
        p.sender = fromClient ? process : nil
        p.kernel = call == nil ? .ackOfData : nil
        return p
    }

    static func call(_ id: Int, _ name: String, _ start: Int, _ end: Int, state: TCPState, source: String)
        -> CallEvent
    {
        var c = CallEvent(
            id: id, actor: process, name: name, result: 0, start: at(start), end: at(end),
            tcpStates: [("fd 3", state)])
        c.source = source
        return c
    }

    /// A traced client: connect's SYN, the listener's SYN/ACK (no call of the client's), connect's ACK; later
    /// close's FIN and the peer's ACK of it, which can arrive before close returns.
    static func trace() -> FlowDiagram {
        let calls = [
            call(2, "connect", 100, 400, state: .established, source: "client.py:21 client.connect((HOST, PORT))"),
            call(5, "close", 1000, 1300, state: .lastAck, source: "client.py:31 client.close()"),
        ]
        let packets = [
            packet(1, 150, .syn, fromClient: true, call: 2),
            packet(2, 200, [.syn, .ack], fromClient: false, call: nil),
            packet(3, 250, .ack, fromClient: true, call: 2),
            packet(4, 1100, [.fin, .ack], fromClient: true, call: 5),
            packet(5, 1200, .ack, fromClient: false, call: nil),
        ]
        return FlowDiagram(
            title: "trace", lifelines: [Lifeline(id: process, label: process)], calls: calls, packets: packets)
    }

    /// "call 2", "packet 1", "state python3[7] fd 3: ESTABLISHED"
    static func describe(_ rows: [FlowDiagram.Row]) -> [String] {
        rows.map {
            switch $0 {
            case .call(let c): "call \(c.id)"
            case .packet(let p): "packet \(p.frame)"
            case .states(_, let changes): changes.map { "state \($0.actor) \($0.state)" }.joined(separator: ", ")
            }
        }
    }

    @Test func aKernelPacketStaysInTimeOrderAndStatesFollowTheCallsOwnPackets() {
        var d = Self.trace()
        d.statesAtReturn = true
        #expect(
            Self.describe(d.rows) == [
                "call 2", "packet 1", "packet 2", "packet 3", "state python3[7] fd 3: ESTABLISHED",
                "call 5", "packet 4", "state python3[7] fd 3: LAST_ACK", "packet 5",
            ])
    }

    @Test func statesReadOnceTheWireIsQuietComeBeforeTheNextCall() {
        let d = Self.trace()
        #expect(
            Self.describe(d.rows) == [
                "call 2", "packet 1", "packet 2", "packet 3", "state python3[7] fd 3: ESTABLISHED",
                "call 5", "packet 4", "packet 5", "state python3[7] fd 3: LAST_ACK",
            ])
    }

    @Test func mermaidPutsTheSourceLineUnderTheCall() {
        let text = MermaidDiagram.render(Self.trace())
        #expect(
            text.contains(
                "Note over p0: 2 connect() = 0<br/>client.py#58;21 client.connect((HOST, PORT))\n"))
        #expect(text.contains("Note over p0: TCP state → fd 3#58; ESTABLISHED\n"))
    }
}

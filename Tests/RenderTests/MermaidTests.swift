import PacketWire
import Render
import Testing
import Timeline

/// One `pA->>pB: label` line of a Mermaid sequenceDiagram.
struct MermaidArrow {
    var from: String
    var to: String
    var dotted: Bool
    var frame: Int
    var label: String

    init?(_ line: Substring) {
        guard let m = line.wholeMatch(of: /\s*(p\d+)(-->>|->>)(p\d+): \[(\d+)\] (.*)/), let frame = Int(m.4) else {
            return nil
        }
        (from, dotted, to, self.frame, label) = (String(m.1), m.2 == "-->>", String(m.3), frame, String(m.5))
    }
}

@Suite struct MermaidTests {
    @Test func seedLabHasOneArrowPerPacketInOrderAndDirection() throws {
        let r = try Seed.result()
        let d = Seed.diagram(r, .en)
        let text = MermaidDiagram.render(d)
        #expect(text.hasPrefix("sequenceDiagram\n"))
        #expect(text.contains("participant p0 as Server 127.0.0.2#58;49231"))
        #expect(text.contains("participant p1 as Client "))

        let arrows = text.split(separator: "\n").compactMap(MermaidArrow.init)
        // The seed's run: handshake, data each way, two closes: 11 packets on Linux.
        #expect(r.packets.count >= 10)
        #expect(arrows.count == r.packets.count)
        #expect(arrows.map(\.frame) == d.drawnPackets.map(\.frame))
        #expect(Set(arrows.map(\.frame)) == Set(r.packets.map(\.frame)))
        for (arrow, p) in zip(arrows, d.drawnPackets) {
            let (sender, receiver) = p.sender == "server" ? ("p0", "p1") : ("p1", "p0")
            #expect(arrow.from == sender, "frame \(p.frame)")
            #expect(arrow.to == receiver, "frame \(p.frame)")
            #expect(arrow.dotted == p.byKernel, "frame \(p.frame)")
            #expect(arrow.label.hasPrefix(p.flags?.label ?? "?"), "frame \(p.frame): \(arrow.label)")
            if let seq = p.seq { #expect(arrow.label.contains("seq=\(seq)")) }
            if p.byKernel { #expect(arrow.label.contains("kernel#58; ")) }
            // Nothing left that Mermaid reads as syntax once the entity codes are taken out.
            let bare = arrow.label.replacing(/#(\d+|lt|gt);/, with: "")
            #expect(!bare.contains(";") && !bare.contains("#") && !bare.contains(":"), "\(arrow.label)")
        }
        // The three-way handshake: SYN from the client, the listening kernel's SYN/ACK, the client's ACK.
        let handshake = arrows.prefix(3)
        #expect(handshake.map { $0.label.split(separator: " ").first.map(String.init) } == ["SYN", "SYN/ACK", "ACK"])
        #expect(handshake.map(\.from) == ["p1", "p0", "p1"])
        #expect(text.contains("Note over p1: 5 connect(127.0.0.2#58;49231) = 0"))
        #expect(text.contains("Note over p0: TCP state → LISTEN"))
    }

    @Test func seedLabInJapanese() throws {
        let text = MermaidDiagram.render(Seed.diagram(try Seed.result(), .ja))
        #expect(text.contains("participant p0 as サーバー 127.0.0.2#58;49231"))
        #expect(text.contains("participant p1 as クライアント "))
        #expect(text.contains("(カーネルが送信#58; "))
        #expect(text.contains("Note over p0: TCP状態 → LISTEN"))
    }

    @Test func escapeKeepsLabelsFromBeingSyntax() {
        #expect(MermaidDiagram.escape("a;b#c:d<e>f%%g\nh") == "a#59;b#35;c#58;d#lt;e#gt;f#37;#37;g h")
        #expect(MermaidDiagram.escape("こんにちは") == "こんにちは")
        // "\r\n" is one Character in Swift: it must end no line either (a `python -c` script in a trace's title).
        #expect(MermaidDiagram.escape("a\r\nb\rc") == "a b c")
    }

    @Test func captureWithoutActorsGetsALifelinePerEndpoint() {
        let d = Synthetic.diagram()
        let text = MermaidDiagram.render(d)
        #expect(d.lifelines.map(\.id) == ["10.0.0.1:50000", "10.0.0.2:80", "10.0.0.1:50001", "10.0.0.1:50002"])
        let arrows = text.split(separator: "\n").compactMap(MermaidArrow.init)
        #expect(arrows.count == d.packets.count)
        #expect(arrows.map(\.frame) == d.packets.map(\.frame))
        // Stream 2's client is the fourth lifeline; its SYN goes to the server.
        let syn2 = arrows.first { a in d.packets[a.frame - 1].stream == 2 }
        #expect(syn2?.from == "p3" && syn2?.to == "p1")
    }
}

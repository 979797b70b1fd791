import PacketWire
import Render
import Testing
import Timeline

/// Builds the packet events of one loopback TCP conversation from header fields, the way the decoder would.
struct Conversation {
    let client = Endpoint(IPAddress("127.0.0.1")!, 40000)
    let server = Endpoint(IPAddress("127.0.0.2")!, 49152)
    var builder = PacketEventBuilder()
    var frame = 0
    var clock: Int64 = 1_000_000_000

    mutating func packet(
        fromClient: Bool, seq: UInt32, ack: UInt32, flags: TCPFlags, length: Int = 0, window: UInt16 = 512,
        at time: Int64? = nil
    ) -> PacketEvent {
        frame += 1
        clock = time ?? clock + 1000
        let (src, dst) = fromClient ? (client, server) : (server, client)
        var p = DecodedPacket(link: .raw)
        p.network = .ipv4(
            IPv4Header(
                headerLength: 20, tos: 0, totalLength: 40 + length, identification: 0, dontFragment: true,
                moreFragments: false, fragmentOffset: 0, ttl: 64, protocolNumber: 6, checksum: 0,
                source: src.address, destination: dst.address))
        p.transport = .tcp(
            TCPHeader(
                sourcePort: src.port, destinationPort: dst.port, sequenceNumber: seq, acknowledgmentNumber: ack,
                headerLength: 20, flags: flags, window: window, checksum: 0, urgentPointer: 0, options: TCPOptions()))
        p.payloadLength = length
        let info = CaptureInfo(
            timestamp: Timestamp(totalNanoseconds: clock), capturedLength: 40 + length, originalLength: 40 + length,
            linkType: .raw)
        return builder.event(frame: frame, info: info, decoded: p, payload: [])
    }
}

func call(_ id: Int, _ actor: String, _ name: String, at ns: Int64) -> CallEvent {
    CallEvent(
        id: id, actor: actor, name: name, result: 0, start: Timestamp(totalNanoseconds: ns),
        end: Timestamp(totalNanoseconds: ns + 10))
}

let labActors = Attributor { endpoint, _ in
    guard let endpoint else { return nil }
    return endpoint.port == 49152 ? "server" : "client"
}

@Suite struct StreamTableTests {
    @Test func relativeNumbersStartAtZeroWithASYN() {
        var c = Conversation()
        let isnC: UInt32 = 4_000_000_000
        let isnS: UInt32 = 123
        let syn = c.packet(fromClient: true, seq: isnC, ack: 0, flags: .syn)
        let synAck = c.packet(fromClient: false, seq: isnS, ack: isnC &+ 1, flags: [.syn, .ack])
        // The client's sequence numbers wrap past 2^32 here; relative numbers must not notice.
        let data = c.packet(fromClient: true, seq: isnC &+ 1, ack: isnS + 1, flags: [.psh, .ack], length: 300_000_000)
        let ack = c.packet(fromClient: false, seq: isnS + 1, ack: isnC &+ 300_000_001, flags: .ack)
        #expect((syn.seq, syn.ack) == (0, 0))
        #expect((synAck.seq, synAck.ack) == (0, 1))
        #expect((data.seq, data.ack) == (1, 1))
        #expect((ack.seq, ack.ack) == (1, 300_000_001))
        #expect([syn, synAck, data, ack].allSatisfy { $0.stream == 0 })
    }

    @Test func midConnectionCaptureStartsAtOneLikeWireshark() {
        var c = Conversation()
        let first = c.packet(fromClient: true, seq: 5000, ack: 9000, flags: [.psh, .ack], length: 10)
        let reply = c.packet(fromClient: false, seq: 9000, ack: 5010, flags: .ack)
        #expect((first.seq, first.ack) == (1, 1))
        #expect((reply.seq, reply.ack) == (1, 11))
    }

    @Test func aNewSYNOnAFinishedTupleIsANewStream() {
        var c = Conversation()
        _ = c.packet(fromClient: true, seq: 1, ack: 0, flags: .syn)
        _ = c.packet(fromClient: false, seq: 100, ack: 2, flags: .rst.union(.ack))
        let again = c.packet(fromClient: true, seq: 7777, ack: 0, flags: .syn)
        #expect(again.stream == 1 && again.seq == 0)
        #expect(c.builder.streams.streamCount == 2)
    }
}

@Suite struct AttributorTests {
    /// The seed's exchange: each packet inside the window of the call that caused it.
    @Test func seedConversationReasons() {
        var c = Conversation()
        let calls = [
            call(5, "client", "connect", at: 1_000_000_000), call(7, "client", "sendall", at: 2_000_000_000),
            call(11, "server", "close", at: 3_000_000_000), call(12, "client", "close", at: 4_000_000_000),
        ]
        var packets = [
            c.packet(fromClient: true, seq: 10, ack: 0, flags: .syn, at: 1_000_000_100),
            c.packet(fromClient: false, seq: 50, ack: 11, flags: [.syn, .ack]),
            c.packet(fromClient: true, seq: 11, ack: 51, flags: .ack),
            c.packet(fromClient: true, seq: 11, ack: 51, flags: [.psh, .ack], length: 15, at: 2_000_000_100),
            c.packet(fromClient: false, seq: 51, ack: 26, flags: .ack),
            c.packet(fromClient: false, seq: 51, ack: 26, flags: [.fin, .ack], at: 3_000_000_100),
            c.packet(fromClient: true, seq: 26, ack: 52, flags: .ack, at: 3_040_000_000),
            c.packet(fromClient: true, seq: 26, ack: 52, flags: [.fin, .ack], at: 4_000_000_100),
            c.packet(fromClient: false, seq: 52, ack: 27, flags: .ack),
        ]
        labActors.attribute(&packets, calls: calls)
        #expect(packets.map(\.call) == [5, 5, 5, 7, 7, 11, 11, 12, 12])
        #expect(
            packets.map(\.sender) == [
                "client", "server", "client", "client", "server", "server", "client", "client", "server",
            ])
        #expect(
            packets.map(\.reason) == [
                nil, "SYN/ACK of a listening socket", nil, nil, "ACK of data", nil, "ACK of FIN", nil, "ACK of FIN",
            ])
        #expect(packets.map(\.byKernel) == [false, true, false, false, true, false, true, false, true])
    }

    @Test func retransmissionsDuplicatesAndWindowUpdates() {
        var c = Conversation()
        var packets = [
            c.packet(fromClient: true, seq: 1, ack: 0, flags: .syn),
            c.packet(fromClient: false, seq: 1, ack: 2, flags: [.syn, .ack]),
            c.packet(fromClient: true, seq: 2, ack: 2, flags: .ack),
            c.packet(fromClient: true, seq: 2, ack: 2, flags: [.psh, .ack], length: 100),
            c.packet(fromClient: true, seq: 2, ack: 2, flags: [.psh, .ack], length: 100),
            c.packet(fromClient: false, seq: 2, ack: 102, flags: .ack, window: 100),
            c.packet(fromClient: false, seq: 2, ack: 102, flags: .ack, window: 900),
            c.packet(fromClient: false, seq: 2, ack: 102, flags: .ack, window: 900),
            c.packet(fromClient: true, seq: 101, ack: 2, flags: .ack),
        ]
        labActors.attribute(&packets, calls: [call(1, "client", "connect", at: 0)])
        #expect(packets[4].reason == "retransmission" && packets[4].byKernel)
        #expect(packets[5].reason == "ACK of data")
        #expect(packets[6].reason == "window update")
        #expect(packets[7].reason == "duplicate ACK")
        #expect(packets[8].reason == "keep-alive probe")
    }

    @Test func rstForAClosedPortAndRetransmittedSYN() {
        var c = Conversation()
        var packets = [
            c.packet(fromClient: true, seq: 1000, ack: 0, flags: .syn),
            c.packet(fromClient: true, seq: 1000, ack: 0, flags: .syn),
            c.packet(fromClient: false, seq: 0, ack: 1001, flags: [.rst, .ack]),
        ]
        labActors.attribute(&packets, calls: [call(1, "client", "connect", at: 0)])
        #expect(packets[0].byKernel == false)
        #expect(packets[1].reason == "SYN retransmitted: no SYN/ACK yet")
        #expect(packets[2].reason == "RST: no socket listening on this port" && packets[2].sender == "server")
    }

    @Test func packetsBeforeTheFirstCallBelongToNone() {
        var c = Conversation()
        var packets = [c.packet(fromClient: true, seq: 1, ack: 0, flags: .syn, at: 10)]
        labActors.attribute(&packets, calls: [call(1, "client", "connect", at: 1_000)])
        #expect(packets[0].call == nil)
    }
}

@Suite struct RenderTextTests {
    @Test func escapingKeepsJapaneseAndEscapesBinary() {
        #expect(TextEscaper.escape(Array("こんにちは\n".utf8)) == "こんにちは\\n")
        #expect(TextEscaper.escape([0x41, 0xff, 0x00, 0xe3, 0x81]) == "A\\xff\\x00\\xe3\\x81")
        // A cut never splits a character: 5 bytes of "ああ" (6 bytes) keep one character.
        #expect(TextEscaper.preview(Array("ああ".utf8), limit: 5) == "あ…")
    }

    @Test func jsonEscapesAndKeepsFieldOrder() {
        var w = JSONWriter()
        w.beginObject()
        w.field("a", "x\"y\\\n\u{1}")
        w.field("b", 3)
        w.field("c", nil as String?)
        w.beginArray("d")
        w.string("FIN")
        w.string("ACK")
        w.endArray()
        w.endObject()
        #expect(String(decoding: w.bytes, as: UTF8.self) == #"{"a":"x\"y\\\n\u0001","b":3,"c":null,"d":["FIN","ACK"]}"#)
        #expect(epochString(Timestamp(seconds: 12, nanoseconds: 5)) == "12.000000005")
    }

    @Test func japaneseColumnsAreWide() {
        #expect(displayWidth("[サーバー]") == 10)
        #expect(displayWidth("[Server]") == 8)
    }
}

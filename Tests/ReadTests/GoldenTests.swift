import Foundation
import PacketFiles
import PacketWire
@testable import Render
import Testing
import Timeline

@Suite struct ReadGoldenTests {
    func golden(_ name: String) throws -> String {
        try String(contentsOfFile: fixture("golden/" + name), encoding: .utf8)
    }

    @Test(arguments: goldenCaptures)
    func textMatchesGolden(_ file: String) throws {
        let r = render(fixture(file), .text)
        #expect(r.error == nil)
        #expect(r.output == (try golden(file.split(separator: ".")[0] + ".txt")))
    }

    @Test(arguments: goldenCaptures)
    func jsonLinesMatchGolden(_ file: String) throws {
        let r = render(fixture(file), .jsonl)
        #expect(r.output == (try golden(file.split(separator: ".")[0] + ".jsonl")))
    }

    @Test(arguments: goldenCaptures)
    func conversationsMatchGolden(_ file: String) throws {
        let r = render(fixture(file), .conversations)
        #expect(r.output == (try golden(file.split(separator: ".")[0] + ".conv")))
    }

    @Test func payloadAndHexOfMalformedPackets() throws {
        let r = render(fixture("bad-packets.pcap"), .payloadHex)
        #expect(r.output == (try golden("bad-packets-payload.txt")))
        // Malformed and truncated packets are shown as such and reading goes on to the last record.
        #expect(r.output.contains("[malformed network header: header length 12 < 20]"))
        #expect(r.output.contains("[truncated transport header]"))
        #expect(r.output.contains("    日本語 o\n"))
        #expect(r.output.contains("22:13:20.000006 "))
    }

    /// A cut file: every valid record first, then one error naming the byte offset.
    @Test func truncatedFileKeepsValidRecords() throws {
        let r = render(fixture("malformed/truncated-record.pcap"), .text)
        #expect(r.output.split(separator: "\n").count == 2)
        #expect(r.error?.description == "\(fixture("malformed/truncated-record.pcap")): byte 204: "
            + "truncated packet record (needs 82 bytes, 26 left)")
    }

    /// Without a SYN, the first segment of each direction is seq 1, and acks are relative to the peer's base.
    @Test func midConnectionIsNumberedLikeWireshark() throws {
        let lines = render(fixture("mid-connection.pcap"), .text).output.split(separator: "\n")
        #expect(lines.first?.hasSuffix("Flags [.], ack 1, win 64, options [nop,nop,TS val 4041301929 ecr 2178459257], length 0") == true)
        #expect(lines[1].contains("Flags [P.], seq 1:10, ack 1,"))
    }

    /// With -S the Ethernet and SLL captures print exactly as `TZ=UTC tcpdump -nn -S -r` does.
    @Test(arguments: ["lo-usec.pcap", "lo-nsec.pcap", "any-sll.pcap", "be-usec.pcap", "mix.pcap"])
    func absoluteTextIsTcpdumpText(_ file: String) throws {
        guard let expected = try run("tcpdump", ["-nn", "-S", "-r", fixture(file)], environment: ["TZ": "UTC"])
        else {
            Issue.record("tcpdump is not installed: apt-get install tcpdump (CI installs it)")
            return
        }
        // Our lines add Wireshark's TCP analysis in brackets at the end; tcpdump has no such thing.
        let ours = render(fixture(file), .text, absolute: true).output
            .replacing(#/\s\[[a-z_, ]+\]\n/#, with: "\n")
        #expect(ours == expected)
    }

    /// The conversation tables are tshark's, character for character.
    @Test(arguments: ["lo-usec.pcap", "two-interfaces.pcapng", "mix.pcap", "mid-connection.pcap"])
    func conversationsAreTsharks(_ file: String) throws {
        guard let tcp = try run("tshark", ["-r", fixture(file), "-q", "-z", "conv,tcp"]),
            let udp = try run("tshark", ["-r", fixture(file), "-q", "-z", "conv,udp"])
        else {
            Issue.record("tshark is not installed: apt-get install tshark (CI installs it)")
            return
        }
        #expect(render(fixture(file), .conversations).output == tcp + udp)
    }

    @Test func sizesAreFormattedLikeWireshark() {
        #expect(ConversationReport.size(9999) == "9999 bytes")
        #expect(ConversationReport.size(10_000) == "10 kB")
        #expect(ConversationReport.size(12_345_678) == "12 MB")
    }
}

@Suite struct FlowDiagramTests {
    /// `--flow --stream 0`: the lab's diagram with the stream's two endpoints as the columns.
    @Test func streamZeroOfTheMix() throws {
        var builder = PacketEventBuilder()
        var events: [PacketEvent] = []
        let reader = try CaptureFileReader(path: fixture("mix.pcap"))
        while let r = try reader.next() {
            let d = PacketDecoder.decode(r.bytes, linkType: r.info.linkType)
            let payload = d.capturedPayloadLength > 0
                ? (r.bytes.slice(d.payloadOffset, min(d.capturedPayloadLength, 80))?.copyBytes() ?? [])[...] : []
            var e = builder.event(frame: r.frameNumber, info: r.info, decoded: d, payload: payload)
            guard e.stream == 0 else { continue }
            e.sender = e.sourceEndpoint?.description
            events.append(e)
        }
        let left = events[0].sourceEndpoint!.description, right = events[0].destinationEndpoint!.description
        var diagram = SequenceDiagram(leftActor: left, rightActor: right)
        diagram.arrowWidth = 56
        let text = "\nTCP stream 0\n" + diagram.header(left: nil, right: nil)
            + diagram.render(calls: [], packets: events, origin: events[0].timestamp)
        let golden = try String(contentsOfFile: fixture("golden/mix-flow-0.txt"), encoding: .utf8)
        #expect(text == golden)
        #expect(text.contains("<── SYN/ACK"))
    }
}

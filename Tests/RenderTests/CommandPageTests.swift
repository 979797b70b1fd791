import Foundation
import TestSupport
import Testing

/// Pages that the commands themselves write (`read` of a real multi-stream capture, `trace` of a real program),
/// opened in headless Chromium: the arrows in the DOM must be the packets the command reports as JSON Lines.
@Suite(.serialized) struct CommandPageTests {
    static var fixtures: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures")
    }

    /// Runs packetflow and returns its standard output.
    static func packetflow(_ arguments: [String]) throws -> String {
        let r = try runProcess(packetflowBinary(), arguments)
        guard r.status == 0 else { throw TestFailure("packetflow \(arguments) exited \(r.status): \(r.stderr)") }
        return r.stdout
    }

    static func jsonObjects(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    @Test func readOfAMultiStreamCaptureDrawsItsTCPPackets() throws {
        let capture = Self.fixtures.appendingPathComponent("mix.pcap").path
        let tcp = try Self.jsonObjects(try Self.packetflow(["read", "--format", "jsonl", capture]))
            .filter { $0["proto"] as? String == "TCP" }
        let streams = Set(tcp.compactMap { $0["stream"] as? Int })
        try #require(streams.count > 2, "the fixture should hold several TCP streams")

        let page = try scratchDirectory("command-pages").appendingPathComponent("read-mix.html")
        _ = try Self.packetflow(["read", "--format", "html", "-o", page.path, capture])
        let dom = try Chromium.dumpDOM(page)
        let frames = tcp.compactMap { $0["frame"] as? Int }
        #expect(arrowFrames(dom) == Array(frames.prefix(200)))
        #expect(dom.matches(of: /<option value="\d+"/).count == streams.count)
        // Picking one stream shows exactly that stream's packets.
        let one = try #require(streams.sorted().dropFirst().first)
        let picked = try Chromium.dumpDOM(URL(string: page.absoluteString + "#stream=\(one)")!)
        let expected = tcp.filter { $0["stream"] as? Int == one }.compactMap { $0["frame"] as? Int }
        #expect(arrowFrames(picked) == Array(expected.prefix(200)))
    }

    /// A pcapng's packet comments (a trace's -w file carries the call that sent each packet) are drawn under
    /// their arrows, and the details panel lists them.
    @Test func readOfAPcapngDrawsItsPacketComments() throws {
        let capture = Self.fixtures.appendingPathComponent("comments.pcapng").path
        let page = try scratchDirectory("command-pages").appendingPathComponent("read-comments.html")
        _ = try Self.packetflow(["read", "--format", "html", "-o", page.path, capture])
        let dom = try Chromium.dumpDOM(page)
        #expect(dom.contains(#"class="pcomment">first comment</text>"#))
        let detail = try Chromium.dumpDOM(URL(string: page.absoluteString + "#frame=1")!)
        #expect(detail.contains(#"<p class="mono callref">first comment</p>"#))
    }

    @Test func traceOfARealProgramDrawsItsPacketsAndCalls() throws {
        try #require(geteuid() == 0, "trace needs ptrace and capture: run the tests as root (CI does)")
        // A program that is its own server and client, so the trace sees both ends of one connection.
        let script = """
            import socket, threading
            srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1); port = srv.getsockname()[1]
            def serve():
                c, _ = srv.accept(); c.sendall(c.recv(64).upper()); c.close()
            t = threading.Thread(target=serve); t.start()
            s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"hello"); s.recv(64); s.close(); t.join()
            """
        let page = try scratchDirectory("command-pages").appendingPathComponent("trace.html")
        _ = try Self.packetflow(["trace", "--format", "html", "-o", page.path, "--", "python3", "-c", script])
        let html = try String(contentsOf: page, encoding: .utf8)
        // The packets the page was given, from its embedded data, must all be drawn.
        let dataStart = try #require(html.range(of: "id=\"flow-data\">"))
        let dataEnd = try #require(html.range(of: "</script>", range: dataStart.upperBound..<html.endIndex))
        let data = try #require(
            try JSONSerialization.jsonObject(with: Data(html[dataStart.upperBound..<dataEnd.lowerBound].utf8))
                as? [String: Any])
        let rows = try #require(data["rows"] as? [[String: Any]])
        let packets = rows.filter { $0["kind"] as? String == "packet" }
        let calls = rows.filter { $0["kind"] as? String == "call" }
        #expect(packets.count >= 8, "SYN, SYN/ACK, ACK, data both ways, FINs")
        // The SYN is drawn as sent by the connect call to the listener (not by a Unix-socket connect of glibc's,
        // which a run without HOME adds at the interpreter's start).
        let connect = try #require(
            calls.first {
                let text = $0["text"] as? String ?? ""
                return text.contains(" connect(") && text.contains(", 127.0.0.1:")
            })
        #expect(packets.first?["callId"] as? Int == connect["id"] as? Int)

        let dom = try Chromium.dumpDOM(page)
        #expect(arrowFrames(dom) == packets.compactMap { $0["frame"] as? Int })
        #expect(dom.matches(of: /class="packet[^"]* kernel"/).count > 0)
        #expect(dom.matches(of: /<g class="call/).count == calls.count)
        // Each of the script's calls shows its line under its box; packets are drawn in capture (time) order.
        let scriptCalls = calls.filter { ($0["source"] as? String)?.hasPrefix("<string>:") == true }
        #expect(scriptCalls.count >= 8, "socket, bind, listen, accept, connect, sendall, recv, close…")
        #expect(dom.matches(of: /<text[^>]*class="source mono"[^>]*>&lt;string&gt;:\d+[ ]/).count == scriptCalls.count)
        let frames = packets.compactMap { $0["frame"] as? Int }
        #expect(frames == frames.sorted())
        // TCP states of the program's sockets ("fd 4: ESTABLISHED") sit on its own lifeline.
        let lanes = Set((data["lifelines"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String })
        let states = rows.filter { $0["kind"] as? String == "state" }
            .flatMap { $0["changes"] as? [[String: Any]] ?? [] }
        #expect(states.contains { ($0["state"] as? String)?.hasSuffix(": ESTABLISHED") == true })
        #expect(states.allSatisfy { lanes.contains($0["actor"] as? String ?? "") })
        #expect(dom.matches(of: /class="statepill"/).count == states.count)
    }
}

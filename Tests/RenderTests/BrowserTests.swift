import Foundation
import PacketWire
import Render
import TestSupport
import Testing
import Timeline

/// Generated pages opened in headless Chromium (Debian's `chromium`): the arrows in the DOM after the page's
/// script ran must be the packets, and a screenshot must show something. docs/visual.md says how the
/// screenshots in docs/ are made.
@Suite(.serialized) struct BrowserTests {
    func page(_ d: FlowDiagram, _ name: String) throws -> URL {
        let url = try scratchDirectory("browser").appendingPathComponent("\(name).html")
        try HTMLPage.render(d).write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func withFragment(_ url: URL, _ fragment: String) -> URL {
        URL(string: url.absoluteString + "#" + fragment)!
    }

    func expectNotBlank(_ png: URL) throws {
        let size = try FileManager.default.attributesOfItem(atPath: png.path)[.size] as? Int ?? 0
        let stats = try pngStatistics(png)
        #expect(size > 20_000, "screenshot \(png.path) is \(size) bytes")
        #expect(stats.width == 1200)
        // A white page has one colour; lifelines, notes and arrows in several colours give hundreds.
        #expect(stats.colours > 16, "screenshot \(png.path) has \(stats.colours) colours")
    }

    @Test func seedLabPageDrawsEveryPacket() throws {
        let r = try Seed.result()
        let d = Seed.diagram(r, .en)
        let url = try page(d, "seed-en")
        let html = try String(contentsOf: url, encoding: .utf8)
        // Self-contained: nothing to fetch.
        #expect(!html.contains("<link") && !html.contains(" src=") && !html.contains("@import"))
        #expect(html.contains("<html lang=\"en\">"))

        let dom = try Chromium.dumpDOM(url)
        #expect(arrowFrames(dom) == d.drawnPackets.map(\.frame))
        #expect(arrowFrames(dom).count == r.packets.count)
        #expect(dom.matches(of: /class="lanehead"/).count == 2)
        #expect(dom.matches(of: /<g class="call/).count == r.calls.count)
        #expect(dom.matches(of: /class="packet[^"]* kernel"/).count == r.packets.filter(\.byKernel).count)
        #expect(dom.contains(">LISTEN<") && dom.contains(">TIME_WAIT<"))

        let png = try scratchDirectory("browser").appendingPathComponent("seed-en.png")
        try Chromium.screenshot(url, to: png, height: 1300)
        try expectNotBlank(png)
    }

    @Test func detailsPanelShowsFieldsCallAndPayload() throws {
        let r = try Seed.result()
        let d = Seed.diagram(r, .en)
        guard let data = r.packets.first(where: { $0.sender == "client" && $0.length > 0 }) else {
            throw TestFailure("the seed lab sent no data from the client")
        }
        let dom = try Chromium.dumpDOM(withFragment(try page(d, "seed-details"), "frame=\(data.frame)"))
        #expect(dom.contains("class=\"packet data selected\" data-frame=\"\(data.frame)\""))
        #expect(dom.contains("client: 7 sendall("))
        #expect(dom.contains("こんにちは、サーバーさん。Hello, server!"))
        // こ is e3 81 93 in UTF-8.
        #expect(dom.contains("0000  e3 81 93 e3 82 93 e3 81"))
        #expect(dom.contains("<td>Seq (relative)</td>"))
    }

    @Test func seedLabPageInJapanese() throws {
        let r = try Seed.result()
        let d = Seed.diagram(r, .ja)
        let url = try page(d, "seed-ja")
        let dom = try Chromium.dumpDOM(url)
        #expect(dom.contains("<html lang=\"ja\""))
        #expect(dom.contains(">サーバー<") && dom.contains(">クライアント<"))
        #expect(dom.contains("カーネルが送信: "))
        #expect(arrowFrames(dom) == d.drawnPackets.map(\.frame))
        let png = try scratchDirectory("browser").appendingPathComponent("seed-ja.png")
        try Chromium.screenshot(url, to: png, height: 1300)
        try expectNotBlank(png)
    }

    @Test func multiStreamCapturePagesAndPicksStreams() throws {
        let d = Synthetic.diagram()
        let url = try page(d, "synthetic")
        let all = d.packets.map(\.frame)

        // All streams, first page: the first 200 packets.
        let first = try Chromium.dumpDOM(url)
        #expect(arrowFrames(first) == Array(all.prefix(HTMLPage.packetsPerPage)))
        #expect(first.contains("Page 1 / 2"))
        #expect(first.matches(of: /<option value="\d+"/).count == 3)
        let second = try Chromium.dumpDOM(withFragment(url, "stream=all&page=2"))
        #expect(arrowFrames(second) == Array(all.dropFirst(HTMLPage.packetsPerPage)))

        // One stream: only its packets and only its two lifelines.
        let stream2 = try Chromium.dumpDOM(withFragment(url, "stream=2"))
        #expect(arrowFrames(stream2) == d.packets.filter { $0.stream == 2 }.map(\.frame))
        #expect(stream2.matches(of: /class="lanehead"/).count == 2)
        let stream1 = d.packets.filter { $0.stream == 1 }.map(\.frame)
        let stream1page2 = try Chromium.dumpDOM(withFragment(url, "stream=1&page=2"))
        #expect(arrowFrames(stream1page2) == Array(stream1.dropFirst(HTMLPage.packetsPerPage)))

        let png = try scratchDirectory("browser").appendingPathComponent("synthetic-dark.png")
        try Chromium.screenshot(withFragment(url, "stream=0&theme=dark"), to: png)
        try expectNotBlank(png)
    }
}

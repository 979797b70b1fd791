import Foundation
import PacketCapture
import PacketFiles
import PacketWire
import Testing

/// A file and a live capture are both a PacketSource: code written once against the protocol reads either.
@Suite(.serialized) struct PacketSourceTests {
    /// The frame numbers and lengths a source hands over, until `limit` packets or the end of the source.
    static func frames(_ source: some PacketSource, limit: Int, until deadline: Date = .distantFuture) throws
        -> [(frame: Int, length: Int)]
    {
        var seen: [(Int, Int)] = []
        while seen.count < limit && Date() < deadline {
            let status = try source.readPackets { record in
                seen.append((record.frameNumber, record.info.originalLength))
                return seen.count < limit
            }
            if status == .end { break }
        }
        return seen
    }

    @Test func aFileIsASource() throws {
        let all = try Self.frames(CaptureFileReader(path: fixture("lo-usec.pcap")), limit: .max)
        #expect(all.map(\.frame) == Array(1...all.count))
        #expect(all.count > 5)
        // A body that returns false stops the file where it is.
        #expect(try Self.frames(CaptureFileReader(path: fixture("lo-usec.pcap")), limit: 3).map(\.frame) == [1, 2, 3])
    }

    @Test func aLiveCaptureIsASource() throws {
        guard getuid() == 0 else {
            Issue.record("capturing needs root or CAP_NET_RAW: run the tests as root")
            return
        }
        let sink = try UDPSink()
        let capture = try LiveCapture(LiveCapture.Options(interface: "lo", filter: "udp port \(sink.port)"))
        defer { capture.close() }
        capture.setNonblocking(true)
        #expect(sink.flood(3, size: 100) == 3)
        var got: [(frame: Int, length: Int)] = []
        let deadline = Date().addingTimeInterval(5)
        while got.count < 3 && Date() < deadline {
            got += try Self.frames(LivePackets(capture), limit: 3 - got.count, until: Date().addingTimeInterval(0.05))
            usleep(5_000)
        }
        #expect(got.count == 3)
        // 100 bytes of payload, 8 of UDP, 20 of IPv4, 14 of the loopback's Ethernet header.
        #expect(got.allSatisfy { $0.length == 142 })
    }
}

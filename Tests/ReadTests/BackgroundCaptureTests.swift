import Foundation
import Glibc
import PacketCapture
import PacketWire
import TestSupport
import Testing

@Suite(.serialized) struct BackgroundCaptureTests {
    /// Whatever is appended comes back in order, byte for byte, records larger than the read buffer included.
    @Test func spoolGivesBackWhatWasAppended() throws {
        var rng = SplitMix64.seeded(default: 0x5B00_1CA7)
        let seed = "seed \(rng.seed) (PACKETFLOW_TEST_SEED to replay)"
        let spool = try PacketSpool()
        var expected: [(CaptureInfo, [UInt8])] = []
        for i in 0..<600 {
            let size = i == 300 ? 3 << 20 : Int.random(in: 0...3000, using: &rng)
            let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let info = CaptureInfo(
                timestamp: Timestamp(
                    seconds: Int64.random(in: 0...4_000_000_000, using: &rng),
                    nanoseconds: UInt32.random(in: 0..<1_000_000_000, using: &rng)),
                capturedLength: size, originalLength: size + Int.random(in: 0...100, using: &rng),
                linkType: LinkType(rawValue: UInt32.random(in: 0...300, using: &rng)))
            bytes.withUnsafeBytes { spool.append(info, ByteView($0)) }
            expected.append((info, bytes))
        }
        var seen = 0
        try spool.forEachPacket { i, info, bytes in
            let (want, wantBytes) = expected[i]
            #expect(i == seen, "\(seed)")
            #expect(info.timestamp == want.timestamp && info.capturedLength == want.capturedLength, "\(seed)")
            #expect(info.originalLength == want.originalLength && info.linkType == want.linkType, "\(seed)")
            #expect(bytes.copyBytes() == wantBytes, "\(seed), packet \(i)")
            seen += 1
        }
        #expect(seen == expected.count && spool.count == expected.count, "\(seed)")
        spool.close()
    }

    /// A bulk transfer captured with summaries: memory holds headers and a payload prefix, the spool the whole
    /// packets; both describe the same packets, none is marked cut, and the counts add up.
    @Test func summariesAndSpoolDescribeEveryPacketOfABulkTransfer() throws {
        let size = 8 << 20
        let program = Process()
        program.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        program.arguments = [
            "python3", "-c",
            """
            import socket, sys, threading
            srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
            print(srv.getsockname()[1], flush=True)
            sys.stdin.readline()
            def serve():
                c, _ = srv.accept()
                while c.recv(1 << 20): pass
                c.close()
            t = threading.Thread(target=serve); t.start()
            k = socket.create_connection(("127.0.0.1", srv.getsockname()[1]))
            k.sendall(b"y" * \(size)); k.close(); t.join()
            """,
        ]
        let toProgram = Pipe()
        let fromProgram = Pipe()
        program.standardInput = toProgram
        program.standardOutput = fromProgram
        try program.run()
        defer { if program.isRunning { kill(program.processIdentifier, SIGKILL) } }
        let port = try #require(UInt16(firstLine(fromProgram)))

        var options = LiveCapture.Options(interface: "lo", filter: "tcp port \(port)")
        options.immediate = false
        options.readTimeoutMilliseconds = 10
        let capture = try BackgroundCapture(options, retention: .summaries(payloadBytes: 100, spool: true))
        toProgram.fileHandleForWriting.write(Data("go\n".utf8))
        program.waitUntilExit()
        #expect(program.terminationStatus == 0)
        capture.waitUntilQuiet(idle: .milliseconds(100), limit: .seconds(5))
        let recording = try capture.finish()
        let spool = try #require(recording.spool)
        let stats = try #require(recording.statistics)
        let kept = recording.packets

        #expect(spool.count == kept.count)
        #expect(stats.received == UInt64(kept.count) + stats.droppedByKernel)
        var checked = 0
        try spool.forEachPacket { i, info, bytes in
            let k = kept[i]
            let whole = PacketDecoder.decode(bytes, linkType: info.linkType)
            #expect(k.decoded == whole)
            #expect(k.info.timestamp == info.timestamp && k.info.capturedLength == bytes.count)
            #expect(k.info.capturedLength == k.info.originalLength)
            #expect(k.payload.count == min(100, whole.capturedPayloadLength))
            #expect(k.payload[...] == bytes.slice(whole.payloadOffset, k.payload.count)?.copyBytes()[...])
            checked += 1
        }
        #expect(checked == kept.count)
        // With nothing dropped, the client's data segments cover every byte it sent (a retransmission repeats,
        // never extends, the range).
        if stats.droppedByKernel == 0 {
            let toServer = kept.compactMap { p -> (TCPHeader, Int)? in
                guard let tcp = p.decoded.tcp, tcp.destinationPort == port else { return nil }
                return (tcp, p.decoded.payloadLength)
            }
            let syn = try #require(toServer.first { $0.0.flags.contains(.syn) })
            let end = toServer.filter { $0.1 > 0 }.map { Int($0.0.sequenceNumber &- syn.0.sequenceNumber &- 1) + $0.1 }
                .max()
            #expect(end == size)
        } else {
            print("bulk: the kernel dropped \(stats.droppedByKernel) packets (machine busy?)")
        }
        spool.close()
    }

    /// An error path's `try? stop()` ends a capture that keeps summaries too: it stops, then says to call finish.
    @Test func stopEndsASummariesCaptureAndSaysToFinish() throws {
        let quiet = try UDPSink()
        var options = LiveCapture.Options(interface: "lo", filter: "udp dst port \(quiet.port)")
        options.immediate = false
        let capture = try BackgroundCapture(options, retention: .summaries(payloadBytes: 64, spool: true))
        let error = #expect(throws: CaptureError.self) { _ = try capture.stop() }
        #expect(error?.description.contains("finish()") == true)
        let recording = try capture.finish()
        #expect(recording.packets.isEmpty && recording.spool?.count == 0)
    }

    /// Whole packets stay the default retention, and `finish` summarises them as `summaries` would.
    @Test func wholePacketsByDefault() throws {
        let sink = try UDPSink()
        var options = LiveCapture.Options(interface: "lo", filter: "udp dst port \(sink.port)")
        options.immediate = false
        let capture = try BackgroundCapture(options)
        #expect(capture.retention == .wholePackets)
        #expect(sink.flood(10, size: 300) == 10)
        capture.waitUntilQuiet(idle: .milliseconds(50), limit: .seconds(5)) { capture.count >= 10 }
        let recording = try capture.finish()
        #expect(recording.packets.count == 10 && recording.spool == nil)
        #expect(
            recording.packets.allSatisfy { $0.payload.count == 300 && $0.decoded.udp?.destinationPort == sink.port })
    }
}

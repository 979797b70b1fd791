import Foundation
import PacketCapture
import PacketFiles
import PacketWire
import TestSupport
import Testing

/// Live capture on loopback written with our PcapngWriter, then read back by tshark: same packets.
@Suite(.serialized) struct CaptureTests {
    @Test func capturedPcapngIsReadableByTshark() throws {
        // The kernel picks the port (a fixed or random one can be another test's ephemeral port: EADDRINUSE); the
        // program prints it, then waits on its standard input until the capture for that port is open.
        let traffic = Process()
        traffic.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        traffic.arguments = [
            "python3", "-c",
            """
            import socket, sys, threading
            s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)
            port = s.getsockname()[1]
            print(port, flush=True); sys.stdin.readline()
            def serve():
                c, _ = s.accept(); c.sendall(b'pong:' + c.recv(100)); c.close()
            t = threading.Thread(target=serve); t.start()
            k = socket.create_connection(('127.0.0.1', port)); k.sendall('こんにちは'.encode()); k.recv(100)
            k.close(); t.join()
            """,
        ]
        let input = Pipe()
        let output = Pipe()
        traffic.standardInput = input
        traffic.standardOutput = output
        try traffic.run()
        defer { if traffic.isRunning { traffic.terminate() } }
        let printed = firstLine(output)
        let port = try #require(Int(printed), "the program's port: \(printed)")
        let capture: LiveCapture
        do {
            capture = try LiveCapture(LiveCapture.Options(interface: "lo", filter: "tcp port \(port)"))
        } catch {
            Issue.record("cannot capture on lo (run the tests as root or with CAP_NET_RAW): \(error)")
            return
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("capture-\(port).pcapng").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try PcapngWriter(path: path)
        try writer.addInterface(linkType: capture.linkType, name: "lo")
        try input.fileHandleForWriting.write(contentsOf: Array("go\n".utf8))
        try input.fileHandleForWriting.close()
        var written: [(Int64, Int)] = []
        // Capture until the program has exited and the wire has been quiet for a while (a loaded machine can take
        // seconds to start Python), with a generous cap.
        let deadline = Date().addingTimeInterval(30)
        var quietSince = Date()
        // In immediate mode a blocking dispatch waits for the next packet however long it takes.
        capture.setNonblocking(true)
        while Date() < deadline && (traffic.isRunning || Date().timeIntervalSince(quietSince) < 0.5) {
            let n = try capture.dispatch { info, bytes in
                try? writer.writePacket(bytes, timestamp: info.timestamp, originalLength: info.originalLength)
                written.append((info.timestamp.totalNanoseconds, info.originalLength))
            }
            if n > 0 { quietSince = Date() } else { usleep(5_000) }
        }
        traffic.waitUntilExit()
        try writer.close()
        capture.close()
        // Handshake (3), two data segments, two FINs at least; ACKs may ride on other segments.
        #expect(written.count >= 7)

        guard
            let table = try run(
                "tshark",
                [
                    "-r", path, "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len",
                    "-e", "tcp.dstport", "-e", "tcp.srcport",
                ])
        else {
            Issue.record("tshark is not installed: apt-get install tshark (CI installs it)")
            return
        }
        let rows = table.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        #expect(rows.count == written.count)
        for (row, (ns, length)) in zip(rows, written) {
            let epoch =
                "\(ns / 1_000_000_000)."
                + String(String(ns % 1_000_000_000).reversed())
                .padding(toLength: 9, withPad: "0", startingAt: 0).reversed()
            #expect(row[0] == epoch)
            #expect(row[1] == String(length))
            #expect(row[2] == String(port) || row[3] == String(port))
        }
    }
}

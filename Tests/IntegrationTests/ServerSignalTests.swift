import Foundation
import Glibc
import PacketWire
import SocketLab
import Sockets
import Synchronization
import SystemCalls
import TestSupport
import Testing

/// A real `packetflow server` child on 127.0.0.2 with a port the kernel chose (so no test run collides with
/// another), its log lines on stdout and its messages on stderr collected as they come.
final class ServerProcess {
    let process = Process()
    let stdout = Pipe()
    let stderr = Pipe()
    private(set) var address = SocketAddress(ip: .v4(0x7f00_0002), port: 0)
    private var errText = ""

    init(_ extra: [String] = []) throws {
        process.executableURL = try packetflowBinaryChecked()
        process.arguments = ["server", "--port", "0"] + extra
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        try process.run()
        errText = waitForLine(stderr, containing: "listening on")
        // "listening on 127.0.0.2:43817 (backlog 2); Ctrl-C to stop"
        let words = errText.split(separator: " ")
        guard let at = words.firstIndex(of: "on"), at + 1 < words.count,
            let parsed = try? SocketAddress(parsing: String(words[at + 1]))
        else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw SetupFailure("packetflow server did not say where it listens: \(errText)")
        }
        address = parsed
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Sends `signal` and waits (at most `within`) for the server to end; then everything it wrote.
    func stop(with signal: Int32, within: Duration = .seconds(10)) -> (exited: Bool, log: [String], messages: String) {
        kill(process.processIdentifier, signal)
        let deadline = ContinuousClock.now + within
        while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
        let exited = !process.isRunning
        if !exited {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        let log = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        errText += String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (exited, log.split(separator: "\n").map(String.init), errText)
    }
}

struct SetupFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// SIGINT and SIGTERM stop `packetflow server` through its wake pipe (the handler only writes a byte): the
/// server closes the clients it still holds, logs each, reports how many it served, and exits 0.
@Suite struct ServerSignalTests {
    @Test(arguments: [SIGINT, SIGTERM])
    func aSignalStopsTheServerCleanlyAndItReportsItsClients(signal: Int32) throws {
        let server = try ServerProcess(["--timeout", "60"])
        let client = SeedClient(configuration: .init(server: server.address))
        for n in 1...3 {
            let reply = try client.send("message \(n)")
            #expect(reply.text == "Hello, client #\(n)! Received 9 bytes: \"message \(n)\"")
        }
        // A client the server is still waiting for when the signal comes: it must be closed and logged, not lost.
        let silent = try Socket(family: .ipv4, type: .stream)
        try silent.connect(to: server.address, timeout: .seconds(5))
        // Wait until the server has accepted it (its log line comes only when it is closed).
        #expect(waitUntil { (try? SeedClient(configuration: .init(server: server.address)).send("probe")) != nil })

        let (exited, log, messages) = server.stop(with: signal)
        #expect(exited, "packetflow server did not stop on signal \(signal)")
        #expect(
            server.process.terminationReason == .exit && server.process.terminationStatus == 0,
            "\(server.process.terminationReason) \(server.process.terminationStatus): \(messages)")
        #expect(messages.contains("stopped after 5 clients"), "\(messages)")
        #expect(log.count == 5, "\(log)")
        #expect(log.filter { $0.hasSuffix("; replied") }.count == 4)
        #expect(
            log.contains {
                $0.hasPrefix("#4 ") && $0.hasSuffix("still waiting when the server stopped; closed without a reply")
            })
        #expect(try silent.recv(max: 16) == [], "the waiting client is closed")
        let late = try Socket(family: .ipv4, type: .stream)
        #expect(throws: Errno.connectionRefused) { try late.connect(to: server.address, timeout: .seconds(2)) }
    }

    /// A signal while the server is busy with a burst of clients, and a second signal while it stops, still end it
    /// with one report and status 0.
    @Test func signalsDuringABurstEndItOnce() throws {
        let server = try ServerProcess(["--backlog", "64"])
        let address = server.address
        let done = DispatchGroup()
        let replies = Atomic<Int>(0)
        for n in 0..<40 {
            DispatchQueue.global().async(group: done) {
                if (try? SeedClient(configuration: .init(server: address)).send("burst \(n)")) != nil {
                    replies.add(1, ordering: .relaxed)
                }
            }
        }
        // Signalled once the burst is being served (a reply came), not after a guessed delay.
        #expect(waitUntil { replies.load(ordering: .relaxed) >= 1 }, "no client of the burst was served")
        kill(server.process.processIdentifier, SIGTERM)
        let (exited, log, messages) = server.stop(with: SIGINT)
        done.wait()
        #expect(exited && server.process.terminationStatus == 0, "\(messages)")
        let reports = messages.split(separator: "\n").filter { $0.contains("stopped after") }
        #expect(reports.count == 1, "\(messages)")
        // Every client the server accepted before it stopped has its log line.
        let served = stoppedAfter(messages)
        #expect(served == log.count, "\(messages) / \(log.count) log lines")
        #expect((served ?? 0) > 0, "the signals came during the burst: \(messages)")
    }
}

import Foundation
import SocketLab
import Sockets
import Synchronization
import SystemCalls
import TestSupport
import Testing

/// Collects the server's log records across threads.
final class AccessLog: Sendable {
    private let records = Mutex<[SeedServer.Access]>([])

    func append(_ access: SeedServer.Access) {
        records.withLock { $0.append(access) }
    }

    var all: [SeedServer.Access] { records.withLock { $0 } }

    /// Waits until at least `count` records arrived (the log line is written just after the client is closed).
    func wait(for count: Int, within: Duration = .seconds(5)) -> [SeedServer.Access] {
        let deadline = ContinuousClock.now + within
        while all.count < count && ContinuousClock.now < deadline { usleep(5_000) }
        return all
    }
}

/// Runs `server.run()` on its own thread for the duration of `body`, then stops it and waits for the thread.
func withRunningServer<Result>(
    _ configuration: SeedServer.Configuration,
    _ body: (SeedServer, AccessLog) throws -> Result
) throws -> Result {
    let log = AccessLog()
    let server = try SeedServer(configuration: configuration, log: { log.append($0) })
    let finished = DispatchSemaphore(value: 0)
    let outcome = Mutex<SeedServerError?>(nil)
    let thread = Thread {
        do throws(SeedServerError) { try server.run() } catch { outcome.withLock { $0 = error } }
        finished.signal()
    }
    thread.start()
    defer {
        server.stop()
        finished.wait()
        #expect(outcome.withLock { $0 } == nil)
    }
    return try body(server, log)
}

/// A test server on 127.0.0.1 with a kernel-chosen port.
func testConfiguration(clientTimeout: Duration = .seconds(5), maxMessageSize: Int = 256) -> SeedServer.Configuration {
    SeedServer.Configuration(
        address: SocketAddress(ip: .loopbackV4, port: 0),
        clientTimeout: clientTimeout,
        maxMessageSize: maxMessageSize
    )
}

@Suite struct SeedServerTests {
    @Test func clientsAreCountedAndAnswered() throws {
        try withRunningServer(testConfiguration()) { server, log in
            let client = SeedClient(configuration: .init(server: server.address))
            let first = try client.send("こんにちは")
            #expect(first.text == #"Hello, client #1! Received 15 bytes: "こんにちは""#)
            let second = try client.send("hello again")
            #expect(second.text.hasPrefix("Hello, client #2! Received 11 bytes"))
            #expect(server.accessCount == 2)

            let records = log.wait(for: 2)
            #expect(records.map(\.count) == [1, 2])
            #expect(records.first?.peer == first.localAddress)
            #expect(records.first?.outcome == .replied(first.text))
            #expect(records.first?.description == #"#1 \#(first.localAddress): received 15 bytes: "こんにちは"; replied"#)
        }
    }

    @Test func aSilentClientDoesNotStallTheNextOne() throws {
        try withRunningServer(testConfiguration(clientTimeout: .milliseconds(1500))) { server, log in
            let silent = try Socket(family: .ipv4, type: .stream)
            try silent.connect(to: server.address, timeout: .seconds(2))

            let reply = try SeedClient(configuration: .init(server: server.address)).send("me first")
            #expect(reply.text.hasPrefix("Hello, client #2!"))
            // Had the server waited on the silent client, its time-out would have been logged before this reply.
            #expect(!log.all.contains { $0.count == 1 }, "served while the silent client was still waiting")

            let records = log.wait(for: 2)
            #expect(records.count == 2)
            let timedOut = records.first { $0.count == 1 }
            #expect(timedOut?.outcome == .timedOut(.milliseconds(1500)))
            #expect(timedOut?.description.contains("sent nothing within") == true)
            #expect(try silent.recv(max: 10) == [], "the silent client is closed without a reply")
        }
    }

    @Test func aClientThatClosesWithoutSendingIsLogged() throws {
        try withRunningServer(testConfiguration()) { server, log in
            let quitter = try Socket(family: .ipv4, type: .stream)
            try quitter.connect(to: server.address, timeout: .seconds(2))
            try quitter.close()
            let record = log.wait(for: 1).first
            #expect(record?.outcome == .closedWithoutMessage)
            #expect(record?.message == [])
        }
    }

    @Test func anAbortingClientIsLoggedAsReset() throws {
        try withRunningServer(testConfiguration()) { server, log in
            let aborter = try Socket(family: .ipv4, type: .stream)
            try aborter.connect(to: server.address, timeout: .seconds(2))
            try aborter.setLinger(seconds: 0)
            try aborter.close()
            let record = log.wait(for: 1).first
            #expect(record?.outcome == .failed(.connectionReset))
            #expect(record?.description.contains("ECONNRESET") == true)
        }
    }

    @Test func nonUTF8AndControlBytesAreEscaped() throws {
        try withRunningServer(testConfiguration()) { server, log in
            let bytes: [UInt8] = Array("ok\u{0}".utf8) + [0xFF, 0xC3] + Array("é\n\t\"\\".utf8)
            let reply = try SeedClient(configuration: .init(server: server.address)).send(bytes: bytes)
            let shown = #""ok\x00\xff\xc3é\n\t\"\\""#
            #expect(reply.text == "Hello, client #1! Received \(bytes.count) bytes: \(shown)")
            let record = log.wait(for: 1).first
            #expect(record?.message == bytes)
            #expect(record?.shownMessage == shown)
            #expect(record?.description.contains("\n") == false, "one log line per client")
        }
    }

    @Test func oversizedMessagesAreBoundedInTheLogAndNoted() throws {
        try withRunningServer(testConfiguration(maxMessageSize: 16)) { server, log in
            let big = [UInt8](repeating: UInt8(ascii: "a"), count: 10_000)
            let client = SeedClient(configuration: .init(server: server.address))
            // The server closes with bytes still unread, which resets the connection: the reply may or may not
            // reach us first, so only the server's side is checked.
            _ = try? client.send(bytes: big)
            let record = log.wait(for: 1).first
            #expect(record?.message.count == 4096, "one recv(4096), as in the seed")
            #expect(record?.shownMessage == "\"\(String(repeating: "a", count: 16))\" … (4080 more bytes not shown)")
            #expect((record?.unreadBytes ?? 0) > 0)
            #expect(record?.description.contains("sends a RST") == true)
        }
    }

    @Test func displayTextKeepsUTF8AndCutsOnCharacterBoundaries() {
        #expect(SeedServer.displayText(Array("こんにちは".utf8), limit: 100) == #""こんにちは""#)
        // 7 bytes allow two 3-byte characters, not a half of the third.
        #expect(SeedServer.displayText(Array("こんにちは".utf8), limit: 7) == #""こん" … (9 more bytes not shown)"#)
        #expect(SeedServer.displayText([0x80, 0x41, 0x7F], limit: 100) == #""\x80A\x7f""#)
        #expect(SeedServer.displayText(Array("\u{85}".utf8), limit: 100) == #""\u{85}""#)
        #expect(SeedServer.displayText([], limit: 10) == #""""#)
    }

    @Test func stopEndsRunAndClosesTheListener() throws {
        let address = try withRunningServer(testConfiguration()) { server, _ in server.address }
        let late = try Socket(family: .ipv4, type: .stream)
        #expect(throws: Errno.connectionRefused) { try late.connect(to: address, timeout: .seconds(2)) }
    }

    @Test func stopBeforeRunAndRunTwice() throws {
        let server = try SeedServer(configuration: testConfiguration(), log: { _ in })
        server.stop()
        try server.run()  // returns at once: the stop is remembered
        #expect(throws: SeedServerError.alreadyRan) { try server.run() }
    }

    @Test func aSecondServerOnTheSameAddressSaysWhy() throws {
        let first = try SeedServer(configuration: testConfiguration(), log: { _ in })
        let error = #expect(throws: SeedServerError.self) {
            try SeedServer(configuration: .init(address: first.address), log: { _ in })
        }
        #expect(error == .cannotListen(first.address, .addressInUse))
        #expect(error?.description.contains("EADDRINUSE") == true)
    }
}

@Suite struct SeedClientTests {
    @Test func refusedConnectionIsOneClearLine() throws {
        let bound = try Socket(family: .ipv4, type: .stream)
        try bound.bind(to: SocketAddress(ip: .loopbackV4, port: 0))
        let address = try bound.localAddress
        let error = #expect(throws: SeedClientError.self) {
            try SeedClient(configuration: .init(server: address)).send("hi")
        }
        #expect(error == .connectionRefused(address))
        #expect(error?.errno == .connectionRefused)
        #expect(error?.description == "connection refused by \(address) — is `packetflow server` running?")
    }

    @Test func bindAddressChoosesTheClientsSource() throws {
        try withRunningServer(testConfiguration()) { server, log in
            let source = SocketAddress(ip: .v4(0x7F00_0003), port: 0)  // 127.0.0.3, like the seed's fixed source
            let reply = try SeedClient(configuration: .init(server: server.address, bindAddress: source)).send("x")
            #expect(reply.localAddress.ip == .v4(0x7F00_0003))
            #expect(log.wait(for: 1).first?.peer == reply.localAddress)
        }
    }

    @Test func noReplyWithinTheReceiveTimeout() throws {
        let (listener, address) = try makeListener()
        let client = SeedClient(configuration: .init(server: address, receiveTimeout: .milliseconds(100)))
        let error = #expect(throws: SeedClientError.self) { try client.send("anyone?") }
        #expect(error == .receiveTimedOut(address, .milliseconds(100)))
        withExtendedLifetime(listener) {}
    }
}

/// Tests on the seed's fixed address 127.0.0.2:49152 (the Python fixtures hard-code it), one at a time.
@Suite(.serialized) struct SeedFixtureTests {
    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/seed")

    static func python(_ script: String) -> (Process, stdin: Pipe, stdout: Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", fixtures.appendingPathComponent(script).path]
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.standardError
        return (process, stdin, stdout)
    }

    @Test func seedServerAnswersThePythonSeedClient() throws {
        try withSeedPort { try seedServerAnswersThePythonSeedClientOnSeedPort() }
    }

    /// Runs with the seed port's lock held (see `withSeedPort`).
    func seedServerAnswersThePythonSeedClientOnSeedPort() throws {
        try withRunningServer(SeedServer.Configuration()) { server, log in
            #expect(server.address.description == "127.0.0.2:49152")
            for expected in 1...2 {
                let (process, stdin, stdout) = Self.python("client.py")
                try process.run()
                stdin.fileHandleForWriting.write(Data("こんにちは、サーバ \(expected)\n".utf8))
                try stdin.fileHandleForWriting.close()
                let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                #expect(process.terminationStatus == 0)
                #expect(output.hasPrefix("Hello, client #\(expected)! Received"))
                #expect(output.contains("こんにちは、サーバ \(expected)"))
            }
            let records = log.wait(for: 2)
            #expect(records.map(\.count) == [1, 2])
            #expect(records.first.map { String(decoding: $0.message, as: UTF8.self) } == "こんにちは、サーバ 1")
            #expect(records.allSatisfy { $0.peer.ip == .loopbackV4 })
        }
    }

    @Test func seedClientTalksToThePythonSeedServer() throws {
        try withSeedPort { try seedClientTalksToThePythonSeedServerOnSeedPort() }
    }

    /// Runs with the seed port's lock held (see `withSeedPort`).
    func seedClientTalksToThePythonSeedServerOnSeedPort() throws {
        let (process, _, stdout) = Self.python("server.py")
        try process.run()
        defer {
            // SIGKILL, not terminate(): the child inherits the test runner thread's signal mask, which can block
            // SIGTERM, and then the server would live on holding the port.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        // The fixture prints one line once it listens; read until then (or until it dies).
        #expect(waitForLine(stdout).hasPrefix("listening on 127.0.0.2:49152"))

        let client = SeedClient()
        let first = try client.send("こんにちは")
        #expect(first.text == #"Hello, client #1! Received 15 bytes: "こんにちは""#)
        let second = try client.send("again")
        #expect(second.text == #"Hello, client #2! Received 5 bytes: "again""#)
    }
}

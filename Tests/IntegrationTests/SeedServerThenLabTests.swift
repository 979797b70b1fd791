import Foundation
import Glibc
import Synchronization
import TestSupport
import Testing

/// What a new user does first: run the seed's own Python server and client (the blog's server.py sets no
/// SO_REUSEADDR, so its side of each connection holds 127.0.0.2:49152 in TIME_WAIT for 60 s after it stops), then
/// `packetflow lab`. Real processes and sockets, in a network namespace the test makes so that nothing else on
/// the machine touches the seed's fixed port; `packetflow lab` inside it then makes a namespace of its own.
@Suite(.serialized) struct SeedServerThenLabTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/seed")

    /// A network namespace for one test, with `lo` up; deleted with the object (and its TIME_WAITs with it).
    final class TestNamespace {
        let name = "pf-seedlab-\(getpid())-\(namespaceCount.add(1, ordering: .relaxed).newValue)"
        let ip: URL

        init() throws {
            ip = try #require(installedTool("ip"), "iproute2 is needed (scripts/test.sh installs it)")
            let add = try runProcess(ip, ["netns", "add", name])
            try #require(add.status == 0, "ip netns add \(name): \(add.stderr)")
            let up = try runProcess(ip, ["-n", name, "link", "set", "lo", "up"])
            try #require(up.status == 0, "\(up.stderr)")
        }

        deinit { _ = try? runProcess(ip, ["netns", "del", name]) }

        func run(_ arguments: [String], input: String? = nil, timeout: TimeInterval = 60) throws -> ProcessResult {
            try runProcess(ip, ["netns", "exec", name] + arguments, input: input, timeout: timeout)
        }

        func start(_ arguments: [String]) throws -> (Process, Pipe) {
            let p = Process()
            p.executableURL = ip
            p.arguments = ["netns", "exec", name] + arguments
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            p.standardInput = FileHandle.nullDevice
            try p.run()
            return (p, out)
        }
    }

    /// The blog's server.py: the fixture without the two lines marked "[added]" that set SO_REUSEADDR.
    static func blogServer(in dir: String) throws -> String {
        let fixture = try String(contentsOf: fixtures.appendingPathComponent("server.py"), encoding: .utf8)
        var kept = fixture.split(separator: "\n", omittingEmptySubsequences: false)
        let option = try #require(kept.firstIndex { $0.contains("SO_REUSEADDR") }, "the fixture sets no SO_REUSEADDR")
        try #require(option > 0 && kept[option - 1].hasPrefix("# [added]"), "the fixture changed; update this test")
        kept.removeSubrange((option - 1)...option)
        try #require(!kept.contains { $0.contains("SO_REUSEADDR") || $0.contains("setsockopt") })
        let path = dir + "/blog-server.py"
        try kept.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A directory only this test uses, readable by every user (for the unprivileged run).
    static func scratch() throws -> String {
        let dir = try makeScratchDirectory("seedlab")
        chmod(dir, 0o755)
        return dir
    }

    /// The packetflow binary copied where the unprivileged user can run it (the build directory may not be).
    static func binaryForEveryone(in dir: String) throws -> String {
        let path = dir + "/packetflow"
        try FileManager.default.copyItem(atPath: try packetflowBinaryChecked().path, toPath: path)
        chmod(path, 0o755)
        return path
    }

    /// Runs `arguments` as user nobody when the test runs as root (setpriv), as is otherwise.
    static func unprivileged(_ arguments: [String]) -> [String] {
        geteuid() == 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + arguments : arguments
    }

    @Test func theLabWorksRightAfterTheSeedsOwnServer() throws {
        try #require(geteuid() == 0, "the namespaces and the capture need root: run the tests as root (CI does)")
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bin = try packetflowBinaryChecked().path
        let ns = try TestNamespace()

        // The seed's server, and its client until the server's side of a connection is in TIME_WAIT (almost always
        // the first: the server closes right after it replies).
        let (server, banner) = try ns.start(["python3", try Self.blogServer(in: dir)])
        defer {
            if server.isRunning {
                kill(server.processIdentifier, SIGKILL)
                server.waitUntilExit()
            }
        }
        #expect(waitForLine(banner, containing: "listening on").contains("listening on 127.0.0.2:49152"))
        var timeWaits: [Substring] = []
        for n in 1...10 where timeWaits.isEmpty {
            let client = try ns.run(
                ["python3", Self.fixtures.appendingPathComponent("client.py").path], input: "こんにちは \(n)\n")
            #expect(client.status == 0 && client.stdout.hasPrefix("Hello, client #\(n)!"), "\(client)")
            let ss = try ns.run(["ss", "-Htan", "state", "time-wait", "( sport = :49152 )"])
            timeWaits = ss.stdout.split(separator: "\n")
        }
        // SIGKILL: a child of the test runner inherits its blocked signals, SIGTERM among them.
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
        // "0  0  127.0.0.2:49152  127.0.0.1:47870"
        let peer = try #require(timeWaits.first?.split(separator: " ").last, "no TIME_WAIT on the server's side")

        // On the namespace's own lo (as before this change) the bind fails, and the line says why.
        let onHost = try ns.run([bin, "lab", "--hosts", "host", "--no-capture", "--no-color"])
        #expect(onHost.status != 0)
        let line = onHost.stderr.trimmingCharacters(in: .newlines)
        #expect(!line.contains("\n"), "\(line)")
        #expect(
            line.contains(
                "step 2 server bind(127.0.0.2:49152) failed: EADDRINUSE (Address already in use);"
                    + " 127.0.0.2:49152 is held by the TIME_WAIT of the connection 127.0.0.2:49152 ⇄ \(peer) for another "
            ),
            "\(line)")
        #expect(
            line.contains(
                "(the program that closed it first had not set SO_REUSEADDR, as the seed's server.py"
                    + " does not); wait "), "\(line)")
        #expect(
            line.contains(
                "drop --hosts host (the lab then runs in a network namespace of its own) or choose a"
                    + " free port: --server 127.0.0.2:"), "\(line)")

        // A user without root gets the same account, with the advice that applies to them.
        let everyone = try Self.binaryForEveryone(in: dir)
        let user = try ns.run(Self.unprivileged([everyone, "lab", "--no-capture", "--no-color"]))
        #expect(user.status != 0)
        #expect(
            user.stderr.contains("is held by the TIME_WAIT of the connection 127.0.0.2:49152 ⇄ \(peer)"), "\(user)")
        #expect(user.stderr.contains("run as root (the lab then runs in a network namespace of its own)"), "\(user)")

        // The README's first command, as root: the lab runs in a namespace of its own and captures the seed.
        let lab = try ns.run([bin, "lab", "--no-color"])
        #expect(lab.status == 0, "\(lab.stderr)")
        #expect(lab.stdout.contains("[Server] 127.0.0.2:49152  ⇄  [Client] 127.0.0.1:"))
        // Step lines: "5   client connect(127.0.0.2:49152) = 0  +482.858ms".
        let steps = lab.stdout.split(separator: "\n").compactMap { line in
            line.wholeMatch(of: /[0-9]+ +([a-z]+) ([a-z]+)\(.*/).map { "\($0.1) \($0.2)" }
        }
        #expect(
            steps == [
                "server socket", "server bind", "server listen", "client socket", "client connect", "server accept",
                "client sendall", "server recv", "server send", "client recv", "server close", "client close",
            ])
        #expect(
            lab.stdout.hasSuffix("\n11 packets (5 sent by a kernel on its own), 0 dropped by the kernel\n"),
            "\(lab.stdout)")
        // The TIME_WAIT it got past is still there: the lab went around it, not through it.
        let after = try ns.run(["ss", "-Htan", "state", "time-wait", "( sport = :49152 )"])
        #expect(after.stdout.contains(String(peer)))
    }

    /// Each output format is the same, numbers aside (times, ports, sequence numbers), whether the lab runs in its
    /// own namespace or on the lo it was started on.
    @Test(arguments: ["text", "jsonl", "mermaid", "html"])
    func theOutputIsTheSameInTheLabsOwnNamespace(format: String) throws {
        try #require(geteuid() == 0, "the lab's namespace and its capture need root: run the tests as root (CI does)")
        let bin = try packetflowBinaryChecked().path
        let ns = try TestNamespace()
        let own = try ns.run([bin, "lab", "--no-color", "--format", format])
        let host = try ns.run([bin, "lab", "--no-color", "--format", format, "--hosts", "host"])
        #expect(own.status == 0 && host.status == 0, "\(own.stderr) \(host.stderr)")
        func shape(_ text: String) -> String { text.replacing(/[0-9]+/, with: "N") }
        #expect(!own.stdout.isEmpty && shape(own.stdout) == shape(host.stdout))
    }

    /// Without root there is no namespace to make: `--no-capture` still runs on this host's lo.
    @Test func withoutRootNoCaptureRunsOnTheHost() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let everyone = try Self.binaryForEveryone(in: dir)
        let r = try runProcess(
            URL(fileURLWithPath: "/usr/bin/env"),
            Self.unprivileged([everyone, "lab", "--no-capture", "--no-color", "--server", "127.0.0.79:49173"]))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("[Server] 127.0.0.79:49173"))
        #expect(r.stdout.hasSuffix("no capture (--no-capture): calls and TCP states only\n"))
    }
}

/// Numbers the tests' namespaces within this process (the process id in the name tells runs apart).
private let namespaceCount = Atomic<Int>(0)

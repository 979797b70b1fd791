import Foundation
import TestSupport
import Testing

/// The binary, checked to exist.
func packetflowBinaryChecked() throws -> URL {
    let candidate = packetflowBinary()
    try #require(FileManager.default.isExecutableFile(atPath: candidate.path), "build packetflow first: swift build")
    return candidate
}

@Suite(.serialized) struct CLITests {
    @Test func serverAndClientTalkAndCtrlCStopsTheServer() throws {
        let bin = try packetflowBinaryChecked()
        let server = Process()
        server.executableURL = bin
        server.arguments = ["server", "--port", "49311"]
        let log = Pipe()
        let err = Pipe()
        server.standardOutput = log
        server.standardError = err
        try server.run()
        defer { if server.isRunning { kill(server.processIdentifier, SIGKILL) } }
        var stderr = waitForLine(err, containing: "listening on")
        try #require(stderr.contains("listening on 127.0.0.2:49311"))

        let first = try runProcess(bin, ["client", "--server", "127.0.0.2:49311", "こんにちは"])
        #expect(first.status == 0)
        #expect(first.stdout.contains("#1") && first.stdout.contains("こんにちは"))
        // Without an argument the message comes from standard input, like the seed's input().
        let second = try runProcess(bin, ["client", "--server", "127.0.0.2:49311"], input: "second\n")
        #expect(second.status == 0 && second.stdout.contains("#2") && second.stdout.contains("second"))

        kill(server.processIdentifier, SIGINT)
        server.waitUntilExit()
        #expect(server.terminationStatus == 0)
        let lines = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first?.contains("こんにちは") == true)
        stderr += String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(stderr.contains("stopped after 2 clients"))
    }

    @Test func refusedConnectionIsOneLineAndNonZero() throws {
        let r = try runProcess(try packetflowBinaryChecked(), ["client", "--server", "127.0.0.2:49312", "hi"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("connection refused by 127.0.0.2:49312"))
        #expect(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1)
    }

    @Test func badArgumentsAreClearErrors() throws {
        let bin = try packetflowBinaryChecked()
        let unknown = try runProcess(bin, ["lab", "no-such-scenario"])
        #expect(unknown.status != 0 && unknown.stderr.contains("unknown scenario 'no-such-scenario'"))
        let badServer = try runProcess(bin, ["lab", "--no-capture", "--server", "999.1.1.1:80"])
        #expect(badServer.status != 0 && badServer.stderr.contains("--server"))
        let mixed = try runProcess(bin, ["lab", "--no-capture", "--server", "[::1]:49313"])
        #expect(mixed.status != 0 && mixed.stderr.contains("both be IPv4 or both IPv6"))
        // An empty message: sendall sends nothing and the server's recv would wait for ever.
        let empty = try runProcess(bin, ["lab", "--no-capture", "--message", ""], timeout: 20)
        #expect(empty.status == 64 && empty.stderr.contains("--message needs at least one character"))
    }

    /// Output that cannot be written is an error, not a quiet success; an output that is an input is refused
    /// before it is erased; a filter compiles for every link type a file holds (raw IP is 101 in files, 12 in
    /// libpcap).
    @Test func readReportsLostOutputAndProtectsItsInput() throws {
        let bin = try packetflowBinaryChecked()
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures")
        let file = fixtures.appendingPathComponent("mix.pcap").path
        // Every command, whether it streams (read) or writes its output whole (a picture, the lab's list).
        for arguments in ["read '\(file)'", "read --format html '\(file)'", "lab --list"] {
            let full = try runProcess(
                URL(fileURLWithPath: "/bin/sh"), ["-c", "'\(bin.path)' \(arguments) > /dev/full"])
            #expect(full.status == 1, "\(arguments)")
            #expect(full.stderr == "packetflow: cannot write the output: No space left on device\n", "\(arguments)")
        }

        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("read-o-\(getpid()).pcap").path
        try FileManager.default.copyItem(atPath: file, toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let same = try runProcess(bin, ["read", "-o", copy, copy])
        #expect(same.status != 0 && same.stderr.contains("-o \(copy) is also an input file"))
        #expect((try? FileManager.default.attributesOfItem(atPath: copy)[.size] as? Int) == 449_128)

        let raw = try runProcess(bin, ["read", "-f", "ip", fixtures.appendingPathComponent("synthetic.pcapng").path])
        #expect(raw.status == 0, "\(raw.stderr)")
        #expect(!raw.stderr.contains("unknown data link type"))
    }

    /// A filter libpcap cannot compile is one line and exit status 1 for every command that takes one (capture
    /// used to free its pcap handle twice and abort).
    @Test func aBadFilterIsOneLineForEveryCommand() throws {
        let bin = try packetflowBinaryChecked()
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/lo-usec.pcap").path
        var runs = [["read", "-f", "bad ((", file]]
        if geteuid() == 0 {
            runs += [
                ["capture", "-f", "bad (("], ["capture", "tcp", "port"], ["trace", "-f", "bad ((", "--", "true"],
            ]
        }
        for arguments in runs {
            let r = try runProcess(bin, arguments)
            #expect(r.status == 1, "\(arguments)")
            #expect(r.stderr.contains("bad filter '"), "\(arguments)")
            #expect(
                r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1,
                "\(arguments): \(r.stderr)")
        }
    }

    /// A command that cannot run is one line, with a shell's exit status, and no empty timeline on stdout.
    @Test func traceOfACommandThatCannotRunIsOneLine() throws {
        let bin = try packetflowBinaryChecked()
        let plain = FileManager.default.temporaryDirectory.appendingPathComponent("not-executable-\(getpid())").path
        try #require(
            FileManager.default.createFile(
                atPath: plain, contents: Data("echo\n".utf8), attributes: [.posixPermissions: 0o644]))
        defer { try? FileManager.default.removeItem(atPath: plain) }
        for (command, status, why) in [
            ("no-such-command-here", 127, "command not found"), ("/no/such/file", 127, "No such file or directory"),
            (plain, 126, "Permission denied"),
        ] {
            let r = try runProcess(bin, ["trace", "--", command])
            #expect(r.status == Int32(status), "\(command)")
            #expect(r.stdout.isEmpty, "\(command)")
            #expect(r.stderr == "packetflow: cannot run \(command): \(why)\n")
        }
    }

    /// An option of ours misspelled before `--` is refused as every command refuses one, and never executed; after
    /// `--` the same word is the command.
    @Test func traceNeverRunsAMisspelledOption() throws {
        let bin = try packetflowBinaryChecked()
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("bogus-ran-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let r = try runProcess(bin, ["trace", "--bogus", "--", "touch", marker])
        #expect(r.status == 64)
        #expect(r.stderr.hasPrefix("Error: Unknown option '--bogus'\n"))
        #expect(!FileManager.default.fileExists(atPath: marker))
        let after = try runProcess(bin, ["trace", "--no-capture", "--", "--bogus"])
        #expect(after.status == 127)
        #expect(after.stderr == "packetflow: cannot run --bogus: command not found\n")
    }

    /// --open writes its page to a fresh, unpredictable file (the tool runs as root: a predictable name in /tmp is a
    /// symlink attack), never to the old /tmp/packetflow-NAME-PID.html, and says where it is without a desktop.
    @Test func openWritesItsPageToAFreshFile() throws {
        let bin = try packetflowBinaryChecked()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("open-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/lo-usec.pcap").path
        // A file the old predictable name would have truncated through a symlink planted at it: the shell plants the
        // link at its own pid's name, then execs packetflow, which keeps that pid.
        let victim = dir + "/victim"
        try "untouched".write(toFile: victim, atomically: true, encoding: .utf8)
        let plant = "ln -s \"$0\" \"$TMPDIR/packetflow-read-$$.html\" && exec \"$@\""
        var pages: [String] = []
        for _ in 0..<2 {
            let r = try runProcess(
                URL(fileURLWithPath: "/usr/bin/env"),
                [
                    "-u", "DISPLAY", "-u", "WAYLAND_DISPLAY", "TMPDIR=\(dir)", "sh", "-c", plant, victim, bin.path,
                    "read", "--open", input,
                ])
            #expect(r.status == 0)
            let prefix = "packetflow: no browser to open it with; the page is "
            try #require(r.stderr.hasPrefix(prefix) && r.stderr.hasSuffix("\n"), "\(r.stderr)")
            let page = String(r.stderr.dropFirst(prefix.count).dropLast())
            #expect(page.hasPrefix(dir + "/packetflow-read-") && page.hasSuffix(".html"))
            let attributes = try FileManager.default.attributesOfItem(atPath: page)
            #expect(attributes[.type] as? FileAttributeType == .typeRegular)
            #expect(try String(contentsOfFile: page, encoding: .utf8).contains("<svg"))
            pages.append(page)
        }
        #expect(pages[0] != pages[1])
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "untouched")
        // mkstemps' six characters, not a pid.
        let names = pages.map { String($0.dropFirst(dir.count + "/packetflow-read-".count).dropLast(".html".count)) }
        #expect(names.allSatisfy { $0.count == 6 && $0.allSatisfy { $0.isLetter || $0.isNumber } }, "\(names)")
    }

    /// Every view whose reader has gone (`| head`) stops and ends as a closed pipe ends a program: by SIGPIPE, with
    /// nothing on stderr. The pipe's read end is closed before the command starts, so its first write finds no
    /// reader, whatever the timing.
    @Test func everyViewEndsAsAClosedPipeDoes() throws {
        let bin = try packetflowBinaryChecked()
        let input = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/mix.pcap").path
        var views: [[String]] = [
            ["read", input], ["read", "--format", "jsonl", input], ["read", "--conversations", input],
            ["read", "--flow", input], ["read", "--format", "mermaid", input], ["read", "--format", "html", input],
            ["lab", "--no-capture", "--settle", "5", "--server", "127.0.0.2:49314"], ["lab", "--list"],
        ]
        if geteuid() == 0 { views.append(["trace", "--no-capture", "--", "true"]) }
        for arguments in views {
            let p = Process()
            p.executableURL = bin
            p.arguments = arguments
            let out = Pipe()
            let err = Pipe()
            try out.fileHandleForReading.close()
            p.standardOutput = out
            p.standardError = err
            try p.run()
            try out.fileHandleForWriting.close()
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGPIPE, "\(arguments)")
            #expect(stderr == "", "\(arguments)")
        }
    }

    /// trace -w to a path that cannot be written fails before the program runs, not after a long trace.
    @Test func traceWithAnUnwritablePcapngFailsBeforeRunning() throws {
        try #require(geteuid() == 0, "trace needs ptrace and capture: run the tests as root (CI does)")
        let r = try runProcess(
            try packetflowBinaryChecked(), ["trace", "-w", "/nonexistent-dir/x.pcapng", "--", "sh", "-c", "echo ran"])
        #expect(r.status == 1)
        #expect(!r.stdout.contains("ran"))
        #expect(r.stderr.contains("/nonexistent-dir/x.pcapng: byte 0: cannot create: No such file or directory"))
        #expect(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1)
    }

    /// What tcpdump's users type by habit: `read -nn -r FILE`, and `capture` with the filter after the options.
    @Test func tcpdumpHabitsWork() throws {
        let bin = try packetflowBinaryChecked()
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/lo-usec.pcap").path
        let plain = try runProcess(bin, ["read", file])
        let habit = try runProcess(bin, ["read", "-nn", "-r", file])
        #expect(plain.status == 0 && habit.status == 0)
        #expect(!plain.stdout.isEmpty && habit.stdout == plain.stdout)
        let twice = try runProcess(bin, ["read", "-r", file, file])
        #expect(twice.stdout == plain.stdout + plain.stdout)
        let both = try runProcess(bin, ["capture", "-f", "tcp", "udp", "port", "9"])
        #expect(both.status != 0 && both.stderr.contains("give the filter once"))
        // A ring too small for one packet captured nothing and counted every packet as dropped.
        let tiny = try runProcess(bin, ["capture", "-B", "64"])
        #expect(tiny.status == 64 && tiny.stderr.contains("-B takes 128 to 2097152 KiB"))

        try #require(geteuid() == 0, "capture needs CAP_NET_RAW: run the tests as root (CI does)")
        let port = 49_320
        let capture = Process()
        capture.executableURL = bin
        capture.arguments = [
            "capture", "-c", "2", "-i", "lo", "--format", "jsonl", "udp", "and", "dst", "port", "\(port)",
        ]
        let out = Pipe()
        capture.standardOutput = out
        capture.standardError = Pipe()
        try capture.run()
        defer { if capture.isRunning { kill(capture.processIdentifier, SIGKILL) } }
        // Datagrams to the filtered port and to another one, until two matching ones were captured.
        let sender = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(sender) }
        func send(to p: Int) {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = in_port_t(UInt16(p).bigEndian)
            a.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
            _ = withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(sender, "x", 1, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        let deadline = Date().addingTimeInterval(20)
        while capture.isRunning && Date() < deadline {
            send(to: port + 1)
            send(to: port)
            usleep(50_000)
        }
        capture.waitUntilExit()
        #expect(capture.terminationStatus == 0)
        let lines = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.allSatisfy { $0.contains("\"dport\":\(port),") })
    }

    @Test func labJSONLinesIsOneObjectPerLine() throws {
        let r = try runProcess(
            try packetflowBinaryChecked(),
            ["lab", "--server", "127.0.0.2:49314", "--format", "jsonl", "--settle", "60"])
        #expect(r.status == 0, "\(r.stderr)")
        let objects = try r.stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        let calls = objects.filter { $0["type"] as? String == "call" }
        let packets = objects.filter { $0["type"] as? String == "packet" }
        #expect(calls.count == 12)
        #expect(packets.count >= 10)
        let connect = try #require(calls.first { $0["name"] as? String == "connect" })
        #expect(connect["remote"] as? String == "127.0.0.2:49314")
        #expect((connect["tcp_state"] as? [String: String])?["client"] == "ESTABLISHED")
        let syn = try #require(packets.first)
        #expect(syn["flags"] as? [String] == ["SYN"] && syn["frame"] as? Int == 1 && syn["call"] as? Int == 5)
        #expect(syn["sender"] as? String == "client" && syn["by_kernel"] as? Bool == false)
    }

    @Test func withoutCapturePrivilegeTheLabSaysWhatToRun() throws {
        try #require(geteuid() == 0, "dropping privileges needs root (CI runs as root)")
        // A copy any user can execute, run as nobody with no capabilities.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pf-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        chmod(dir.path, 0o755)
        let copy = dir.appendingPathComponent("packetflow")
        try FileManager.default.copyItem(at: try packetflowBinaryChecked(), to: copy)
        chmod(copy.path, 0o755)
        let drop = ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", copy.path]
        let setpriv = URL(fileURLWithPath: "/usr/bin/setpriv")
        let r = try runProcess(setpriv, drop + ["lab", "--server", "127.0.0.2:49315"])
        #expect(r.status != 0)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(r.stderr.contains("needs CAP_NET_RAW") && r.stderr.contains("--no-capture"))
        let calmer = try runProcess(
            setpriv, drop + ["lab", "--server", "127.0.0.2:49315", "--no-capture", "--no-color"])
        #expect(calmer.status == 0 && calmer.stdout.contains("client close() = 0"))
    }
}

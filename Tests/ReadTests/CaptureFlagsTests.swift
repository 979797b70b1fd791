import Foundation
import Glibc
import PacketFiles
import TestSupport
import Testing

/// capture's tcpdump flags, run as a user runs them: -D against tcpdump -D, -Q on a veth pair in a network namespace
/// the test makes, -s and --count on loopback (to a port a UDPSink holds), and the refusals. Traffic is a bounded UDP
/// sender (one datagram per 20 ms, 10 s at most) that stops when the capture has its packets.
@Suite(.serialized) struct CaptureFlagsTests {
    @Test func listsInterfacesAsTcpdumpDoes() throws {
        guard let expected = try run("tcpdump", ["-D"]) else {
            Issue.record("tcpdump is not installed: apt-get install tcpdump (CI installs it)")
            return
        }
        let r = try runProcess(packetflowBinary(), ["capture", "-D"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == expected)
        #expect(r.stdout.contains(".lo [Up, Running, Loopback]\n"))
    }

    /// Starts `packetflow capture ARGS` and sends UDP datagrams to `port` with `send` until it exits (it stops
    /// after -c packets) or 10 s have passed (then it is stopped as Ctrl-C stops it).
    func capture(_ arguments: [String], send: () -> Void) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = packetflowBinary()
        p.arguments = ["capture"] + arguments
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let deadline = Date().addingTimeInterval(10)
        while p.isRunning && Date() < deadline {
            send()
            usleep(20_000)
        }
        if p.isRunning { kill(p.processIdentifier, SIGINT) }
        p.waitUntilExit()
        return (
            status: p.terminationStatus,
            stdout: String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
            stderr: String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        )
    }

    /// A UDP sender across the veth pair (or, with `namespace`, from inside it).
    static func sendUDP(to address: String, port: Int, size: Int = 500, namespace: String? = nil) {
        let script =
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
            + ".sendto(b'x' * \(size), ('\(address)', \(port)))"
        let command = (namespace.map { ["ip", "netns", "exec", $0] } ?? []) + ["python3", "-c", script]
        _ = try? runProcess(URL(fileURLWithPath: "/usr/bin/env"), command)
    }

    @Test func countPrintsOnlyTheNumber() throws {
        guard getuid() == 0 else {
            Issue.record("capturing needs root or CAP_NET_RAW: run the tests as root")
            return
        }
        // A port the kernel chose and the sink holds: no other flow of the machine can use it meanwhile.
        let sink = try UDPSink()
        let r = try capture(["-i", "lo", "-c", "5", "--count", "udp", "port", "\(sink.port)"]) {
            _ = sink.flood(1, size: 500)
        }
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "5 packets\n")
        #expect(r.stderr.contains("5 packets captured"))
    }

    /// -s 96 keeps 96 bytes of each 542-byte frame, in the file and on the line (with -# and -x, tcpdump's way).
    @Test func snapshotLengthCutsEachPacket() throws {
        guard getuid() == 0 else {
            Issue.record("capturing needs root or CAP_NET_RAW: run the tests as root")
            return
        }
        let sink = try UDPSink()
        let port = sink.port
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("snaplen-\(port).pcapng").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let written = try capture(["-i", "lo", "-s", "96", "-c", "3", "-w", path, "udp", "port", "\(port)"]) {
            _ = sink.flood(1, size: 500)
        }
        #expect(written.status == 0, "\(written.stderr)")
        let reader = try CaptureFileReader(path: path)
        var records = 0
        while let r = try reader.next() {
            #expect(r.info.capturedLength == 96 && r.info.originalLength == 542)
            records += 1
        }
        #expect(records == 3)
        let text = try capture(["-i", "lo", "-s", "96", "-c", "2", "-#", "-x", "udp", "port", "\(port)"]) {
            _ = sink.flood(1, size: 500)
        }
        let lines = text.stdout.split(separator: "\n")
        #expect(lines.count == 2 * (1 + 6), "\(text.stdout)")
        #expect(lines.first?.hasPrefix("    1  ") == true)
        #expect(lines.first?.hasSuffix("UDP, length 500 [truncated]") == true)
        // 96 - 14 bytes of Ethernet header: five lines of 16 and one of 2.
        #expect(lines[6] == "\t0x0050:  7878")
    }

    /// -Q in and -Q out on the host's end of a veth pair: what the namespace sends, and what the host sends to it.
    @Test func directionKeepsOneSide() throws {
        guard getuid() == 0 else {
            Issue.record("network namespaces and capture need root: run the tests as root")
            return
        }
        let tag = "pfq\(getpid() % 100_000)"
        let namespace = tag + "ns"
        let host = tag + "a"
        let peer = tag + "b"
        let ip = URL(fileURLWithPath: "/usr/bin/env")
        defer {
            _ = try? runProcess(ip, ["ip", "link", "del", host])
            _ = try? runProcess(ip, ["ip", "netns", "del", namespace])
        }
        for command in [
            ["ip", "netns", "add", namespace], ["ip", "link", "add", host, "type", "veth", "peer", "name", peer],
            ["ip", "link", "set", peer, "netns", namespace], ["ip", "addr", "add", "10.199.7.1/24", "dev", host],
            ["ip", "link", "set", host, "up"], ["ip", "-n", namespace, "addr", "add", "10.199.7.2/24", "dev", peer],
            ["ip", "-n", namespace, "link", "set", peer, "up"],
        ] {
            let r = try runProcess(ip, command)
            try #require(r.status == 0, "\(command.joined(separator: " ")): \(r.stderr)")
        }
        let port = 47_900 + Int(getpid() % 90)
        func both() {
            Self.sendUDP(to: "10.199.7.2", port: port, size: 11)
            Self.sendUDP(to: "10.199.7.1", port: port, size: 22, namespace: namespace)
        }
        let received = try capture(["-i", host, "-Q", "in", "-c", "3", "udp", "port", "\(port)"], send: both)
        let sent = try capture(["-i", host, "-Q", "out", "-c", "3", "udp", "port", "\(port)"], send: both)
        let all = try capture(["-i", host, "-Q", "inout", "-c", "6", "udp", "port", "\(port)"], send: both)
        for r in [received, sent, all] { #expect(r.status == 0, "\(r.stderr)") }
        let inLines = received.stdout.split(separator: "\n")
        let outLines = sent.stdout.split(separator: "\n")
        #expect(
            inLines.count == 3 && inLines.allSatisfy { $0.contains("10.199.7.2.") && $0.hasSuffix("length 22") },
            "\(received.stdout)")
        #expect(
            outLines.count == 3 && outLines.allSatisfy { $0.contains("10.199.7.1.") && $0.hasSuffix("length 11") },
            "\(sent.stdout)")
        let allLines = all.stdout.split(separator: "\n")
        #expect(allLines.contains { $0.hasSuffix("length 22") } && allLines.contains { $0.hasSuffix("length 11") })
    }

    @Test(arguments: [
        (["-e", "--format", "jsonl"], "-e changes packet lines; --format jsonl writes JSON objects"),
        (["-s", "300000"], "-s takes 0 to 262144 bytes"),
        (["--count", "-v"], "--count prints only the number of packets"),
        (["-X", "-w", "/tmp/packetflow-never-written.pcapng"], "-w writes the packets to a file"),
        (["-Q", "sideways"], "The value 'sideways' is invalid for '-Q <direction>'"),
    ])
    func refusedWithOneLine(_ arguments: [String], _ message: String) throws {
        let r = try runProcess(packetflowBinary(), ["capture"] + arguments)
        #expect(r.status == 64, "\(arguments): \(r.stderr)")
        #expect(r.stderr.hasPrefix("Error: " + message), "\(arguments): \(r.stderr)")
    }
}

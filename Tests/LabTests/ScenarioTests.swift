import Foundation
import Glibc
import PacketWire
import Render
import SocketLab
import Sockets
import TestSupport
import Testing
import Timeline

/// Runs every lab scenario for real on loopback, each in a network namespace of its own, on the lab tests' own
/// address (127.0.0.77). Serialized: concurrent runs would load the machine and blur each other's quiet-wire waits.
@Suite(.serialized)
struct ScenarioTests {
    static let server = SocketAddress(ip: .v4(0x7f00_004d), port: 49_160)

    func run(_ name: String) throws -> LabResult {
        // Capture needs root (CI runs as root); fail loudly instead of passing without packets.
        try #require(geteuid() == 0, "lab tests capture packets and must run as root (CAP_NET_RAW)")
        var config = LabConfiguration()
        config.server = Self.server
        config.settle = .milliseconds(80)
        let scenario = try #require(LabScenario.named(name))
        do {
            let r = try scenario.run(config)
            // As root, every scenario runs (and captures) in a namespace of its own.
            #expect(r.placement == .privateLoopback, "\(name)")
            return r
        } catch {
            Issue.record("scenario \(name) failed: \(error)")
            throw error
        }
    }

    func call(_ r: LabResult, _ actor: String, _ name: String, nth: Int = 0) throws -> CallEvent {
        let matching = r.calls.filter { $0.actor == actor && $0.name == name }
        return try #require(matching.count > nth ? matching[nth] : nil, "no \(actor) \(name) #\(nth)")
    }

    func packets(_ r: LabResult, of c: CallEvent) -> [PacketEvent] { r.packets.filter { $0.call == c.id } }

    func flags(_ p: PacketEvent) -> TCPFlags { p.flags ?? [] }

    @Test func basic() throws {
        let r = try run("basic")
        let connect = packets(r, of: try call(r, "client", "connect"))
        try #require(connect.count == 3)
        #expect(flags(connect[0]) == [.syn] && connect[0].sender == "client" && !connect[0].byKernel)
        #expect(flags(connect[1]) == [.syn, .ack] && connect[1].sender == "server" && connect[1].byKernel)
        #expect(flags(connect[2]) == [.ack] && connect[2].sender == "client")
        #expect(packets(r, of: try call(r, "server", "accept")).isEmpty)
        let message = LabConfiguration().message.utf8.count
        let send = packets(r, of: try call(r, "client", "sendall"))
        #expect(send.first.map { flags($0) == [.psh, .ack] && $0.length == message } == true)
        let reply = packets(r, of: try call(r, "server", "send"))
        #expect(reply.first.map { flags($0) == [.psh, .ack] && $0.sender == "server" } == true)
        let serverClose = packets(r, of: try call(r, "server", "close"))
        #expect(serverClose.first.map { flags($0) == [.fin, .ack] && $0.sender == "server" } == true)
        let clientClose = packets(r, of: try call(r, "client", "close"))
        #expect(clientClose.count == 2)
        #expect(clientClose.first.map { flags($0) == [.fin, .ack] && $0.sender == "client" } == true)
        #expect(clientClose.last.map { flags($0) == [.ack] && $0.sender == "server" } == true)
    }

    @Test func halfClose() throws {
        let r = try run("half-close")
        let shutdown = packets(r, of: try call(r, "client", "shutdown"))
        #expect(shutdown.first.map { $0.flags?.contains(.fin) == true && $0.sender == "client" } == true)
        #expect(try call(r, "server", "recv", nth: 1).result == 0)
        // The server still sends after the client's FIN.
        #expect(packets(r, of: try call(r, "server", "send")).contains { $0.length > 0 && $0.sender == "server" })
    }

    @Test func abort() throws {
        let r = try run("abort")
        let close = packets(r, of: try call(r, "client", "close"))
        #expect(close.contains { flags($0).contains(.rst) && $0.sender == "client" && !$0.byKernel })
        #expect(!r.packets.contains { flags($0).contains(.fin) })
        #expect(try call(r, "server", "recv", nth: 1).errno == "ECONNRESET")
    }

    @Test func refused() throws {
        let r = try run("refused")
        let connect = try call(r, "client", "connect")
        #expect(connect.errno == "ECONNREFUSED")
        #expect(packets(r, of: connect).contains { flags($0) == [.rst, .ack] && $0.sender == "server" })
    }

    @Test func unreadClose() throws {
        let r = try run("unread-close")
        let close = packets(r, of: try call(r, "server", "close"))
        #expect(close.contains { flags($0).contains(.rst) && $0.sender == "server" && !$0.byKernel })
        #expect(!close.contains { flags($0).contains(.fin) })
        #expect(try call(r, "client", "recv").errno == "ECONNRESET")
    }

    @Test func bulk() throws {
        let r = try run("bulk")
        let send = try call(r, "client", "sendall")
        #expect(send.result == 196_608)
        let data = packets(r, of: send).filter { $0.length > 0 }
        #expect(data.count >= 2)
        // sendall returns once its bytes are in the socket buffer; on a loaded machine the kernel sends the last
        // segments only when the receiver's window opens, during the server's recv. They are the client kernel's
        // then (the lab's `call` is the step during which a packet went out), and every byte still crosses once.
        let clientData = r.packets.filter {
            $0.sender == "client" && $0.length > 0 && $0.stream == data.first?.stream && $0.reason != "retransmission"
        }
        #expect(clientData.reduce(0) { $0 + $1.length } == 196_608)
        #expect(clientData.allSatisfy { $0.call == send.id || $0.byKernel })
        #expect(r.packets.contains { $0.sender == "server" && $0.length == 0 && $0.byKernel })
    }

    @Test func backlog() throws {
        let r = try run("backlog")
        #expect(r.packets.contains { $0.sender == "client 3" && $0.reason?.hasPrefix("SYN retransmitted") == true })
        #expect(try call(r, "server", "accept", nth: 0).errno == nil)
        #expect(try call(r, "server", "accept", nth: 1).errno == nil)
        #expect(try call(r, "server", "accept", nth: 2).errno == "EAGAIN")
    }

    @Test func nagle() throws {
        let r = try run("nagle")
        let delayed = packets(r, of: try call(r, "client", "send ×6", nth: 0)).filter { $0.length > 0 }
        let immediate = packets(r, of: try call(r, "client", "send ×6", nth: 1)).filter {
            $0.length > 0 && $0.reason != "retransmission"
        }
        #expect(delayed.count < 6, "Nagle should coalesce the small writes")
        #expect(immediate.count == 6, "TCP_NODELAY sends each write at once")
    }

    @Test func keepalive() throws {
        let r = try run("keepalive")
        let poll = packets(r, of: try call(r, "client", "poll"))
        #expect(poll.contains { $0.reason == "keep-alive probe" && $0.sender == "client" })
        #expect(poll.contains { $0.reason == "ACK of keep-alive probe" && $0.sender == "server" })
    }

    @Test func timeWait() throws {
        let r = try run("time-wait")
        #expect(try call(r, "client", "close").tcpStates.contains { $0 == ("server", .timeWait) })
        #expect(try call(r, "server", "bind", nth: 1).errno == "EADDRINUSE")
        #expect(try call(r, "server", "bind", nth: 2).errno == nil)
    }

    @Test func simultaneousClose() throws {
        let r = try run("simultaneous-close")
        for actor in ["server", "client"] {
            let close = try call(r, actor, "close")
            #expect(packets(r, of: close).contains { flags($0).contains(.fin) && $0.sender == actor })
        }
    }

    @Test func udp() throws {
        let r = try run("udp")
        #expect(!r.packets.contains { $0.proto == .tcp })
        #expect(!r.packets.contains { flags($0).contains(.syn) || flags($0).contains(.fin) })
        #expect(r.packets.contains { $0.proto == .icmp && $0.summary == "port unreachable" && $0.sender == "server" })
        #expect(try call(r, "client", "recv").errno == "ECONNREFUSED")
    }

    @Test func ipv6() throws {
        let r = try run("ipv6")
        #expect(r.serverAddress.hasPrefix("[::1]"))
        let connect = packets(r, of: try call(r, "client", "connect"))
        #expect(connect.map { flags($0) } == [[.syn], [.syn, .ack], [.ack]])
    }

    /// `--explain` puts each note right under what it explains, in the run's language: the RST's meaning under the
    /// RST in the client's close, the CLOSED states under that step's state line, and nothing under the next step,
    /// where no state changed.
    @Test func explanationsInBothLanguages() throws {
        let r = try run("abort")
        let close = try call(r, "client", "close")
        let resetRecv = try call(r, "server", "recv", nth: 1)
        try #require(packets(r, of: close).contains { flags($0).contains(.rst) }, "no RST in the client's close")
        let expected: [(Language, packet: String, states: [String])] = [
            (
                .en, "this call aborted the connection: SO_LINGER 0 or unread data, so RST instead of FIN",
                ["server CLOSED: no connection", "client CLOSED: no connection"]
            ),
            (
                .ja, "この呼び出しが接続を中断した (SO_LINGER 0 か未読データ): FIN ではなく RST",
                ["サーバー CLOSED: 接続なし", "クライアント CLOSED: 接続なし"]
            ),
        ]
        for (language, packetNote, stateNotes) in expected {
            var d = SequenceDiagram(leftActor: "server", rightActor: "client", language: language)
            d.explain = true
            let text = d.render(calls: r.calls, packets: r.packets)
            let closeLines = Self.block(of: close.id, in: text)
            let rst = try #require(closeLines.firstIndex { $0.contains("RST/ACK") }, "\(language): \(closeLines)")
            try #require(rst + 1 < closeLines.count)
            #expect(closeLines[rst + 1] == "                 ↳ \(packetNote)", "\(language)")
            let states = try #require(closeLines.firstIndex { $0.hasPrefix("      \(language.statesLabel): ") })
            #expect(Array(closeLines[(states + 1)...]) == stateNotes.map { "        ↳ \($0)" }, "\(language)")
            #expect(!Self.block(of: resetRecv.id, in: text).contains { $0.contains("↳") }, "\(language)")
        }
    }

    /// The lines of step `id` in a rendered diagram: its step line and what follows up to the next step or a blank
    /// line.
    static func block(of id: Int, in text: String) -> [String] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let start = lines.firstIndex(where: { $0.hasPrefix("\(id) ") }) else { return [] }
        let end = lines[(start + 1)...].firstIndex { $0.isEmpty || $0.first?.isNumber == true } ?? lines.count
        return Array(lines[start..<end])
    }

    /// Every scenario, one after another, leaves no namespace, listening socket or thread behind.
    @Test func allScenariosLeaveNothingBehind() throws {
        let threadsBefore = taskCount()
        for s in LabScenario.all {
            _ = try run(s.name)
        }
        #expect(ownNamespaces().isEmpty)
        let listening = (KernelTCPTable.entries("/proc/net/tcp") + KernelTCPTable.entries("/proc/net/tcp6")).filter {
            $0.state.name == "LISTEN" && ($0.local.port == Self.server.port || $0.local.port == Self.server.port + 1)
        }
        #expect(listening.isEmpty)
        #expect(taskCount() <= threadsBefore)
    }

    @Test func netnsRemovesItsNamespaces() throws {
        try #require(geteuid() == 0, "the netns test must run as root")
        var config = LabConfiguration()
        config.hosts = .netns
        config.settle = .milliseconds(80)
        let r = try LabScenario.basic.run(config)
        #expect(r.serverAddress.hasPrefix("10.200.0.2"))
        #expect(r.packets.contains { $0.flags == [.syn, .ack] })
        #expect(ownNamespaces().isEmpty)
    }

    /// A signal at any moment of a `--hosts netns` run (hang-up included, and right at the start, while the
    /// namespaces and the veth pair are being made) leaves no namespace and no veth link behind.
    @Test(arguments: [(SIGHUP, 0.0), (SIGHUP, 0.03), (SIGINT, 0.01), (SIGTERM, 0.8)])
    func aSignalDuringANetnsRunLeavesNothingBehind(signal: Int32, after seconds: Double) throws {
        try #require(geteuid() == 0, "the netns test must run as root")
        let lab = Process()
        lab.executableURL = packetflowBinary()
        lab.arguments = ["lab", "--hosts", "netns", "--settle", "200", "--no-color"]
        lab.standardOutput = FileHandle.nullDevice
        lab.standardError = FileHandle.nullDevice
        try lab.run()
        defer { if lab.isRunning { kill(lab.processIdentifier, SIGKILL) } }
        let pid = lab.processIdentifier
        if seconds > 0 { usleep(UInt32(seconds * 1_000_000)) }
        kill(pid, signal)
        lab.waitUntilExit()
        #expect(LabNamespaces.existing().filter { $0.contains("\(pid)") }.isEmpty)
        let links = (try? String(contentsOfFile: "/proc/net/dev", encoding: .utf8)) ?? ""
        #expect(!links.contains("pfs\(pid)") && !links.contains("pfc\(pid)"))
    }

    /// The namespaces this test process made and left (others on the machine may be running the same tests).
    func ownNamespaces() -> [String] {
        LabNamespaces.existing().filter { $0.hasPrefix("\(LabNamespaces.prefix)\(getpid())-") }
    }

    func taskCount() -> Int {
        guard let dir = opendir("/proc/self/task") else { return 0 }
        defer { closedir(dir) }
        var n = 0
        while readdir(dir) != nil { n += 1 }
        return n
    }
}

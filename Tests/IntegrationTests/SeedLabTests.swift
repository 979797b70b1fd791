import Glibc
import PacketWire
import SocketLab
import Sockets
import Testing
import Timeline

/// The seed experiment, run for real: real sockets on loopback and a real libpcap capture (needs root or
/// CAP_NET_RAW, which CI has). Asserts the packets the seed's author found by hand, call by call.
@Suite(.serialized) struct SeedLabTests {
    /// A port of its own so the test does not collide with a `packetflow server` on 49152.
    static func configuration(port: UInt16) -> LabConfiguration {
        var c = LabConfiguration()
        c.server = SocketAddress(ip: .v4(0x7f00_0002), port: port)
        c.settle = .milliseconds(80)
        return c
    }

    func packets(_ r: LabResult, during name: String, by actor: String) throws -> [PacketEvent] {
        let call = try #require(r.calls.first { $0.name == name && $0.actor == actor }, "no \(actor) \(name)")
        return r.packets.filter { $0.call == call.id }
    }

    @Test func seedPacketsLandUnderTheCallsThatSentThem() throws {
        try #require(geteuid() == 0, "the lab captures on lo: run the tests as root (CI does)")
        var config = Self.configuration(port: 49_301)
        config.message = "こんにちは"
        let r = try LabScenario.basic.run(config)
        let messageLength = "こんにちは".utf8.count

        #expect(
            r.calls.map { "\($0.actor) \($0.name)" } == [
                "server socket", "server bind", "server listen", "client socket", "client connect", "server accept",
                "client sendall", "server recv", "server send", "client recv", "server close", "client close",
            ])
        #expect(r.calls.allSatisfy { $0.errno == nil })
        #expect(r.statistics?.droppedByKernel == 0)

        // connect → SYN (client→server), SYN/ACK (server→client, sent by the server's kernel), ACK.
        let connect = try packets(r, during: "connect", by: "client")
        #expect(connect.map { $0.flags?.label } == ["SYN", "SYN/ACK", "ACK"])
        #expect(connect.map(\.sender) == ["client", "server", "client"])
        #expect(connect.map(\.byKernel) == [false, true, false])
        #expect(connect[0].destinationPort == 49_301 && connect[0].seq == 0)
        #expect(connect[1].reason == "SYN/ACK of a listening socket")

        // accept → nothing on the wire: the handshake was already done by the kernel.
        #expect(try packets(r, during: "accept", by: "server").isEmpty)
        for quiet in ["socket", "bind", "listen"] { #expect(try packets(r, during: quiet, by: "server").isEmpty) }

        // sendall → PSH/ACK with the message's length (and the server kernel's ACK of it).
        let sendall = try packets(r, during: "sendall", by: "client").filter { !$0.byKernel }
        #expect(sendall.count == 1)
        #expect(sendall.first?.flags == [.psh, .ack] && sendall.first?.length == messageLength)
        #expect(sendall.first?.sender == "client" && sendall.first?.seq == 1)

        // recv consumes data already there: nothing new on the wire from the server's own call.
        #expect(try packets(r, during: "recv", by: "server").filter { !$0.byKernel }.isEmpty)

        // The server's send → PSH/ACK back to the client.
        let send = try packets(r, during: "send", by: "server").filter { !$0.byKernel }
        #expect(send.count == 1)
        #expect(send.first?.flags == [.psh, .ack] && send.first?.sender == "server")
        let replyLength = try #require(r.calls.first { $0.name == "send" }?.result)
        #expect(send.first?.length == replyLength)

        // The server's close → FIN/ACK from the server; the client's close → FIN/ACK and the server's last ACK.
        let serverClose = try packets(r, during: "close", by: "server")
        #expect(serverClose.first?.flags == [.fin, .ack] && serverClose.first?.sender == "server")
        #expect(serverClose.first?.byKernel == false)
        let clientCloseCall = try #require(r.calls.last)
        let clientClose = r.packets.filter { $0.call == clientCloseCall.id }
        #expect(clientClose.map { $0.flags?.label } == ["FIN/ACK", "ACK"])
        #expect(clientClose.map(\.sender) == ["client", "server"])
        #expect(clientClose.last?.reason == "ACK of FIN")

        // Nothing before the first call, nothing unattributed, one TCP stream.
        #expect(r.packets.allSatisfy { $0.call != nil && $0.stream == 0 })
        // The server closed first, so the server's side ends in TIME_WAIT.
        #expect(clientCloseCall.tcpStates.first { $0.0 == "server" }?.1 == .timeWait)
        #expect(r.calls.first { $0.name == "connect" }?.tcpStates.map(\.1) == [.listen, .established])
    }

    @Test func withoutCaptureTheCallsAndStatesStillShow() throws {
        var config = Self.configuration(port: 49_302)
        config.capture = false
        let r = try LabScenario.basic.run(config)
        #expect(r.packets.isEmpty && r.statistics == nil)
        #expect(r.calls.count == 12)
        #expect(
            r.calls.first { $0.name == "close" && $0.actor == "server" }?.tcpStates.map(\.1)
                == [.finWait2, .closeWait])
    }

    /// On this host's loopback (`--hosts host`) a server already on the port is one line that names it.
    @Test func aServerAlreadyOnThePortIsOneClearError() throws {
        let occupied = try Sockets.Socket(family: .ipv4, type: .stream)
        try occupied.bind(to: SocketAddress(ip: .v4(0x7f00_0002), port: 49_303))
        try occupied.listen(backlog: 1)
        defer { try? occupied.close() }
        var config = Self.configuration(port: 49_303)
        config.capture = false
        config.hosts = .host
        #expect {
            try LabScenario.basic.run(config)
        } throws: { error in
            let text = "\(error)"
            return text.contains("step 2 server bind(127.0.0.2:49303) failed: EADDRINUSE")
                && text.contains("(pid \(getpid())) listens on 127.0.0.2:49303; stop it") && !text.contains("\n")
        }
        // The default lab, in a namespace of its own as root, does not meet it.
        if geteuid() == 0 {
            config.hosts = .loopback
            let r = try LabScenario.basic.run(config)
            #expect(r.placement == .privateLoopback && r.calls.allSatisfy { $0.errno == nil })
        }
    }
}

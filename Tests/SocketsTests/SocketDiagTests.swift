import Foundation
import Glibc
import Sockets
import Testing

/// sock_diag against the kernel's own answers: the sockets a test opens on loopback, with the addresses
/// getsockname/getpeername give, the state TCP_INFO gives, and the inode fstat gives.
@Suite struct SocketDiagTests {
    static func inode(_ socket: Socket) -> UInt64 {
        var st = stat()
        _ = fstat(socket.fileDescriptor, &st)
        return UInt64(st.st_ino)
    }

    @Test func listsTheConnectionsAndListenersOfBothFamiliesInTheAskedStates() throws {
        let (client, server, listener) = try connectedPair()
        let v6 = try Socket(family: .ipv6, type: .stream)
        try v6.bind(to: SocketAddress(ip: .loopbackV6, port: 0))
        try v6.listen(backlog: 1)

        let rows = try #require(SocketDiag.tcpSockets(inStates: [.established, .listen]))
        let listening = try #require(rows.first { $0.inode == Self.inode(listener) })
        #expect(listening.state == .listen)
        #expect(listening.local == (try listener.localAddress))
        let six = try #require(rows.first { $0.inode == Self.inode(v6) })
        #expect(six.local == (try v6.localAddress))
        #expect(six.state == .listen)
        for end in [client, server] {
            let row = try #require(rows.first { $0.inode == Self.inode(end) })
            #expect(row.state == .established)
            #expect(row.state == end.tcpState())
            #expect(row.local == (try end.localAddress))
            #expect(row.remote == (try end.remoteAddress))
        }
    }

    @Test func theKernelFiltersByState() throws {
        let (client, server, _) = try connectedPair()
        try client.close()
        // The client waits in FIN_WAIT2 for the server's FIN; the server is in CLOSE_WAIT.
        #expect(waitForState(server, .closeWait) == .closeWait)
        let rows = try #require(SocketDiag.tcpSockets(inStates: [.closeWait]))
        #expect(rows.allSatisfy { $0.state == .closeWait })
        #expect(rows.contains { $0.inode == Self.inode(server) })
        let none = try #require(SocketDiag.tcpSockets(inStates: [.synSent]))
        #expect(!none.contains { $0.inode == Self.inode(server) })
    }

    /// Replies recorded from the kernel (Tests/Fixtures/netlink, also the fuzz target's seeds): a v4 dump of
    /// ESTABLISHED and LISTEN sockets with a loopback connection in it, a v6 dump of a listener on ::1.
    @Test func recordedRepliesParse() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/netlink")
        let v4 = try Data(contentsOf: dir.appendingPathComponent("inet-established-listen.bin"))
        let four = try #require(v4.withUnsafeBytes { SocketDiag.parseReply($0) })
        #expect(four.done)
        #expect(four.entries.contains { $0.state == .listen && $0.local.ip == .loopbackV4 })
        #expect(four.entries.filter { $0.state == .established && $0.local.ip == .loopbackV4 }.count >= 2)
        #expect(four.entries.allSatisfy { $0.state == .established || $0.state == .listen })
        let v6 = try Data(contentsOf: dir.appendingPathComponent("inet6-listen.bin"))
        let six = try #require(v6.withUnsafeBytes { SocketDiag.parseReply($0) })
        #expect(six.done)
        #expect(six.entries.contains { $0.state == .listen && $0.local.ip == .loopbackV6 && $0.local.port != 0 })
        // Cut anywhere inside a message, a reply is refused, never read past its end.
        for cut in stride(from: 1, to: v4.count, by: 7) {
            let prefix = v4.prefix(cut)
            if let partial = prefix.withUnsafeBytes({ SocketDiag.parseReply($0) }) {
                #expect(partial.entries.count <= four.entries.count)
            }
        }
    }

    /// The lookup trace falls back to when it cannot duplicate a program's descriptor: by inode, TCP or UDP.
    @Test func socketsAreFoundByInodeWithTheirFamilyAndType() throws {
        let (client, _, listener) = try connectedPair()
        let udp = try Socket(family: .ipv6, type: .datagram)
        try udp.bind(to: SocketAddress(ip: .loopbackV6, port: 0))
        for (socket, family, type) in [(client, Int32(2), Int32(1)), (listener, 2, 1), (udp, 10, 2)] {
            let found = try #require(KernelTCPTable.socket(inode: Self.inode(socket), inNetworkOf: getpid()))
            #expect(found.family == family && found.type == type)
            #expect(found.entry.local == (try socket.localAddress))
        }
        let rows = try #require(
            SocketDiag.sockets(protocol: UInt8(IPPROTO_UDP), inStates: SocketDiag.statesWithDescriptors))
        #expect(rows.contains { $0.inode == Self.inode(udp) && $0.local == (try? udp.localAddress) })
    }
}

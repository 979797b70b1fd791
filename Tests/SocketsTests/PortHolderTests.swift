import Foundation
import Glibc
import Sockets
import SystemCalls
import TestSupport
import Testing

/// `SocketDiag.holders(of:)` against sockets the test makes: what it finds must be what the kernel holds.
@Suite struct PortHolderTests {
    @Test func aTimeWaitIsFoundWithItsConnectionAndTimeLeft() throws {
        let (server, client) = try leaveServerTimeWait()
        let holders = try #require(holdersOnceInTimeWait(server))
        try #require(holders.count == 1, "\(holders)")
        let record = holders[0].record
        #expect(record.entry.state == .timeWait)
        #expect(record.entry.local == server && record.entry.remote == client)
        #expect(record.timer == 3, "TIME_WAIT's timer")
        #expect(record.expires > .zero && record.expires <= .seconds(60), "\(record.expires)")
        #expect(record.entry.inode == 0 && holders[0].processes.isEmpty, "no process holds a TIME_WAIT")
        // The situation the lab met after the seed's server: even with SO_REUSEADDR, the bind is refused.
        let again = try Socket(family: .ipv4, type: .stream)
        try again.setReuseAddress(true)
        #expect(throws: Errno.addressInUse) { try again.bind(to: server) }
    }

    @Test func aListenerIsFoundWithThisProcess() throws {
        let listener = try Socket(family: .ipv4, type: .stream)
        try listener.bind(to: SocketAddress(ip: .v4(0x7f00_0003), port: 0))
        try listener.listen(backlog: 1)
        let address = try listener.localAddress
        let holders = try #require(SocketDiag.holders(of: address))
        try #require(holders.count == 1, "\(holders)")
        #expect(holders[0].record.entry.state == .listen)
        #expect(holders[0].record.uid == geteuid())
        let command = try String(contentsOfFile: "/proc/self/comm", encoding: .utf8)
            .trimmingCharacters(in: .newlines)
        #expect(holders[0].processes == [.init(pid: getpid(), command: command)])
        // Another address on the same port is not held by it; the wildcard address is.
        #expect(SocketDiag.holders(of: SocketAddress(ip: .v4(0x7f00_0004), port: address.port))?.isEmpty == true)
        let inode = holders[0].record.entry.inode
        #expect(
            SocketDiag.holders(of: SocketAddress(ip: .anyV4, port: address.port))?.contains {
                $0.record.entry.inode == inode
            } == true)
    }

    @Test func wildcardsAndMappedAddressesTakeThePort() {
        let seed = IPAddress.v4(0x7f00_0002)
        #expect(SocketDiag.sameOrWildcard(seed, seed))
        #expect(SocketDiag.sameOrWildcard(.anyV4, seed))
        #expect(SocketDiag.sameOrWildcard(.anyV6, seed))
        #expect(SocketDiag.sameOrWildcard(seed, .anyV4))
        #expect(SocketDiag.sameOrWildcard(.v6(0, 0xffff_7f00_0002), seed))
        #expect(!SocketDiag.sameOrWildcard(.loopbackV4, seed))
        #expect(!SocketDiag.sameOrWildcard(.loopbackV6, seed))
    }
}

import Foundation
import Glibc
import PacketWire
import SocketLab
import Sockets
import TestSupport
import Testing

/// The lab's message when its port is taken and it cannot (or was told not to) use a namespace of its own, fed by
/// real sockets: a TIME_WAIT left by a listener without SO_REUSEADDR (what the seed's server.py leaves), and a
/// listener of this process.
@Suite struct AddressInUseTests {
    /// The server side of a closed loopback connection in TIME_WAIT, left by a listener without SO_REUSEADDR on
    /// `ip` (the server closes first, as the seed's server does).
    static func leaveServerTimeWait(on ip: IPAddress = .loopbackV4) throws -> (
        server: SocketAddress, client: SocketAddress, holders: [SocketDiag.PortHolder]
    ) {
        let (server, clientAddress) = try TestSupport.leaveServerTimeWait(on: ip)
        let holders = try #require(holdersOnceInTimeWait(server), "sock_diag could not be asked")
        try #require(holders.count == 1 && holders[0].record.entry.state == .timeWait, "\(holders)")
        return (server, clientAddress, holders)
    }

    static func seconds(_ d: Duration) -> Int64 {
        max(1, d.components.seconds + (d.components.attoseconds > 0 ? 1 : 0))
    }

    @Test func aRealTimeWaitIsNamedWithItsConnectionAndTimeLeft() throws {
        let (server, client, holders) = try Self.leaveServerTimeWait()
        let left = Self.seconds(holders[0].record.expires)
        #expect((1...60).contains(left))
        let text = AddressInUse.explanation(
            server, holders: holders, reusing: true, placement: .hostWithoutPrivilege,
            alternative: "--server 127.0.0.1:50002")
        #expect(
            text == "\(server) is held by the TIME_WAIT of the connection \(server) ⇄ \(client) for another \(left) s"
                + " (the program that closed it first had not set SO_REUSEADDR, as the seed's server.py does not);"
                + " wait \(left) s, run as root (the lab then runs in a network namespace of its own) or choose a"
                + " free port: --server 127.0.0.1:50002")
        // Without SO_REUSEADDR on the failed socket, the other side's option explains nothing: not claimed.
        let plain = AddressInUse.explanation(
            server, holders: holders, reusing: false, placement: .privateLoopback, alternative: nil)
        #expect(
            plain == "\(server) is held by the TIME_WAIT of the connection \(server) ⇄ \(client) for another \(left) s;"
                + " wait \(left) s")
    }

    /// `--hosts host` (no namespace) on a port a TIME_WAIT holds: the run stops at the bind with one line that
    /// names that connection and suggests a port that is free, with the closed port next to it.
    @Test func aLabOnTheHostSaysWhatHoldsItsPort() throws {
        let (server, client, _) = try Self.leaveServerTimeWait()
        var config = LabConfiguration()
        config.server = server
        config.capture = false
        config.settle = .milliseconds(20)
        config.hosts = .host
        let error = #expect(throws: LabError.self) { try LabScenario.basic.run(config) }
        let text = try #require(error?.message)
        #expect(!text.contains("\n"))
        let prefix =
            "step 2 server bind(\(server)) failed: EADDRINUSE (Address already in use); \(server) is held by"
            + " the TIME_WAIT of the connection \(server) ⇄ \(client) for another "
        #expect(text.hasPrefix(prefix), "\(text)")
        #expect(
            text.contains(
                " s, drop --hosts host (the lab then runs in a network namespace of its own) or choose a free port:"
                    + " --server 127.0.0.1:"), "\(text)")
        let suggested = try #require(text.split(separator: ":").last.flatMap { UInt16($0) }, "\(text)")
        #expect(suggested > server.port)
        for port in [suggested, suggested + 1] {
            #expect(SocketDiag.holders(of: SocketAddress(ip: .loopbackV4, port: port))?.isEmpty == true)
        }
    }

    /// The default placement on the same TIME_WAIT: as root the lab runs in a namespace of its own and works; as
    /// another user it cannot, and says to run as root.
    @Test func theDefaultLabGetsPastAHostTimeWait() throws {
        let (server, _, _) = try Self.leaveServerTimeWait()
        var config = LabConfiguration()
        config.server = server
        config.capture = false
        config.settle = .milliseconds(20)
        if geteuid() == 0 {
            let r = try LabScenario.basic.run(config)
            #expect(r.placement == .privateLoopback)
            #expect(r.calls.count == 12 && r.calls.allSatisfy { $0.errno == nil })
        } else {
            let error = #expect(throws: LabError.self) { try LabScenario.basic.run(config) }
            #expect(
                error?.message.contains("run as root (the lab then runs in a network namespace of its own)") == true)
        }
    }

    @Test func aListenerIsNamedWithItsProcess() throws {
        let listener = try Socket(family: .ipv4, type: .stream)
        try listener.bind(to: SocketAddress(ip: .v4(0x7f00_0005), port: 0))
        try listener.listen(backlog: 2)
        let address = try listener.localAddress
        let holders = try #require(SocketDiag.holders(of: address))
        let command = try String(contentsOfFile: "/proc/self/comm", encoding: .utf8).trimmingCharacters(in: .newlines)
        let text = AddressInUse.explanation(
            address, holders: holders, reusing: true, placement: .hostByChoice, alternative: nil)
        #expect(
            text == "\(address) is taken: \(command) (pid \(getpid())) listens on \(address); stop it or drop"
                + " --hosts host (the lab then runs in a network namespace of its own)")
    }

    /// What the line says without a process to name, with several TIME_WAITs, with nothing found, and when
    /// sock_diag cannot be asked (values as the kernel reports them; no socket needed to check the wording).
    @Test func theOtherCases() {
        let seed = SocketAddress(ip: .v4(0x7f00_0002), port: 49152)
        func record(_ state: TCPState, remote: SocketAddress, ms: Int64, uid: UInt32 = 0) -> SocketDiag.Record {
            .init(
                entry: .init(local: seed, remote: remote, state: state, inode: state == .timeWait ? 0 : 77),
                timer: state == .timeWait ? 3 : 0, expires: .milliseconds(ms), uid: uid)
        }
        let peer = SocketAddress(ip: .loopbackV4, port: 40000)
        let waits = [300, 41_200, 12_000].map {
            SocketDiag.PortHolder(record: record(.timeWait, remote: peer, ms: Int64($0)), processes: [])
        }
        #expect(
            AddressInUse.explanation(seed, holders: waits, reusing: false, placement: .twoHosts, alternative: nil)
                == "127.0.0.2:49152 is held by 3 connections in TIME_WAIT (127.0.0.2:49152 ⇄ 127.0.0.1:40000 and 2 more)"
                + " for up to another 42 s; wait 42 s")
        #expect(
            AddressInUse.explanation(
                seed, holders: [waits[0]], reusing: false, placement: .twoHosts,
                alternative: nil
            ).hasSuffix("for another 1 s; wait 1 s"))
        let hidden = SocketDiag.PortHolder(
            record: record(.listen, remote: SocketAddress(ip: .anyV4, port: 0), ms: 0, uid: 1000), processes: [])
        #expect(
            AddressInUse.explanation(
                seed, holders: waits + [hidden], reusing: true, placement: .hostAddresses,
                alternative: "--server 127.0.0.2:49154")
                == "127.0.0.2:49152 is taken: a process of user 1000 (not visible to this user) listens on"
                + " 127.0.0.2:49152; stop that program or choose a free port: --server 127.0.0.2:49154")
        #expect(
            AddressInUse.explanation(seed, holders: [], reusing: true, placement: .hostAddresses, alternative: nil)
                == "no TCP socket holds 127.0.0.2:49152 any more (it was freed just now); run again")
        #expect(
            AddressInUse.explanation(
                seed, holders: nil, reusing: true, placement: .hostRefused(.invalidArgument),
                alternative: nil)
                == "sock_diag could not be asked what holds 127.0.0.2:49152 (`ss -tanp 'sport = :49152'` shows it)")
    }
}

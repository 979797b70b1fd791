import Foundation
import Glibc
import PacketWire
import SocketLab
import Sockets
import Synchronization
import TestSupport
import Testing
import Timeline

/// The loopback lab's namespace of its own (root only: `unshare(2)` needs CAP_SYS_ADMIN, capture CAP_NET_RAW):
/// a server and its traffic on the host, on the lab's very address, neither block the lab nor reach its capture;
/// and the namespace leaves nothing behind in the process.
@Suite(.serialized) struct PrivateLoopbackTests {
    /// The namespace descriptors this process holds ("net:[4026532281]" links under /proc/self/fd).
    static func namespaceDescriptors() -> [String] {
        ProcFiles.names(in: "/proc/self/fd").compactMap { ProcFiles.linkTarget("/proc/self/fd/\($0)") }
            .filter { $0.hasPrefix("net:[") }.sorted()
    }

    @Test func aHostServerOnTheLabsAddressNeitherCollidesNorShowsUp() throws {
        try #require(geteuid() == 0, "the lab's namespace and its capture need root: run the tests as root (CI does)")
        let host = try SeedServer(
            configuration: .init(address: SocketAddress(ip: .v4(0x7f00_004e), port: 0), backlog: 16), log: { _ in })
        let serving = Thread { try? host.run() }
        serving.start()
        defer { host.stop() }
        // Host clients talk to the host server on the lab's address for the whole run.
        let running = Atomic<Bool>(true)
        let exchanges = Atomic<Int>(0)
        let talking = Thread {
            let client = SeedClient(configuration: .init(server: host.address))
            while running.load(ordering: .relaxed) {
                if (try? client.send("host traffic")) != nil { exchanges.add(1, ordering: .relaxed) }
                usleep(2_000)
            }
        }
        talking.start()
        defer { running.store(false, ordering: .relaxed) }
        try #require(waitUntil { exchanges.load(ordering: .relaxed) > 0 }, "the host server never answered")

        var config = LabConfiguration()
        config.server = host.address
        config.settle = .milliseconds(80)
        let before = exchanges.load(ordering: .relaxed)
        let r = try LabScenario.basic.run(config)
        let during = exchanges.load(ordering: .relaxed) - before
        #expect(during > 10, "the host was not busy during the lab (\(during) exchanges)")

        #expect(r.placement == .privateLoopback)
        #expect(r.calls.allSatisfy { $0.errno == nil })
        let clientPort = try #require(r.clientAddress.flatMap { try? SocketAddress(parsing: $0) }?.port)
        // Only the lab's one connection is on its wire: every packet between the lab's client port and its server.
        #expect(r.packets.count == 11, "\(r.packets.count) packets")
        #expect(r.packets.allSatisfy { $0.stream == 0 && $0.call != nil })
        #expect(
            r.packets.allSatisfy {
                Set([$0.sourcePort, $0.destinationPort]) == Set([clientPort, host.address.port])
            })
    }

    @Test func theNamespaceIsGoneAfterTheRunAndTheThreadIsBackHome() throws {
        try #require(geteuid() == 0, "the lab's own namespace needs root: run the tests as root (CI does)")
        let home = ProcFiles.linkTarget("/proc/thread-self/ns/net")
        let descriptors = Self.namespaceDescriptors()
        var config = LabConfiguration()
        config.server = SocketAddress(ip: .v4(0x7f00_004e), port: 49_171)
        config.capture = false
        config.settle = .milliseconds(20)
        for scenario in [LabScenario.basic, .simultaneousClose] {
            let r = try scenario.run(config)
            #expect(r.placement == .privateLoopback)
        }
        #expect(ProcFiles.linkTarget("/proc/thread-self/ns/net") == home)
        // Other suites' labs run in this process at the same time and hold namespaces of their own for a moment:
        // the set must come back to what it was, which a leaked descriptor never lets it do.
        #expect(
            waitUntil(within: .seconds(30)) { Set(Self.namespaceDescriptors()).isSubset(of: Set(descriptors)) },
            "\(Self.namespaceDescriptors()) left, against \(descriptors) before")
    }

    /// Addresses that are not loopback ones, or `--hosts host`, stay on this host's network.
    @Test func onlyLoopbackAddressesMove() throws {
        var config = LabConfiguration()
        config.capture = false
        config.settle = .milliseconds(20)
        config.server = SocketAddress(ip: .v4(0x7f00_004e), port: 49_172)
        config.hosts = .host
        #expect(try LabScenario.basic.run(config).placement == .hostByChoice)
        config.hosts = .loopback
        config.interface = "eth0"
        #expect(try LabScenario.basic.run(config).placement == .hostAddresses)
    }
}

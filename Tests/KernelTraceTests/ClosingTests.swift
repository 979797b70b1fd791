import PacketWire
import Sockets
import Testing

@testable import KernelTrace

/// Which connections the packet records show closed at both ends: what lets a trace session stop waiting for the
/// wire without walking the kernel's socket table.
@Suite struct ClosingTests {
    static let client = SocketAddress(ip: .v4(0x7f00_0001), port: 40_000)
    static let server = SocketAddress(ip: .v4(0x7f00_0002), port: 49_152)

    /// A TCP segment between the two ends, recorded as queued.
    static func segment(
        from source: SocketAddress, _ flags: TCPFlags, seq: UInt32, ack: UInt32 = 0, length: Int = 0
    ) -> KernelPacket {
        let destination = source == client ? server : client
        let key = KernelPacketKey(
            source: source.ip, destination: destination.ip, ipProtocol: 6, sourcePort: source.port,
            destinationPort: destination.port, seq: seq, ack: ack, flags: UInt8(flags.rawValue), length: length)
        return KernelPacket(
            time: Timestamp(totalNanoseconds: 0), key: key, context: .untraced,
            task: KernelTask(pid: 1, tid: 1, comm: "python3", traced: true), socketPointer: 1, socketInode: 2,
            socketState: 1, ifindex: 1, ipID: 0, window: 0, length: 54 + length)
    }

    static func run(_ packets: [KernelPacket], lostPackets: UInt64 = 0) -> KernelTraceRun {
        var counters = KernelTraceCounters()
        counters.lostPackets = lostPackets
        return KernelTraceRun(
            calls: [], packets: packets, processEvents: [], exitStatus: 0, detached: false, counters: counters,
            warnings: [])
    }

    /// Whether the one connection between `client` and `server` shows closed.
    static func closed(_ packets: [KernelPacket], lostPackets: UInt64 = 0) -> Bool {
        let found = run(packets, lostPackets: lostPackets).closedConnections
        #expect(found.count <= 1)
        return found.contains { Set([$0.0, $0.1]) == Set([client, server]) }
    }

    /// The seed's exchange: handshake, 5 bytes each way, the server closes first. The sequence numbers start near
    /// the top of the space, so the client's FIN wraps it.
    static let seed: [KernelPacket] = {
        let c = UInt32.max - 6
        let s: UInt32 = 1000
        return [
            segment(from: client, .syn, seq: c),
            segment(from: server, [.syn, .ack], seq: s, ack: c &+ 1),
            segment(from: client, .ack, seq: c &+ 1, ack: s + 1),
            segment(from: client, [.psh, .ack], seq: c &+ 1, ack: s + 1, length: 5),
            segment(from: server, .ack, seq: s + 1, ack: c &+ 6),
            segment(from: server, [.psh, .ack], seq: s + 1, ack: c &+ 6, length: 5),
            segment(from: server, [.fin, .ack], seq: s + 6, ack: c &+ 6),
            segment(from: client, .ack, seq: c &+ 6, ack: s + 7),
            segment(from: client, [.fin, .ack], seq: c &+ 6, ack: s + 7),
            segment(from: server, .ack, seq: s + 7, ack: c &+ 7),  // the last ACK: closed at both ends
        ]
    }()

    @Test func closedOnlyOnceBothFINsAreAcknowledged() {
        #expect(Self.closed(Self.seed))
        for end in Self.seed.indices.dropLast() {
            #expect(!Self.closed(Array(Self.seed.prefix(end + 1))), "after packet \(end + 1)")
        }
    }

    @Test func anAcknowledgmentBelowTheFINDoesNotCloseIt() {
        var packets = Self.seed.dropLast(1)
        let last = Self.seed.last!.key!
        packets.append(Self.segment(from: Self.server, .ack, seq: last.seq, ack: last.ack &- 1))
        #expect(!Self.closed(Array(packets)))
    }

    @Test func aResetClosesIt() {
        let opened = Array(Self.seed.prefix(4))
        #expect(!Self.closed(opened))
        #expect(Self.closed(opened + [Self.segment(from: Self.server, .rst, seq: 1006)]))
    }

    @Test func aNewConnectionBetweenTheSameEndsIsOpenAgain() {
        #expect(!Self.closed(Self.seed + [Self.segment(from: Self.client, .syn, seq: 77)]))
    }

    @Test func lostRecordsTellNothing() {
        #expect(!Self.closed(Self.seed, lostPackets: 1))
    }

    @Test func packetsOfOneEndOnlyNeverShowClosed() {
        // A peer on another host: its packets are received, never queued here.
        #expect(!Self.closed(Self.seed.filter { $0.key?.sourcePort == Self.client.port }))
    }
}

import Foundation
import PacketCapture
import PacketWire
import Sockets
import Testing

@testable import KernelTrace

extension KernelTraceTests {
    /// The kernel's packet records against a libpcap capture of the same run: each captured packet of the traced
    /// connections has exactly one record, and each record of them was captured.
    @Suite struct JoinTests {
        /// The benchmark's socket workload, smaller: `count` connections from the main thread to a listener thread.
        static func workload(_ count: Int) -> String {
            """
            import socket, threading
            srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("127.0.0.1", 0)); srv.listen(64); port = srv.getsockname()[1]
            def serve():
                for _ in range(\(count)):
                    c, _ = srv.accept(); c.sendall(c.recv(64)); c.close()
            t = threading.Thread(target=serve); t.start()
            for i in range(\(count)):
                s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"ping"); s.recv(64); s.close()
            t.join()
            """
        }

        /// A super-packet queued once and cut into segments before the capture tap (a large send on lo): each
        /// segment joins the record whose bytes hold it; a segment outside its bytes, or of other ends, does not.
        @Test func segmentsOfASuperPacketJoinItsRecord() {
            let a = IPAddress.v4(0x7f00_0001)
            let b = IPAddress.v4(0x7f00_0002)
            func key(_ seq: UInt32, _ length: Int, flags: UInt8 = 0x10, ack: UInt32 = 7, port: UInt16 = 4000)
                -> KernelPacketKey
            {
                KernelPacketKey(
                    source: a, destination: b, ipProtocol: 6, sourcePort: port, destinationPort: 80, seq: seq, ack: ack,
                    flags: flags, length: length)
            }
            // Wraps the sequence space: 68 635 bytes from 2^32 - 1000.
            let start = UInt32.max - 999
            let whole = KernelPacket(
                time: Timestamp(totalNanoseconds: 0), key: key(start, 68_635, flags: 0x18), context: .untraced,
                task: KernelTask(pid: 1, tid: 1, comm: "x", traced: true), socketPointer: 1, socketInode: 2,
                socketState: 1, ifindex: 1, ipID: 0, window: 0, length: 68_701)
            let pure = KernelPacket(
                time: whole.time, key: key(start, 0), context: .untraced, task: whole.task, socketPointer: 1,
                socketInode: 2, socketState: 1, ifindex: 1, ipID: 0, window: 0, length: 66)
            let captured: [KernelPacketKey?] = [
                key(start, 0),  // its own record
                key(start, 47_616),
                key(start &+ 47_616, 21_019, flags: 0x18),
                key(start &+ 47_616, 21_020, flags: 0x18),  // one byte beyond
                key(start, 100, ack: 8),  // another acknowledgment: another packet
                key(start, 100, port: 4001),  // other ends
                nil,
            ]
            #expect(KernelPacketJoin.match(keys: captured, kernel: [pure, whole]) == [0, 1, 1, nil, nil, nil, nil])
        }

        @Test func everyCapturedPacketJoinsExactlyOnce() throws {
            var captureOptions = LiveCapture.Options(interface: "lo", filter: "tcp")
            captureOptions.immediate = true
            // Headers only, in a ring with room for the whole burst: a drop here would be the capture's, not ours.
            captureOptions.snapshotLength = 128
            captureOptions.bufferSize = 16 << 20
            let capture = try BackgroundCapture(captureOptions)
            let run: KernelTraceRun
            var settledWith = 0
            do {
                run = try KernelTraceTests.traceExchange(Self.workload(40)) { recorded in
                    // What the session gets to decide when the wire has settled: the calls so far.
                    settledWith = recorded.calls.count
                    capture.waitUntilQuiet(idle: .milliseconds(100), limit: .seconds(2))
                }
            } catch {
                _ = try? capture.stop()
                throw error
            }
            let stopped = try capture.stop()
            #expect(stopped.statistics.map { $0.droppedByKernel == 0 } ?? true)
            #expect(run.counters == KernelTraceCounters())
            #expect(settledWith == run.calls.count, "the program had ended: no call came after the settling began")

            // The traced connections, by their two ends (other tests may use loopback meanwhile).
            var flows: Set<[SocketAddress]> = []
            for call in run.calls {
                guard let s = call.socket, s.isTCP, let local = s.local, let remote = s.remote else { continue }
                flows.insert([local, remote].sorted { $0.description < $1.description })
            }
            #expect(flows.count == 40)
            func flow(_ source: SocketAddress, _ destination: SocketAddress) -> Bool {
                flows.contains([source, destination].sorted { $0.description < $1.description })
            }
            let captured = stopped.packets.filter {
                let d = $0.decode()
                guard let s = d.source, let t = d.destination, let sp = d.sourcePort, let dp = d.destinationPort
                else { return false }
                return flow(SocketAddress(ip: s, port: sp), SocketAddress(ip: t, port: dp))
            }
            let recorded = run.packets.indices.filter {
                guard let k = run.packets[$0].key else { return false }
                return flow(
                    SocketAddress(ip: k.source, port: k.sourcePort),
                    SocketAddress(ip: k.destination, port: k.destinationPort))
            }
            // SYN, SYN/ACK, ACK, data, its ACK, reply, FINs and ACKs: at least 8 a connection.
            #expect(captured.count >= 40 * 8)
            let matches = KernelPacketJoin.match(captured: captured, kernel: run.packets)
            let missing = zip(captured, matches).filter { $0.1 == nil }.compactMap { KernelPacketKey($0.0.decode()) }
            #expect(missing.count == 0, "captured without a kernel record: \(missing.prefix(5).map(\.description))")
            let used = matches.compactMap { $0 }
            #expect(Set(used).count == used.count, "a record joined twice")
            let neverCaptured = Set(recorded).subtracting(used).count
            #expect(
                neverCaptured == 0 && Set(used).isSubset(of: Set(recorded)), "\(neverCaptured) records never captured")
            // Same packet, same clock: the record is taken at the device queue just before the capture tap.
            for (packet, index) in zip(captured, matches) {
                guard let index else { continue }
                let gap = packet.info.timestamp.nanoseconds(since: run.packets[index].time)
                #expect(gap > -2_000 && gap < 1_000_000_000, "record \(gap) ns before its capture")
            }
        }
    }
}

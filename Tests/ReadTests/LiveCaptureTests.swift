import Foundation
import Glibc
import PacketCapture
import PacketWire
import Testing

/// A UDP port on 127.0.0.1 with a socket bound to it that never reads: datagrams sent there are captured on lo
/// and then discarded by the kernel, with no ICMP port-unreachable coming back.
final class UDPSink: Sendable {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(fd, p, length) == 0 && getsockname(fd, p, &length) == 0
            }
        }
        guard fd >= 0, bound else {
            close(fd)
            throw POSIXError(.EADDRNOTAVAIL)
        }
        self.fd = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(fd) }

    /// Sends `count` datagrams of `size` bytes to the sink as fast as one thread can; returns how many the kernel
    /// took (a full queue refuses some, and those are not on the wire).
    func flood(_ count: Int, size: Int = 64) -> Int {
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(s) }
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_addr.s_addr = inet_addr("127.0.0.1")
        to.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &to) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return 0 }
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: size)
        var sent = 0
        for _ in 0..<count where send(s, payload, size, 0) == size { sent += 1 }
        return sent
    }
}

@Suite(.serialized) struct LiveCaptureTests {
    /// On lo the kernel offers every packet twice (sent, received); the capture's own counters count it once,
    /// buffered and immediate. Immediate mode's ring holds only 32 of lo's 64 KiB slots, so a burst overflows it:
    /// what it delivers and what it drops then add up to what was sent.
    @Test(arguments: [false, true])
    func loopbackPacketsAreCountedOnce(immediate: Bool) throws {
        let sink = try UDPSink()
        var options = LiveCapture.Options(interface: "lo", filter: "udp dst port \(sink.port)")
        options.immediate = immediate
        let capture = try LiveCapture(options)
        capture.setNonblocking(true)
        let sent = sink.flood(300)
        var delivered = 0
        let deadline = Date().addingTimeInterval(10)
        while UInt64(delivered) + (capture.statistics()?.droppedByKernel ?? 0) < UInt64(sent) && Date() < deadline {
            if try capture.dispatch({ _, _ in delivered += 1 }) == 0 {
                _ = capture.wait(timeoutMilliseconds: 50)
            }
        }
        let stats = try #require(capture.statistics())
        #expect(stats.received == UInt64(sent))
        #expect(UInt64(delivered) + stats.droppedByKernel == UInt64(sent))
        if !immediate { #expect(delivered == sent) }
    }

    /// `wait` returns when its wake descriptor is readable, however long packets take (a signal handler's pipe).
    @Test func waitReturnsForItsWakeDescriptor() throws {
        let sink = try UDPSink()
        var options = LiveCapture.Options(interface: "lo", filter: "udp dst port \(sink.port)")
        options.immediate = false
        let capture = try LiveCapture(options)
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        defer { fds.forEach { close($0) } }
        let idle = capture.wait(timeoutMilliseconds: 0, wake: fds[0])
        #expect(!idle.packets && !idle.woken)
        var byte: UInt8 = 1
        #expect(write(fds[1], &byte, 1) == 1)
        let woken = capture.wait(timeoutMilliseconds: 10_000, wake: fds[0])
        #expect(!woken.packets && woken.woken)
    }

    /// A filter libpcap rejects is reported as the user wrote it, on lo as elsewhere.
    @Test func badFilterNamesItself() throws {
        let error = #expect(throws: CaptureError.self) {
            _ = try LiveCapture(LiveCapture.Options(interface: "lo", filter: "udp port nonsense"))
        }
        #expect(error?.kind == .filter)
        #expect(error?.description.hasPrefix("bad filter 'udp port nonsense'") == true)
    }
}

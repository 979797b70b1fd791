import Foundation
import Glibc
import PacketCapture
import PacketFiles
import PacketWire
import Synchronization
import TestSupport
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

/// `packetflow capture` as a user runs it, in a child process stopped by a signal.
struct CaptureChild {
    let process = Process()
    let stderr = Pipe()

    /// Starts `packetflow capture ARGS` and returns once the capture is live: the command opens `readyFile` (its
    /// -w or -o file) only after the packet socket and its filter are in place.
    init(_ arguments: [String], readyFile: String) throws {
        process.executableURL = packetflowBinary()
        process.arguments = ["capture"] + arguments
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: readyFile) && process.isRunning && Date() < deadline {
            usleep(5_000)
        }
    }

    /// Sends `signal`, waits for the exit, and returns the status and what was printed on stderr.
    func stop(_ signal: Int32 = SIGINT) -> (status: Int32, stderr: String) {
        kill(process.processIdentifier, signal)
        let killer = DispatchWorkItem { [pid = process.processIdentifier] in kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 30, execute: killer)
        process.waitUntilExit()
        killer.cancel()
        let text = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (process.terminationStatus, text)
    }
}

final class Done: Sendable {
    let flag = Atomic<Bool>(false)
    let floodEnded = Atomic<Bool>(false)
    /// Rounds of sending finished so far.
    let rounds = Atomic<Int>(0)
}

/// "N packets captured, M dropped by kernel", as `capture` ends.
func captureCounts(_ stderr: String) -> (captured: Int, dropped: Int)? {
    guard let line = stderr.split(separator: "\n").last(where: { $0.contains("packets captured") }) else { return nil }
    let numbers = line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
    return numbers.count == 2 ? (numbers[0], numbers[1]) : nil
}

@Suite(.serialized) struct LiveCaptureTests {
    /// A bounded burst captured with -w and stopped with Ctrl-C: every packet the kernel kept is in the file, and
    /// the counts printed add up to what was sent (on lo each packet is counted once, not once per copy).
    @Test(arguments: [SIGINT, SIGTERM])
    func burstWithDashWHasEveryPacketAndTheRightCounts(signal: Int32) throws {
        let sink = try UDPSink()
        let dir = try scratchDirectory("burst")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("burst.pcapng").path
        let child = try CaptureChild(["-i", "lo", "-w", file, "udp dst port \(sink.port)"], readyFile: file)
        let sent = sink.flood(20_000)
        let (status, stderr) = child.stop(signal)
        #expect(status == 0, "\(stderr)")
        let counts = try #require(captureCounts(stderr), "no counts in: \(stderr)")
        #expect(counts.captured + counts.dropped == sent, "\(stderr)")
        var inFile = 0
        let reader = try CaptureFileReader(path: file)
        while let record = try reader.next() {
            let d = PacketDecoder.decode(record.bytes, linkType: record.info.linkType)
            #expect(d.destinationPort == sink.port && d.payloadLength == 64)
            inFile += 1
        }
        #expect(inFile == counts.captured)
        // On an idle machine nothing is lost; a loaded one may drop, but only what the count says.
        if counts.dropped > 0 { print("burst: the kernel dropped \(counts.dropped) of \(sent) (machine busy?)") }
    }

    /// Text and JSON Lines to a file (buffered capture, not immediate mode): a line per packet, flushed at Ctrl-C.
    @Test(arguments: ["text", "jsonl"])
    func linesToAFileHaveEveryPacket(format: String) throws {
        let sink = try UDPSink()
        let dir = try scratchDirectory("lines")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("out.\(format)").path
        let child = try CaptureChild(
            ["-i", "lo", "--format", format, "-o", file, "udp dst port \(sink.port)"], readyFile: file)
        let sent = sink.flood(5_000)
        let (status, stderr) = child.stop()
        #expect(status == 0, "\(stderr)")
        let counts = try #require(captureCounts(stderr), "no counts in: \(stderr)")
        #expect(counts.captured + counts.dropped == sent)
        let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == counts.captured)
        #expect(lines.allSatisfy { $0.contains("\(sink.port)") })
        if format == "jsonl" { #expect(lines.allSatisfy { $0.hasPrefix("{") && $0.hasSuffix("}") }) }
    }

    /// Ctrl-C while packets keep coming ends the capture while they still come (the hand-over after Ctrl-C is
    /// bounded by time, not by an empty ring), with the counts.
    @Test func ctrlCStopsTheCaptureDuringAFlood() throws {
        let sink = try UDPSink()
        let dir = try scratchDirectory("flood")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("flood.pcapng").path
        let child = try CaptureChild(["-i", "lo", "-w", file, "udp dst port \(sink.port)"], readyFile: file)
        let done = Done()
        let flooding = Thread {
            // Bounded: about 20 s flat out on this kind of machine, far longer than the capture is given.
            for _ in 0..<200 where !done.flag.load(ordering: .relaxed) {
                _ = sink.flood(25_000)
                done.rounds.add(1, ordering: .relaxed)
            }
            done.floodEnded.store(true, ordering: .relaxed)
        }
        flooding.start()
        // Stopped once the flood is under way (a round sent), not after a guessed delay.
        let deadline = Date().addingTimeInterval(10)
        while done.rounds.load(ordering: .relaxed) == 0 && Date() < deadline { usleep(5_000) }
        let (status, stderr) = child.stop()
        let floodEnded = done.floodEnded.load(ordering: .relaxed)
        #expect(!floodEnded)
        done.flag.store(true, ordering: .relaxed)
        #expect(status == 0, "\(stderr)")
        #expect(captureCounts(stderr).map { $0.captured > 0 } == true, "\(stderr)")
    }

    /// Without immediate mode the kernel hands packets over in blocks; a lone packet must still come out within
    /// the buffering timeout, not wait for a block to fill or for Ctrl-C.
    @Test func lonePacketComesOutWhileTheCaptureRuns() throws {
        let sink = try UDPSink()
        let dir = try scratchDirectory("lone")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("out.txt").path
        let child = try CaptureChild(["-i", "lo", "-o", file, "udp dst port \(sink.port)"], readyFile: file)
        #expect(sink.flood(1) == 1)
        // The timeout is 0.1 s; 10 s only keeps a loaded machine from failing the test.
        let deadline = Date().addingTimeInterval(10)
        var text = ""
        while Date() < deadline {
            text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            if text.contains("\n") { break }
            usleep(10_000)
        }
        #expect(child.process.isRunning)
        let (status, stderr) = child.stop()
        #expect(text.split(separator: "\n").count == 1 && text.contains(".\(sink.port): UDP, length 64"))
        #expect(status == 0 && captureCounts(stderr)?.captured == 1, "\(stderr)")
    }

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
        defer { for fd in fds { close(fd) } }
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

import Glibc
import PacketWire
import Synchronization

/// What a `BackgroundCapture` keeps of each packet.
public enum PacketRetention: Sendable, Equatable {
    /// Every captured byte, in memory; `stop()` returns `CapturedPacket`s. Memory grows with the bytes captured: for
    /// short captures (the lab's steps).
    case wholePackets
    /// Each packet's capture record, the packet decoded from all its captured bytes, and the first `payloadBytes`
    /// of its transport payload; `finish()` returns `KeptPacket`s. Memory grows with the number of packets, not
    /// their bytes: a 1 GB transfer over loopback keeps a few megabytes. With `spool`, every whole packet also goes
    /// to an unlinked temporary file as it arrives (`PacketSpool`), to be written out once the capture is over.
    case summaries(payloadBytes: Int, spool: Bool)
}

/// One packet as `PacketRetention.summaries` keeps it.
public struct KeptPacket: Sendable {
    public var info: CaptureInfo
    /// Decoded from every byte captured, so the lengths, flags and problems are the whole packet's.
    public var decoded: DecodedPacket
    /// The first bytes of the transport payload (at most the retention's `payloadBytes`).
    public var payload: [UInt8]

    public init(info: CaptureInfo, decoded: DecodedPacket, payload: [UInt8]) {
        self.info = info
        self.decoded = decoded
        self.payload = payload
    }

    /// Keeps `bytes` (valid only during the call) decoded, with at most `payloadBytes` of its payload.
    public init(info: CaptureInfo, bytes: ByteView, payloadBytes: Int) {
        let decoded = PacketDecoder.decode(bytes, linkType: info.linkType)
        let kept = min(max(decoded.capturedPayloadLength, 0), max(payloadBytes, 0))
        self.init(info: info, decoded: decoded, payload: bytes.slice(decoded.payloadOffset, kept)?.copyBytes() ?? [])
    }

    /// The non-empty payloads by frame number, frames counted from `firstFrame`.
    public static func payloadsByFrame(_ packets: [KeptPacket], firstFrame: Int = 1) -> [Int: [UInt8]] {
        var out: [Int: [UInt8]] = [:]
        for (i, p) in packets.enumerated() where !p.payload.isEmpty { out[firstFrame + i] = p.payload }
        return out
    }
}

/// What `BackgroundCapture.finish()` hands back.
public struct CaptureRecording {
    /// Every packet captured, in order.
    public var packets: [KeptPacket]
    /// The kernel's counters, read when the capture stopped.
    public var statistics: CaptureStatistics?
    /// The whole packets, in the order of `packets`, when the retention spooled them.
    public var spool: PacketSpool?
}

/// A live capture running on its own thread, for commands that act and watch at once (the lab, the tracer).
/// `waitUntilQuiet` tells when the wire has settled after an action. Every packet that passed the filter is kept
/// (as the `PacketRetention` says) or counted by the kernel as dropped.
public final class BackgroundCapture: @unchecked Sendable {
    private struct State {
        var packets: [CapturedPacket] = []
        var kept: [KeptPacket] = []
        var lastArrival: UInt64 = 0
        var stopping = false
        var failure: CaptureError?
    }

    private let capture: LiveCapture
    public let retention: PacketRetention
    /// Written by the capture thread only while it runs, and by `stop`/`finish` only after it has ended.
    private let spool: PacketSpool?
    private let state = Mutex(State())
    private var thread: pthread_t?
    private let started: UInt64
    /// Set by the first `stop`/`finish`: the counters read then (the capture is closed after).
    private var halted: CaptureStatistics??

    /// The kernel ring when the options name none: 64 MiB. The program being watched may be busy, and a 2 MiB ring
    /// (libpcap's default) holds 32 of loopback's 64 KiB segments. Measured on a loaded 2-core machine, a traced
    /// 1 GB transfer over lo kept as summaries lost 447 and 830 packets in two of six runs with 32 MiB and none in
    /// 13 with 64 MiB (with 2 MiB and whole packets, the trace before this change, it lost 25,234); the larger
    /// ring costs a trace about 10 ms to set up.
    public static let defaultBufferSize: Int32 = 64 << 20

    public var linkType: LinkType { capture.linkType }

    public init(_ options: LiveCapture.Options, retention: PacketRetention = .wholePackets) throws(CaptureError) {
        var options = options
        if options.bufferSize == nil { options.bufferSize = Self.defaultBufferSize }
        self.retention = retention
        if case .summaries(_, true) = retention { spool = try PacketSpool() } else { spool = nil }
        capture = try LiveCapture(options)
        started = monotonicNanoseconds()
        state.withLock { $0.lastArrival = started }
        let box = Unmanaged.passRetained(self)
        var tid = pthread_t()
        let rc = pthread_create(
            &tid, nil,
            { arg in
                let me = Unmanaged<BackgroundCapture>.fromOpaque(arg!).takeRetainedValue()
                me.run()
                return nil
            }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw CaptureError(.other, "cannot start the capture thread (error \(rc))")
        }
        thread = tid
    }

    /// Packets taken out of the ring since the last hand-over, as the retention keeps them.
    private struct Batch {
        var whole: [CapturedPacket] = []
        var kept: [KeptPacket] = []
        var isEmpty: Bool { whole.isEmpty && kept.isEmpty }

        mutating func removeAll() {
            whole.removeAll(keepingCapacity: true)
            kept.removeAll(keepingCapacity: true)
        }
    }

    /// Copies out of the ring what the retention keeps of one packet (`bytes` is valid only during the call).
    private func keep(_ info: CaptureInfo, _ bytes: ByteView, into batch: inout Batch) {
        switch retention {
        case .wholePackets:
            batch.whole.append(CapturedPacket(info: info, bytes: bytes.copyBytes()))
        case .summaries(let payloadBytes, _):
            batch.kept.append(KeptPacket(info: info, bytes: bytes, payloadBytes: payloadBytes))
            spool?.append(info, bytes)
        }
    }

    private func handOver(_ batch: inout Batch, arrival: UInt64?) {
        guard !batch.isEmpty else { return }
        state.withLock {
            $0.packets.append(contentsOf: batch.whole)
            $0.kept.append(contentsOf: batch.kept)
            if let arrival { $0.lastArrival = arrival }
        }
        batch.removeAll()
    }

    private func run() {
        // Packets are copied out of the ring into a local batch and handed over under the lock once per dispatch,
        // not once per packet.
        var batch = Batch()
        while !state.withLock({ $0.stopping }) {
            do {
                try capture.dispatch { info, bytes in keep(info, bytes, into: &batch) }
            } catch {
                state.withLock { $0.failure = error }
                return
            }
            handOver(&batch, arrival: monotonicNanoseconds())
        }
    }

    /// Packets captured so far.
    public var count: Int { state.withLock { $0.packets.count + $0.kept.count } }

    /// Returns once no packet has arrived for `idle`, or when `limit` has passed since the call, or as soon as
    /// `settled` (asked every 2 ms) says no more packets are expected. Without immediate mode packets are handed
    /// over up to the read timeout late, so `idle` is at least twice that timeout.
    public func waitUntilQuiet(idle: Duration, limit: Duration, settled: (() -> Bool)? = nil) {
        let idle =
            capture.options.immediate
            ? idle : max(idle, .milliseconds(2 * Int(capture.options.readTimeoutMilliseconds)))
        let idleNs =
            UInt64(idle.components.seconds) * 1_000_000_000 + UInt64(idle.components.attoseconds / 1_000_000_000)
        let limitNs =
            UInt64(limit.components.seconds) * 1_000_000_000
            + UInt64(limit.components.attoseconds / 1_000_000_000)
        let start = monotonicNanoseconds()
        while true {
            let now = monotonicNanoseconds()
            // The capture thread may stamp an arrival after `now` was read: then the wire is not quiet yet.
            let last = max(state.withLock { $0.lastArrival }, start)
            let quietFor = now > last ? now - last : 0
            if quietFor >= idleNs || now - start >= limitNs || settled?() == true { return }
            usleep(2_000)
        }
    }

    /// Stops capturing and returns every packet, whole, with the kernel's counters. With summaries it stops the
    /// capture and throws: `finish` hands those back. Without immediate mode the kernel hands a block of packets
    /// over when it fills or when the read timeout retires it, so this first waits one timeout (and a little) for
    /// the packets that arrived before the call, and drains the ring after the thread stopped.
    ///
    /// `closeInBackground`: closing a packet socket waits for an RCU grace period in the kernel (about 20 ms here),
    /// which nothing after the last packet needs to wait for; a detached thread does it meanwhile.
    public func stop(closeInBackground: Bool = false) throws(CaptureError)
        -> (packets: [CapturedPacket], statistics: CaptureStatistics?)
    {
        let stats = halt(closeInBackground: closeInBackground)
        // Stopped either way, so an error path's `try? stop()` ends any capture.
        guard retention == .wholePackets else {
            throw CaptureError(.other, "this capture kept summaries, not whole packets: finish() hands them back")
        }
        let (packets, failure) = state.withLock { ($0.packets, $0.failure) }
        if let failure { throw failure }
        return (packets, stats)
    }

    /// Stops capturing, as `stop` does, and returns what the retention kept of every packet, the kernel's counters
    /// and, when spooled, the whole packets.
    public func finish(closeInBackground: Bool = false) throws(CaptureError) -> CaptureRecording {
        let stats = halt(closeInBackground: closeInBackground)
        let (whole, kept, failure) = state.withLock { ($0.packets, $0.kept, $0.failure) }
        if let failure { throw failure }
        // Whole packets (the lab's retention) are summarised here, so either retention can be finished.
        var payloadBytes = Int.max
        if case .summaries(let n, _) = retention { payloadBytes = n }
        let summarised = whole.map { p in
            p.bytes.withUnsafeBytes { KeptPacket(info: p.info, bytes: ByteView($0), payloadBytes: payloadBytes) }
        }
        return CaptureRecording(packets: kept + summarised, statistics: stats, spool: spool)
    }

    /// Ends the capture thread, hands over what is left in the ring, reads the counters and closes the capture.
    private func halt(closeInBackground: Bool) -> CaptureStatistics? {
        if let halted { return halted }
        let batched = !capture.options.immediate && thread != nil
        if batched { usleep(UInt32(capture.options.readTimeoutMilliseconds) * 1000 + 5_000) }
        state.withLock { $0.stopping = true }
        capture.breakLoop()
        if let thread { pthread_join(thread, nil) }
        thread = nil
        if batched {
            var rest = Batch()
            capture.setNonblocking(true)
            // A pending break makes the first dispatch return nothing (PCAP_ERROR_BREAK), so stop at the second
            // empty one.
            var empty = 0
            while empty < 2 {
                let n = (try? capture.dispatch { info, bytes in keep(info, bytes, into: &rest) }) ?? 0
                empty = n == 0 ? empty + 1 : 0
            }
            handOver(&rest, arrival: nil)
        }
        let stats = capture.statistics()
        if !closeInBackground || !Self.closeDetached(capture) { capture.close() }
        halted = .some(stats)
        return stats
    }
}

extension BackgroundCapture {
    /// Closes `capture` on a detached thread; false when no thread could be started.
    fileprivate static func closeDetached(_ capture: LiveCapture) -> Bool {
        let box = Unmanaged.passRetained(capture)
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var tid = pthread_t()
        let rc = pthread_create(
            &tid, &attributes,
            { arg in
                let capture = Unmanaged<LiveCapture>.fromOpaque(arg!).takeRetainedValue()
                capture.close()
                return nil
            }, box.toOpaque())
        if rc != 0 { box.release() }
        return rc == 0
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

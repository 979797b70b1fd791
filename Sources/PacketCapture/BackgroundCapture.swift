import Glibc
import PacketWire
import Synchronization

/// A live capture running on its own thread, keeping copies of the packets, for commands that act and watch at
/// once (the lab, the tracer). `waitUntilQuiet` tells when the wire has settled after an action.
public final class BackgroundCapture: @unchecked Sendable {
    private struct State {
        var packets: [CapturedPacket] = []
        var lastArrival: UInt64 = 0
        var stopping = false
        var failure: CaptureError?
    }

    private let capture: LiveCapture
    private let state = Mutex(State())
    private var thread: pthread_t?
    private let started: UInt64

    public var linkType: LinkType { capture.linkType }

    public init(_ options: LiveCapture.Options) throws(CaptureError) {
        capture = try LiveCapture(options)
        started = monotonicNanoseconds()
        state.withLock { $0.lastArrival = started }
        let box = Unmanaged.passRetained(self)
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
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

    private func run() {
        // Packets are copied out of the ring into a local batch and handed over under the lock once per dispatch,
        // not once per packet.
        var batch: [CapturedPacket] = []
        while !state.withLock({ $0.stopping }) {
            do {
                try capture.dispatch { info, bytes in batch.append(CapturedPacket(info: info, bytes: bytes.copyBytes())) }
            } catch {
                state.withLock { $0.failure = error }
                return
            }
            if !batch.isEmpty {
                let now = monotonicNanoseconds()
                state.withLock {
                    $0.packets.append(contentsOf: batch)
                    $0.lastArrival = now
                }
                batch.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Packets captured so far.
    public var count: Int { state.withLock { $0.packets.count } }

    /// Returns once no packet has arrived for `idle`, or when `limit` has passed since the call, or as soon as
    /// `settled` (asked every 2 ms) says no more packets are expected. Without immediate mode packets are handed
    /// over up to the read timeout late, so `idle` is at least twice that timeout.
    public func waitUntilQuiet(idle: Duration, limit: Duration, settled: (() -> Bool)? = nil) {
        let idle = capture.options.immediate ? idle : max(idle, .milliseconds(2 * Int(capture.options.readTimeoutMilliseconds)))
        let idleNs = UInt64(idle.components.seconds) * 1_000_000_000 + UInt64(idle.components.attoseconds / 1_000_000_000)
        let limitNs = UInt64(limit.components.seconds) * 1_000_000_000
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

    /// Stops capturing and returns every packet with the kernel's counters. Without immediate mode the kernel hands
    /// a block of packets over when it fills or when the read timeout retires it, so this first waits one timeout
    /// (and a little) for the packets that arrived before the call, and drains the ring after the thread stopped.
    ///
    /// `closeInBackground`: closing a packet socket waits for an RCU grace period in the kernel (about 20 ms here),
    /// which nothing after the last packet needs to wait for; a detached thread does it meanwhile.
    public func stop(closeInBackground: Bool = false) throws(CaptureError)
        -> (packets: [CapturedPacket], statistics: CaptureStatistics?)
    {
        let batched = !capture.options.immediate && thread != nil
        if batched { usleep(UInt32(capture.options.readTimeoutMilliseconds) * 1000 + 5_000) }
        state.withLock { $0.stopping = true }
        capture.breakLoop()
        if let thread { pthread_join(thread, nil) }
        thread = nil
        if batched {
            var rest: [CapturedPacket] = []
            capture.setNonblocking(true)
            // A pending break makes the first dispatch return nothing (PCAP_ERROR_BREAK), so stop at the second
            // empty one.
            var empty = 0
            while empty < 2 {
                let n = (try? capture.dispatch { info, bytes in
                    rest.append(CapturedPacket(info: info, bytes: bytes.copyBytes()))
                }) ?? 0
                empty = n == 0 ? empty + 1 : 0
            }
            state.withLock { $0.packets.append(contentsOf: rest) }
        }
        let stats = capture.statistics()
        if !closeInBackground || !Self.closeDetached(capture) { capture.close() }
        let (packets, failure) = state.withLock { ($0.packets, $0.failure) }
        if let failure { throw failure }
        return (packets, stats)
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
        let rc = pthread_create(&tid, &attributes, { arg in
            let capture = Unmanaged<LiveCapture>.fromOpaque(arg!).takeRetainedValue()
            capture.close()
            return nil
        }, box.toOpaque())
        if rc != 0 { box.release() }
        return rc == 0
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

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
        while !state.withLock({ $0.stopping }) {
            do {
                try capture.dispatch { info, bytes in
                    let packet = CapturedPacket(info: info, bytes: bytes.copyBytes())
                    let now = monotonicNanoseconds()
                    state.withLock {
                        $0.packets.append(packet)
                        $0.lastArrival = now
                    }
                }
            } catch {
                state.withLock { $0.failure = error }
                return
            }
        }
    }

    /// Packets captured so far.
    public var count: Int { state.withLock { $0.packets.count } }

    /// Returns once no packet has arrived for `idle`, or when `limit` has passed since the call.
    public func waitUntilQuiet(idle: Duration, limit: Duration) {
        let idleNs = UInt64(idle.components.seconds) * 1_000_000_000 + UInt64(idle.components.attoseconds / 1_000_000_000)
        let limitNs = UInt64(limit.components.seconds) * 1_000_000_000
            + UInt64(limit.components.attoseconds / 1_000_000_000)
        let start = monotonicNanoseconds()
        while true {
            let now = monotonicNanoseconds()
            // The capture thread may stamp an arrival after `now` was read: then the wire is not quiet yet.
            let last = max(state.withLock { $0.lastArrival }, start)
            let quietFor = now > last ? now - last : 0
            if quietFor >= idleNs || now - start >= limitNs { return }
            usleep(2_000)
        }
    }

    /// Stops capturing and returns every packet with the kernel's counters.
    public func stop() throws(CaptureError) -> (packets: [CapturedPacket], statistics: CaptureStatistics?) {
        state.withLock { $0.stopping = true }
        capture.breakLoop()
        if let thread { pthread_join(thread, nil) }
        thread = nil
        let stats = capture.statistics()
        capture.close()
        let (packets, failure) = state.withLock { ($0.packets, $0.failure) }
        if let failure { throw failure }
        return (packets, stats)
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

import PacketWire
import Timeline

/// A way to watch a program's socket calls: ptrace (``Tracer``, which works everywhere), or eBPF beside it.
///
/// An engine starts or attaches to the program its options name (then calls `started`) and records its socket
/// calls and sockets until the program ends (or it detaches). It then calls `settle` while it still watches: the
/// session waits there for the packets that follow the program's end (the ACK of its FIN), from the sockets and
/// how the program ended (the calls may be left out of that result). An engine that sees the kernel build packets
/// also says, for captured packets, where each was built. Capturing and attributing are the session's work, the
/// same for every engine.
public protocol TraceEngine: AnyObject {
    /// "ptrace", "ebpf": the JSON Lines `"engine"`.
    var name: String { get }
    func run(started: () -> Void, settle: (TraceResult) -> Void) throws(TraceError) -> TraceResult
    /// Where each captured packet (decoded) was built (nil where the engine does not know), after
    /// ``run(started:settle:)``.
    func contexts(of captured: [DecodedPacket]) -> [PacketContext?]
}

extension Tracer: TraceEngine {
    public var name: String { "ptrace" }

    /// ptrace sees calls only: the program has ended when `run` returns, and the kernel's packets are not seen.
    public func run(started: () -> Void, settle: (TraceResult) -> Void) throws(TraceError) -> TraceResult {
        let result = try run(started: started)
        settle(result)
        return result
    }

    public func contexts(of captured: [DecodedPacket]) -> [PacketContext?] {
        Array(repeating: nil, count: captured.count)
    }
}

extension TraceResult {
    /// What an engine saw (the ptrace engine builds its own; another engine builds it from its records). The first
    /// label is not `calls:`, which would clash with the memberwise initialiser (internal).
    public init(
        engineCalls calls: [TracedCall], sockets: [UInt64: SocketRecord], exitStatus: Int32?, detached: Bool,
        warnings: [String] = []
    ) {
        self.calls = calls
        self.sockets = sockets
        self.exitStatus = exitStatus
        self.detached = detached
        self.warnings = warnings
    }
}

extension Tracer {
    /// Asks a running trace to stop, from any thread or a signal handler (two atomic stores): a launched program
    /// gets the signal itself from the terminal (or, `fromKill`, from the tracer); once it has exited, or for an
    /// attached process, the tracer detaches; a second request kills a launched program.
    public static func requestStop(fromKill: Bool) {
        traceInterruptCount.add(1, ordering: .relaxed)
        traceInterrupt.store(fromKill ? 2 : 1, ordering: .relaxed)
    }
}

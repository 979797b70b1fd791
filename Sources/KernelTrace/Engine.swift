import PacketWire
import SyscallTrace
import Timeline

/// The eBPF engine behind the trace session's seam: its calls in the ptrace engine's shape, and for each captured
/// packet where the kernel built it.
public final class KernelEngine: TraceEngine {
    public let tracer: KernelTracer
    /// The kernel's packet records of the last run, for ``contexts(of:)``.
    private var packets: [KernelPacket] = []
    /// Why the last run could not trace although the program loaded (registration refused): the ptrace engine may
    /// still work, and nothing ran untraced.
    public private(set) var unavailable: KernelTraceUnavailable?

    public var name: String { "ebpf" }

    /// Loads and attaches the BPF program for a trace with these options (or takes the one `loading` loaded
    /// meanwhile); throws why it cannot.
    public init(_ options: Tracer.Options, loading: KernelProgramLoad? = nil) throws(KernelTraceUnavailable) {
        var k = KernelTracer.Options()
        k.command = options.command
        k.attach = options.attach
        k.environment = options.environment
        k.noteFD = options.noteFD
        tracer = try KernelTracer(k, loading: loading)
    }

    public func run(started: () -> Void, settle: (TraceResult) -> Void) throws(TraceError) -> TraceResult {
        do throws(KernelTraceError) {
            // The session settles on the sockets (which connections can still send); converting every call for it
            // as well, then again at the end, took ~7 ms a thousand exchanges.
            let run = try tracer.run(
                started: started,
                settle: {
                    var result = Self.result($0, calls: false)
                    result.closedConnections = $0.closedConnections
                    settle(result)
                })
            packets = run.packets
            return Self.result(run)
        } catch {
            if case .unavailable(let why) = error {
                unavailable = why
                throw TraceError("the eBPF engine cannot trace here: \(why) (or use --engine ptrace)")
            }
            throw TraceError(error.description)
        }
    }

    static func result(_ run: KernelTraceRun, calls: Bool = true) -> TraceResult {
        TraceResult(
            engineCalls: calls ? run.tracedCalls : [], sockets: run.sockets, exitStatus: run.exitStatus,
            detached: run.detached, warnings: run.warnings)
    }

    public func contexts(of captured: [DecodedPacket]) -> [PacketContext?] {
        let records = packets
        return KernelPacketJoin.match(keys: captured.map { KernelPacketKey($0) }, kernel: records).map { index in
            index.map { Self.context(records[$0]) }
        }
    }

    /// The engine-neutral context of one packet record.
    static func context(_ p: KernelPacket) -> PacketContext {
        switch p.context {
        case .call(let n, let own): .call(n, ownSocket: own)
        case .softirq(let s, let interrupted): .softirq(s.description, interrupted: interrupted)
        case .afterCall(let last, let syscall, let exiting):
            // exit_group(2): the process is ending, and its sockets with it.
            .afterCall(lastCall: last, exiting: exiting || syscall == 231)
        case .untraced: .untraced(p.task.comm.isEmpty ? nil : "\(p.task.comm)[\(p.task.pid)]")
        }
    }
}

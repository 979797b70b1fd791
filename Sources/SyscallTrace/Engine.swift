/// A way to watch a program's socket calls: ptrace (``Tracer``, which works everywhere) today, eBPF beside it.
///
/// An engine starts or attaches to the program its options name, records its socket calls and sockets until the
/// program ends (or it detaches), and returns them. Capturing packets and attributing them is the trace session's
/// work, the same for every engine.
public protocol TraceEngine: AnyObject {
    func run() throws(TraceError) -> TraceResult
}

extension Tracer: TraceEngine {}

import Dispatch

/// A long trace's per-event work (converting calls, writing lines) in two halves on two cores: `work` is called
/// with `0..<count/2` and `count/2..<count` concurrently and the results come back in that order. Below `minimum`
/// events it is one call on this thread (starting a worker costs more than it saves). `work` must only read shared
/// state.
public func inHalves<T>(count: Int, minimum: Int = 2048, _ work: (Range<Int>) -> T) -> [T] {
    guard count >= minimum else { return [work(0..<count)] }
    let ranges = [0..<count / 2, count / 2..<count]
    return withoutActuallyEscaping(work) { work in
        nonisolated(unsafe) let work = work
        var parts = [T?](repeating: nil, count: 2)
        parts.withUnsafeMutableBufferPointer { written in
            // Each worker writes its own element only.
            nonisolated(unsafe) let written = written
            DispatchQueue.concurrentPerform(iterations: 2) { written[$0] = work(ranges[$0]) }
        }
        return parts.map { $0! }
    }
}

/// ``inHalves(count:minimum:_:)`` for work that maps events to an array: the two halves' elements, in order.
public func mapInHalves<E>(count: Int, minimum: Int = 2048, _ transform: (Range<Int>) -> [E]) -> [E] {
    let parts = inHalves(count: count, minimum: minimum, transform)
    return parts.count == 1 ? parts[0] : parts[0] + parts[1]
}

/// A value computed on another thread, for steps that do not depend on each other (a trace session's capture stop
/// beside its events; the eBPF program loading while the session sets up).
public final class Concurrently<Value>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    /// Written by the worker before it signals `done`, read after.
    private var result: Value?

    public init(_ work: @escaping () -> Value) {
        nonisolated(unsafe) let work = work
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            result = work()
            done.signal()
        }
    }

    /// Waits for the value (once only).
    public func value() -> Value {
        done.wait()
        guard let value = result else { preconditionFailure("Concurrently.value() called twice") }
        result = nil
        return value
    }
}

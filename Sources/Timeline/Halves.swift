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

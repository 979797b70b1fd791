extension ByteView {
    /// Copies the view's bytes into `destination` (as many as fit) and returns how many were copied.
    /// For writers that must move a packet without allocating; the copy is bounds-checked on both sides.
    @inlinable public func copyBytes(into destination: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(base.count, destination.count)
        guard n > 0, let from = base.baseAddress, let to = destination.baseAddress else { return 0 }
        to.copyMemory(from: from, byteCount: n)
        return n
    }
}

/// PacketWire decodes link, network and transport headers from captured bytes.
///
/// ## The contract (after smoltcp's `wire` module)
/// - **One checked path.** `ByteView` is the only type in PacketFlow that reads raw bytes of untrusted input.
///   Every read names an offset and a width and returns `nil` when the bytes are not there. Nothing else
///   indexes a buffer, so a short or hostile packet can never trap the process.
/// - **Views and values.** Decoders read through a `ByteView` (zero-copy, valid only while the caller keeps the
///   underlying buffer alive) and produce plain values (`TCPHeader`, `IPv4Header`, ...) that own no memory and
///   whose accessors cannot fail.
/// - **Truncation is a fact, not an error.** A packet is decoded as far as its bytes are valid; the rest is
///   marked in `DecodedPacket.problem`. Impossible values (an IPv4 IHL below 5) are reported as malformed.
/// - **Unknown values are kept** (`.unknown(UInt16)`), so printing and re-writing lose nothing.
///
/// This module imports nothing but the standard library.
public struct ByteView {
    @usableFromInline let base: UnsafeRawBufferPointer

    /// Wraps `buffer`. The view is valid only while the memory behind `buffer` is.
    @inlinable public init(_ buffer: UnsafeRawBufferPointer) { self.base = buffer }

    @inlinable public var count: Int { base.count }
    @inlinable public var isEmpty: Bool { base.isEmpty }

    /// True when `width` bytes starting at `offset` lie inside the view.
    @inlinable @inline(__always) public func has(_ offset: Int, _ width: Int) -> Bool {
        // Written so that neither subtraction can overflow: both operands are non-negative.
        offset >= 0 && width >= 0 && offset <= base.count && base.count - offset >= width
    }

    @inlinable @inline(__always) public func u8(_ offset: Int) -> UInt8? {
        guard has(offset, 1) else { return nil }
        return base.load(fromByteOffset: offset, as: UInt8.self)
    }

    @inlinable @inline(__always) public func u16(_ offset: Int) -> UInt16? {
        guard has(offset, 2) else { return nil }
        return UInt16(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable @inline(__always) public func u32(_ offset: Int) -> UInt32? {
        guard has(offset, 4) else { return nil }
        return UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inlinable @inline(__always) public func u64(_ offset: Int) -> UInt64? {
        guard has(offset, 8) else { return nil }
        return UInt64(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    @inlinable @inline(__always) public func u16le(_ offset: Int) -> UInt16? {
        guard has(offset, 2) else { return nil }
        return UInt16(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable @inline(__always) public func u32le(_ offset: Int) -> UInt32? {
        guard has(offset, 4) else { return nil }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inlinable @inline(__always) public func u64le(_ offset: Int) -> UInt64? {
        guard has(offset, 8) else { return nil }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// The sub-view of `length` bytes at `offset`, or nil when any of it is missing.
    @inlinable @inline(__always) public func slice(_ offset: Int, _ length: Int) -> ByteView? {
        guard has(offset, length) else { return nil }
        return ByteView(UnsafeRawBufferPointer(rebasing: base[offset..<(offset + length)]))
    }

    /// Everything from `offset` on (possibly empty), or nil when `offset` is past the end.
    @inlinable @inline(__always) public func suffix(from offset: Int) -> ByteView? {
        guard offset >= 0, offset <= base.count else { return nil }
        return ByteView(UnsafeRawBufferPointer(rebasing: base[offset...]))
    }

    /// The first `length` bytes, or the whole view when it is shorter.
    @inlinable public func prefix(_ length: Int) -> ByteView {
        ByteView(UnsafeRawBufferPointer(rebasing: base[..<min(max(length, 0), base.count)]))
    }

    /// The raw buffer, for handing to C (libpcap's filter) or to `write(2)`; never for indexing.
    @inlinable public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(base)
    }

    /// Copies the view's bytes out (for payload display, never on the decode hot path).
    public func copyBytes() -> [UInt8] { Array(base) }

    /// Copies `length` bytes at `offset`, or nil when any of them is missing.
    public func bytes(_ offset: Int, _ length: Int) -> [UInt8]? { slice(offset, length).map { Array($0.base) } }
}

import PacketWire

/// A reusable byte buffer for output on the hot path: numbers and addresses are written as digits straight into
/// it, so rendering a packet line allocates nothing once the buffer has grown to its working size.
/// The owner drains it (one `write(2)` per many lines) and calls `removeAll(keepingCapacity:)`.
public struct OutputBuffer: ~Copyable {
    @usableFromInline var base: UnsafeMutablePointer<UInt8>
    @usableFromInline var capacity: Int
    public var count: Int { used }
    @usableFromInline var used = 0

    public init(capacity: Int = 1 << 16) {
        self.capacity = max(capacity, 64)
        base = UnsafeMutablePointer<UInt8>.allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    public mutating func clear() { used = 0 }

    /// The bytes written so far, valid only inside `body`.
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: base, count: used))
    }

    /// A copy of the contents as text (tests, reports; not for the hot path).
    public var text: String { withBytes { String(decoding: $0, as: UTF8.self) } }

    /// Makes room for `n` more bytes.
    @inlinable public mutating func reserve(_ n: Int) {
        if used + n > capacity { grow(used + n) }
    }

    @usableFromInline mutating func grow(_ needed: Int) {
        var c = capacity
        while c < needed { c *= 2 }
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        bigger.update(from: base, count: used)
        base.deallocate()
        base = bigger
        capacity = c
    }

    @inlinable public mutating func byte(_ b: UInt8) {
        reserve(1)
        base[used] = b
        used += 1
    }

    public mutating func append(_ raw: UnsafeRawBufferPointer) {
        guard let src = raw.baseAddress, raw.count > 0 else { return }
        reserve(raw.count)
        UnsafeMutableRawPointer(base + used).copyMemory(from: src, byteCount: raw.count)
        used += raw.count
    }

    public mutating func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    /// Literals on a packet line are a few bytes: a byte loop beats a call to memmove for them.
    @inline(__always)
    public mutating func append(_ s: StaticString) {
        let n = s.utf8CodeUnitCount
        guard n <= 16 else { return append(UnsafeRawBufferPointer(start: s.utf8Start, count: n)) }
        reserve(n)
        let src = s.utf8Start
        let dst = base + used
        for i in 0..<n { dst[i] = src[i] }
        used += n
    }

    /// For text that is not on the per-packet path (or is already a short inline string). Disfavoured so
    /// that literals take the StaticString overload, which copies bytes without touching a String.
    @_disfavoredOverload
    public mutating func append(_ s: String) {
        var s = s
        s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Decimal digits of `v`.
    public mutating func decimal<T: BinaryInteger>(_ v: T) {
        if v < 0 {
            byte(UInt8(ascii: "-"))
            // The magnitude, not a negation: -Int64.min does not exist.
            decimal(UInt64(v.magnitude), minimumWidth: 1)
            return
        }
        decimal(UInt64(v), minimumWidth: 1)
    }

    /// Decimal digits of `v`, left-padded with zeros to `minimumWidth` (at most 20).
    public mutating func decimal(_ v: UInt64, minimumWidth: Int) {
        if v < 10 && minimumWidth <= 1 {
            byte(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v))
            return
        }
        // Digits two at a time from a table of "00" to "99": half the divisions of one digit at a time.
        let pairs: StaticString = """
            00010203040506070809101112131415161718192021222324252627282930313233343536373839\
            40414243444546474849505152535455565758596061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899
            """
        var digits = 1
        var t = v
        while t >= 100 {
            t /= 100
            digits += 2
        }
        if t >= 10 { digits += 1 }
        let width = max(digits, min(minimumWidth, 20))
        reserve(width)
        let table = pairs.utf8Start
        let start = base + used
        var p = start + width
        // 32-bit division is much cheaper, and nearly every number on a packet line fits.
        if v <= UInt64(UInt32.max) {
            Self.writeDigitPairs(UInt32(truncatingIfNeeded: v), before: &p, table: table)
        } else {
            Self.writeDigitPairs(v, before: &p, table: table)
        }
        while p > start {
            p -= 1
            p[0] = UInt8(ascii: "0")
        }
        used += width
    }

    /// Writes `value`'s digits ending just before `p`, two at a time from `table` ("00" to "99"), moving `p` back
    /// to the first digit.
    @inline(__always)
    static func writeDigitPairs<T: FixedWidthInteger & UnsignedInteger>(
        _ value: T, before p: inout UnsafeMutablePointer<UInt8>, table: UnsafePointer<UInt8>
    ) {
        var n = value
        while n >= 100 {
            let q = n / 100
            let r = Int(truncatingIfNeeded: n &- q &* 100) &* 2
            p -= 2
            p[0] = table[r]
            p[1] = table[r &+ 1]
            n = q
        }
        if n >= 10 {
            let r = Int(truncatingIfNeeded: n) &* 2
            p -= 2
            p[0] = table[r]
            p[1] = table[r &+ 1]
        } else {
            p -= 1
            p[0] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: n)
        }
    }

    /// `v` right-aligned in `width` cells (printf `%*d`).
    public mutating func decimal(_ v: Int, rightAlignedIn width: Int) {
        var digits = v < 0 ? 2 : 1
        var t = v.magnitude
        while t >= 10 {
            t /= 10
            digits += 1
        }
        for _ in digits..<max(width, digits) { byte(0x20) }
        decimal(v)
    }

    /// Lowercase hex of `v`, zero-padded to `width`.
    public mutating func hex(_ v: UInt64, width: Int) {
        let digits: StaticString = "0123456789abcdef"
        var shift = (width - 1) * 4
        while shift >= 0 {
            byte(digits.utf8Start[Int((v >> UInt64(shift)) & 0xf)])
            shift -= 4
        }
    }

    /// Dotted quad or RFC 5952 IPv6 (IPv6 goes through `description`, which allocates; IPv4 does not).
    public mutating func address(_ a: IPAddress) {
        switch a {
        case .v4(let v):
            decimal(v >> 24)
            byte(UInt8(ascii: "."))
            decimal((v >> 16) & 0xff)
            byte(UInt8(ascii: "."))
            decimal((v >> 8) & 0xff)
            byte(UInt8(ascii: "."))
            decimal(v & 0xff)
        case .v6(let hi, let lo):
            if hi == 0, lo >> 32 == 0xffff {
                append(a.description)  // IPv4-mapped: rare, keep the shared formatter.
                return
            }
            ipv6(hi, lo)
        }
    }

    /// RFC 5952: lowercase, no leading zeros, the longest run (two or more) of zero groups as "::".
    mutating func ipv6(_ hi: UInt64, _ lo: UInt64) {
        @inline(__always) func group(_ i: Int) -> UInt16 {
            UInt16(truncatingIfNeeded: (i < 4 ? hi : lo) >> UInt64(48 - 16 * (i & 3)))
        }
        var bestStart = -1
        var bestLength = 0
        var runStart = -1
        for i in 0...8 {
            if i < 8, group(i) == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestLength {
                    bestStart = runStart
                    bestLength = i - runStart
                }
                runStart = -1
            }
        }
        if bestLength < 2 { bestStart = -1 }
        var i = 0
        var needColon = false
        let digits: StaticString = "0123456789abcdef"
        while i < 8 {
            if i == bestStart {
                byte(UInt8(ascii: ":"))
                byte(UInt8(ascii: ":"))
                needColon = false
                i += bestLength
                continue
            }
            if needColon { byte(UInt8(ascii: ":")) }
            let g = group(i)
            var shift = 12
            while shift > 0 && (g >> UInt16(shift)) & 0xf == 0 { shift -= 4 }
            while shift >= 0 {
                byte(digits.utf8Start[Int((g >> UInt16(shift)) & 0xf)])
                shift -= 4
            }
            needColon = true
            i += 1
        }
    }

    /// Appends `s` and pads with spaces to `width` columns (printf `%-*s`; ASCII text).
    public mutating func padded(_ s: String, _ width: Int) {
        append(s)
        let n = s.utf8.count
        for _ in n..<max(width, n) { byte(0x20) }
    }

    /// Epoch seconds with nine decimals, as the JSON Lines contract writes `ts`.
    public mutating func epoch(_ t: Timestamp) {
        decimal(t.seconds)
        byte(UInt8(ascii: "."))
        decimal(UInt64(t.nanoseconds), minimumWidth: 9)
    }
}

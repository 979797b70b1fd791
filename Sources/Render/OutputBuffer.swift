import PacketWire

/// A reusable byte buffer for output on the hot path: numbers and addresses are written as digits straight into
/// it, so rendering a packet line allocates nothing once the buffer has grown to its working size.
/// The owner drains it (one `write(2)` per many lines) and calls `removeAll(keepingCapacity:)`.
public struct OutputBuffer {
    public var bytes: [UInt8] = []

    public init(capacity: Int = 1 << 16) { bytes.reserveCapacity(capacity) }

    public var count: Int { bytes.count }

    public mutating func clear() { bytes.removeAll(keepingCapacity: true) }

    @inlinable public mutating func byte(_ b: UInt8) { bytes.append(b) }

    public mutating func append(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// For text that is not on the per-packet path (or is already a short inline string).
    public mutating func append(_ s: String) {
        var s = s
        s.withUTF8 { bytes.append(contentsOf: $0) }
    }

    public mutating func append(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }

    /// Decimal digits of `v`.
    public mutating func decimal<T: BinaryInteger>(_ v: T) {
        if v < 0 {
            bytes.append(UInt8(ascii: "-"))
            decimal(UInt64(-Int64(v)))
            return
        }
        decimal(UInt64(v), minimumWidth: 1)
    }

    /// Decimal digits of `v`, left-padded with zeros to `minimumWidth`.
    public mutating func decimal(_ v: UInt64, minimumWidth: Int) {
        var digits = 1
        var t = v
        while t >= 10 {
            t /= 10
            digits += 1
        }
        let width = max(digits, minimumWidth)
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: width))
        var i = start + width - 1
        t = v
        repeat {
            bytes[i] = UInt8(ascii: "0") + UInt8(t % 10)
            t /= 10
            i -= 1
        } while t > 0
    }

    /// `v` right-aligned in `width` cells (printf `%*d`).
    public mutating func decimal(_ v: Int, rightAlignedIn width: Int) {
        var digits = v < 0 ? 2 : 1
        var t = v.magnitude
        while t >= 10 {
            t /= 10
            digits += 1
        }
        if width > digits { bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: width - digits)) }
        decimal(v)
    }

    /// Lowercase hex of `v`, zero-padded to `width`.
    public mutating func hex(_ v: UInt64, width: Int) {
        let digits: StaticString = "0123456789abcdef"
        var shift = (width - 1) * 4
        while shift >= 0 {
            bytes.append(digits.utf8Start[Int((v >> UInt64(shift)) & 0xf)])
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
        case .v6:
            append(a.description)
        }
    }

    /// Appends `s` and pads with spaces to `width` columns (printf `%-*s`; ASCII text).
    public mutating func padded(_ s: String, _ width: Int) {
        append(s)
        let n = s.utf8.count
        if n < width { bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: width - n)) }
    }

    /// Epoch seconds with nine decimals, as the JSON Lines contract writes `ts`.
    public mutating func epoch(_ t: Timestamp) {
        decimal(t.seconds)
        byte(UInt8(ascii: "."))
        decimal(UInt64(t.nanoseconds), minimumWidth: 9)
    }
}

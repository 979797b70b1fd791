/// An IPv4 or IPv6 address held inline (no heap allocation), printed the way tcpdump and Wireshark print them:
/// dotted quad, and IPv6 in RFC 5952 canonical form (lowercase, longest zero run compressed).
public enum IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    case v4(UInt32)
    /// The 128 bits as two big-endian halves.
    case v6(UInt64, UInt64)

    public var isIPv6: Bool { if case .v6 = self { true } else { false } }

    public var description: String {
        switch self {
        case .v4(let a): return Self.formatV4(a)
        case .v6(let hi, let lo): return Self.formatV6(hi, lo)
        }
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        switch (a, b) {
        case (.v4(let x), .v4(let y)): x < y
        case (.v4, .v6): true
        case (.v6, .v4): false
        case (.v6(let ah, let al), .v6(let bh, let bl)): (ah, al) < (bh, bl)
        }
    }

    static func formatV4(_ a: UInt32) -> String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 21) { buffer in
            let n = writeV4(a, port: nil, into: buffer)
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[0..<n]), as: UTF8.self)
        }
    }

    /// "127.0.0.1:61867" or "[::1]:61867": an address with its port, as every view of an endpoint prints it.
    public static func describe(_ ip: IPAddress, port: UInt16) -> String {
        switch ip {
        case .v4(let a):
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 21) { buffer in
                let n = writeV4(a, port: port, into: buffer)
                return String(decoding: UnsafeBufferPointer(rebasing: buffer[0..<n]), as: UTF8.self)
            }
        case .v6: "[\(ip)]:\(port)"
        }
    }

    /// "a.b.c.d" (and ":port" when given) into `buffer` (21 bytes suffice); returns the length. Traces and
    /// timelines format tens of thousands of addresses, and string interpolation costs ~10 times more.
    public static func writeV4(_ a: UInt32, port: UInt16?, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        var n = 0
        func put(_ v: UInt32) {
            if v >= 100 {
                buffer[n] = UInt8(48 + v / 100)
                n += 1
            }
            if v >= 10 {
                buffer[n] = UInt8(48 + v / 10 % 10)
                n += 1
            }
            buffer[n] = UInt8(48 + v % 10)
            n += 1
        }
        for shift in stride(from: 24, through: 0, by: -8) {
            put((a >> UInt32(shift)) & 0xff)
            if shift > 0 {
                buffer[n] = 0x2e  // "."
                n += 1
            }
        }
        if let port {
            buffer[n] = 0x3a  // ":"
            n += 1
            var digits = 1
            var p = UInt32(port)
            while p >= 10 {
                digits += 1
                p /= 10
            }
            p = UInt32(port)
            for i in stride(from: n + digits - 1, through: n, by: -1) {
                buffer[i] = UInt8(48 + p % 10)
                p /= 10
            }
            n += digits
        }
        return n
    }

    static func formatV6(_ hi: UInt64, _ lo: UInt64) -> String {
        var groups = [UInt16](repeating: 0, count: 8)
        for i in 0..<4 {
            groups[i] = UInt16(truncatingIfNeeded: hi >> (48 - 16 * UInt64(i)))
            groups[i + 4] = UInt16(truncatingIfNeeded: lo >> (48 - 16 * UInt64(i)))
        }
        // IPv4-mapped (::ffff:a.b.c.d) keeps its dotted tail, as RFC 5952 section 5 recommends.
        if hi == 0, lo >> 32 == 0xffff {
            return "::ffff:" + formatV4(UInt32(truncatingIfNeeded: lo))
        }
        // Longest run of two or more zero groups; the first one wins a tie.
        var bestStart = -1
        var bestLength = 0
        var runStart = -1
        for i in 0...8 {
            if i < 8, groups[i] == 0 {
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
        var out = ""
        var i = 0
        while i < 8 {
            if i == bestStart {
                out += "::"
                i += bestLength
                continue
            }
            if !out.isEmpty, !out.hasSuffix(":") { out += ":" }
            out += String(groups[i], radix: 16)
            i += 1
        }
        return out
    }

    /// Parses a dotted quad or an IPv6 address (with `::` and an optional dotted IPv4 tail).
    public init?(_ text: some StringProtocol) {
        if let v4 = Self.parseV4(Substring(text)) {
            self = .v4(v4)
            return
        }
        guard let (hi, lo) = Self.parseV6(Substring(text)) else { return nil }
        self = .v6(hi, lo)
    }

    static func parseV4(_ s: Substring) -> UInt32? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isASCII), let n = UInt32(p), n <= 255 else { return nil }
            value = value << 8 | n
        }
        return value
    }

    static func parseV6(_ s: Substring) -> (UInt64, UInt64)? {
        guard s.contains(":"), s.count <= 45 else { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        let halves = s.components(separatedByDoubleColon: ())
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring, allowV4: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, f) in fields.enumerated() {
                if allowV4, i == fields.count - 1, f.contains(".") {
                    guard let v4 = parseV4(f) else { return nil }
                    out.append(UInt16(v4 >> 16))
                    out.append(UInt16(v4 & 0xffff))
                } else {
                    guard !f.isEmpty, f.count <= 4, let g = UInt16(f, radix: 16) else { return nil }
                    out.append(g)
                }
            }
            return out
        }
        if halves.count == 2 {
            guard let h = groups(halves[0], allowV4: false), let t = groups(halves[1], allowV4: true),
                h.count + t.count <= 7
            else { return nil }
            head = h
            tail = t
        } else {
            guard let h = groups(halves[0], allowV4: true), h.count == 8 else { return nil }
            head = h
        }
        let all = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        var hi: UInt64 = 0
        var lo: UInt64 = 0
        for i in 0..<4 { hi = hi << 16 | UInt64(all[i]) }
        for i in 4..<8 { lo = lo << 16 | UInt64(all[i]) }
        return (hi, lo)
    }
}

extension Substring {
    /// Splits at the first "::" (at most two parts); a second "::" makes a third part, which callers reject.
    fileprivate func components(separatedByDoubleColon: Void) -> [Substring] {
        var parts: [Substring] = []
        var rest = self[...]
        while let r = rest.firstRange(of: "::") {
            parts.append(rest[..<r.lowerBound])
            rest = rest[r.upperBound...]
        }
        parts.append(rest)
        return parts
    }
}

/// A 48-bit Ethernet address.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64
    public init(_ value: UInt64) { self.value = value & 0xffff_ffff_ffff }

    public var description: String {
        (0..<6).map { i in
            let b = UInt8(truncatingIfNeeded: value >> (40 - 8 * UInt64(i)))
            return (b < 16 ? "0" : "") + String(b, radix: 16)
        }.joined(separator: ":")
    }
}

extension ByteView {
    /// The IPv4 address at `offset`, or nil when any of its 4 bytes is missing.
    @inlinable @inline(__always) public func ipv4(_ offset: Int) -> IPAddress? { u32(offset).map { .v4($0) } }

    /// The IPv6 address at `offset`, or nil when any of its 16 bytes is missing.
    @inlinable @inline(__always) public func ipv6(_ offset: Int) -> IPAddress? {
        guard let hi = u64(offset), let lo = u64(offset + 8) else { return nil }
        return .v6(hi, lo)
    }

    @inlinable @inline(__always) func mac(_ offset: Int) -> MACAddress? {
        guard let hi = u16(offset), let lo = u32(offset + 2) else { return nil }
        return MACAddress(UInt64(hi) << 32 | UInt64(lo))
    }
}

import Glibc
import PacketWire
import Timeline

extension UInt64 {
    var decimalDigits: Int {
        var n = 1
        var v = self
        while v >= 10 {
            v /= 10
            n += 1
        }
        return n
    }
}

extension ConversationReport {
    /// The digits glibc's printf("%.*f") writes for `v`, computed exactly: printf rounds the double's exact
    /// binary value to `decimals` places, ties to even. nil (use printf) for negative, huge or non-finite
    /// values and more than 9 places.
    static func exactFixed(_ v: Double, decimals: Int) -> (integer: UInt64, fraction: UInt64)? {
        guard v.isFinite, v >= 0, v < 1e9, decimals >= 0, decimals <= 9, v.sign == .plus else { return nil }
        var scale: UInt64 = 1
        for _ in 0..<decimals { scale *= 10 }
        if v == 0 { return (0, 0) }
        // v = significand * 2^exponent exactly, with an integer significand below 2^53.
        let significand = v.significandBitPattern | (v.isNormal ? 1 << 52 : 0)
        let exponent = Int(v.exponent) - 52
        // v * scale = significand * scale * 2^exponent. v < 1e9 < 2^52 makes the exponent negative, and the
        // product is below 2^53 * 10^9 < 2^83, so a shift of 85 or more leaves less than half: zero.
        guard exponent < 0 else { return nil }
        let shift = -exponent
        guard shift < 85 else { return (0, 0) }
        let product = UInt128(significand) * UInt128(scale)
        var rounded = product >> UInt128(shift)
        let remainder = product & ((1 << UInt128(shift)) - 1)
        let half = UInt128(1) << UInt128(shift - 1)
        if remainder > half || (remainder == half && rounded & 1 == 1) { rounded += 1 }
        // v * scale < 1e18 fits.
        guard let r = UInt64(exactly: rounded) else { return nil }
        return (r / scale, r % scale)
    }
}

/// `tshark -q -z conv,tcp` / `conv,udp` tables, column for column.
public enum ConversationReport {
    /// `drain` is called whenever the buffer holds 64 KiB, so a table of a million rows needs no more memory.
    public static func write(_ table: ConversationTable, proto: UInt8, into o: inout OutputBuffer) {
        write(table, proto: proto, into: &o) { (_: inout OutputBuffer) throws(Never) in }
    }

    public static func write<E: Error>(
        _ table: ConversationTable, proto: UInt8, into o: inout OutputBuffer,
        drain: (inout OutputBuffer) throws(E) -> Void
    ) throws(E) {
        let rule = String(repeating: "=", count: 80)
        o.append(rule + "\n")
        o.append(proto == 6 ? "TCP Conversations\n" : "UDP Conversations\n")
        o.append("Filter:<No Filter>\n")
        o.append(
            "                                                           |       <-      | |       ->      |"
                + " |     Total     |    Relative    |   Duration   |\n")
        o.append(
            "                                                           | Frames  Bytes | | Frames  Bytes |"
                + " | Frames  Bytes |      Start     |              |\n")
        let origin = table.origin ?? Timestamp(seconds: 0, nanoseconds: 0)
        for row in table.sorted(proto: proto) {
            // tshark writes IPv6 endpoints without brackets: "fd00::6:32895".
            endpoint(row.a, into: &o)
            o.append(" <-> ")
            endpoint(row.b, into: &o)
            o.append("  ")
            // Wireshark's "<-" is B to A, "->" is A to B.
            counts(row.framesBtoA, row.bytesBtoA, into: &o)
            o.append("  ")
            counts(row.framesAtoB, row.bytesAtoB, into: &o)
            o.append("  ")
            counts(row.frames, row.bytes, into: &o)
            o.append("  ")
            let start = row.first.nanoseconds(since: origin)
            fixed(seconds: seconds(start), decimals: 9, width: 14, into: &o)
            // tshark subtracts the two relative times as doubles; so do we, to round alike.
            let stop = row.last.nanoseconds(since: origin)
            fixed(seconds: seconds(stop) - seconds(start), decimals: 4, width: 15, into: &o)
            o.byte(0x0a)
            if o.count >= 1 << 16 { try drain(&o) }
        }
        o.append(rule + "\n")
    }

    /// "address:port" left-aligned in 26 columns, written as digits (no string per row).
    static func endpoint(_ e: Endpoint, into o: inout OutputBuffer) {
        let start = o.count
        o.address(e.address)
        o.byte(UInt8(ascii: ":"))
        o.decimal(e.port)
        for _ in (o.count - start)..<max(26, o.count - start) { o.byte(0x20) }
    }

    /// "%6d %-9s": frames, then bytes the way Wireshark's `format_size` writes them.
    static func counts(_ frames: Int, _ bytes: Int, into o: inout OutputBuffer) {
        o.decimal(frames, rightAlignedIn: 6)
        o.byte(0x20)
        let start = o.count
        size(bytes, into: &o)
        for _ in (o.count - start)..<max(9, o.count - start) { o.byte(0x20) }
    }

    /// `size(_:)` written into the buffer.
    static func size(_ n: Int, into o: inout OutputBuffer) {
        if n >= 10 * 1_000_000_000_000 {
            o.decimal(n / 1_000_000_000_000)
            o.append(" TB")
        } else if n >= 10 * 1_000_000_000 {
            o.decimal(n / 1_000_000_000)
            o.append(" GB")
        } else if n >= 10 * 1_000_000 {
            o.decimal(n / 1_000_000)
            o.append(" MB")
        } else if n >= 10 * 1_000 {
            o.decimal(n / 1_000)
            o.append(" kB")
        } else {
            o.decimal(n)
            o.append(" bytes")
        }
    }

    /// Wireshark 4.0 `format_size(…, FORMAT_SIZE_UNIT_BYTES | FORMAT_SIZE_PREFIX_SI)`: "689 bytes", "12 kB", "3 MB".
    static func size(_ n: Int) -> String {
        let units: [(Int, String)] = [
            (1_000_000_000_000, "TB"), (1_000_000_000, "GB"), (1_000_000, "MB"),
            (1_000, "kB"),
        ]
        for (scale, name) in units where n >= 10 * scale { return "\(n / scale) \(name)" }
        return "\(n) bytes"
    }

    /// Seconds with `decimals` places, right-aligned in `width`. Like tshark, the value goes
    /// through a double and C's printf, so halfway cases round the way tshark's do.
    static func seconds(_ ns: Int64) -> Double { Double(ns / 1_000_000_000) + Double(ns % 1_000_000_000) / 1e9 }

    static func fixed(seconds: Double, decimals: Int, width: Int, into o: inout OutputBuffer) {
        if let digits = exactFixed(seconds, decimals: decimals) {
            // Same digits as printf; right-align them the way "%*.*f" does.
            let length = digits.integer.decimalDigits + 1 + decimals
            for _ in length..<max(width, length) { o.byte(0x20) }
            o.decimal(digits.integer, minimumWidth: 1)
            o.byte(UInt8(ascii: "."))
            o.decimal(digits.fraction, minimumWidth: decimals)
            return
        }
        var buffer = [CChar](repeating: 0, count: 64)
        let format = "%\(width).\(decimals)f"
        _ = withVaList([seconds]) { args in
            buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, 64, format, args) }
        }
        o.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
}

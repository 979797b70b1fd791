import PacketWire

/// Converts a count of timestamp units into a `Timestamp` with integer arithmetic only.
struct TimeScale {
    let resolution: TimestampResolution
    let unitsPerSecond: UInt64

    static let microseconds = TimeScale(resolution: .powerOf10(6), unitsPerSecond: 1_000_000)
    static let nanoseconds = TimeScale(resolution: .powerOf10(9), unitsPerSecond: 1_000_000_000)

    private init(resolution: TimestampResolution, unitsPerSecond: UInt64) {
        self.resolution = resolution
        self.unitsPerSecond = unitsPerSecond
    }

    /// From an `if_tsresol` byte; nil when the units per second do not fit in 64 bits.
    init?(tsresol: UInt8) {
        let exponent = Int(tsresol & 0x7F)
        if tsresol & 0x80 != 0 {
            guard exponent <= 63 else { return nil }
            self.init(resolution: .powerOf2(exponent), unitsPerSecond: 1 &<< UInt64(exponent))
        } else {
            guard exponent <= 19 else { return nil }
            self.init(resolution: .powerOf10(exponent), unitsPerSecond: TimeScale.pow10(exponent))
        }
    }

    func timestamp(_ units: UInt64, offsetSeconds: Int64 = 0) -> Timestamp {
        let seconds = units / unitsPerSecond
        let fraction = units % unitsPerSecond
        let nanoseconds: UInt64
        switch resolution {
        case .powerOf10(let e) where e <= 9:
            // fraction < 10^e, so the product stays below 10^9.
            nanoseconds = fraction * TimeScale.pow10(9 - e)
        case .powerOf10(let e):
            nanoseconds = fraction / TimeScale.pow10(e - 9)
        case .powerOf2(let e):
            // fraction < 2^e, so (fraction * 10^9) >> e < 10^9; the product is taken in 128 bits.
            if e == 0 {
                nanoseconds = 0
            } else {
                let (high, low) = fraction.multipliedFullWidth(by: 1_000_000_000)
                nanoseconds = (high &<< UInt64(64 - e)) | (low &>> UInt64(e))
            }
        }
        return Timestamp(
            seconds: Int64(truncatingIfNeeded: seconds) &+ offsetSeconds,
            nanoseconds: UInt32(truncatingIfNeeded: nanoseconds))
    }

    static func pow10(_ e: Int) -> UInt64 {
        var p: UInt64 = 1
        for _ in 0..<e { p &*= 10 }
        return p
    }
}

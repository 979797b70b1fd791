import PacketWire

/// A direction-independent flow key packed into five words: both endpoints in a fixed order (the lower one
/// first), their ports and the protocol. Equality is five integer compares, hashing a few multiplies.
struct FlowKey: Equatable {
    var aHigh: UInt64, aLow: UInt64, bHigh: UInt64, bLow: UInt64
    /// a's port, b's port << 16, protocol << 32, and which addresses are IPv6 (bits 40 and 41).
    var rest: UInt64

    @inline(__always)
    init(_ x: Endpoint, _ y: Endpoint, proto: UInt8) {
        let (xv6, xh, xl) = Self.words(x.address)
        let (yv6, yh, yl) = Self.words(y.address)
        let xFirst = (xv6, xh, xl, x.port) <= (yv6, yh, yl, y.port)
        aHigh = xFirst ? xh : yh
        aLow = xFirst ? xl : yl
        bHigh = xFirst ? yh : xh
        bLow = xFirst ? yl : xl
        let (ap, bp) = xFirst ? (x.port, y.port) : (y.port, x.port)
        let (av6, bv6) = xFirst ? (xv6, yv6) : (yv6, xv6)
        rest = UInt64(ap) | UInt64(bp) << 16 | UInt64(proto) << 32 | av6 << 40 | bv6 << 41
    }

    @inline(__always)
    static func words(_ a: IPAddress) -> (UInt64, UInt64, UInt64) {
        switch a {
        case .v4(let v): (0, 0, UInt64(v))
        case .v6(let h, let l): (1, h, l)
        }
    }

    /// Mixes the words with a per-table seed, so a hostile capture cannot aim many flows at one bucket run.
    @inline(__always)
    func hash(seed: UInt64) -> UInt64 {
        var h = (aLow ^ seed) &* 0x9E37_79B9_7F4A_7C15
        h = (h ^ (h >> 32) ^ bLow) &* 0xC2B2_AE3D_27D4_EB4F
        h = (h ^ (h >> 29) ^ rest) &* 0x1656_67B1_9E37_79F9
        h = (h ^ (h >> 32) ^ aHigh) &* 0x9E37_79B9_7F4A_7C15
        h = (h ^ (h >> 29) ^ bHigh) &* 0xC2B2_AE3D_27D4_EB4F
        return h ^ (h >> 32)
    }
}

/// An open-addressing index from flow keys to dense numbers 0, 1, 2, … (in order of insertion): one probe run
/// per packet, no `Hasher`, and the keys stay in one array. Memory grows with the number of flows.
struct FlowIndex {
    /// Power-of-two table; 0 is empty, otherwise the hash's top 32 bits << 32 | (number + 1).
    private var slots: [UInt64]
    private var keys: [FlowKey] = []
    private var hashes: [UInt64] = []
    private let seed: UInt64

    init() {
        slots = [UInt64](repeating: 0, count: 64)
        seed = UInt64.random(in: 0...UInt64.max)
    }

    var count: Int { keys.count }

    /// The number of `key`, inserting it as the next number when it is new.
    @inline(__always)
    mutating func findOrInsert(_ key: FlowKey) -> (number: Int, inserted: Bool) {
        let h = key.hash(seed: seed)
        let tag = h & 0xFFFF_FFFF_0000_0000
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let s = slots[i]
            if s == 0 { break }
            if s & 0xFFFF_FFFF_0000_0000 == tag {
                let n = Int(truncatingIfNeeded: s & 0xFFFF_FFFF) - 1
                if keys[n] == key { return (n, false) }
            }
            i = (i + 1) & mask
        }
        let n = keys.count
        keys.append(key)
        hashes.append(h)
        slots[i] = tag | UInt64(n + 1)
        if keys.count * 2 > slots.count { grow() }
        return (n, true)
    }

    private mutating func grow() {
        var bigger = [UInt64](repeating: 0, count: slots.count * 2)
        let mask = bigger.count - 1
        for (n, h) in hashes.enumerated() {
            var i = Int(truncatingIfNeeded: h) & mask
            while bigger[i] != 0 { i = (i + 1) & mask }
            bigger[i] = h & 0xFFFF_FFFF_0000_0000 | UInt64(n + 1)
        }
        slots = bigger
    }
}

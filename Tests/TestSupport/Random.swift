import Foundation

/// SplitMix64: a seeded generator for tests, so a failure can be replayed from the seed its message names.
public struct SplitMix64: RandomNumberGenerator {
    public let seed: UInt64
    var state: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        state = seed
    }

    /// `PACKETFLOW_TEST_SEED` from the environment when set (to replay a failure), else `default`.
    public static func seeded(default seed: UInt64) -> SplitMix64 {
        SplitMix64(seed: testSeed(default: seed))
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The seed of a test's random inputs: `PACKETFLOW_TEST_SEED` when set, else `default`.
public func testSeed(default seed: UInt64) -> UInt64 {
    ProcessInfo.processInfo.environment["PACKETFLOW_TEST_SEED"].flatMap { UInt64($0) } ?? seed
}

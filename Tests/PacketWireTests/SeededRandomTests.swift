import TestSupport
import Testing

/// The tests' seeded generator is SplitMix64 exactly: a seed printed by a failing test replays the same inputs.
@Suite struct SeededRandomTests {
    /// The first outputs for seed 0 of the reference implementation (Vigna's splitmix64.c).
    @Test func matchesTheReferenceSequence() {
        var rng = SplitMix64(seed: 0)
        #expect(
            [rng.next(), rng.next(), rng.next()] == [
                0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F,
            ])
        #expect(rng.seed == 0)
        var other = SplitMix64(seed: 1_234_567)
        #expect(other.next() == 0x599E_D017_FB08_FC85)
    }
}

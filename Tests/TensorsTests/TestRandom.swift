/// Knuth's MMIX linear congruential generator: the same test inputs on every run and platform.
struct TestRandom {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    /// The next 64 bits of state.
    mutating func bits() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state
    }

    /// A float in [−scale, scale): the top 24 bits of the next state, signed, times scale / 2^23.
    mutating func float(_ scale: Float = 1) -> Float {
        Float(Int64(bitPattern: bits()) >> 40) / Float(1 << 23) * scale
    }
}

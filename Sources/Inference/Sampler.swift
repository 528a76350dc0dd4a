import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How the next token is chosen.
public struct SamplingOptions: Sendable {
    /// 0 = greedy (the most likely token, the lowest id on ties): deterministic.
    public var temperature: Float = 0
    /// Keep only the k most likely tokens (0 = all).
    public var topK: Int = 0
    /// Keep the smallest set of most likely tokens whose probability reaches p (1 = all).
    public var topP: Float = 1
    /// Seed of the random draws: the same seed gives the same text.
    public var seed: UInt64 = 0

    /// Greedy decoding: temperature 0, no top-k or top-p, seed 0.
    public init() {}
}

/// Picks tokens from logits: greedy, or temperature with top-k and top-p, from a seeded generator.
public struct Sampler {
    /// The settings every pick uses.
    public let options: SamplingOptions
    private var state: UInt64

    /// A sampler whose draws depend only on `options.seed`.
    public init(_ options: SamplingOptions) {
        self.options = options
        state = options.seed &+ 0x9E37_79B9_7F4A_7C15
    }

    /// SplitMix64: a small generator whose sequence depends only on the seed.
    private mutating func uniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53)
    }

    /// The index of the largest logit (the first one on ties): greedy decoding.
    public static func argmax(_ logits: [Float]) -> Int {
        precondition(!logits.isEmpty, "argmax of no logits")
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        return best
    }

    public mutating func next(_ logits: [Float]) -> Int {
        guard options.temperature > 0 else { return Self.argmax(logits) }
        var order = Array(logits.indices).sorted { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }
        if options.topK > 0 { order = Array(order.prefix(options.topK)) }
        let top = logits[order[0]]
        var probs = order.map { Double(expf((logits[$0] - top) / options.temperature)) }
        let total = probs.reduce(0, +)
        probs = probs.map { $0 / total }
        if options.topP < 1 {
            var cumulative = 0.0
            var keep = probs.count
            for (i, p) in probs.enumerated() {
                cumulative += p
                if cumulative >= Double(options.topP) {
                    keep = i + 1
                    break
                }
            }
            order = Array(order.prefix(keep))
            probs = Array(probs.prefix(keep))
            let kept = probs.reduce(0, +)
            probs = probs.map { $0 / kept }
        }
        var u = uniform()
        for (i, p) in probs.enumerated() {
            u -= p
            if u < 0 { return order[i] }
        }
        return order[order.count - 1]
    }
}

/// log Σ exp(logits), shifted by the maximum for stability: the AVX-512 kernel where `level` (the
/// model's) has it, else in f64 with libm. Both are within ~1e-6 of the exact value; each is the same
/// on every run.
private func logSumExp(_ logits: ArraySlice<Float>, level: KernelLevel) -> Double {
    if !logits.isEmpty,
        let fast = logits.withUnsafeBufferPointer({ level.logSumExp($0.baseAddress!, count: $0.count) })
    {
        return fast
    }
    let m = Double(logits.max() ?? 0)
    return m + log(logits.reduce(0.0) { $0 + exp(Double($1) - m) })
}

/// `logSoftmax(logits)[target]` without building the whole array (the same value, bit for bit), with
/// the log-sum-exp of `level`'s kernels (the model's, so every level can be checked).
public func logSoftmaxEntry(_ target: Int, of logits: ArraySlice<Float>, level: KernelLevel = .current) -> Double {
    Double(logits[logits.startIndex + target]) - logSumExp(logits, level: level)
}

/// Numerically stable log-softmax, with the log-sum-exp of `level`'s kernels.
public func logSoftmax(_ logits: ArraySlice<Float>, level: KernelLevel = .current) -> [Double] {
    let lse = logSumExp(logits, level: level)
    return logits.map { Double($0) - lse }
}

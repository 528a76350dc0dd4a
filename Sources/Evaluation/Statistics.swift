import Tensors

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A two-sided interval of a measured quantity at a stated confidence.
public struct Interval: Sendable, Equatable {
    /// The lower bound.
    public var lower: Double
    /// The upper bound.
    public var upper: Double

    /// An interval from its bounds (`lower ≤ upper`).
    public init(lower: Double, upper: Double) {
        self.lower = lower
        self.upper = upper
    }
}

extension Interval {
    /// A share and this interval of it, in percent: "81.2% [68.1–89.8]" (`decimals` for the
    /// share, one fewer, at least none, for the bounds).
    public func percent(of value: Double, decimals: Int = 1) -> String {
        let bounds = "%.\(max(0, decimals - 1))f"
        return String(cFormat: "%.\(decimals)f%%", 100 * value) + " [" + String(cFormat: bounds, 100 * lower) + "–"
            + String(cFormat: bounds, 100 * upper) + "]"
    }
}

/// The statistics av's reports use: intervals for shares and means, exact paired tests.
///
/// Every function is deterministic: the bootstraps take a seed, so a report prints the same
/// numbers on every run and machine.
public enum Statistics {
    /// The confidence av prints intervals at unless a check asks for another.
    public static let defaultConfidence = 0.95

    /// The standard normal quantile Φ⁻¹(p) for p in (0, 1), to about 1e-15 relative (Acklam's
    /// rational approximation, then one Halley step on `erfc`; the upper half by symmetry).
    public static func normalQuantile(_ p: Double) -> Double {
        precondition(p > 0 && p < 1, "a probability in (0, 1)")
        // The upper half by symmetry: 1 − p is exact there, Φ(x) − p near 1 is not.
        if p > 0.5 { return -normalQuantile(1 - p) }
        let a = [
            -3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
            -3.066479806614716e+01, 2.506628277459239e+00,
        ]
        let b = [
            -5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
            -1.328068155288572e+01,
        ]
        let c = [
            -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
            4.374664141464968e+00, 2.938163982698783e+00,
        ]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        func tail(_ q: Double) -> Double {
            let r = (-2 * log(q)).squareRoot()
            return (((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5])
                / ((((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1)
        }
        var x: Double
        if p < 0.02425 {
            x = tail(p)
        } else {
            let q = p - 0.5
            let r = q * q
            x =
                (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
                / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
        }
        // One Halley step: e = Φ(x) − p, with Φ(x) = erfc(−x/√2)/2.
        let e = 0.5 * erfc(-x / 2.0.squareRoot()) - p
        let u = e * (2 * Double.pi).squareRoot() * exp(x * x / 2)
        x -= u / (1 + x * u / 2)
        return x
    }

    /// The Wilson score interval of a proportion: `successes` of `trials` at `confidence`.
    /// Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or `trials`.
    public static func wilson(successes: Int, trials: Int, confidence: Double = defaultConfidence) -> Interval {
        precondition(trials > 0 && (0...trials).contains(successes), "successes of trials")
        let z = normalQuantile(1 - (1 - confidence) / 2)
        let n = Double(trials)
        let p = Double(successes) / n
        let z2 = z * z
        let center = (p + z2 / (2 * n)) / (1 + z2 / n)
        let half = z / (1 + z2 / n) * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()
        return Interval(lower: max(0, center - half), upper: min(1, center + half))
    }

    /// The Wilson interval of a share measured as a count of `trials` (a share of prompts or of
    /// pairs): the count is the share times `trials`, rounded.
    public static func wilson(share: Double, trials: Int, confidence: Double = defaultConfidence) -> Interval {
        let count = min(max(Int((share * Double(trials)).rounded()), 0), trials)
        return wilson(successes: count, trials: trials, confidence: confidence)
    }

    /// P(X ≤ k) for X ~ Binomial(n, 1/2), summed in log space.
    static func binomialHalfCDF(_ k: Int, _ n: Int) -> Double {
        guard k >= 0 else { return 0 }
        guard k < n else { return 1 }
        let logHalfN = Double(n) * log(0.5)
        var total = 0.0
        for i in 0...k {
            total += exp(lgamma(Double(n + 1)) - lgamma(Double(i + 1)) - lgamma(Double(n - i + 1)) + logHalfN)
        }
        return min(1, total)
    }

    /// McNemar's exact test of paired outcomes: `onlyFirst` items the first model got right and the
    /// second wrong, `onlySecond` the reverse. Returns the two-sided p-value of "both models are
    /// right equally often" (the binomial test of the discordant items at 1/2; 1 with none).
    public static func mcNemarExact(onlyFirst: Int, onlySecond: Int) -> Double {
        let n = onlyFirst + onlySecond
        guard n > 0 else { return 1 }
        return min(1, 2 * binomialHalfCDF(min(onlyFirst, onlySecond), n))
    }

    /// A percentile bootstrap interval of the mean of `values`: `resamples` resamples with
    /// replacement drawn from a generator seeded with `seed`.
    public static func bootstrapMean(
        _ values: [Double], confidence: Double = defaultConfidence, resamples: Int = 2000, seed: UInt64 = 0
    ) -> Interval {
        precondition(!values.isEmpty, "values to resample")
        var generator = SplitMix64(seed: seed)
        var means: [Double] = []
        means.reserveCapacity(resamples)
        for _ in 0..<resamples {
            var sum = 0.0
            for _ in values.indices { sum += values[Int(generator.next() % UInt64(values.count))] }
            means.append(sum / Double(values.count))
        }
        means.sort()
        let alpha = (1 - confidence) / 2
        return Interval(lower: quantile(means, alpha), upper: quantile(means, 1 - alpha))
    }

    /// The two-sided p-value of "the paired differences have mean 0", by a bootstrap of the
    /// differences recentred to mean 0: the share of resampled means at least as far from 0 as
    /// the observed one (with the observed sample counted, so never 0).
    public static func pairedBootstrapP(_ differences: [Double], resamples: Int = 10_000, seed: UInt64 = 0)
        -> Double
    {
        precondition(!differences.isEmpty, "differences to resample")
        let n = Double(differences.count)
        let observed = differences.reduce(0, +) / n
        let centred = differences.map { $0 - observed }
        var generator = SplitMix64(seed: seed)
        var extreme = 1
        for _ in 0..<resamples {
            var sum = 0.0
            for _ in centred.indices { sum += centred[Int(generator.next() % UInt64(centred.count))] }
            if abs(sum / n) >= abs(observed) - 1e-15 { extreme += 1 }
        }
        return Double(extreme) / Double(resamples + 1)
    }

    /// The `q` quantile of sorted values, interpolating linearly between order statistics
    /// (NumPy's default).
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        let position = q * Double(sorted.count - 1)
        let below = Int(position.rounded(.down))
        let above = min(below + 1, sorted.count - 1)
        return sorted[below] + (sorted[above] - sorted[below]) * (position - Double(below))
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): a small, fast generator whose stream a seed fixes on
/// every platform, for the seeded bootstraps.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

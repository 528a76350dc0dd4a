import Foundation
import Testing

@testable import Evaluation

/// The statistics against scipy and statsmodels (Fixtures/make_statistics_reference.py).
@Suite("Intervals and paired tests")
struct StatisticsTests {
    struct Reference: Decodable {
        struct Wilson: Decodable {
            var successes: Int
            var trials: Int
            var confidence: Double
            var lower: Double
            var upper: Double
        }
        struct Quantile: Decodable {
            var p: Double
            var z: Double
        }
        struct McNemar: Decodable {
            var onlyFirst: Int
            var onlySecond: Int
            var p: Double
        }
        var wilson: [Wilson]
        var normalQuantile: [Quantile]
        var mcnemar: [McNemar]
    }

    let reference: Reference = {
        let url = Bundle.module.url(forResource: "Fixtures/statistics_reference", withExtension: "json")!
        return try! JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
    }()

    @Test("Φ⁻¹ equals scipy's norm.ppf in both tails and the middle")
    func normalQuantile() {
        #expect(reference.normalQuantile.count >= 10)
        for q in reference.normalQuantile {
            let got = Statistics.normalQuantile(q.p)
            #expect(abs(got - q.z) <= 1e-12 * max(1, abs(q.z)), "p \(q.p): \(got) against \(q.z)")
        }
    }

    @Test("Wilson intervals equal statsmodels' proportion_confint(method: wilson)")
    func wilson() {
        #expect(reference.wilson.count >= 10)
        for w in reference.wilson {
            let got = Statistics.wilson(successes: w.successes, trials: w.trials, confidence: w.confidence)
            #expect(abs(got.lower - w.lower) <= 1e-12, "\(w.successes)/\(w.trials): \(got) against \(w)")
            #expect(abs(got.upper - w.upper) <= 1e-12, "\(w.successes)/\(w.trials): \(got) against \(w)")
        }
    }

    @Test("McNemar's exact p-values equal statsmodels' mcnemar(exact: true)")
    func mcNemar() {
        #expect(reference.mcnemar.count >= 10)
        for m in reference.mcnemar {
            let got = Statistics.mcNemarExact(onlyFirst: m.onlyFirst, onlySecond: m.onlySecond)
            #expect(abs(got - m.p) <= 1e-12 * max(1, m.p), "\(m.onlyFirst)/\(m.onlySecond): \(got) against \(m.p)")
        }
    }

    @Test("a bootstrap interval is seeded, holds the mean, and narrows like 1/√n")
    func bootstrap() {
        var g = SplitMix64(seed: 7)
        let values = (0..<400).map { _ in Double(g.next() % 1000) / 1000 }
        let a = Statistics.bootstrapMean(values, seed: 1)
        #expect(a == Statistics.bootstrapMean(values, seed: 1))
        #expect(a != Statistics.bootstrapMean(values, seed: 2))
        let mean = values.reduce(0, +) / Double(values.count)
        #expect(a.lower < mean && mean < a.upper)
        // Uniform on [0, 1): σ ≈ 0.289, so the 95% half-width is about 1.96·0.289/√400 ≈ 0.028.
        let half = (a.upper - a.lower) / 2
        #expect(abs(half - 0.0283) < 0.004, "\(half)")
        let quarter = Statistics.bootstrapMean(Array(values.prefix(100)), seed: 1)
        #expect(abs((quarter.upper - quarter.lower) / (a.upper - a.lower) - 2) < 0.35)
        let constant = Statistics.bootstrapMean([0.25, 0.25, 0.25])
        #expect(constant == Interval(lower: 0.25, upper: 0.25))
    }

    @Test("a paired bootstrap finds a shift and not its absence")
    func pairedBootstrap() {
        var g = SplitMix64(seed: 3)
        let noise = (0..<200).map { _ in Double(g.next() % 2001) / 1000 - 1 }
        #expect(Statistics.pairedBootstrapP(noise.map { $0 + 0.3 }, resamples: 2000) < 0.001)
        let centred = noise.map { $0 - noise.reduce(0, +) / Double(noise.count) }
        #expect(Statistics.pairedBootstrapP(centred, resamples: 2000) > 0.9)
        #expect(
            Statistics.pairedBootstrapP(noise, resamples: 2000, seed: 5)
                == Statistics.pairedBootstrapP(noise, resamples: 2000, seed: 5))
    }
}

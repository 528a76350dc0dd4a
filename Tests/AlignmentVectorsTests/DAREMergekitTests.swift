import AVTestSupport
import Foundation
import Testing

@testable import AlignmentVectors
@testable import SafeTensors
@testable import Tensors

/// DARE and the sign count against mergekit's definitions (Fixtures/methods/make_dare.py): mergekit
/// merges the fixture's three fine-tunes with av's draw of kept entries put in place of its own
/// `bernoulli`, so the two can be compared entry by entry: the L1 rescaling, the weighting, the sign
/// election by sum or by count, the sum and the divisor are mergekit's.
@Suite("Merge methods: DARE and --consensus count as mergekit defines them")
struct DAREMergekitTests {
    struct Settings: Decodable {
        var seed: UInt64
        var density: Double
        var weights: [Double]
    }

    @Test(
        "dare-linear, dare-ties, dare-ties with count and ties with count within f32 rounding of mergekit",
        arguments: ["dare-linear", "dare-ties", "dare-ties-count", "ties-count"])
    func matchesMergekit(name: String) throws {
        let settings = try JSONDecoder().decode(
            Settings.self, from: Data(contentsOf: URL(fileURLWithPath: fixture("methods/dare.json"))))
        let dir = TemporaryDirectory()
        let suite = MergeMethodTests()
        let avs = try suite.vectors(dir)
        let count = name.hasSuffix("-count")
        let kind = try #require(MergeMethod.Kind(spelling: count ? String(name.dropLast(6)) : name))
        func merged(_ consensus: MergeMethod.Consensus) throws -> [String: [Float]] {
            var options = MergeOptions()
            options.method = MergeMethod(
                kind: kind, density: settings.density, seed: settings.seed, consensus: consensus)
            let out = dir.file("\(consensus).safetensors")
            _ = try merge(
                base: Checkpoint(path: fixture("methods/base/model.safetensors")),
                terms: zip(avs, settings.weights).map {
                    MergeTerm(vector: try AlignmentVector(path: $0), coefficient: $1)
                },
                output: out, options: options)
            return try suite.floats(out)
        }
        let ours = try merged(count ? .count : .sum)
        let theirs = try suite.floats(fixture("methods/mergekit-\(name).safetensors"))
        let base = try suite.floats(fixture("methods/base/model.safetensors"))
        let tuned = try (0..<3).map { try suite.floats(fixture("methods/tuned\($0)/model.safetensors")) }
        // Each entry is a sum of at most three weighted deltas, rescaled by up to 1/D (about) in DARE.
        let rescale: Float = kind == .ties ? 1 : Float(2 / settings.density)
        var worst: Float = 0
        var moved = 0
        var total = 0
        for (tensor, expected) in theirs {
            let got = try #require(ours[tensor], "\(tensor) missing")
            for i in expected.indices {
                let largest = (0..<3).map {
                    abs(Float(settings.weights[$0]) * (tuned[$0][tensor]![i] - base[tensor]![i])) * rescale
                }.max()!
                let bound = expected[i].ulp + 4 * largest.ulp
                worst = max(worst, abs(got[i] - expected[i]) / bound)
                #expect(abs(got[i] - expected[i]) <= bound, "\(tensor)[\(i)]: av \(got[i]), mergekit \(expected[i])")
                moved += expected[i] != base[tensor]![i] ? 1 : 0
                total += 1
            }
        }
        print("\(name): worst |av − mergekit| / bound = \(worst)")
        // The draw and the trim really ran: some entries kept the base's value, most moved.
        #expect(moved > total / 2 && moved < total, "\(moved) of \(total) moved")
        // The consensus matters on these fixtures: the other one gives another merge.
        if kind != .dareLinear {
            let other = try merged(count ? .sum : .count)
            #expect(theirs.contains { tensor, values in values.indices.contains { other[tensor]![$0] != values[$0] } })
        }
    }
}

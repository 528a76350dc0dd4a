import AVTestSupport
import Foundation
import Testing

@testable import AlignmentVectors
@testable import SafeTensors
@testable import Tensors

/// TIES and DARE: against mergekit's own merges (fixtures/methods/make_methods.py) and by their
/// definitions.
@Suite("Merge methods: TIES and DARE")
struct MergeMethodTests {
    /// The fixture's three vectors, made by av diff.
    func vectors(_ dir: TemporaryDirectory) throws -> [String] {
        try (0..<3).map { i in
            let out = dir.file("tuned\(i).av")
            _ = try makeAV(
                fixture("methods/base/model.safetensors"), fixture("methods/tuned\(i)/model.safetensors"), out)
            return out
        }
    }

    func floats(_ path: String) throws -> [String: [Float]] {
        let file = try SafeTensorsFile(path: path)
        var out: [String: [Float]] = [:]
        for t in file.tensors {
            out[t.name] = ElementOps.widen(t.dtype, file.bytes(of: t), count: t.elementCount).map { Float($0) }
        }
        return out
    }

    /// mergekit computes in f32 (Δ = tuned − base, λ·Δ, the masked sum, the division, base + …), av in
    /// f64 rounded once: they agree within the result's ulp plus a few ulps of the largest λ·Δ.
    @Test(
        "TIES, Breadcrumbs, Model Stock, SCE, [Nu]SLERP (mergekit) and magnitude_prune (PEFT) within f32 rounding",
        arguments: [
            ("ties", 0.5, nil, 0), ("ties-raw", 0.3, false, 0), ("breadcrumbs", 0.6, nil, 0.05),
            ("breadcrumbs-ties", 0.5, nil, 0.1), ("model-stock", 1, nil, 0), ("sce", 0.5, nil, 0),
            ("nuslerp", 1, nil, 0), ("magnitude-prune", 0.4, nil, 0), ("slerp", 1, nil, 0),
        ] as [(String, Double, Bool?, Double)])
    func tiesMatchesMergekit(name: String, density: Double, normalize: Bool?, gamma: Double) throws {
        let dir = TemporaryDirectory()
        let avs = try vectors(dir)
        // Model Stock and SCE take no weights in mergekit: λ = 1 each.
        var weights = name == "model-stock" || name == "sce" ? [1.0, 1.0, 1.0] : [0.7, 1.0, 0.4]
        // NuSLERP interpolates two vectors.
        if name == "nuslerp" { weights[2] = 0 }
        // SLERP goes from the base to one fine-tune, at t = 0.6.
        if name == "slerp" { weights = [0.6, 0, 0] }
        var options = MergeOptions()
        let kind = MergeMethod.Kind(spelling: name.hasPrefix("ties") ? "ties" : name)!
        options.method = MergeMethod(kind: kind, density: density, normalize: normalize, gamma: gamma)
        let out = dir.file("av.safetensors")
        let report = try merge(
            base: Checkpoint(path: fixture("methods/base/model.safetensors")),
            terms: zip(avs, weights).map { MergeTerm(vector: try AlignmentVector(path: $0), coefficient: $1) },
            output: out, options: options)
        #expect(report.touchedTensors > 0)
        let ours = try floats(out)
        let theirs = try floats(
            fixture(
                name == "magnitude-prune"
                    ? "methods/peft-magnitude-prune.safetensors" : "methods/mergekit-\(name).safetensors"))
        let base = try floats(fixture("methods/base/model.safetensors"))
        let tuned = try (0..<3).map { try floats(fixture("methods/tuned\($0)/model.safetensors")) }
        var changed = 0
        var worst: Float = 0
        for (tensor, expected) in theirs {
            let got = try #require(ours[tensor], "\(tensor) missing")
            for i in expected.indices {
                // NuSLERP's result is as large as the deltas themselves (its λ only set t).
                let scale = (0..<3).map {
                    name == "nuslerp" || name == "slerp" ? (weights[$0] == 0 ? 0 : 1) : Float(weights[$0])
                }
                let largest = (0..<3).map { abs(scale[$0] * (tuned[$0][tensor]![i] - base[tensor]![i])) }
                    .max()!
                // Model Stock: mergekit forms t·mean(w) + (1 − t)·w₀ in f32: roundings of products as
                // large as the weights (|t| and |1 − t| up to ~1.5), beside the result's own.
                let bound = (name == "model-stock" || name == "slerp" ? 4 : 1) * expected[i].ulp + 4 * largest.ulp
                worst = max(worst, abs(got[i] - expected[i]) / bound)
                #expect(abs(got[i] - expected[i]) <= bound, "\(tensor)[\(i)]: av \(got[i]), mergekit \(expected[i])")
                if expected[i] != base[tensor]![i] { changed += 1 }
            }
        }
        print("TIES \(name): worst |av − mergekit| / bound = \(worst)")
        // In bf16 the two agree within one rounding of the output: equal, or one bf16 ulp apart.
        options.dtype = .bf16
        let bf16 = dir.file("av-bf16.safetensors")
        _ = try merge(
            base: Checkpoint(path: fixture("methods/base/model.safetensors")),
            terms: zip(avs, weights).map { MergeTerm(vector: try AlignmentVector(path: $0), coefficient: $1) },
            output: bf16, options: options)
        var equal = 0
        var count = 0
        for (tensor, got) in try floats(bf16) {
            for (g, e) in zip(got, theirs[tensor]!) {
                let rounded = FloatBits.bf16ToFloat(FloatBits.floatToBF16(e))
                let step = Float(bitPattern: (rounded.bitPattern & 0x7F80_0000)) * 0x1p-7
                #expect(abs(g - rounded) <= step, "\(tensor): av \(g), mergekit \(e)")
                equal += g == rounded ? 1 : 0
                count += 1
            }
        }
        #expect(Double(equal) > 0.99 * Double(count))
        // The trim really ran: about 1 − (1 − D)³ of the elements moved, not all of them (Model Stock and
        // NuSLERP: all).
        let total = theirs.values.reduce(0) { $0 + $1.count }
        let dense = ["model-stock", "nuslerp", "slerp"].contains(name)
        #expect(changed > total / 4 && (dense ? changed == total : changed < total))
    }

    @Test("sign election: sum follows the weighted sum, count the majority; normalize divides by agreeing λ")
    func signElection() {
        let deltas: [[Double]] = [[1, -1, 2, 0], [-3, -1, 1, 0], [1, 2, -4, 0]]
        let weights = [1.0, 1.0, 0.5]
        var m = MergeMethod(kind: .ties, density: 1, normalize: false)
        // sum: element 0 votes 1 − 3 + 0.5 = −1.5 → negative: only −3 stays.
        #expect(m.combine(tensor: "t", deltas: deltas, weights: weights, domains: ["a", "b", "c"]) == [-3, -2, 3, 0])
        m.consensus = .count
        // count: element 0 has two positive signs → 1 + 0.5; element 2: two positive → 2 + 1.
        #expect(m.combine(tensor: "t", deltas: deltas, weights: weights, domains: ["a", "b", "c"]) == [1.5, -2, 3, 0])
        m.normalize = true
        #expect(
            m.combine(tensor: "t", deltas: deltas, weights: weights, domains: ["a", "b", "c"]) == [1, -1, 1.5, 0])
    }

    @Test("DARE keeps about D of the entries, keeps the L1 norm, and repeats for a seed on any thread count")
    func dare() throws {
        let n = 200_000
        let delta = values(n, seed: 9).map(Double.init)
        let method = MergeMethod(kind: .dareLinear, density: 0.3, seed: 42)
        let dropped = method.combine(tensor: "w", deltas: [delta], weights: [1], domains: ["d"])
        let kept = dropped.filter { $0 != 0 }.count
        let sigma = (Double(n) * 0.3 * 0.7).squareRoot()
        #expect(abs(Double(kept) - 0.3 * Double(n)) < 5 * sigma)
        let l1 = delta.reduce(0) { $0 + $1.magnitude }
        #expect(abs(dropped.reduce(0) { $0 + $1.magnitude } - l1) <= 1e-12 * l1)
        // Kept entries are scaled copies of the originals.
        let scale = l1 / delta.indices.filter { dropped[$0] != 0 }.reduce(0) { $0 + delta[$1].magnitude }
        #expect(delta.indices.allSatisfy { dropped[$0] == 0 || dropped[$0] == delta[$0] * scale })
        // Another seed or domain draws other entries; the same ones draw the same.
        let again = method.combine(tensor: "w", deltas: [delta], weights: [1], domains: ["d"])
        #expect(again == dropped)
        var other = method
        other.seed = 43
        #expect(other.combine(tensor: "w", deltas: [delta], weights: [1], domains: ["d"]) != dropped)
        #expect(method.combine(tensor: "w", deltas: [delta], weights: [1], domains: ["e"]) != dropped)

        // Through merge: the same bytes with 1 and 3 threads; recorded in the provenance.
        let (outputs, provenance) = try mergedOnThreads(MergeMethod(kind: .dareTies, density: 0.4, seed: 7))
        #expect(provenance.contains(#""method":{"method":"dare-ties","density":0.4"#))
        #expect(provenance.contains(#""seed":7"#))
        #expect(outputs[0] == outputs[1])
    }

    /// The fixture's three vectors merged by `method` on 1 and on 3 threads: both outputs' bytes, and the
    /// provenance of the last.
    func mergedOnThreads(_ method: MergeMethod) throws -> ([[UInt8]], String) {
        let dir = TemporaryDirectory()
        let avs = try vectors(dir)
        var outputs: [[UInt8]] = []
        var provenance = ""
        for threads in [1, 3] {
            var options = MergeOptions()
            options.threads = threads
            options.method = method
            let out = dir.file("merged\(threads).safetensors")
            _ = try merge(
                base: Checkpoint(path: fixture("methods/base/model.safetensors")),
                terms: zip(avs, [0.7, 1.0, 0.4]).map {
                    MergeTerm(vector: try AlignmentVector(path: $0), coefficient: $1)
                }, output: out, options: options)
            outputs.append(readFile(out))
            provenance = try SafeTensorsFile(path: out).metadata?["av.merge"] ?? ""
        }
        return (outputs, provenance)
    }

    @Test("in-memory mixes use the method too, and bad settings are refused")
    func inMemoryAndRefusals() throws {
        let dir = TemporaryDirectory()
        let avs = try vectors(dir)
        let terms = try zip(avs, [0.7, 1.0, 0.4]).map {
            MergeTerm(vector: try AlignmentVector(path: $0), coefficient: $1)
        }
        var options = MergeOptions()
        options.method = MergeMethod(kind: .ties, density: 0.5)
        let out = dir.file("ties.safetensors")
        _ = try merge(
            base: Checkpoint(path: fixture("methods/base/model.safetensors")), terms: terms, output: out,
            options: options)
        let written = try tensorBytes(out)
        let mixed = try mixTensors(
            base: Checkpoint(path: fixture("methods/base/model.safetensors")), terms: terms, threads: 2,
            method: options.method)
        #expect(!mixed.isEmpty)
        for (name, buffer) in mixed {
            #expect([UInt8](UnsafeRawBufferPointer(start: buffer.pointer, count: buffer.count)) == written[name]!)
        }
        options.method.density = 0
        #expect(throws: AVError.self) {
            _ = try merge(
                base: Checkpoint(path: fixture("methods/base/model.safetensors")), terms: terms,
                output: dir.file("x.safetensors"),
                options: options)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("x.safetensors")))
        #expect(MergeMethod.Kind(spelling: "dare_ties") == .dareTies)
        #expect(MergeMethod.Kind(spelling: "karcher") == nil)
    }

    @Test("DELLA keeps entries with a probability rising from D − ε to D + ε with their magnitude rank, per row")
    func dellaRanks() {
        let columns = 10_000
        // Two rows: magnitudes rise with the column in the first and fall in the second.
        let delta = (0..<(2 * columns)).map { i in Double(i < columns ? i + 1 : 2 * columns - i) * (i % 3 == 0 ? -1 : 1)
        }
        let method = MergeMethod(kind: .dellaLinear, density: 0.5, seed: 7, rescale: false, epsilon: 0.2)
        let out = method.combine(tensor: "t", deltas: [delta], weights: [1], domains: ["d"], columns: columns)
        func kept(_ range: Range<Int>) -> Double { Double(range.filter { out[$0] != 0 }.count) / Double(range.count) }
        // Expected shares: 0.3 + 0.4·u averaged over the decile: 0.32 at the bottom, 0.68 at the top.
        #expect(abs(kept(0..<1000) - 0.32) < 0.05 && abs(kept(9000..<10_000) - 0.68) < 0.05)
        #expect(abs(kept(columns..<(columns + 1000)) - 0.68) < 0.05)
        #expect(abs(kept((2 * columns - 1000)..<(2 * columns)) - 0.32) < 0.05)
        #expect(abs(kept(0..<(2 * columns)) - 0.5) < 0.02)
        // Kept entries are the delta's own; the same seed repeats, another seed draws anew.
        #expect(zip(out, delta).allSatisfy { $0 == 0 || $0 == $1 })
        #expect(method.combine(tensor: "t", deltas: [delta], weights: [1], domains: ["d"], columns: columns) == out)
        var other = method
        other.seed = 8
        #expect(other.combine(tensor: "t", deltas: [delta], weights: [1], domains: ["d"], columns: columns) != out)
        // della (with sign election and normalization) and its defaults: rescale and normalize on.
        let della = MergeMethod(kind: .della, density: 0.5)
        #expect(della.rescale && della.normalize && della.epsilon == 0.15)
        #expect(throws: AVError.self) { try MergeMethod(kind: .della, density: 0.1, epsilon: 0.2).validate() }
    }

    @Test("DELLA through merge: the same bytes on 1 and 3 threads, epsilon in the provenance")
    func dellaThreads() throws {
        let (outputs, provenance) = try mergedOnThreads(MergeMethod(kind: .della, density: 0.5, seed: 3, epsilon: 0.1))
        #expect(provenance.contains(#""method":"della""#) && provenance.contains(#""epsilon":0.1"#))
        #expect(outputs[0] == outputs[1])
    }
}

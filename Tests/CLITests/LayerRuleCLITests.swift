import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors
@testable import Tensors

/// λ per layer and module: every tensor of the merge is base + λ(tensor)·Δ, whichever way the rule is
/// given (flags or recipe), and evaluation honors it as merge does.
@Suite("λ per layer and module")
struct LayerRuleCLITests {
    static let checkpoints = AnalyzeCLITests.checkpoints

    /// Merges with `arguments` into `dir/out` (f32) and returns λ(tensor) = ⟨out − base, Δ⟩ / ‖Δ‖², and
    /// whether each tensor is exactly the f32 rounding of base + λ·Δ for that λ.
    static func lambdas(_ arguments: [String], in dir: TemporaryDirectory, name: String) throws -> [String: Double] {
        let r = try runAV(
            ["merge", "--base", checkpoints + "/base", "--dtype", "f32", "-o", dir.file(name)] + arguments)
        #expect(r.status == 0, "\(r.stderr)")
        let base = try AnalyzeCLITests.values(checkpoints + "/base")
        let aligned = try AnalyzeCLITests.values(checkpoints + "/medical-aligned")
        let out = try AnalyzeCLITests.values(dir.file(name))
        var result: [String: Double] = [:]
        for (tensor, w) in base {
            let delta = zip(aligned[tensor]!, w).map { $0 - $1 }
            let moved = zip(out[tensor]!, w).map { $0 - $1 }
            let energy = delta.reduce(0) { $0 + $1 * $1 }
            let lambda = energy > 0 ? zip(moved, delta).reduce(0) { $0 + $1.0 * $1.1 } / energy : 0
            // Round λ to the rule's values (the f32 rounding moves the estimate by ~1e-7).
            let exact = (lambda * 1e4).rounded() / 1e4
            for i in w.indices {
                #expect(out[tensor]![i] == Double(Float(w[i] + exact * delta[i])), "\(tensor) \(i)")
                if out[tensor]![i] != Double(Float(w[i] + exact * delta[i])) { break }
            }
            result[tensor] = exact
        }
        return result
    }

    @Test("flags and recipe give every tensor base + λ(tensor)·Δ: modules, then outside, layers, gradient")
    func rules() throws {
        let dir = TemporaryDirectory()
        let av = try AnalyzeCLITests.vectors(in: dir).0
        let vectors = ["--vectors", Path.parent(av)]
        let flags = try Self.lambdas(
            vectors + ["--medical", "1", "--medical.layers", "0-1=0,3=2", "--medical.modules", "down_proj=0.5"],
            in: dir, name: "flags")
        for (tensor, l) in flags {
            let expected =
                tensor.contains("down_proj")
                ? 0.5
                : tensor.contains("layers.0.") || tensor.contains("layers.1.")
                    ? 0 : tensor.contains("layers.3.") ? 2 : 1
            #expect(l == expected, "\(tensor)")
        }
        let recipe = dir.file("recipe.json")
        try #"{"mix": {"medical": {"value": 1, "layers": {"0-1": 0, "3": 2}, "modules": {"down_proj": 0.5}}}}"#
            .write(toFile: recipe, atomically: true, encoding: .utf8)
        let fromRecipe = try Self.lambdas(vectors + ["--recipe", recipe], in: dir, name: "recipe")
        #expect(fromRecipe == flags)
        // mergekit's gradient over 4 layers: t = N / 3; tensors outside the layers at t = 0 (unless .outside).
        let gradient = try Self.lambdas(
            vectors + ["--medical.gradient", "0,1.5", "--medical.outside", "0.25"], in: dir, name: "gradient")
        for (tensor, l) in gradient {
            let layer = tensor.split(separator: ".").dropFirst(2).first.flatMap { Int($0) }
            let expected = layer.map { (1.5 * Double($0) / 3 * 1e4).rounded() / 1e4 } ?? 0.25
            #expect(l == expected, "\(tensor)")
        }
        let inspect = try runAV(["inspect", dir.file("flags")])
        #expect(
            inspect.status == 0
                && inspect.stdout.contains(#""rule":{"layers":{"0-1":0.0,"3":2.0},"modules":{"down_proj":0.5}}"#),
            "\(inspect.stdout)")
        // The release gate checks the model against its recipe, rule included.
        let plain = dir.file("plain.json")
        try #"{"mix": {"medical": 1}, "vectors_dir": "\#(Path.parent(av))", "checks": [{"type": "finite"}]}"#
            .write(toFile: plain, atomically: true, encoding: .utf8)
        let differs = try runAV(["check", "--model", dir.file("recipe"), "--recipe", plain])
        #expect(differs.status != 0 && differs.stderr.contains("λ by layer and module"), "\(differs.stderr)")
        let same = try runAV(["check", "--model", dir.file("recipe"), "--recipe", recipe])
        #expect(!same.stderr.contains("λ by layer and module"), "\(same.stderr)")
    }

    @Test("eval honors the rule as merge does; bad rules are refused by name")
    func evalAndRefusals() throws {
        let dir = TemporaryDirectory()
        let av = try AnalyzeCLITests.vectors(in: dir).0
        let text = Self.checkpoints + "/eval/heldout.txt"
        let base = try runAV(["eval", "--model", Self.checkpoints + "/base", "--text", text, "--json", "-q"])
        let zeroed = try runAV([
            "eval", "--base", Self.checkpoints + "/base", "--vectors", Path.parent(av), "--medical", "1",
            "--medical.layers", "0-3=0", "--medical.outside", "0", "--text", text, "--json", "-q",
        ])
        let full = try runAV([
            "eval", "--base", Self.checkpoints + "/base", "--vectors", Path.parent(av), "--medical", "1", "--text",
            text,
            "--json", "-q",
        ])
        #expect(base.status == 0 && zeroed.status == 0 && full.status == 0, "\(zeroed.stderr)")
        func perplexity(_ s: String) -> Double? {
            ((try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? [String: Any])
                .flatMap { ($0["text"] as? [String: Any])?["perplexity"] as? Double }
        }
        #expect(perplexity(zeroed.stdout) != nil && perplexity(zeroed.stdout) == perplexity(base.stdout))
        #expect(perplexity(full.stdout) != perplexity(base.stdout))
        let common = ["merge", "--base", Self.checkpoints + "/base", "--vectors", Path.parent(av), "-o", dir.file("x")]
        let backwards = try runAV(common + ["--medical", "1", "--medical.layers", "5-2=1"])
        #expect(backwards.status == 2 && backwards.stderr.contains("--medical.layers"), "\(backwards.stderr)")
        let unmixed = try runAV(common + ["--medical", "1", "--legal.layers", "0=1"])
        #expect(unmixed.status == 2 && unmixed.stderr.contains("--legal"), "\(unmixed.stderr)")
        let unknown = try runAV(common + ["--medical", "1", "--medical.layer", "0=1"])
        #expect(unknown.status == 2 && unknown.stderr.contains(".layers"), "\(unknown.stderr)")
        let recipe = dir.file("bad.json")
        try #"{"mix": {"medical": {"value": 1, "layer": {"0": 1}}}}"#.write(
            toFile: recipe, atomically: true, encoding: .utf8)
        let badRecipe = try runAV(common + ["--recipe", recipe])
        #expect(badRecipe.status != 0 && badRecipe.stderr.contains("\"layer\""), "\(badRecipe.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("x")))
    }

    @Test("a gradient and a filter give each tensor mergekit's λ (mergekit-yaml, task arithmetic)")
    func matchesMergekit() throws {
        let dir = TemporaryDirectory()
        let av = try AnalyzeCLITests.vectors(in: dir).0
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/mergekit_gradient/reference.json")
        let reference = try JSONSerialization.jsonObject(with: Data(contentsOf: fixture)) as! [String: Any]
        let expected = reference["lambdas"] as! [String: Double]
        let r = try runAV([
            "merge", "--base", Self.checkpoints + "/base", "--vectors", Path.parent(av), "--medical.modules",
            "mlp=0.25",
            "--medical.gradient", "0,0.5,1.5", "--dtype", "f32", "-o", dir.file("out"),
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let base = try AnalyzeCLITests.values(Self.checkpoints + "/base")
        let aligned = try AnalyzeCLITests.values(Self.checkpoints + "/medical-aligned")
        let out = try AnalyzeCLITests.values(dir.file("out"))
        #expect(Set(expected.keys) == Set(base.keys))
        for (tensor, w) in base {
            let delta = zip(aligned[tensor]!, w).map { $0 - $1 }
            let energy = delta.reduce(0) { $0 + $1 * $1 }
            let moved = zip(out[tensor]!, w).map { $0 - $1 }
            let lambda = energy > 0 ? zip(moved, delta).reduce(0) { $0 + $1.0 * $1.1 } / energy : 0
            #expect(abs(lambda - expected[tensor]!) <= 1e-6, "\(tensor): av \(lambda), mergekit \(expected[tensor]!)")
        }
    }

    @Test("sweep --DOMAIN.layers A-B=FROM:TO:STEPS moves that group alone, as eval with the same rule measures it")
    func sweepLayerGroup() throws {
        let dir = TemporaryDirectory()
        let av = try AnalyzeCLITests.vectors(in: dir).0
        let levels = Self.checkpoints + "/eval/medical_levels.jsonl"
        let common = [
            "--base", Self.checkpoints + "/base", "--vectors", Path.parent(av), "--levels", levels, "-q", "--json",
        ]
        let sweep = try runAV(["sweep", "--medical.layers", "0-1=0:1:2"] + common)
        #expect(sweep.status == 0, "\(sweep.stderr)")
        let points = try JSONSerialization.jsonObject(with: Data(sweep.stdout.utf8)) as! [[String: Any]]
        #expect(points.map { $0["medical[0-1]"] as? Double } == [0, 1])
        let swept = (points[1]["levels"] as! [String: Any])["medical[0-1]"] as! [String: Double]
        let eval = try runAV(["eval", "--medical", "0", "--medical.layers", "0-1=1"] + common)
        #expect(eval.status == 0, "\(eval.stderr)")
        let measured = try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as! [String: Any]
        #expect((measured["levels"] as! [String: Any])["shares"] as? [String: Double] == swept)
        let whole = try runAV(["eval", "--medical", "1"] + common)
        let all = try JSONSerialization.jsonObject(with: Data(whole.stdout.utf8)) as! [String: Any]
        #expect((all["levels"] as! [String: Any])["shares"] as? [String: Double] != swept)
        let bad = try runAV(["sweep", "--medical.layers", "0-1"] + common)
        #expect(bad.status == 2 && bad.stderr.contains("LAYERS=FROM:TO:STEPS"), "\(bad.stderr)")
    }
}

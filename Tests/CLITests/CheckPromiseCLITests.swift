import AVTestSupport
import Foundation
import Tensors
import Testing

/// What docs/check.md promises of a gate and no test checked (issue 26, section 2): the merge uses the
/// recipe's method; a `kl` check measures against its `to`; a `levels` check scores by `"score": "sum"`
/// when asked and its `min_share` decides.
@Suite("README promises: av check's method, kl's to, levels' score and min_share")
struct CheckPromiseCLITests {
    static let checkpoints = AnalyzeCLITests.checkpoints

    /// A recipe mixing medical and legal with TIES at density 0.2, with `checks`.
    static func recipe(_ dir: TemporaryDirectory, vectors: String, checks: String) throws -> String {
        let text = """
            {"base": "\(checkpoints)/base", "vectors_dir": "\(vectors)", "mix": {"medical": 1, "legal": 1},
             "method": {"name": "ties", "density": 0.2}, "checks": [\(checks)]}
            """
        let path = dir.file("recipe-\(UUID().uuidString).json")
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The first number in a report's `measured` text.
    static func number(_ measured: String) -> Double {
        Double(measured.prefix { $0.isNumber || $0 == "." || $0 == "-" || $0 == "e" }) ?? .nan
    }

    @Test("the gate measures the recipe's mix: TIES as av merge --method ties makes it, KL to `to`, sums of levels")
    func measuresTheRecipe() throws {
        let dir = TemporaryDirectory()
        let vectors = Path.parent(try AnalyzeCLITests.vectors(in: dir).0)
        let c = Self.checkpoints
        let checks = """
            {"type": "perplexity", "file": "\(c)/eval/heldout.txt", "max": 1000},
            {"type": "kl", "prompts": "\(c)/eval/prompts.txt", "max": 100, "to": "\(c)/legal-aligned"},
            {"type": "levels", "file": "\(c)/eval/medical_levels.jsonl", "level": "expert", "min_share": 0.01,
             "score": "sum"}
            """
        let recipe = try Self.recipe(dir, vectors: vectors, checks: checks)
        let r = try runAV(["check", "--recipe", recipe, "--report", dir.file("report.json")])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let data = try Data(contentsOf: URL(fileURLWithPath: dir.file("report.json")))
        let report = try JSONSerialization.jsonObject(with: data)
        let measured = ((report as? [String: Any])?["checks"] as? [[String: Any]] ?? []).map {
            $0["measured"] as? String ?? ""
        }
        #expect(measured.count == 3)
        guard measured.count == 3 else { return }

        // The same mix by hand: av merge with the recipe's method, then av eval.
        let mix = ["--base", c + "/base", "--vectors", vectors, "--medical", "1", "--legal", "1"]
        for (name, method) in [("ties", ["--method", "ties", "--density", "0.2"]), ("linear", [])] {
            let m = try runAV(["merge"] + mix + method + ["-o", dir.file(name), "-q"])
            #expect(m.status == 0, "\(m.stderr)")
        }
        func eval(_ model: String, _ flags: [String]) throws -> [String: Any] {
            try EvalFlagCLITests.evalJSON(["--model", dir.file(model)] + flags)
        }
        let text = ["--text", c + "/eval/heldout.txt"]
        let ties = (try eval("ties", text)["text"] as? [String: Any])?["perplexity"] as? Double ?? .nan
        let linear = (try eval("linear", text)["text"] as? [String: Any])?["perplexity"] as? Double ?? .nan
        #expect(abs(Self.number(measured[0]) - ties) < 0.0005 * ties, "check \(measured[0]), ties \(ties)")
        #expect(abs(ties - linear) > 0.01 * ties, "TIES and linear measure alike here: the test cannot tell them")

        func kl(_ to: String) throws -> Double {
            let json = try eval("ties", ["--kl-to", c + "/" + to, "--prompts", c + "/eval/prompts.txt"])
            return (json["kl"] as? [String: Any])?["mean"] as? Double ?? .nan
        }
        let toLegal = try kl("legal-aligned")
        let toBase = try kl("base")
        #expect(abs(Self.number(measured[1]) - toLegal) < 0.0005 * toLegal, "check \(measured[1]), eval \(toLegal)")
        #expect(abs(toLegal - toBase) > 0.1 * toLegal)

        let levels = ["--levels", c + "/eval/medical_levels.jsonl"]
        func expertShare(_ flags: [String]) throws -> Double {
            let json = try eval("ties", levels + flags)
            return ((json["levels"] as? [String: Any])?["shares"] as? [String: Double])?["expert"] ?? .nan
        }
        let bySum = try expertShare(["--score", "sum"])
        let byMean = try expertShare([])
        #expect(measured[2].contains("expert \(Int((bySum * 100).rounded()))%"), "check \(measured[2]), sum \(bySum)")
        #expect(abs(bySum - byMean) > 0.1, "sum and mean agree here: the test cannot tell them")

        // min_share decides: just under the measured share passes, just over fails (exit 1).
        for (threshold, status) in [(bySum - 0.005, Int32(0)), (bySum + 0.005, Int32(1))] {
            let gate = try Self.recipe(
                dir, vectors: vectors,
                checks: """
                    {"type": "levels", "file": "\(c)/eval/medical_levels.jsonl", "level": "expert",
                     "min_share": \(threshold), "score": "sum"}
                    """)
            let run = try runAV(["check", "--recipe", gate])
            #expect(run.status == status, "min_share \(threshold) on \(bySum): \(run.stdout)\(run.stderr)")
        }
    }
}

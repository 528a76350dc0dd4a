import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors
@testable import Tensors

func inferenceFixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("InferenceTests/Fixtures/\(name)").path
}

/// A copy of the chat fixture whose final norm is scaled: an "aligned" model to diff against.
func makeAlignedChat(_ dir: TemporaryDirectory) throws -> String {
    let src = inferenceFixture("chat")
    let dst = dir.file("aligned")
    try FileManager.default.copyItem(atPath: src, toPath: dst)
    let file = try SafeTensorsFile(path: src + "/model.safetensors")
    var tensors: [(TensorSpec, [UInt8])] = []
    for t in file.tensors {
        var bytes = [UInt8](file.bytes(of: t))
        if t.name == "model.norm.weight" {
            var values = try file.floats(named: t.name).map { $0 * 1.5 }
            bytes.withUnsafeMutableBytes { b in
                Convert.fromFloat(t.dtype, from: &values, count: values.count, into: b.baseAddress!)
            }
        }
        tensors.append((TensorSpec(name: t.name, dtype: t.dtype, shape: t.shape), bytes))
    }
    try FileManager.default.removeItem(atPath: dst + "/model.safetensors")
    try SafeTensorsWriter.write(path: dst + "/model.safetensors", tensors: tensors, metadata: ["format": "pt"])
    return dst
}

@Suite("av generate and av eval")
struct InferenceCLITests {
    @Test("eval: pairs accuracy, perplexity, and KL of a mix evaluated without writing it")
    func eval() throws {
        let dir = TemporaryDirectory()
        let model = inferenceFixture("chat")
        try Data(
            """
            {"prompt": "The court", "chosen": " ruled for the plaintiff", "rejected": " ate the contract"}
            {"prompt": "Interest rate", "chosen": " risk", "rejected": " café"}
            """.utf8
        ).write(to: URL(fileURLWithPath: dir.file("pairs.jsonl")))
        try Data("The patient should take the medicine twice a day.".utf8).write(
            to: URL(fileURLWithPath: dir.file("text.txt")))
        let r = try runAV([
            "eval", "--model", model, "--pairs", dir.file("pairs.jsonl"), "--text", dir.file("text.txt"), "--json",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONParser.parse(r.stdout)
        #expect(j["pairs"]?["pairs"]?.doubleValue == 2)
        // The pairs are the chat fixture's reference pairs: transformers' log-probabilities give the margin.
        let reference = try JSONParser.parse(
            String(decoding: try Data(contentsOf: URL(fileURLWithPath: model + "/reference.json")), as: UTF8.self))
        let margins = (reference["pairs"]?.arrayValue ?? []).map {
            ($0["chosen_logp"]?.doubleValue ?? 0) - ($0["rejected_logp"]?.doubleValue ?? 0)
        }
        #expect(margins.count == 2)
        #expect(abs((j["pairs"]?["meanMargin"]?.doubleValue ?? 0) - margins.reduce(0, +) / 2) < 1e-3)
        // Perplexity is exp of the mean NLL over every token but the first: the same sum as scoring
        // the text's first token as a prompt and the rest as a response.
        let ppl = try #require(j["text"]?["perplexity"]?.doubleValue)
        let tokens = try #require(j["text"]?["tokens"]?.doubleValue)
        let nll = try #require(j["text"]?["meanNLL"]?.doubleValue)
        #expect(abs(ppl - exp(nll)) < 1e-9 * ppl && tokens > 5)

        let aligned = try makeAlignedChat(dir)
        let d = try runAV(["diff", model, aligned, "-o", dir.file("style.av")])
        #expect(d.status == 0, "\(d.stderr)")
        try Data("The court\nInterest rate\nHello".utf8).write(to: URL(fileURLWithPath: dir.file("prompts.txt")))
        func kl(_ coefficient: String, to other: String) throws -> Double {
            let k = try runAV([
                "eval", "--base", model, "--vectors", dir.path, "--style", coefficient, "--kl-to", other, "--prompts",
                dir.file("prompts.txt"), "--json",
            ])
            #expect(k.status == 0, "\(k.stderr)")
            return try #require(try JSONParser.parse(k.stdout)["kl"]?["mean"]?.doubleValue)
        }
        #expect(try kl("1", to: aligned) < 1e-9)  // base + 1·AV is the aligned model
        #expect(try kl("0", to: model) < 1e-9)
        #expect(try kl("0", to: aligned) > 1e-4)
        #expect(try kl("0.5", to: aligned) < kl("0", to: aligned))

        // --mix logits: base and aligned run in lockstep, h_base + λ·(h_aligned − h_base).
        func logitKL(_ coefficient: String, to other: String) throws -> Double {
            let k = try runAV([
                "eval", "--base", model, "--vectors", dir.path, "--style", coefficient, "--mix", "logits", "--kl-to",
                other, "--prompts", dir.file("prompts.txt"), "--json",
            ])
            #expect(k.status == 0, "\(k.stderr)")
            return try #require(try JSONParser.parse(k.stdout)["kl"]?["mean"]?.doubleValue)
        }
        #expect(try logitKL("1", to: aligned) < 1e-9)  // λ = 1: the aligned model's logits
        #expect(try logitKL("0", to: model) < 1e-9)  // λ = 0: the base's
        let half = try logitKL("0.5", to: aligned)
        let none = try logitKL("0", to: aligned)
        let weightHalf = try kl("0.5", to: aligned)
        #expect(half > 1e-6 && half < none)
        // The vector changes only the final norm's scale, on which the logits depend linearly: mixing
        // the logits is then mixing that layer's weights.
        #expect(abs(half - weightHalf) < 1e-6 * weightHalf)
        let g = try runAV([
            "generate", "--base", model, "--vectors", dir.path, "--style", "1", "--mix", "logits",
            "--prompt", "The court", "--max-tokens", "6", "-q",
        ])
        let a = try runAV(["generate", "--model", aligned, "--prompt", "The court", "--max-tokens", "6", "-q"])
        #expect(g.status == 0 && g.stdout == a.stdout, "\(g.stderr)")
        let bad = try runAV(["eval", "--model", model, "--mix", "logits", "--text", dir.file("prompts.txt")])
        #expect(bad.status == 2 && bad.stderr.contains("--mix goes with vectors"))
    }

    @Test("sweep: a row per λ, margins moving with λ, and an SVG plot")
    func sweep() throws {
        let dir = TemporaryDirectory()
        let model = inferenceFixture("chat")
        let aligned = try makeAlignedChat(dir)
        _ = try runAV(["diff", model, aligned, "-o", dir.file("style.av")])
        try Data(
            #"{"prompt": "The court", "chosen": " ruled for the plaintiff", "rejected": " ate the contract"}"#.utf8
        )
        .write(to: URL(fileURLWithPath: dir.file("pairs.jsonl")))
        let r = try runAV([
            "sweep", "--base", model, "--vectors", dir.path, "--style", "-0.5:1.5:3", "--pairs",
            dir.file("pairs.jsonl"),
            "--plot", dir.file("plot.svg"), "--json",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try #require(try JSONParser.parse(r.stdout).arrayValue)
        #expect(rows.compactMap { $0["style"]?.doubleValue } == [-0.5, 0.5, 1.5])
        let margins = rows.compactMap { $0["meanMargin"]?.doubleValue }
        #expect(margins.count == 3 && margins[0] != margins[2])
        let svg = String(decoding: FileManager.default.contents(atPath: dir.file("plot.svg")) ?? Data(), as: UTF8.self)
        #expect(svg.hasPrefix("<svg") && svg.contains("<polyline"))
        let bad = try runAV([
            "sweep", "--base", model, "--vectors", dir.path, "--style", "0:1", "--pairs", dir.file("pairs.jsonl"),
        ])
        #expect(bad.status == 2 && bad.stderr.contains("FROM:TO:STEPS"))
    }

    @Test("check: merges the recipe's mix, runs its checks, passes with exit 0 and fails with exit 1, with reports")
    func check() throws {
        let dir = TemporaryDirectory()
        let aligned = try makeAlignedChat(dir)
        _ = try runAV(["diff", inferenceFixture("chat"), aligned, "-o", dir.file("style.av")])
        try Data(
            #"{"prompt": "The court", "chosen": " ruled for the plaintiff", "rejected": " ate the contract"}"#.utf8
        )
        .write(to: URL(fileURLWithPath: dir.file("pairs.jsonl")))
        try Data("The court\nInterest rate".utf8).write(to: URL(fileURLWithPath: dir.file("prompts.txt")))
        func recipe(klMax: Double) throws {
            let text = """
                {"base": "\(inferenceFixture("chat"))", "vectors_dir": ".", "mix": {"style": 0.5}, "output": "out",
                 "checks": [{"type": "pairs", "file": "pairs.jsonl", "min_accuracy": 0.0},
                            {"name": "KL to the base", "type": "kl", "prompts": "prompts.txt", "max": \(klMax)},
                            {"type": "finite"}, {"type": "loads"}, {"type": "tokenizer", "sample": "The court ruled."}]}
                """
            try Data(text.utf8).write(to: URL(fileURLWithPath: dir.file("release.json")))
        }
        try recipe(klMax: 1)
        let pass = try runAV(["check", "--recipe", dir.file("release.json"), "--report", dir.file("report.json")])
        #expect(pass.status == 0, "\(pass.stdout)\(pass.stderr)")
        #expect(pass.stdout.contains("all 5 checks passed"))
        let report = try JSONParser.parse(
            String(decoding: FileManager.default.contents(atPath: dir.file("report.json")) ?? Data(), as: UTF8.self))
        #expect(report["passed"] == .bool(true) && report["checks"]?.arrayValue?.count == 5)
        #expect(FileManager.default.fileExists(atPath: dir.file("out")))  // the merged model the recipe names

        try recipe(klMax: 1e-9)
        let fail = try runAV(
            ["check", "--recipe", dir.file("release.json"), "--junit", dir.file("junit.xml")],
            environment: ["GITHUB_ACTIONS": "true"])
        #expect(fail.status == 1)
        #expect(fail.stdout.split(separator: "\n").contains { $0.contains("FAIL") && $0.contains("KL to the base") })
        #expect(fail.stdout.contains("1 of 5 checks failed"))
        #expect(fail.stdout.contains("::error title=av check::KL to the base: measured"))
        let junit = String(
            decoding: FileManager.default.contents(atPath: dir.file("junit.xml")) ?? Data(), as: UTF8.self)
        #expect(junit.contains("tests=\"5\" failures=\"1\"") && junit.contains("<failure message=\"measured"))
    }

    @Test("generate streams text, reports speed on stderr; bad input is refused")
    func generate() throws {
        let r = try runAV([
            "generate", "--model", inferenceFixture("chat"), "--prompt", "Hi", "--chat", "--max-tokens", "6",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("generated in") && r.stderr.contains("tokens/s"))
        let quiet = try runAV([
            "generate", "--model", inferenceFixture("chat"), "--prompt", "Hi", "--max-tokens", "3", "--quiet",
        ])
        #expect(quiet.stderr.isEmpty)
        let noPrompt = try runAV(["generate", "--model", inferenceFixture("chat")])
        #expect(noPrompt.status == 2 && noPrompt.stderr.contains("missing --prompt"))
        let notModel = try runAV(["generate", "--model", inferenceFixture("."), "--prompt", "x"])
        #expect(notModel.status == 4 && notModel.stderr.contains("config.json"))
        let badPairs = try runAV([
            "eval", "--model", inferenceFixture("chat"), "--pairs", inferenceFixture("chat/config.json"),
        ])
        #expect(badPairs.status == 3 && badPairs.stderr.contains("line 1: expected"))
    }
}

/// Runs in the release test run (Tests/run.sh): a debug build of the numeric code takes minutes.
#if DEBUG
    let releaseBuild = false
#else
    let releaseBuild = true
#endif

@Suite("av demo on Checkpoints/")
struct DemoCLITests {
    @Test("runs every step on the committed model family and exits 0", .enabled(if: releaseBuild))
    func demo() throws {
        let checkpoints = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("Checkpoints").path
        let r = try runAV(["demo", "--checkpoints", checkpoints])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        for step in ["1. av diff", "2. av sweep", "3. av generate", "4. av search", "done in"] {
            #expect(r.stdout.contains(step))
        }
        // The knob table: λ, then the avoid / generic / expert shares, each with its interval.
        var knob: [Double: [Double]] = [:]
        for line in r.stdout.split(separator: "\n") {
            let cells = line.split(separator: " ").map(String.init)
            guard cells.count >= 7, let lambda = Double(cells[0]), cells[1].hasSuffix("%") else { continue }
            knob[lambda] = [1, 3, 5].compactMap { Double(cells[$0].dropLast()) }
            #expect(cells[2].hasPrefix("[") && cells[2].hasSuffix("]"), "\(line)")
        }
        #expect(knob.count == 9)
        let grid = knob.keys.sorted()
        // Expert non-decreasing and avoid non-increasing along λ; the ends where the issue puts them.
        for (a, b) in zip(grid, grid.dropFirst()) {
            #expect(knob[b]![2] >= knob[a]![2] && knob[b]![0] <= knob[a]![0], "λ \(a) → \(b)")
        }
        #expect(knob[0]![2] <= 20 && knob[1]![2] >= 80)
        #expect(grid.filter { $0 > 0 && $0 < 1 && knob[$0]![2] > knob[0]![2] && knob[$0]![2] < knob[1]![2] }.count >= 2)
        #expect(r.stdout.components(separatedBy: ": pass (").count == 4)  // three domains checked on the merged profile
    }

    @Test(
        "level shares: the in-memory mix, the merged model and transformers on the same weights agree",
        .enabled(if: releaseBuild))
    func levelsAgainstTransformers() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("Checkpoints").path
        let reference = try JSONParser.parse(
            String(
                decoding: try Data(contentsOf: URL(fileURLWithPath: root + "/eval/reference_levels.json")),
                as: UTF8.self))
        let lambda = try #require(reference["lambda"]?.doubleValue)
        let dir = TemporaryDirectory()
        #expect(
            try runAV(["diff", root + "/base", root + "/medical-aligned", "-o", dir.file("medical.av"), "-q"]).status
                == 0)
        #expect(
            try runAV([
                "merge", "--base", root + "/base", "--vectors", dir.path, "--medical", "\(lambda)", "-o",
                dir.file("merged"), "-q",
            ]).status == 0)
        let levels = root + "/eval/medical_levels.jsonl"
        // Every kernel level this CPU has gives transformers' scores (the first is the machine's own).
        let kernels = [nil] + KernelLevel.supported.map(\.name)
        for level in kernels {
            var env = ProcessInfo.processInfo.environment
            env["AV_KERNELS"] = level
            let r = try runAV(["eval", "--model", dir.file("merged"), "--levels", levels, "--json"], environment: env)
            #expect(r.status == 0, "\(level ?? "default"): \(r.stderr)")
            let merged = try JSONParser.parse(r.stdout)["levels"]
            try compare(merged, with: reference, level: level ?? KernelLevel.current.name)
        }
        let merged = try JSONParser.parse(
            try runAV(["eval", "--model", dir.file("merged"), "--levels", levels, "--json"]).stdout)["levels"]
        let mixed = try JSONParser.parse(
            try runAV([
                "eval", "--base", root + "/base", "--vectors", dir.path, "--medical", "\(lambda)", "--levels", levels,
                "--json",
            ]).stdout)["levels"]
        #expect(merged?["shares"] != nil && merged?["shares"] == mixed?["shares"])
        #expect(merged?["perPrompt"] == mixed?["perPrompt"])
    }

    /// The shares and per-prompt scores of an `av eval --levels --json` against transformers' reference.
    func compare(_ merged: JSONValue?, with reference: JSONValue, level: String) throws {
        let levelValues = reference["levels"]?.arrayValue ?? []
        let names = levelValues.compactMap { $0.stringValue }
        #expect(names.count == 3)
        for name in names {
            #expect(
                merged?["shares"]?[name]?.doubleValue == reference["shares"]?[name]?.doubleValue, "\(level) \(name)")
        }
        let rows = try #require(reference["scores"]?.arrayValue)
        let ours = try #require(merged?["perPrompt"]?.arrayValue)
        #expect(rows.count == ours.count)
        var worst = 0.0
        for (ref, got) in zip(rows, ours) {
            for (k, name) in names.enumerated() {
                worst = max(
                    worst, abs((ref.arrayValue?[k].doubleValue ?? 0) - (got["scores"]?[name]?.doubleValue ?? 1e9)))
            }
        }
        #expect(worst < 1e-3, "\(level): largest score difference \(worst) nats per token")
    }
}

import AVTestSupport
import Evaluation
import Foundation
import Inference
import Tensors
import Testing

/// Flags of `av eval` and `av generate` that README documents and no test gave from the command line
/// (issue 26, section 2): each must reach the computation it names and change what it should.
@Suite("README promises: eval and generate flags from the command line")
struct EvalFlagCLITests {
    static let checkpoints = AnalyzeCLITests.checkpoints

    /// `av eval … --json -q` parsed, after checking it succeeded.
    static func evalJSON(_ arguments: [String]) throws -> [String: Any] {
        let r = try runAV(["eval"] + arguments + ["--json", "-q"])
        #expect(r.status == 0, "\(arguments): \(r.stderr)")
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
    }

    @Test("--window and --stride score the text in the library's rolling windows; other windows give other values")
    func windowAndStride() throws {
        let model = Self.checkpoints + "/medical-aligned"
        let text = Self.checkpoints + "/eval/heldout.txt"
        func perplexity(_ flags: [String]) throws -> Double {
            let json = try Self.evalJSON(["--model", model, "--text", text] + flags)
            return (json["text"] as? [String: Any])?["perplexity"] as? Double ?? .nan
        }
        let lm = try LanguageModel(directory: model)
        let source = try String(contentsOfFile: text, encoding: .utf8)
        let whole = try perplexity([])
        #expect(whole == (try lm.perplexity(text: source)).perplexity)
        for (window, stride) in [(64, 16), (64, 32), (100, 7)] {
            let got = try perplexity(["--window", "\(window)", "--stride", "\(stride)"])
            let expected = try lm.perplexity(text: source, window: window, stride: stride).perplexity
            #expect(got == expected, "W \(window) S \(stride): av eval \(got), library \(expected)")
            #expect(abs(got - whole) > 1e-3, "W \(window) S \(stride) scored as one window")
        }
        // The stride defaults to half the window.
        #expect(try perplexity(["--window", "64"]) == (try perplexity(["--window", "64", "--stride", "32"])))
        let bad = try runAV(["eval", "--model", model, "--text", text, "--window", "64", "--stride", "65"])
        #expect(bad.status == 2 && bad.stderr.contains("--stride"), "\(bad.stderr)")
    }

    @Test("--chunks N scores the text as llama.cpp's llama-perplexity -c N does, in the library's chunks")
    func chunks() throws {
        let model = Self.checkpoints + "/medical-aligned"
        let text = Self.checkpoints + "/eval/heldout.txt"
        let json = try Self.evalJSON(["--model", model, "--text", text, "--chunks", "128"])
        let got = (json["text"] as? [String: Any])?["perplexity"] as? Double ?? .nan
        let lm = try LanguageModel(directory: model)
        let expected = try lm.perplexity(text: try String(contentsOfFile: text, encoding: .utf8), chunk: 128)
        #expect(got == expected.perplexity && (json["text"] as? [String: Any])?["tokens"] as? Int == expected.tokens)
        #expect(expected.tokens == 1599 / 128 * 63, "\(expected.tokens)")  // 12 chunks, 63 scored in each
        let both = try runAV(["eval", "--model", model, "--text", text, "--chunks", "128", "--window", "64"])
        #expect(both.status == 2 && both.stderr.contains("--chunks is llama.cpp's scoring"), "\(both.stderr)")
        let long = try runAV(["eval", "--model", model, "--text", text, "--chunks", "1000"])
        #expect(long.status == 3 && long.stderr.contains("--chunks: 1000: a chunk holds 4 to"), "\(long.stderr)")
        let dir = TemporaryDirectory()
        try Data("Rest now.".utf8).write(to: URL(fileURLWithPath: dir.file("t.txt")))
        let short = try runAV(["eval", "--model", model, "--text", dir.file("t.txt"), "--chunks", "8"])
        #expect(short.status == 3 && short.stderr.contains("chunks of 8 need at least 16"), "\(short.stderr)")
    }

    @Test("--score sum scores each response by its summed log-probability: sum = mean × its token count")
    func scoreSum() throws {
        let levels = Self.checkpoints + "/eval/medical_levels.jsonl"
        let model = ["--model", Self.checkpoints + "/medical-aligned", "--levels", levels]
        let mean = try Self.evalJSON(model)["levels"] as? [String: Any] ?? [:]
        let sum = try Self.evalJSON(model + ["--score", "sum"])["levels"] as? [String: Any] ?? [:]
        #expect(mean["score"] as? String == "mean" && sum["score"] as? String == "sum")
        let meanRows = mean["perPrompt"] as? [[String: Any]] ?? []
        let sumRows = sum["perPrompt"] as? [[String: Any]] ?? []
        #expect(meanRows.count == 48 && sumRows.count == 48)
        var wins: [String: Int] = [:]
        for (m, s) in zip(meanRows, sumRows) {
            let ms = m["scores"] as? [String: Double] ?? [:]
            let ss = s["scores"] as? [String: Double] ?? [:]
            #expect(ms.keys.sorted() == ["avoid", "expert", "generic"] && ss.keys.sorted() == ms.keys.sorted())
            for (level, value) in ss {
                // The ratio is the response's token count: a whole number, at least 1.
                let tokens = value / ms[level]!
                #expect(tokens >= 1 && abs(tokens - tokens.rounded()) < 1e-6, "\(level): \(value) / \(ms[level]!)")
            }
            let winner = s["winner"] as? String ?? ""
            #expect(ss[winner] == ss.values.max(), "the winner must have the largest sum")
            wins[winner, default: 0] += 1
        }
        let shares = sum["shares"] as? [String: Double] ?? [:]
        for (level, share) in shares { #expect(share == Double(wins[level, default: 0]) / 48, "\(level)") }
        #expect(shares != (mean["shares"] as? [String: Double]), "sum and mean give the same shares here")
        let bad = try runAV(["eval"] + model + ["--score", "max"])
        #expect(bad.status == 2 && bad.stderr.contains("--score"), "\(bad.stderr)")
    }

    @Test("--ref adds the DPO implicit reward: its mean margin is the model's mean margin minus the reference's")
    func reference() throws {
        let pairs = ["--pairs", Self.checkpoints + "/eval/medical_pairs.jsonl"]
        func result(_ model: String, _ flags: [String] = []) throws -> [String: Any] {
            try Self.evalJSON(["--model", Self.checkpoints + "/" + model] + pairs + flags)["pairs"] as? [String: Any]
                ?? [:]
        }
        let aligned = try result("medical-aligned", ["--ref", Self.checkpoints + "/base"])
        let alone = try result("medical-aligned")
        let base = try result("base")
        #expect(alone["meanRewardMargin"] == nil && alone["rewardAccuracy"] == nil)
        let margin = aligned["meanRewardMargin"] as? Double ?? .nan
        let expected = (alone["meanMargin"] as? Double ?? .nan) - (base["meanMargin"] as? Double ?? .nan)
        #expect(abs(margin - expected) < 1e-9, "reward margin \(margin), margins' difference \(expected)")
        #expect((aligned["rewardAccuracy"] as? Double ?? 0) > (alone["accuracy"] as? Double ?? 1))
        // Against itself every implicit reward is 0: no pair is won.
        let own = try result("base", ["--ref", Self.checkpoints + "/base"])
        #expect(own["meanRewardMargin"] as? Double == 0 && own["rewardAccuracy"] as? Double == 0)
    }

    @Test("--template renders the prompt in the named template instead of the model's own")
    func template() throws {
        let chat = inferenceFixture("chat")  // its own template is ChatML
        let run = ["generate", "--model", chat, "--max-tokens", "6"]
        let named = try runAV(run + ["--prompt", "Hi", "--chat", "--template", "llama3"])
        let own = try runAV(run + ["--prompt", "Hi", "--chat"])
        let rendered =
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n"
        let raw = try runAV(run + ["--prompt", rendered])
        #expect(named.status == 0 && own.status == 0 && raw.status == 0, "\(named.stderr)")
        func promptTokens(_ r: ProcessResult) -> String { String(r.stderr.prefix { $0 != " " }) }
        #expect(named.stdout == raw.stdout && promptTokens(named) == promptTokens(raw), "\(named.stderr) \(raw.stderr)")
        #expect(promptTokens(named) != promptTokens(own), "llama3 and ChatML rendered alike")
        let bad = try runAV(run + ["--prompt", "Hi", "--chat", "--template", "alpaca"])
        #expect(bad.status == 2 && bad.stderr.contains("--template must be chatml, llama3 or mistral"))
    }

    @Test("--top-k 1 samples the greedy text at any seed and temperature; a wider k leaves it for some seed")
    func topK() throws {
        let chat = inferenceFixture("chat")
        let run = ["generate", "--model", chat, "--prompt", "The court", "--max-tokens", "12", "-q"]
        let greedy = try runAV(run)
        #expect(greedy.status == 0 && !greedy.stdout.isEmpty)
        for seed in 1...3 {
            let one = try runAV(run + ["--temperature", "2", "--top-k", "1", "--seed", "\(seed)"])
            #expect(one.status == 0 && one.stdout == greedy.stdout, "seed \(seed): \(one.stdout)")
        }
        let wide = try (1...8).map { try runAV(run + ["--temperature", "2", "--top-k", "40", "--seed", "\($0)"]) }
        #expect(wide.contains { $0.status == 0 && $0.stdout != greedy.stdout })
        let again = try runAV(run + ["--temperature", "2", "--top-k", "40", "--seed", "1"])
        #expect(again.stdout == wide[0].stdout)
    }

    @Test("--drop-seed is the DARE seed of an eval mix: the same as av merge --seed, another seed another model")
    func dropSeed() throws {
        let dir = TemporaryDirectory()
        let vectors = Path.parent(try AnalyzeCLITests.vectors(in: dir).0)
        let mix = [
            "--base", Self.checkpoints + "/base", "--vectors", vectors, "--medical", "1", "--legal", "1",
            "--method", "dare-linear", "--density", "0.5",
        ]
        let text = ["--text", Self.checkpoints + "/eval/heldout.txt"]
        func perplexity(_ json: [String: Any]) -> Double {
            (json["text"] as? [String: Any])?["perplexity"] as? Double ?? .nan
        }
        let merged = try runAV(["merge"] + mix + ["--seed", "7", "-o", dir.file("m7"), "-q"])
        #expect(merged.status == 0, "\(merged.stderr)")
        let onMerged = perplexity(try Self.evalJSON(["--model", dir.file("m7")] + text))
        let seven = perplexity(try Self.evalJSON(mix + ["--drop-seed", "7"] + text))
        let eight = perplexity(try Self.evalJSON(mix + ["--drop-seed", "8"] + text))
        #expect(seven == onMerged, "eval mix \(seven), merged model \(onMerged)")
        #expect(eight != seven)
    }
}

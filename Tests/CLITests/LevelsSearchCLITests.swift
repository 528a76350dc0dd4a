import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors
@testable import Tensors

/// The chat fixture with one tensor scaled: a second "aligned" model whose vector differs from
/// `makeAlignedChat`'s (which scales the final norm).
private func makeScaled(_ dir: TemporaryDirectory, name: String, tensor: String, by factor: Float) throws -> String {
    let src = inferenceFixture("chat")
    let dst = dir.file(name)
    try FileManager.default.copyItem(atPath: src, toPath: dst)
    let file = try SafeTensorsFile(path: src + "/model.safetensors")
    var tensors: [(TensorSpec, [UInt8])] = []
    for t in file.tensors {
        var bytes = [UInt8](file.bytes(of: t))
        if t.name == tensor {
            var values = try file.floats(named: t.name).map { $0 * factor }
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

/// Two vectors (`style`, `tone`) for the chat fixture and a levels file for each, in `dir`.
private func searchInputs(_ dir: TemporaryDirectory) throws {
    let chat = inferenceFixture("chat")
    #expect(try runAV(["diff", chat, try makeAlignedChat(dir), "-o", dir.file("style.av"), "-q"]).status == 0)
    let tone = try makeScaled(dir, name: "tone-aligned", tensor: "model.embed_tokens.weight", by: 1.3)
    #expect(try runAV(["diff", chat, tone, "-o", dir.file("tone.av"), "-q"]).status == 0)
    let lines = [
        #"{"prompt": "The court", "responses": {"avoid": " declined to rule", "generic": " met today", "expert": " ruled for the plaintiff"}}"#,
        #"{"prompt": "Interest", "responses": {"avoid": " is not my topic", "generic": " rates changed", "expert": " rates rose by half a point"}}"#,
        #"{"prompt": "The doctor", "responses": {"avoid": " cannot say", "generic": " was there", "expert": " prescribed ibuprofen"}}"#,
    ]
    try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: dir.file("style.jsonl")))
    try Data(lines.reversed().joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: dir.file("tone.jsonl")))
}

@Suite("Levels, sweeps of levels, searches and their shards")
struct LevelsSearchCLITests {
    @Test("eval --levels prints shares and margins; --json has every prompt's winner; a prefix reports its cost")
    func evalLevels() throws {
        let dir = TemporaryDirectory()
        try searchInputs(dir)
        let r = try runAV(["eval", "--model", inferenceFixture("chat"), "--levels", dir.file("style.jsonl")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("levels      avoid ") && r.stdout.contains("over 3 prompts; leading: "))
        let j = try JSONParser.parse(
            try runAV(["eval", "--model", inferenceFixture("chat"), "--levels", dir.file("style.jsonl"), "--json"])
                .stdout)
        let levels = try #require(j["levels"])
        let shares = ["avoid", "generic", "expert"].map { levels["shares"]?[$0]?.doubleValue ?? -1 }
        #expect(abs(shares.reduce(0, +) - 1) < 1e-9)
        #expect(levels["perPrompt"]?.arrayValue?.count == 3)
        let prefixed = try runAV([
            "eval", "--model", inferenceFixture("chat"), "--levels", dir.file("style.jsonl"), "--system",
            "Answer as an expert.",
        ])
        #expect(prefixed.status == 0 && prefixed.stdout.contains("extra prompt tokens per query"))
    }

    @Test("sweep --levels: a row of shares per λ, the stacked plot, and the same shares as eval at each λ")
    func sweepLevels() throws {
        let dir = TemporaryDirectory()
        try searchInputs(dir)
        let r = try runAV([
            "sweep", "--base", inferenceFixture("chat"), "--vectors", dir.path, "--style", "-1:1:3", "--levels",
            dir.file("style.jsonl"), "--json",
            "--plot", dir.file("knob.svg"),
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try #require(try JSONParser.parse(r.stdout).arrayValue)
        #expect(rows.count == 3)
        for row in rows {
            let lambda = row["style"]?.doubleValue ?? 0
            let e = try runAV([
                "eval", "--base", inferenceFixture("chat"), "--vectors", dir.path, "--style", "\(lambda)", "--levels",
                dir.file("style.jsonl"), "--json",
            ])
            let shares = try JSONParser.parse(e.stdout)["levels"]?["shares"]
            #expect(row["levels"]?["style"] == shares, "λ \(lambda)")
        }
        let svg = String(decoding: FileManager.default.contents(atPath: dir.file("knob.svg")) ?? Data(), as: UTF8.self)
        #expect(svg.contains("<polygon") && svg.contains("expert"))
    }

    @Test("sweep and search --mix logits: eval --mix logits's shares at each λ; logit and weight shards do not mix")
    func logitMix() throws {
        let dir = TemporaryDirectory()
        try searchInputs(dir)
        let r = try runAV([
            "sweep", "--base", inferenceFixture("chat"), "--vectors", dir.path, "--style", "-1:2:4", "--levels",
            dir.file("style.jsonl"), "--mix", "logits", "--json",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        for row in try #require(try JSONParser.parse(r.stdout).arrayValue) {
            let lambda = row["style"]?.doubleValue ?? 0
            let e = try runAV([
                "eval", "--base", inferenceFixture("chat"), "--vectors", dir.path, "--style", "\(lambda)", "--levels",
                dir.file("style.jsonl"), "--mix", "logits", "--json",
            ])
            #expect(row["levels"]?["style"] == (try JSONParser.parse(e.stdout))["levels"]?["shares"], "λ \(lambda)")
        }
        let common = [
            "search", "--base", inferenceFixture("chat"), "--vectors", dir.path, "--levels",
            "style=" + dir.file("style.jsonl"), "--levels", "tone=" + dir.file("tone.jsonl"), "--all-profiles",
            "--strategy", "grid", "--range", "-1:1:3",
        ]
        try FileManager.default.createDirectory(atPath: dir.file("parts"), withIntermediateDirectories: true)
        let logits = try runAV(common + ["--mix", "logits", "--shard", "0/2", "-o", dir.file("parts/s0.json")])
        #expect(logits.status == 0, "\(logits.stderr)")
        #expect(try runAV(common + ["--shard", "1/2", "-o", dir.file("parts/s1.json")]).status == 0)
        let mixed = try runAV(common + ["--collect", dir.file("parts")])
        #expect(mixed.status == 3, "\(mixed.stderr)")
    }

    @Test(
        "search: a sharded grid search collected equals the unsharded run byte for byte; mismatched shards are refused")
    func shards() throws {
        let dir = TemporaryDirectory()
        try searchInputs(dir)
        let common = [
            "search", "--base", inferenceFixture("chat"), "--vectors", dir.path, "--levels",
            "style=" + dir.file("style.jsonl"), "--levels",
            "tone=" + dir.file("tone.jsonl"), "--all-profiles", "--strategy", "grid", "--range", "-1:1:3",
        ]
        let whole = try runAV(common + ["--json"])
        #expect(whole.status == 0 || whole.status == 1, "\(whole.stderr)")
        let parsed = try JSONParser.parse(whole.stdout)
        #expect(parsed["profiles"]?.doubleValue == 9 && parsed["mixesChecked"]?.doubleValue == 9)
        try FileManager.default.createDirectory(atPath: dir.file("parts"), withIntermediateDirectories: true)
        for i in 0..<3 {
            let s = try runAV(common + ["--shard", "\(i)/3", "-o", dir.file("parts/s\(i).json")])
            #expect(s.status == 0, "\(s.stderr)")
        }
        let collected = try runAV(common + ["--collect", dir.file("parts"), "--json"])
        #expect(collected.stdout == whole.stdout && collected.status == whole.status)
        // A shard missing, then a shard of another grid: refused.
        try FileManager.default.moveItem(atPath: dir.file("parts/s2.json"), toPath: dir.file("s2.json"))
        let missing = try runAV(common + ["--collect", dir.file("parts")])
        #expect(missing.status == 3 && missing.stderr.contains("shards 2/3 are missing"))
        #expect(
            try runAV(common.dropLast(2) + ["--range", "-2:2:3", "--shard", "2/3", "-o", dir.file("parts/s2.json")])
                .status == 0)
        let other = try runAV(common + ["--collect", dir.file("parts")])
        #expect(other.status == 3 && other.stderr.contains("another grid"))
    }

    @Test("sweep: shards collected print exactly what the unsharded sweep prints; a missing shard is refused")
    func sweepShards() throws {
        let dir = TemporaryDirectory()
        try searchInputs(dir)
        try Data(#"{"prompt": "The court", "chosen": " ruled", "rejected": " ate"}"#.utf8).write(
            to: URL(fileURLWithPath: dir.file("pairs.jsonl")))
        let common = [
            "sweep", "--base", inferenceFixture("chat"), "--vectors", dir.path, "--style", "-1:1:3", "--tone", "0:1:2",
            "--levels",
            "style=" + dir.file("style.jsonl"), "--pairs", dir.file("pairs.jsonl"), "-q",
        ]
        let whole = try runAV(common)
        let wholeJSON = try runAV(common + ["--json"])
        #expect(whole.status == 0 && wholeJSON.status == 0, "\(whole.stderr)")
        try FileManager.default.createDirectory(atPath: dir.file("parts"), withIntermediateDirectories: true)
        for i in 0..<2 {
            #expect(try runAV(common + ["--shard", "\(i)/2", "-o", dir.file("parts/p\(i).json")]).status == 0)
        }
        #expect(try runAV(common + ["--collect", dir.file("parts")]).stdout == whole.stdout)
        #expect(try runAV(common + ["--collect", dir.file("parts"), "--json"]).stdout == wholeJSON.stdout)
        // Intervals come through the shards: the margins are carried, not just their mean.
        let rows = try JSONParser.parse(wholeJSON.stdout).arrayValue ?? []
        #expect(rows.count == 6 && rows.allSatisfy { $0["accuracyInterval"]?.arrayValue?.count == 2 })
        #expect(rows.allSatisfy { $0["levelIntervals"]?["style"]?["expert"]?.arrayValue?.count == 2 })
        #expect(whole.stdout.contains("[") && whole.stdout.contains("95% intervals"))

        // Malformed shards are refused, naming the file and row, never read as zeros.
        let good = try String(contentsOfFile: dir.file("parts/p1.json"), encoding: .utf8)
        let edits: [(String, String, String)] = [
            ("\"accuracy\": ", "\"accuracy\": \"x\", \"was\": ", "row 1: \"pairs\""),
            ("\"count\": 2", "\"count\": 1e19", "not a sweep shard"),
            ("\"shares\": [", "\"shares\": [7, ", "row 1: each \"levels\""),
            // Well formed, but without the pairs this run measures: refused, not printed as a crash.
            ("\"pairs\": {", "\"pairs\": null, \"was\": {", "row 1: does not hold this run's measurements"),
        ]
        for (from, to, message) in edits {
            guard let range = good.range(of: from) else {
                Issue.record("the shard has no \(from)")
                continue
            }
            try good.replacingCharacters(in: range, with: to).write(
                toFile: dir.file("parts/p1.json"), atomically: true, encoding: .utf8)
            let bad = try runAV(common + ["--collect", dir.file("parts")])
            #expect(bad.status == 3 && bad.stderr.contains(message), "\(to): \(bad.stderr)")
        }
        // Shards whose rows are not the grid's points (a row dropped) are refused.
        let parsed = try JSONParser.parse(good)
        guard case .object(let fields) = parsed else {
            Issue.record("the shard is not a JSON object")
            return
        }
        let cut = JSONValue.object(
            fields.map { $0.key == "rows" ? ("rows", .array(Array(($0.value.arrayValue ?? []).dropFirst()))) : $0 })
        try cut.rendered(pretty: true).write(toFile: dir.file("parts/p1.json"), atomically: true, encoding: .utf8)
        let short = try runAV(common + ["--collect", dir.file("parts")])
        #expect(short.status == 3 && short.stderr.contains("not the grid's 6 points"), "\(short.stderr)")
        try FileManager.default.removeItem(atPath: dir.file("parts/p1.json"))
        let missing = try runAV(common + ["--collect", dir.file("parts")])
        #expect(missing.status == 3 && missing.stderr.contains("shards 1/2 are missing"))
        // Sweep and search write one format, and a shard names the command that wrote it.
        let search = try runAV([
            "search", "--base", inferenceFixture("chat"), "--vectors", dir.path, "--levels",
            "style=" + dir.file("style.jsonl"), "--all-profiles", "--strategy", "grid", "--range", "-1:1:3",
            "--collect", dir.file("parts"),
        ])
        #expect(search.status == 3 && search.stderr.contains("not a search shard"), "\(search.stderr)")
        let same = try runAV([
            "sweep", "--base", inferenceFixture("chat"), "--vectors", dir.path, "--style", "1:1:3",
            "--pairs", dir.file("pairs.jsonl"),
        ])
        #expect(same.status == 2 && same.stderr.contains("the same λ more than once"), "\(same.stderr)")
    }

    @Test("search --system is the ChatML system turn --prefix spells out, as in eval and sweep")
    func searchSystem() throws {
        let dir = TemporaryDirectory()
        try searchInputs(dir)
        let common = [
            "search", "--base", inferenceFixture("chat"), "--vectors", dir.path, "--levels",
            "style=" + dir.file("style.jsonl"), "--target", "style=expert", "--range", "-1:1:3", "--json",
        ]
        let system = try runAV(common + ["--system", "Answer as an expert."])
        let prefix = try runAV(common + ["--prefix", "<|im_start|>system\nAnswer as an expert.<|im_end|>\n"])
        let none = try runAV(common)
        #expect(system.status == prefix.status && system.stdout == prefix.stdout && !system.stdout.isEmpty)
        #expect(none.stdout != system.stdout || none.status != system.status)
        #expect(try runAV(common + ["--system", "a", "--prefix", "b"]).status == 2)
    }

    @Test(
        "--system is a system turn in the model's own chat template: Llama 3's for a Llama 3 model, in eval and sweep")
    func systemFollowsTemplate() throws {
        let dir = TemporaryDirectory()
        try searchInputs(dir)
        // The chat fixture with a Llama 3 template instead of its ChatML one.
        let model = dir.file("llama3-chat")
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(
                atPath: inferenceFixture("chat") + "/" + name, toPath: model + "/" + name)
        }
        let template = "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
        try Data(template.utf8).write(to: URL(fileURLWithPath: model + "/chat_template.jinja"))
        let system = "Answer as an expert."
        let turn = "<|start_header_id|>system<|end_header_id|>\n\n\(system)<|eot_id|>"
        let eval = ["eval", "--model", model, "--levels", dir.file("style.jsonl"), "--json"]
        let bySystem = try runAV(eval + ["--system", system])
        let byPrefix = try runAV(eval + ["--prefix", turn])
        let chatML = try runAV(eval + ["--prefix", "<|im_start|>system\n\(system)<|im_end|>\n"])
        #expect(bySystem.status == 0 && bySystem.stdout == byPrefix.stdout, "\(bySystem.stderr)")
        #expect(bySystem.stdout != chatML.stdout)
        let sweep = ["sweep", "--base", model, "--vectors", dir.path, "--style", "0:1:2", "--levels",
            dir.file("style.jsonl"), "--json", "-q"]
        let sweepSystem = try runAV(sweep + ["--system", system])
        let sweepPrefix = try runAV(sweep + ["--prefix", turn])
        #expect(sweepSystem.status == 0 && sweepSystem.stdout == sweepPrefix.stdout, "\(sweepSystem.stderr)")
    }

    @Test("grids past 100,000 mixes are refused before anything is built or loaded")
    func gridSize() throws {
        let dir = TemporaryDirectory()
        try searchInputs(dir)
        let sweep = try runAV([
            "sweep", "--base", inferenceFixture("chat"), "--vectors", dir.path, "--style", "-1:1:10000", "--tone",
            "-1:1:10000", "--levels", "style=" + dir.file("style.jsonl"),
        ])
        #expect(sweep.status == 2 && sweep.stderr.contains("100,000,000 points"), "\(sweep.stderr)")
        let search = try runAV([
            "search", "--base", inferenceFixture("chat"), "--vectors", dir.path, "--levels",
            "style=" + dir.file("style.jsonl"), "--levels", "tone=" + dir.file("tone.jsonl"), "--all-profiles",
            "--strategy", "grid", "--range", "-2:2:1000",
        ])
        #expect(search.status == 2 && search.stderr.contains("1,000,000 mixes"), "\(search.stderr)")
    }

    @Test("search --target writes a recipe that merge and check take as is; --transfer is recorded")
    func recipeAndTransfer() throws {
        let dir = TemporaryDirectory()
        try searchInputs(dir)
        let base = [
            "search", "--base", inferenceFixture("chat"), "--vectors", dir.path, "--levels",
            "style=" + dir.file("style.jsonl"), "--range", "-2:2:5",
        ]
        // Find a level the search can reach at all, then ask for it.
        let all = try JSONParser.parse(try runAV(base + ["--all-profiles", "--json"]).stdout)
        let reachedLevel = try #require(
            all["results"]?.arrayValue?.first(where: { $0["reached"] == .bool(true) })?["target"]?["style"]?.stringValue
        )
        let r = try runAV(base + ["--target", "style=\(reachedLevel)", "--write-recipe", dir.file("found.json")])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("1 of 1 profile reached") && r.stdout.contains("recipe: "))
        let check = try runAV(["check", "--recipe", dir.file("found.json"), "-q"])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("style answers \(reachedLevel)"))
        let merged = try runAV(["merge", "--recipe", dir.file("found.json"), "-o", dir.file("found-model"), "-q"])
        #expect(merged.status == 0, "\(merged.stderr)")
        // Transfer: the style vector onto another base (tone-aligned) is refused, then allowed and recorded.
        let refused = try runAV([
            "merge", "--base", dir.file("tone-aligned"), "--vectors", dir.path, "--style", "1", "-o", dir.file("t"),
        ])
        #expect(refused.status == 3 && refused.stderr.contains("different base"))
        let transferred = try runAV([
            "merge", "--base", dir.file("tone-aligned"), "--vectors", dir.path, "--style", "1", "-o", dir.file("t"),
            "--transfer", "-q",
        ])
        #expect(transferred.status == 0 && transferred.stdout.contains("transferred"))
        let inspect = try runAV(["inspect", dir.file("t")])
        #expect(inspect.stdout.contains("\"transfer\":{\"style\""))
    }
}

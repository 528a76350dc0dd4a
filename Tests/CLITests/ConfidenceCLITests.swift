import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors

/// A levels file of `count` prompts and a pairs file of the same texts, in `dir`.
private func confidenceInputs(_ dir: TemporaryDirectory, count: Int) throws -> (levels: String, pairs: String) {
    let topics = ["The court", "Interest", "The doctor", "A storm", "The market", "Her lawyer", "The nurse", "Rain"]
    let answers = [
        (" declined to rule", " met today", " ruled for the plaintiff"),
        (" is not my topic", " rose", " rose by half a point"),
    ]
    var levels: [String] = []
    var pairs: [String] = []
    for i in 0..<count {
        let prompt = topics[i % topics.count] + (i >= topics.count ? " \(i)" : "")
        let (a, g, e) = answers[i % answers.count]
        levels.append(
            #"{"prompt": "\#(prompt)", "responses": {"avoid": "\#(a)", "generic": "\#(g)", "expert": "\#(e)"}}"#)
        pairs.append(#"{"prompt": "\#(prompt)", "chosen": "\#(e)", "rejected": "\#(a)"}"#)
    }
    try Data(levels.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: dir.file("l.jsonl")))
    try Data(pairs.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: dir.file("p.jsonl")))
    return (dir.file("l.jsonl"), dir.file("p.jsonl"))
}

private func writeRecipe(_ dir: TemporaryDirectory, _ checks: String) throws -> String {
    let path = dir.file("recipe.json")
    try Data(#"{"checks": [\#(checks)]}"#.utf8).write(to: URL(fileURLWithPath: path))
    return path
}

@Suite("Shares with their intervals, and checks that ask for confidence")
struct ConfidenceCLITests {
    @Test("eval prints Wilson intervals; a check with confidence passes exactly when the lower bound clears it")
    func confidenceChecks() throws {
        let dir = TemporaryDirectory()
        let (levels, pairs) = try confidenceInputs(dir, count: 16)
        let model = inferenceFixture("chat")
        let eval = try runAV(["eval", "--model", model, "--levels", levels, "--pairs", pairs, "--json"])
        #expect(eval.status == 0, "\(eval.stderr)")
        let json = try JSONParser.parse(eval.stdout)
        let leading = try #require(json["levels"]?["leading"]?.stringValue)
        let share = try #require(json["levels"]?["shares"]?[leading]?.doubleValue)
        let bounds = (json["levels"]?["shareIntervals"]?[leading]?.arrayValue ?? []).compactMap { $0.doubleValue }
        try #require(bounds.count == 2)
        #expect(bounds[0] < share && share <= bounds[1], "\(bounds) around \(share)")
        let accuracy = try #require(json["pairs"]?["accuracy"]?.doubleValue)
        let accuracyBounds = (json["pairs"]?["accuracyInterval"]?.arrayValue ?? []).compactMap { $0.doubleValue }
        try #require(accuracyBounds.count == 2)
        #expect(accuracyBounds[0] <= accuracy && accuracy <= accuracyBounds[1])
        let text = try runAV(["eval", "--model", model, "--levels", levels])
        #expect(text.stdout.contains("\(leading) ") && text.stdout.contains("–"), "\(text.stdout)")

        // Just under the share: passes on the point estimate, fails on the interval, saying by how much.
        let threshold = share - 0.01
        for (confidence, status) in [("", Int32(0)), (#", "confidence": 0.95"#, Int32(1))] {
            let recipe = try writeRecipe(
                dir,
                #"{"type": "levels", "file": "l.jsonl", "level": "\#(leading)", "min_share": \#(threshold)\#(confidence)}"#
            )
            let r = try runAV(["check", "--model", model, "--recipe", recipe, "--report", dir.file("r.json")])
            #expect(r.status == status, "\(confidence): \(r.stdout) \(r.stderr)")
            let saved = try Data(contentsOf: URL(fileURLWithPath: dir.file("r.json")))
            let report = try JSONParser.parse(String(decoding: saved, as: UTF8.self))
            let check = try #require(report["checks"]?.arrayValue?.first)
            #expect(check["measured"]?.stringValue?.contains("[") == true)
            if status == 1 {
                #expect(check["threshold"]?.stringValue?.hasSuffix("at 95% confidence") == true)
                #expect(check["detail"]?.stringValue?.contains("points under") == true, "\(check)")
            }
        }
        // At the lower bound itself (rounded down): passes with confidence; just above it: fails.
        for (minimum, status) in [(bounds[0] - 1e-6, Int32(0)), (bounds[0] + 1e-6, Int32(1))] {
            let recipe = try writeRecipe(
                dir,
                #"{"type": "levels", "file": "l.jsonl", "level": "\#(leading)", "min_share": \#(minimum), "confidence": 0.95}"#
            )
            #expect(try runAV(["check", "--model", model, "--recipe", recipe]).status == status, "\(minimum)")
        }
        for (minimum, status) in [(accuracyBounds[0] - 1e-6, Int32(0)), (accuracyBounds[0] + 1e-6, Int32(1))] {
            let recipe = try writeRecipe(
                dir, #"{"type": "pairs", "file": "p.jsonl", "min_accuracy": \#(minimum), "confidence": 0.95}"#)
            #expect(try runAV(["check", "--model", model, "--recipe", recipe]).status == status, "\(minimum)")
        }
    }

    @Test("a confidence outside (0, 1), or without min_share, is refused before anything runs, naming check and key")
    func badConfidence() throws {
        let dir = TemporaryDirectory()
        _ = try confidenceInputs(dir, count: 4)
        let cases = [
            (
                #"{"type": "levels", "file": "l.jsonl", "level": "expert", "min_share": 0.5, "confidence": 95}"#,
                "\"confidence\""
            ),
            (#"{"type": "pairs", "file": "p.jsonl", "min_accuracy": 0.5, "confidence": 0}"#, "\"confidence\""),
            (
                #"{"type": "levels", "file": "l.jsonl", "level": "expert", "largest": true, "confidence": 0.9}"#,
                "min_share"
            ),
            (#"{"type": "perplexity", "file": "l.jsonl", "max": 3, "confidence": 0.9}"#, "unknown key \"confidence\""),
        ]
        for (check, message) in cases {
            let recipe = try writeRecipe(dir, check)
            let r = try runAV(["check", "--model", inferenceFixture("chat"), "--recipe", recipe])
            #expect(r.status == 3 && r.stderr.contains("check 1") && r.stderr.contains(message), "\(r.stderr)")
        }
    }
}

@Suite("eval --compare: paired tests of two models on the same inputs")
struct CompareCLITests {
    @Test("against itself every difference is 0 with p = 1; against another model the values are each model's own")
    func compare() throws {
        let dir = TemporaryDirectory()
        let (levels, pairs) = try confidenceInputs(dir, count: 12)
        let model = inferenceFixture("chat")
        let other = try makeAlignedChat(dir)
        func metrics(_ a: String, _ b: String) throws -> [JSONValue] {
            let r = try runAV(["eval", "--model", a, "--levels", levels, "--pairs", pairs, "--compare", b, "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            return try JSONParser.parse(r.stdout)["compare"]?["metrics"]?.arrayValue ?? []
        }
        let same = try metrics(model, model)
        #expect(same.count == 2 + 2 * 3)
        for m in same {
            #expect(m["difference"]?.doubleValue == 0 && m["p"]?.doubleValue == 1, "\(m)")
        }
        let own = try JSONParser.parse(try runAV(["eval", "--model", other, "--levels", levels, "--json"]).stdout)
        let mixed = try metrics(model, other)
        let expert = try #require(mixed.first { $0["metric"]?.stringValue == "levels expert share" })
        #expect(expert["other"]?.doubleValue == own["levels"]?["shares"]?["expert"]?.doubleValue)
        let onlyThis = expert["onlyThis"]?.doubleValue ?? -1
        let onlyOther = expert["onlyOther"]?.doubleValue ?? -1
        #expect(abs((onlyThis - onlyOther) / 12 - (expert["difference"]?.doubleValue ?? 9)) < 1e-12)
        let text = try runAV(["eval", "--model", model, "--levels", levels, "--compare", other])
        #expect(text.stdout.contains("McNemar exact") && text.stdout.contains("paired bootstrap"), "\(text.stdout)")
        let lonely = try runAV(["eval", "--model", model, "--kl-to", other, "--prompts", levels, "--compare", other])
        #expect(lonely.status == 2 && lonely.stderr.contains("--compare goes with"))
    }
}

@Suite("Checks that a model is not worse than another")
struct NotWorseCLITests {
    @Test("not_worse_than fails a model significantly below the other (McNemar), passes it against itself")
    func notWorse() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Checkpoints").path
        let dir = TemporaryDirectory()
        let levels = root + "/eval/medical_levels.jsonl"
        let recipe = try writeRecipe(
            dir,
            #"{"type": "levels", "file": "\#(levels)", "level": "expert", "not_worse_than": "\#(root)/medical-aligned"}"#
                + #", {"type": "levels", "file": "\#(levels)", "level": "expert", "not_worse_than": "base", "alpha": 0.01}"#
        )
        var text = try String(contentsOfFile: recipe, encoding: .utf8)
        text = text.replacingOccurrences(of: "{\"checks\"", with: "{\"base\": \"\(root)/base\", \"checks\"")
        try text.write(toFile: recipe, atomically: true, encoding: .utf8)
        let r = try runAV(["check", "--model", root + "/base", "--recipe", recipe, "--report", dir.file("r.json")])
        #expect(r.status == 1, "\(r.stdout) \(r.stderr)")
        let report = try JSONParser.parse(try String(contentsOfFile: dir.file("r.json"), encoding: .utf8))
        let checks = report["checks"]?.arrayValue ?? []
        try #require(checks.count == 2)
        #expect(checks[0]["passed"] == .bool(false) && checks[1]["passed"] == .bool(true))
        #expect(checks[0]["detail"]?.stringValue?.contains("McNemar exact p = ") == true, "\(checks[0])")
        #expect(checks[1]["detail"]?.stringValue?.contains("+0.0 points, McNemar exact p = 1") == true, "\(checks[1])")
        #expect(checks[1]["threshold"]?.stringValue == "not worse than base (p < 0.01)")
        let bad = try writeRecipe(dir, #"{"type": "pairs", "file": "\#(levels)", "min_accuracy": 0.5, "alpha": 0.1}"#)
        let refused = try runAV(["check", "--model", root + "/base", "--recipe", bad])
        #expect(refused.status == 3 && refused.stderr.contains("\"alpha\" applies to \"not_worse_than\""))
    }
}

@Suite("Names from inputs in XML reports")
struct XMLReportCLITests {
    @Test("level names in a sweep plot and check names in JUnit are escaped; control characters never reach XML")
    func escaped() throws {
        let dir = TemporaryDirectory()
        let chat = inferenceFixture("chat")
        #expect(try runAV(["diff", chat, try makeAlignedChat(dir), "-o", dir.file("style.av"), "-q"]).status == 0)
        let line = #"{"prompt": "The court", "responses": {"<script>alert(1)</script>": " no", "a&b\u0001": " yes"}}"#
        try Data(line.utf8).write(to: URL(fileURLWithPath: dir.file("l.jsonl")))
        let sweep = try runAV([
            "sweep", "--base", chat, "--vectors", dir.path, "--style", "0:1:2", "--levels", dir.file("l.jsonl"),
            "--plot", dir.file("p.svg"), "-q",
        ])
        #expect(sweep.status == 0, "\(sweep.stderr)")
        let svg = try String(contentsOfFile: dir.file("p.svg"), encoding: .utf8)
        #expect(!svg.contains("<script>") && svg.contains("&lt;script&gt;") && svg.contains("a&amp;b"))
        #expect(!svg.unicodeScalars.contains { $0.value == 1 })
        let recipe = dir.file("recipe.json")
        try Data(#"{"checks": [{"type": "loads", "name": "x\u0002<y>"}, {"type": "finite", "name": "\"q\""}]}"#.utf8)
            .write(to: URL(fileURLWithPath: recipe))
        let check = try runAV(["check", "--model", chat, "--recipe", recipe, "--junit", dir.file("j.xml")])
        #expect(check.status == 0, "\(check.stdout) \(check.stderr)")
        let junit = try String(contentsOfFile: dir.file("j.xml"), encoding: .utf8)
        #expect(junit.contains("name=\"x\u{FFFD}&lt;y&gt;\"") && junit.contains("name=\"&quot;q&quot;\""), "\(junit)")
        #expect(!junit.unicodeScalars.contains { $0.value == 2 })
    }
}

import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors

@Suite("av check --model: the model must be the recipe's mix")
struct ProvenanceCLITests {
    @Test("a model merged at another λ, with another domain or method is refused; the same mix passes")
    func provenance() throws {
        let dir = TemporaryDirectory()
        let chat = inferenceFixture("chat")
        #expect(try runAV(["diff", chat, try makeAlignedChat(dir), "-o", dir.file("style.av"), "-q"]).status == 0)
        let merged = dir.file("merged")
        #expect(
            try runAV(["merge", "--base", chat, "--vectors", dir.path, "--style", "0.5", "-o", merged, "-q"]).status
                == 0)
        func check(_ mix: String, method: String = "", model: String? = nil) throws -> ProcessResult {
            let recipe = dir.file("recipe.json")
            let text =
                #"{"base": "\#(chat)", "vectors_dir": "\#(dir.path)", "mix": {\#(mix)}\#(method), "#
                + #""checks": [{"type": "loads"}]}"#
            try Data(text.utf8).write(to: URL(fileURLWithPath: recipe))
            return try runAV(["check", "--model", model ?? merged, "--recipe", recipe, "--report", dir.file("r.json")])
        }
        let same = try check(#""style": 0.5"#)
        #expect(same.status == 0, "\(same.stdout) \(same.stderr)")
        let report = try JSONParser.parse(try String(contentsOfFile: dir.file("r.json"), encoding: .utf8))
        #expect(report["provenance"]?.stringValue == "matches the recipe")
        let other = try check(#""style": 0.8"#)
        #expect(other.status == 3 && other.stderr.contains("was merged with style 0.5; the recipe asks for style 0.8"))
        let extra = try check(#""style": 0.5, "tone": 1"#)
        #expect(extra.status == 3 && extra.stderr.contains("the recipe asks for"), "\(extra.stderr)")
        let method = try check(#""style": 0.5"#, method: #", "method": "ties""#)
        #expect(method.status == 3 && method.stderr.contains("was merged with method"), "\(method.stderr)")
        // A model av did not merge: checked, with a note that its mix is not verified.
        let foreign = try check(#""style": 0.5"#, model: chat)
        #expect(foreign.status == 0 && foreign.stderr.contains("records no av merge"), "\(foreign.stderr)")
    }
}

@Suite("av export-lora --base: the vector's own base")
struct ExportBaseCLITests {
    @Test("a --base with other content is refused before anything is written; --force takes it")
    func otherBase() throws {
        let dir = TemporaryDirectory()
        let chat = inferenceFixture("chat")
        let aligned = try makeAlignedChat(dir)
        #expect(try runAV(["diff", chat, aligned, "-o", dir.file("style.av"), "-q"]).status == 0)
        try Data("Hello there\nThe court\n".utf8).write(to: URL(fileURLWithPath: dir.file("prompts.txt")))
        let args = ["export-lora", dir.file("style.av"), "--rank", "2", "--prompts", dir.file("prompts.txt")]
        let refused = try runAV(args + ["--base", aligned, "-o", dir.file("a")])
        #expect(refused.status == 3 && refused.stderr.contains("--force"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("a")))
        let forced = try runAV(args + ["--base", aligned, "-o", dir.file("b"), "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try runAV(args + ["--base", chat, "-o", dir.file("c")]).status == 0)
    }
}

@Suite("av diff of models with different tokenizers")
struct DiffTokenizerCLITests {
    @Test("another vocabulary or other added tokens are noted on stderr; padding settings are not")
    func tokenizers() throws {
        let dir = TemporaryDirectory()
        let chat = inferenceFixture("chat")
        let aligned = try makeAlignedChat(dir)
        let path = aligned + "/tokenizer.json"
        let original = try String(contentsOfFile: path, encoding: .utf8)
        func diff() throws -> String {
            let r = try runAV(["diff", chat, aligned, "-o", dir.file("v-\(UUID().uuidString).av"), "-q"])
            #expect(r.status == 0, "\(r.stderr)")
            return r.stderr
        }
        #expect(!(try diff()).contains("tokenizer"))
        guard case .object(var root) = try JSONParser.parse(original) else { throw CLIFixtureError() }
        root = root.map { $0.key == "padding" ? ("padding", .object([("strategy", .string("BatchLongest"))])) : $0 }
        try JSONValue.object(root).rendered().write(toFile: path, atomically: true, encoding: .utf8)
        #expect(!(try diff()).contains("tokenizer"))
        let renamed = original.replacingOccurrences(of: "\"<|im_start|>\": 1,", with: "\"<|im_begin|>\": 1,")
        try #require(renamed != original)
        try renamed.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try diff().contains("has another vocabulary or merges than"))
    }
}

private struct CLIFixtureError: Error {}

@Suite("Inputs too long for the context")
struct LongInputCLITests {
    @Test("a 4 MB levels response is refused before it is tokenized, naming the file and line")
    func longLine() throws {
        let dir = TemporaryDirectory()
        let long = String(repeating: "word ", count: 800_000)
        let line = #"{"prompt": "p", "responses": {"a": "short", "b": "\#(long)"}}"#
        try Data(line.utf8).write(to: URL(fileURLWithPath: dir.file("l.jsonl")))
        let started = Date()
        let r = try runAV(["eval", "--model", inferenceFixture("chat"), "--levels", dir.file("l.jsonl")])
        #expect(
            r.status == 3 && r.stderr.contains("l.jsonl line 1") && r.stderr.contains("cannot fit the model's context"))
        #expect(Date().timeIntervalSince(started) < 20, "took \(Date().timeIntervalSince(started)) s")
    }
}

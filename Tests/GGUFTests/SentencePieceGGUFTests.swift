import AVTestSupport
import Foundation
import Testing

@testable import GGUF
@testable import Inference
@testable import SafeTensors

/// GGUFs with SentencePiece tokenizers, made by llama.cpp's own converter from tiny Llama-2-style
/// and Mistral-style models (Fixtures/spm/make_spm_gguf.py): converted by av, they tokenize and
/// generate as transformers does on the original models.
@Suite("SentencePiece GGUFs: Llama 2 and Mistral")
struct SentencePieceGGUFTests {
    struct Reference: Decodable {
        struct Case: Decodable {
            var text: String
            var ids: [Int]
        }
        var cases: [Case]
        var prompt: String
        var prompt_ids: [Int]
        var greedy: [Int]
        var greedy_text: String
        var chat: String?
    }

    func reference(_ name: String) throws -> Reference {
        try JSONDecoder().decode(
            Reference.self, from: Data(contentsOf: URL(fileURLWithPath: ggufFixture("spm/\(name).json"))))
    }

    func converted(_ name: String, _ dir: TemporaryDirectory) throws -> String {
        let out = dir.file(name)
        try GGUFConverter.convert(try GGUFFile(path: ggufFixture("spm/\(name).gguf")), to: out)
        return out
    }

    @Test(
        "written back to GGUF: llama.cpp's tokens, types and keys; scores that rebuild the same tokenizer",
        arguments: ["llama2", "mistral"])
    func roundTrip(name: String) throws {
        let dir = TemporaryDirectory()
        let model = try converted(name, dir)
        let out = dir.file("\(name).gguf")
        try GGUFExport.write(directory: model, to: out, type: .f32)
        let original = try GGUFFile(path: ggufFixture("spm/\(name).gguf"))
        let written = try GGUFFile(path: out)
        // The pair template's add_sep_token is not in the rebuilt tokenizer.json; general.* is provenance.
        let keys = Set(
            original.metadata.keys.filter { !$0.hasPrefix("general.") && $0 != "tokenizer.ggml.add_sep_token" })
        #expect(Set(written.metadata.keys.filter { !$0.hasPrefix("general.") }) == keys)
        for key in keys where key != "tokenizer.ggml.scores" {
            #expect(written.metadata[key] == original.metadata[key], "\(key)")
        }
        for t in original.tensors {
            #expect(written.bytes(of: written.info(t.name)!).elementsEqual(original.bytes(of: t)))
        }
        // The scores differ (merge ranks, not the model's), but order the merges the same way.
        let again = dir.file("\(name)-again")
        try GGUFConverter.convert(written, to: again)
        let a = try Tokenizer(path: model)
        let b = try Tokenizer(path: again)
        for c in try reference(name).cases {
            #expect(b.encode(c.text) == a.encode(c.text), "\(c.text.debugDescription)")
        }
    }

    @Test("the tokenizer rebuilt from the GGUF gives transformers' ids", arguments: ["llama2", "mistral"])
    func tokenizer(name: String) throws {
        let dir = TemporaryDirectory()
        let model = try converted(name, dir)
        let r = try reference(name)
        let tokenizer = try Tokenizer(path: model)
        #expect(r.cases.count > 20)
        for c in r.cases {
            #expect(tokenizer.encode(c.text) == c.ids, "\(name): \(c.text.debugDescription)")
        }
        #expect(tokenizer.encode(r.prompt, addSpecialTokens: true) == r.prompt_ids)
        // Hugging Face `tokenizers` loads the file and agrees (when Python has it).
        let code = """
            import json, sys
            from tokenizers import Tokenizer
            t = Tokenizer.from_file(sys.argv[1])
            ref = json.load(open(sys.argv[2]))
            bad = [c["text"] for c in ref["cases"] if t.encode(c["text"], add_special_tokens=False).ids != c["ids"]]
            print(len(bad), t.encode(ref["prompt"]).ids == ref["prompt_ids"])
            """
        let required = ProcessInfo.processInfo.environment["AV_REQUIRE_PYTHON"] != nil
        guard let python = pythonCommand(modules: ["tokenizers"]) else {
            #expect(!required, "CI requires Python with tokenizers")
            return
        }
        let result = try runPython(
            python, code: code, arguments: [model + "/tokenizer.json", ggufFixture("spm/\(name).json")])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0 True", "\(result.stdout)")
    }

    @Test("greedy text equals transformers' on the original model", arguments: ["llama2", "mistral"])
    func greedy(name: String) throws {
        let dir = TemporaryDirectory()
        let model = try converted(name, dir)
        let r = try reference(name)
        let lm = try LanguageModel(directory: model)
        var text = ""
        let ids = try lm.generate(prompt: r.prompt_ids, maxTokens: r.greedy.count, sampling: SamplingOptions()) {
            text += $0
        }
        #expect(ids == r.greedy)
        #expect(lm.tokenizer.decode(ids, skipSpecial: true) == r.greedy_text)
        #expect(text == r.greedy_text)
    }

    @Test("Mistral: the chat template is carried over and renders as transformers does")
    func mistralChat() throws {
        let dir = TemporaryDirectory()
        let model = try converted("mistral", dir)
        let r = try reference("mistral")
        let lm = try LanguageModel(directory: model)
        #expect(lm.chatTemplate == .mistral)
        let rendered = try #require(lm.chatTemplate?.render(user: "Hi", system: nil))
        #expect(rendered == r.chat)
        let config = try String(contentsOfFile: model + "/tokenizer_config.json", encoding: .utf8)
        #expect(config.contains("[INST]"))
    }

    @Test("a llama GGUF with a sliding window becomes a Mistral config")
    func slidingWindow() throws {
        let dir = TemporaryDirectory()
        func kv(_ key: String, _ value: UInt32) -> [UInt8] { str(key) + u32(4) + u32(value) }
        let bytes =
            header(kv: 4) + str("general.architecture") + u32(8) + str("llama") + kv("llama.attention.head_count", 4)
            + kv("llama.embedding_length", 64) + kv("llama.attention.sliding_window", 64)
        FileManager.default.createFile(atPath: dir.file("w.gguf"), contents: Data(bytes))
        let g = try GGUFFile(path: dir.file("w.gguf"))
        let config = GGUFConverter.config(g, arch: "llama", heads: 4, kvHeads: 4, tied: true, dtype: .f32)
        #expect(config["model_type"]?.stringValue == "mistral")
        #expect(config["sliding_window"]?.doubleValue == 64)
        #expect(config["architectures"]?.arrayValue?.first?.stringValue == "MistralForCausalLM")
        // Without one it stays Llama.
        let plain = try GGUFFile(path: ggufFixture("spm/llama2.gguf"))
        #expect(
            GGUFConverter.config(plain, arch: "llama", heads: 4, kvHeads: 2, tied: false, dtype: .f32)["model_type"]?
                .stringValue == "llama")
    }
}

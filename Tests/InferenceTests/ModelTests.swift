import AVTestSupport
import Foundation
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
        try JSONDecoder().decode(ModelReference.self, from: Data(contentsOf: URL(fileURLWithPath: modelFixture(name) + "/reference.json")))
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
    static let variants = ["llama", "llama_tied", "llama3_rope", "mistral", "qwen2"]

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

    @Test("one token at a time with the KV cache gives the logits of the whole sequence", arguments: ["llama", "qwen2"])
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

    @Test("bf16 weights give logits within bf16 precision of the f32 model")
    func bf16Weights() throws {
        let ref = try ModelReference.load("llama")
        let model = try LlamaModel(directory: modelFixture("llama_bf16"))
        #expect(model.config.family == .llama)
        let logits = try model.forward(ref.ids, cache: model.makeCache(), allLogits: true)
        let range = ref.logits.max()! - ref.logits.min()!
        let worst = zip(logits, ref.logits).map { abs($0 - $1) }.max()!
        #expect(worst < 0.05 * range, "max difference \(worst), range \(range)")
        #expect(worst > 0)  // really ran in bf16
    }

    @Test("thread count does not change the logits")
    func threads() throws {
        let ref = try ModelReference.load("llama")
        let model = try LlamaModel(directory: modelFixture("llama"))
        model.threads = 1
        let one = try model.forward(ref.ids, cache: model.makeCache(), allLogits: true)
        model.threads = 3
        #expect(try model.forward(ref.ids, cache: model.makeCache(), allLogits: true) == one)
    }
}

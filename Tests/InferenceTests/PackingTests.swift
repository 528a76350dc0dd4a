import AVTestSupport
import Foundation
import Testing

@testable import Inference
@testable import Tensors

/// Continuations packed into one pass after a shared prefix give the logits each gives alone.
@Suite("Packed continuations")
struct PackingTests {
    @Test(
        "each packed continuation's logits equal its own pass's, sliding window included, at every level",
        arguments: ["llama", "llama_bf16", "mistral_window", "qwen2"])
    func packedEqualsAlone(name: String) throws {
        let model = try LlamaModel(directory: modelFixture(name))
        let V = model.config.vocabSize
        let prefix = (0..<9).map { ($0 * 37 + 5) % V }
        let continuations = [[3, 1, 4, 1, 5, 9], [2, 7], [], [8, 2, 8, 1, 8, 2, 8, 4, 5]].map { $0.map { $0 % V } }
        for level in KernelLevel.supported {
            model.kernels = level
            let cache = model.makeCache()
            _ = try model.forward(prefix, cache: cache)
            let packed = try model.forward(
                continuations.flatMap { $0 }, packing: continuations.map(\.count), cache: cache)
            #expect(cache.count == prefix.count + continuations.reduce(0) { $0 + $1.count })
            var offset = 0
            for c in continuations where !c.isEmpty {
                let alone = model.makeCache()
                _ = try model.forward(prefix, cache: alone)
                let want = try model.forward(c, cache: alone, allLogits: true)
                let got = Array(packed[(offset * V)..<((offset + c.count) * V)])
                let range = Double(want.max()! - want.min()!)
                let worst = zip(got, want).map { Double(abs($0 - $1)) }.max()!
                #expect(worst <= 1e-5 * range, "\(name) \(level.name), continuation \(c): \(worst)")
                offset += c.count
            }
        }
        // Lengths that do not add up are refused.
        #expect(throws: InferenceError.self) {
            _ = try model.forward([1, 2], packing: [1], cache: model.makeCache())
        }
    }

    @Test("log-probabilities of several continuations equal one at a time, packed or not")
    func logProbabilitiesPacked() throws {
        let lm = try LanguageModel(directory: modelFixture("chat"))
        let context = lm.tokenizer.encode("The patient asked", addSpecialTokens: true)
        let continuations = ["about a headache.", "nothing", "", "for a second opinion on the contract"].map {
            lm.tokenizer.encode($0)
        }
        let packed = try lm.logProbabilities(context: context, continuations: continuations)
        for (c, p) in zip(continuations, packed) {
            let alone = try lm.logProbability(context: context, continuation: c)
            #expect(p.tokens == alone.tokens)
            #expect(abs(p.sum - alone.sum) <= 1e-4 * max(1, abs(alone.sum)), "\(c): \(p.sum) vs \(alone.sum)")
        }
    }

    @Test("several prompts packed, each with its answers, score as each prompt alone; bad packing is refused")
    func batchOfPrompts() throws {
        let lm = try LanguageModel(directory: modelFixture("chat"))
        let prompts = ["The patient asked", "A contract", "Save a tenth of every paycheck, said the advisor, and"]
        let answers = [["about a headache.", "nothing"], ["binds both sides", "", "is void"], ["grow rich."]]
        let items = zip(prompts, answers).map { p, a in
            (context: lm.tokenizer.encode(p, addSpecialTokens: true), continuations: a.map { lm.tokenizer.encode($0) })
        }
        let batch = try lm.logProbabilities(batch: items)
        #expect(batch.count == items.count)
        for (item, got) in zip(items, batch) {
            #expect(got.count == item.continuations.count)
            for (c, g) in zip(item.continuations, got) {
                let alone = try lm.logProbability(context: item.context, continuation: c)
                #expect(g.tokens == alone.tokens)
                #expect(abs(g.sum - alone.sum) <= 1e-4 * max(1, abs(alone.sum)), "\(c): \(g.sum) vs \(alone.sum)")
            }
        }
        let model = lm.model
        let cache = model.makeCache()
        _ = try model.forward([1, 2, 3], cache: cache)
        #expect(throws: InferenceError.self) {  // logit rows out of order
            _ = try model.forward([4, 5], packing: [2], prefixes: [0..<3], logitRows: [1, 0], cache: cache)
        }
        #expect(throws: InferenceError.self) {  // a prefix past the cache
            _ = try model.forward([4, 5], packing: [2], prefixes: [0..<9], logitRows: [1], cache: cache)
        }
    }
}

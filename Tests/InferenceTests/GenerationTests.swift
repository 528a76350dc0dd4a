import AVTestSupport
import Foundation
import Testing

@testable import Inference
@testable import Tensors

struct ChatReference: Decodable {
    struct Pair: Decodable {
        var prompt: String
        var chosen: String
        var rejected: String
        var chosen_logp: Double
        var rejected_logp: Double
    }
    var prompt: String
    var prompt_ids: [Int]
    var greedy_ids: [Int]
    var greedy_text: String
    var chat_text: String
    var chat_system_text: String
    var pairs: [Pair]
    /// A prompt whose greedy continuation under transformers (full passes) is not one token repeated.
    var varied_prompt: String
    var varied_prompt_ids: [Int]
    var varied_greedy_ids: [Int]

    static func load() throws -> ChatReference {
        try JSONDecoder().decode(
            ChatReference.self, from: Data(contentsOf: URL(fileURLWithPath: modelFixture("chat/reference.json"))))
    }
}

@Suite("Generation, chat templates and log-probabilities")
struct GenerationTests {
    @Test("greedy generation equals transformers' on a continuation that varies")
    func variedGreedy() throws {
        let ref = try ChatReference.load()
        #expect(Set(ref.varied_greedy_ids).count >= 3)  // a reference that can catch a wrong argmax
        let lm = try LanguageModel(directory: modelFixture("chat"))
        let ids = lm.tokenizer.encode(ref.varied_prompt)
        #expect(ids == ref.varied_prompt_ids)
        #expect(
            try lm.generate(prompt: ids, maxTokens: ref.varied_greedy_ids.count, sampling: SamplingOptions()) { _ in }
                == ref.varied_greedy_ids)
    }

    @Test("tokenize, generate greedily and decode as transformers does")
    func greedyText() throws {
        let ref = try ChatReference.load()
        let lm = try LanguageModel(directory: modelFixture("chat"))
        let ids = lm.tokenizer.encode(ref.prompt, addSpecialTokens: true)
        #expect(ids == ref.prompt_ids)
        var streamed = ""
        let out = try lm.generate(prompt: ids, maxTokens: ref.greedy_ids.count, sampling: SamplingOptions()) {
            streamed += $0
        }
        #expect(out == ref.greedy_ids)
        #expect(streamed == ref.greedy_text)
    }

    @Test("the ChatML template renders what apply_chat_template renders, default system prompt included")
    func chatTemplate() throws {
        let ref = try ChatReference.load()
        let template = try #require(ChatTemplate.detect(directory: modelFixture("chat")))
        #expect(
            template == .chatML(defaultSystem: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
        #expect(template.render(user: "What is a contract?", system: nil) == ref.chat_text)
        #expect(template.render(user: "Hi", system: "Be brief.") == ref.chat_system_text)
    }

    @Test("Llama 3 and Mistral templates are recognized and render what transformers renders")
    func otherTemplates() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: modelFixture("chat_templates.json")))
        let all = try JSONDecoder().decode([String: [String: String]].self, from: data)
        let llama3 = try #require(all["llama3"])
        #expect(ChatTemplate.recognize(llama3["template"]!) == .llama3)
        #expect(ChatTemplate.llama3.render(user: "What is a contract?", system: nil) == llama3["user"])
        #expect(ChatTemplate.llama3.render(user: "Hi", system: "Be brief.") == llama3["system"])
        let mistral = try #require(all["mistral"])
        #expect(ChatTemplate.recognize(mistral["template"]!) == .mistral)
        #expect(ChatTemplate.mistral.render(user: "What is a contract?", system: nil) == mistral["user"])
        #expect(ChatTemplate.recognize("{{ messages }}") == nil)
    }

    @Test("log-probabilities of continuations match transformers within 1e-4")
    func logProbabilities() throws {
        let ref = try ChatReference.load()
        let lm = try LanguageModel(directory: modelFixture("chat"))
        for p in ref.pairs {
            let context = lm.tokenizer.encode(p.prompt)
            let c = try lm.logProbability(context: context, continuation: lm.tokenizer.encode(p.chosen))
            let r = try lm.logProbability(context: context, continuation: lm.tokenizer.encode(p.rejected))
            #expect(abs(c.sum - p.chosen_logp) < 1e-4 * max(1, abs(p.chosen_logp)), "\(c.sum) vs \(p.chosen_logp)")
            #expect(
                abs(r.sum - p.rejected_logp) < 1e-4 * max(1, abs(p.rejected_logp)), "\(r.sum) vs \(p.rejected_logp)")
        }
    }

    @Test("sampling: a seed reproduces the text, another seed changes it, top-k 1 is greedy")
    func sampling() throws {
        let lm = try LanguageModel(directory: modelFixture("chat"))
        let ids = lm.tokenizer.encode("The court")
        var options = SamplingOptions()
        options.temperature = 1.5
        options.seed = 42
        let a = try lm.generate(prompt: ids, maxTokens: 12, sampling: options) { _ in }
        let b = try lm.generate(prompt: ids, maxTokens: 12, sampling: options) { _ in }
        options.seed = 43
        let c = try lm.generate(prompt: ids, maxTokens: 12, sampling: options) { _ in }
        #expect(a == b && a != c)
        options.topK = 1
        let greedy = try lm.generate(prompt: ids, maxTokens: 12, sampling: SamplingOptions()) { _ in }
        #expect(try lm.generate(prompt: ids, maxTokens: 12, sampling: options) { _ in } == greedy)
    }
}

@Suite("Streaming generation")
struct StreamingTests {
    @Test("streamed pieces are whole characters and join to the decoded text, non-ASCII included")
    func utf8Pieces() throws {
        let lm = try LanguageModel(directory: modelFixture("chat"))
        var sawNonASCII = false
        for seed in 0..<12 {
            var options = SamplingOptions()
            options.temperature = 2
            options.seed = UInt64(seed)
            var pieces: [String] = []
            let prompt = lm.tokenizer.encode("Привет, мир", addSpecialTokens: true)
            let out = try lm.generate(prompt: prompt, maxTokens: 40, sampling: options) {
                pieces.append($0)
            }
            let text = lm.tokenizer.decode(out, skipSpecial: true)
            #expect(pieces.joined() == text)
            #expect(!pieces.contains { $0.unicodeScalars.contains("\u{FFFD}") } || text.contains("\u{FFFD}"))
            if text.unicodeScalars.contains(where: { $0.value > 127 }) { sawNonASCII = true }
        }
        #expect(sawNonASCII)
    }
}

/// Perplexity of a text longer than the window: rolling windows that keep context, against
/// transformers running the same rule (Fixtures/make_rolling_reference.py).
@Suite("Rolling perplexity")
struct RollingPerplexityTests {
    struct Reference: Decodable {
        struct Case: Decodable {
            var window: Int
            var stride: Int
            var nll: Double
            var tokens: Int
        }
        struct Short: Decodable {
            var tokens: Int
            var nll: Double
        }
        struct Chunks: Decodable {
            var chunk: Int
            var bos: Int?
            var nll: Double
            var tokens: Int
        }
        var ids: [Int]
        var cases: [Case]
        var short: Short
        var chunks: [Chunks]
    }

    @Test("llama.cpp's chunks (av eval --chunks): the second half of each chunk, after BOS, at every level")
    func chunks() throws {
        let r = try JSONDecoder().decode(
            Reference.self, from: Data(contentsOf: URL(fileURLWithPath: modelFixture("rolling_reference.json"))))
        let model = try LlamaModel(directory: modelFixture("llama"))
        #expect(r.chunks.count == 3)
        for level in KernelLevel.supported {
            model.kernels = level
            for c in r.chunks {
                let values = try model.chunkedTokenNLL(r.ids, chunk: c.chunk, bos: c.bos)
                #expect(values.count == c.tokens)
                let nll = values.reduce(0, +)
                #expect(
                    abs(nll - c.nll) < 1e-5 * c.nll,
                    "\(level.name) chunk \(c.chunk) BOS \(c.bos ?? -1): \(nll) vs \(c.nll)")
            }
        }
        model.kernels = .current
        // BOS matters, and so does the chunk: the reference's totals differ.
        #expect(Set(r.chunks.map { Int($0.nll) }).count == 3)
        // Fewer than two chunks: refused, as llama-perplexity refuses them.
        #expect(throws: InferenceError.self) {
            try model.chunkedTokenNLL(Array(r.ids.prefix(127)), chunk: 64, bos: nil)
        }
    }

    @Test("each token scored once, with up to the window of context; one pass when the text fits")
    func againstTransformers() throws {
        let r = try JSONDecoder().decode(
            Reference.self, from: Data(contentsOf: URL(fileURLWithPath: modelFixture("rolling_reference.json"))))
        let model = try LlamaModel(directory: modelFixture("llama"))
        // At every level this CPU runs: the products, attention and log-sum-exp are the level's own.
        for level in KernelLevel.supported {
            model.kernels = level
            for c in r.cases where c.stride > 1 || isReleaseBuild {  // stride 1: a window per token, slow in debug
                let got = try model.rollingNLL(r.ids, firstTarget: 1, window: c.window, stride: c.stride)
                #expect(got.tokens == c.tokens, "W \(c.window) S \(c.stride)")
                #expect(
                    abs(got.nll - c.nll) < 1e-3 * Double(c.tokens) / 100,
                    "\(level.name) W \(c.window) S \(c.stride): \(got.nll) vs \(c.nll)")
            }
        }
        model.kernels = .current
        // The windows matter: different strides give different (reference-matched) totals.
        #expect(Set(r.cases.map { Int($0.nll * 100) }).count == r.cases.count)
        // A text within the context is one pass, whatever the stride.
        let short = Array(r.ids.prefix(100))
        for stride in [1, 50, 128] {
            let got = try model.rollingNLL(short, firstTarget: 1, window: 128, stride: stride)
            #expect(got.tokens == r.short.tokens && abs(got.nll - r.short.nll) < 1e-3)
        }
        #expect(throws: InferenceError.self) { _ = try model.rollingNLL(short, firstTarget: 1, window: 1) }
        #expect(throws: InferenceError.self) { _ = try model.rollingNLL(short, firstTarget: 1, window: 64, stride: 65) }
    }
}

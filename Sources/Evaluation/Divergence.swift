import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Next-token KL divergence of a model from a reference, over prompts.
public struct KLResult: Sendable {
    /// Prompts evaluated.
    public var prompts: Int
    /// The mean over prompts of KL(reference ‖ model) of the next-token distribution.
    public var mean: Double
    /// The largest per-prompt KL.
    public var max: Double
}

/// How a text's tokens are scored for its perplexity.
public enum TextScoring: Sendable, Equatable {
    /// Every token once, in rolling windows of at most `window` tokens (default: the context)
    /// advancing by `stride` (default: half the window): lm-eval-harness's rolling log-likelihood.
    case rolling(window: Int?, stride: Int?)
    /// llama.cpp's `llama-perplexity -c N`: chunks of N tokens, the second half of each scored.
    case chunks(Int)
}

/// Perplexity of a text: mean negative log-likelihood per scored token, and its exponential.
public struct PerplexityResult: Sendable {
    /// Tokens scored (every token after the first).
    public var tokens: Int
    /// The mean negative log-likelihood per scored token, in nats.
    public var meanNLL: Double
    /// e^meanNLL.
    public var perplexity: Double { exp(meanNLL) }
    /// Per scored token, in order: its negative log-likelihood (for paired comparisons).
    public var tokenNLL: [Double] = []
}

extension LanguageModel {
    /// Perplexity of `text` (after the tokenizer's BOS, when it adds one): every token scored once,
    /// each with as much context as fits. A forward pass sees at most `window` tokens (default: the
    /// model's context), so a text that fits is one pass; a longer one is scored in rolling windows
    /// (lm-eval-harness's rolling log-likelihood): each later window scores the next `stride` tokens
    /// (default `window / 2`) from the `window` tokens that end just before its last one, so every
    /// token has between `window − stride + 1` and `window` tokens of context.
    public func perplexity(text: String, window: Int? = nil, stride: Int? = nil) throws(InferenceError)
        -> PerplexityResult
    {
        let prefix = tokenizer.prefixIDs
        let tokens = prefix + tokenizer.encode(text)
        let values = try model.rollingTokenNLL(
            tokens, firstTarget: max(1, prefix.count), window: window ?? model.config.maxPositionEmbeddings,
            stride: stride)
        guard !values.isEmpty else { throw .input(file: "text", message: "too short: no token to predict") }
        var total = 0.0
        for v in values { total += v }
        guard total.isFinite else { throw .nonFinite(what: "the perplexity") }
        return PerplexityResult(tokens: values.count, meanNLL: total / Double(values.count), tokenNLL: values)
    }

    /// Perplexity of `text` as llama.cpp's `llama-perplexity -c chunk` computes it: the tokens (after
    /// the tokenizer's BOS) in chunks of `chunk`, each starting with BOS, the second half of each
    /// scored (`LlamaModel.chunkedTokenNLL`).
    public func perplexity(text: String, chunk: Int) throws(InferenceError) -> PerplexityResult {
        let prefix = tokenizer.prefixIDs
        let values = try model.chunkedTokenNLL(prefix + tokenizer.encode(text), chunk: chunk, bos: prefix.first)
        var total = 0.0
        for v in values { total += v }
        guard total.isFinite else { throw .nonFinite(what: "the perplexity") }
        return PerplexityResult(tokens: values.count, meanNLL: total / Double(values.count), tokenNLL: values)
    }

    /// Perplexity of `text` scored as `scoring` says.
    public func perplexity(text: String, scoring: TextScoring) throws(InferenceError) -> PerplexityResult {
        switch scoring {
        case .rolling(let window, let stride): try perplexity(text: text, window: window, stride: stride)
        case .chunks(let n): try perplexity(text: text, chunk: n)
        }
    }

    /// KL(reference ‖ self) of the next-token distributions after each prompt.
    public func klDivergence(from reference: LanguageModel, prompts: [String]) throws(InferenceError) -> KLResult {
        guard !prompts.isEmpty else { throw .input(file: "prompts", message: "no prompts: KL needs at least one") }
        var values: [Double] = []
        for (i, prompt) in prompts.enumerated() {
            let ids = try context(prompt, origin: "prompt \(i + 1)")
            let p = try reference.nextTokenLogProbabilities(ids)
            let q = try nextTokenLogProbabilities(ids)
            guard p.count == q.count else {
                throw .input(file: prompt, message: "the models' vocabularies differ (\(p.count) and \(q.count))")
            }
            var kl = 0.0
            for i in 0..<p.count where p[i] > -80 { kl += exp(p[i]) * (p[i] - q[i]) }
            guard kl.isFinite else { throw .nonFinite(what: "the KL divergence after prompt \(i + 1)") }
            values.append(max(0, kl))
        }
        return KLResult(
            prompts: values.count, mean: values.reduce(0, +) / Double(max(values.count, 1)), max: values.max() ?? 0)
    }
}

import AlignmentVectors
import Foundation
import Tensors

/// A model with its tokenizer: what `av generate` and `av eval` run.
public final class LanguageModel: @unchecked Sendable {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let chatTemplate: ChatTemplate?

    /// Loads the model directory's weights, `tokenizer.json` and chat template; with `mixing`
    /// terms the weights are base + Σ λ·AV, computed as they are loaded (nothing is written).
    public init(directory: String, mixing terms: [MergeTerm] = [], force: Bool = false) throws(InferenceError) {
        let config = try LlamaConfig.load(directory: directory)
        let checkpoint: Checkpoint
        do {
            checkpoint = try Checkpoint(path: directory)
        } catch {
            throw .vectors(error)
        }
        let source = terms.isEmpty ? WeightSource(checkpoint: checkpoint) : try WeightSource(base: checkpoint, terms: terms, threads: Parallel.defaultThreads)
        model = try LlamaModel(config: config, path: directory, tensors: source)
        tokenizer = try Tokenizer(path: directory)
        chatTemplate = ChatTemplate.detect(directory: directory)
    }

    /// Generates up to `maxTokens` after `prompt` (ids), calling `emit` with each new piece of text
    /// as soon as it is complete UTF-8. Stops at an end-of-sequence token.
    @discardableResult
    public func generate(prompt: [Int], maxTokens: Int, sampling: SamplingOptions, emit: (String) -> Void) throws(InferenceError) -> [Int] {
        let cache = model.makeCache(capacity: min(model.config.maxPositionEmbeddings, prompt.count + maxTokens))
        var sampler = Sampler(sampling)
        var logits = try model.forward(prompt, cache: cache)
        var out: [Int] = []
        var printed = ""
        let stop = Set(model.config.eosTokenIDs)
        for _ in 0..<maxTokens {
            let next = sampler.next(logits)
            if stop.contains(next) { break }
            out.append(next)
            let text = tokenizer.decode(out, skipSpecial: true)
            // Hold back a trailing partial character until the next token completes it.
            if !text.hasSuffix("\u{FFFD}"), text.count >= printed.count, text.hasPrefix(printed) {
                emit(String(text.dropFirst(printed.count)))
                printed = text
            }
            guard cache.count < cache.capacity else { break }
            logits = try model.forward([next], cache: cache)
        }
        let final = tokenizer.decode(out, skipSpecial: true)
        if final.hasPrefix(printed), final.count > printed.count { emit(String(final.dropFirst(printed.count))) }
        return out
    }

    /// Σ log p(continuation | context) over the continuation's tokens, and their count.
    public func logProbability(context: [Int], continuation: [Int]) throws(InferenceError) -> (sum: Double, tokens: Int) {
        guard !continuation.isEmpty else { return (0, 0) }
        let ids = context + continuation
        let limit = model.config.maxPositionEmbeddings
        guard ids.count <= limit else { throw .contextTooLong(tokens: ids.count, limit: limit) }
        let cache = model.makeCache(capacity: ids.count)
        let logits = try model.forward(Array(ids.dropLast()), cache: cache, allLogits: true)
        let V = model.config.vocabSize
        var sum = 0.0
        for (k, target) in continuation.enumerated() {
            let position = context.count - 1 + k
            let row = logits[(position * V)..<((position + 1) * V)]
            sum += logSoftmax(row)[target]
        }
        return (sum, continuation.count)
    }

    /// The next-token distribution (log-probabilities) after `ids`.
    public func nextTokenLogProbabilities(_ ids: [Int]) throws(InferenceError) -> [Double] {
        let cache = model.makeCache(capacity: ids.count)
        return logSoftmax(try model.forward(ids, cache: cache)[...])
    }
}

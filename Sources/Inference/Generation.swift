import AlignmentVectors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// How a mix of alignment vectors is applied: to the weights (`base + Σ λ·AV`, one model) or to the
/// next-token logits of the base and aligned models run in lockstep (decode-time mixing).
public enum MixMode: String, Sendable, CaseIterable {
    case weights
    case logits
}

/// A model with its tokenizer: what `av generate` and `av eval` run.
public final class LanguageModel: @unchecked Sendable {
    /// The weights, ready to run.
    public let model: LlamaModel
    /// The model's `tokenizer.json`.
    public let tokenizer: Tokenizer
    /// The chat template the model directory names, when av knows it.
    public let chatTemplate: ChatTemplate?

    /// Loads the model directory's weights, `tokenizer.json` and chat template; with `mixing`
    /// terms the weights are base + Σ λ·AV (or the TIES/DARE combination `method` names), computed
    /// as they are loaded (nothing is written).
    ///
    /// With `mix: .logits` the base and each domain's aligned model (base + AV) run in lockstep and
    /// their next-token logits are mixed, h_base + Σ λ·(h_d − h_base) (DeRa), instead of the weights.
    ///
    /// A mix is refused, as `av merge` refuses it, when the vectors were made from another base
    /// (structure and content fingerprints) or from different bases, unless `force`. With `adapter`
    /// (and no terms), the weights are the directory's with that PEFT adapter merged in.
    public convenience init(
        directory: String, mixing terms: [MergeTerm] = [], method: MergeMethod = .linear, mix: MixMode = .weights,
        adapter: LoRAAdapter? = nil, force: Bool = false,
        threads: Int = Parallel.defaultThreads
    )
        throws(InferenceError)
    {
        let session = try MixSession(directory: directory, force: force, threads: threads)
        if let adapter {
            guard terms.isEmpty else {
                throw .vectors(.usage("an adapter and alignment vectors cannot be mixed in one load; merge one first"))
            }
            let source = try WeightSource(base: session.checkpoint, adapter: adapter, threads: threads)
            try self.init(
                model: LlamaModel(config: session.config, path: directory, tensors: source),
                tokenizer: session.tokenizer, chatTemplate: session.chatTemplate)
        } else {
            let loaded = try session.model(mixing: terms, method: method, mix: mix)
            self.init(model: loaded.model, tokenizer: loaded.tokenizer, chatTemplate: loaded.chatTemplate)
        }
    }

    init(model: LlamaModel, tokenizer: Tokenizer, chatTemplate: ChatTemplate?) {
        self.model = model
        self.tokenizer = tokenizer
        self.chatTemplate = chatTemplate
    }

    /// Generates up to `maxTokens` after `prompt` (ids), calling `emit` with each new piece of text
    /// as soon as it is complete UTF-8. Stops at an end-of-sequence token.
    @discardableResult
    public func generate(prompt: [Int], maxTokens: Int, sampling: SamplingOptions, emit: (String) -> Void)
        throws(InferenceError) -> [Int]
    {
        guard !prompt.isEmpty else {
            throw .input(file: "prompt", message: "empty: generation needs at least one token to start from")
        }
        let cache = model.makeCache(capacity: min(model.config.maxPositionEmbeddings, prompt.count + maxTokens))
        var sampler = Sampler(sampling)
        var logits = try model.forward(prompt, cache: cache)
        var out: [Int] = []
        var printed: [Unicode.Scalar] = []
        let stop = Set(model.config.eosTokenIDs)
        // Pieces are cut by code points, not characters: a combining mark that follows joins the
        // previous character without changing what was already printed. Trailing U+FFFD are held
        // back, since the next token may complete the bytes they stand for.
        func flush(_ text: String, final: Bool) {
            let scalars = Array(text.unicodeScalars)
            var end = scalars.count
            if !final { while end > printed.count, scalars[end - 1] == "\u{FFFD}" { end -= 1 } }
            guard end > printed.count, scalars[..<printed.count].elementsEqual(printed) else { return }
            var piece = String.UnicodeScalarView()
            piece.append(contentsOf: scalars[printed.count..<end])
            emit(String(piece))
            printed = Array(scalars[..<end])
        }
        for _ in 0..<maxTokens {
            guard logits.allSatisfy(\.isFinite) else { throw .nonFinite(what: "the next-token logits") }
            let next = sampler.next(logits)
            if stop.contains(next) { break }
            out.append(next)
            // A run of byte-fallback tokens decodes as one UTF-8 sequence, and bytes that were valid
            // alone can turn into U+FFFD when the next byte token comes: hold the run back.
            var stable = out.count
            while stable > 0, tokenizer.isByteFallback(out[stable - 1]) { stable -= 1 }
            flush(tokenizer.decode(Array(out[..<stable]), skipSpecial: true), final: false)
            guard cache.count < cache.capacity else { break }
            logits = try model.forward([next], cache: cache)
        }
        flush(tokenizer.decode(out, skipSpecial: true), final: true)
        return out
    }

    /// Σ log p(continuation | context) over the continuation's tokens, and their count.
    public func logProbability(context: [Int], continuation: [Int]) throws(InferenceError) -> (sum: Double, tokens: Int)
    {
        guard !continuation.isEmpty else { return (0, 0) }
        guard !context.isEmpty else {
            throw .input(file: "context", message: "empty: the first token has nothing to follow")
        }
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
            sum += logSoftmaxEntry(target, of: row, level: model.kernels)
        }
        guard sum.isFinite else { throw .nonFinite(what: "a log-probability") }
        return (sum, continuation.count)
    }

    /// Σ log p(continuation | context) for several continuations of one context: the context is run
    /// once and its KV cache shared; the continuations then run packed (each sees the context and
    /// itself only, positioned as if alone), so the matrix products are large even for short answers.
    public func logProbabilities(context: [Int], continuations: [[Int]]) throws(InferenceError) -> [(
        sum: Double, tokens: Int
    )] {
        try logProbabilities(batch: [(context, continuations)])[0]
    }

    /// `logProbabilities(context:continuations:)` of several prompts at once: their contexts run
    /// packed into one pass (each sees itself only), then their continuations into passes of up to
    /// `packedTokens` tokens, each seeing its own context. The same sums as one prompt at a time,
    /// to rounding, with matrix products many prompts tall.
    public func logProbabilities(batch items: [(context: [Int], continuations: [[Int]])]) throws(InferenceError)
        -> [[(sum: Double, tokens: Int)]]
    {
        let limit = model.config.maxPositionEmbeddings
        for item in items {
            guard !item.context.isEmpty else {
                throw .input(file: "context", message: "empty: the first token has nothing to follow")
            }
            let longest = item.continuations.map(\.count).max() ?? 0
            guard item.context.count + longest <= limit else {
                throw .contextTooLong(tokens: item.context.count + longest, limit: limit)
            }
        }
        var results: [[(sum: Double, tokens: Int)]] = []
        // A group: prompts whose contexts fit one pass together.
        for group in Self.passes(items.map(\.context.count)) { results += try scoreGroup(Array(items[group])) }
        return results
    }

    /// The most tokens one packed pass of `logProbabilities` takes (a longer context or
    /// continuation runs alone).
    static let packedTokens = 512

    /// Consecutive runs of `sizes` that fit `packedTokens` together (each at least one entry).
    static func passes(_ sizes: [Int]) -> [Range<Int>] {
        var runs: [Range<Int>] = []
        var next = 0
        while next < sizes.count {
            var end = next + 1
            var total = sizes[next]
            while end < sizes.count, total + sizes[end] <= packedTokens {
                total += sizes[end]
                end += 1
            }
            runs.append(next..<end)
            next = end
        }
        return runs
    }

    private func scoreGroup(_ items: [(context: [Int], continuations: [[Int]])]) throws(InferenceError)
        -> [[(sum: Double, tokens: Int)]]
    {
        let V = model.config.vocabSize
        let lengths = items.map(\.context.count)
        var starts: [Int] = []
        var contextTokens = 0
        for n in lengths {
            starts.append(contextTokens)
            contextTokens += n
        }
        // Each continuation's inputs are its tokens but the last (the first is scored by its context).
        let flat = items.indices.flatMap { k in items[k].continuations.map { (item: k, inputs: Array($0.dropLast())) } }
        let longest = flat.map(\.inputs.count).max() ?? 0
        let cache = model.makeCache(
            capacity: contextTokens + max(longest, min(Self.packedTokens, flat.reduce(0) { $0 + $1.inputs.count })))
        let last = try model.forward(
            items.flatMap(\.context), packing: lengths, prefixes: lengths.map { _ in 0..<0 },
            logitRows: zip(starts, lengths).map { $0 + $1 - 1 }, cache: cache)
        var sums: [[(sum: Double, tokens: Int)]] = items.map { _ in [] }
        for run in Self.passes(flat.map(\.inputs.count)) {
            let total = flat[run].reduce(0) { $0 + $1.inputs.count }
            cache.truncate(to: contextTokens)
            let pass = flat[run]
            let logits =
                total == 0
                ? []
                : try model.forward(
                    pass.flatMap(\.inputs), packing: pass.map(\.inputs.count),
                    prefixes: pass.map { starts[$0.item]..<(starts[$0.item] + lengths[$0.item]) },
                    logitRows: Array(0..<total), cache: cache)
            var offset = 0
            for entry in pass {
                let ids = items[entry.item].continuations[sums[entry.item].count]
                guard let first = ids.first else {
                    sums[entry.item].append((sum: 0, tokens: 0))
                    continue
                }
                var sum = logSoftmaxEntry(
                    first, of: last[(entry.item * V)..<((entry.item + 1) * V)], level: model.kernels)
                for k in 1..<max(1, ids.count) {
                    let row = offset + k - 1
                    sum += logSoftmaxEntry(ids[k], of: logits[(row * V)..<((row + 1) * V)], level: model.kernels)
                }
                offset += entry.inputs.count
                guard sum.isFinite else { throw InferenceError.nonFinite(what: "a log-probability") }
                sums[entry.item].append((sum: sum, tokens: ids.count))
            }
        }
        return sums
    }

    /// The next-token distribution (log-probabilities) after `ids`.
    public func nextTokenLogProbabilities(_ ids: [Int]) throws(InferenceError) -> [Double] {
        let cache = model.makeCache(capacity: ids.count)
        return logSoftmax(try model.forward(ids, cache: cache)[...], level: model.kernels)
    }
}

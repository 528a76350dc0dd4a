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

extension LanguageModel {
    /// Refuses, before it is tokenized, a text too long to fit the context in any encoding: more
    /// bytes than the context's positions times the longest token's bytes (with a margin of 4 for
    /// normalizers that lengthen text). Tokenizing a 40 MB line takes gigabytes; this takes nothing.
    public func checkFits(_ text: String, origin: String) throws(InferenceError) {
        let limit = model.config.maxPositionEmbeddings * tokenizer.longestTokenBytes * 4
        guard text.utf8.count <= limit else {
            throw .input(
                file: origin,
                message:
                    "\(text.utf8.count) bytes cannot fit the model's context of \(model.config.maxPositionEmbeddings)"
                    + " tokens (at most \(limit) bytes with its longest token)")
        }
    }

    /// Context for a prompt: the tokenizer's prefix (BOS) and the prompt's ids. Refuses an empty
    /// context (an empty prompt and no BOS token): the first token would have nothing to follow.
    public func context(_ prompt: String, origin: String) throws(InferenceError) -> [Int] {
        try checkFits(prompt, origin: origin)
        var ids = tokenizer.encode(prompt, addSpecialTokens: true)
        if ids.isEmpty, let bos = model.config.bosTokenID { ids = [bos] }
        guard !ids.isEmpty else {
            throw .input(
                file: origin,
                message: "the prompt is empty and the tokenizer adds no BOS token: the response has nothing to follow")
        }
        return ids
    }
}

extension LlamaModel {
    /// Σ −log p(tokens[t] | context) for t from `firstTarget` on, in rolling windows of at most `window`
    /// tokens advancing by `stride` (see `perplexity(text:window:stride:)` in Evaluation). Context
    /// that is not scored runs without the output layer; scored positions run in blocks of 256, so
    /// memory stays at one block of logits.
    public func rollingNLL(_ tokens: [Int], firstTarget: Int, window: Int, stride: Int? = nil)
        throws(InferenceError) -> (nll: Double, tokens: Int)
    {
        let values = try rollingTokenNLL(tokens, firstTarget: firstTarget, window: window, stride: stride)
        var total = 0.0
        for v in values { total += v }
        guard total.isFinite else { throw .nonFinite(what: "the perplexity") }
        return (total, values.count)
    }

    /// −log p(tokens[t] | context) for each t from `firstTarget` on, in order, computed as
    /// ``rollingNLL(_:firstTarget:window:stride:)`` computes their sum: for paired comparisons of two
    /// models on the same text.
    public func rollingTokenNLL(_ tokens: [Int], firstTarget: Int, window: Int, stride: Int? = nil)
        throws(InferenceError) -> [Double]
    {
        let window = min(window, config.maxPositionEmbeddings)
        guard window >= 2 else {
            throw .input(file: "window", message: "\(window) tokens: a window needs at least 2")
        }
        let stride = stride ?? max(1, window / 2)
        guard stride >= 1, stride <= window else {
            throw .input(file: "stride", message: "\(stride): the stride is 1 to the window (\(window))")
        }
        var values: [Double] = []
        func score(start: Int, first: Int, end: Int) throws(InferenceError) {
            try scoreTargets(tokens, start: start, first: first, end: end, into: &values)
        }
        var end = min(tokens.count, window + 1)
        if end > firstTarget { try score(start: 0, first: firstTarget, end: end) }
        while end < tokens.count {
            let next = min(tokens.count, end + stride)
            try score(start: max(0, next - 1 - window), first: max(end, firstTarget), end: next)
            end = next
        }
        return values
    }

    /// −log p of each token llama.cpp's `llama-perplexity` scores, in its order: `tokens` cut into
    /// ⌊count / n⌋ chunks of `n`, each chunk's first token replaced by `bos` (when the tokenizer adds
    /// one), each chunk run from position 0, and its second half scored: positions n/2 ..< n − 1
    /// predict the token after them. Fewer than two chunks are refused, as llama-perplexity refuses
    /// them. Numbers comparable with llama.cpp's on the same file and context.
    public func chunkedTokenNLL(_ tokens: [Int], chunk n: Int, bos: Int?) throws(InferenceError) -> [Double] {
        guard n >= 4, n <= config.maxPositionEmbeddings else {
            throw .input(
                file: "--chunks",
                message: "\(n): a chunk holds 4 to the model's context (\(config.maxPositionEmbeddings)) tokens")
        }
        guard tokens.count >= 2 * n else {
            throw .input(
                file: "text", message: "\(tokens.count) tokens: chunks of \(n) need at least \(2 * n) (two chunks)")
        }
        var values: [Double] = []
        for c in 0..<(tokens.count / n) {
            var ids = Array(tokens[(c * n)..<((c + 1) * n)])
            if let bos { ids[0] = bos }
            // Targets n/2 + 1 ..< n: predicted from positions n/2 ..< n − 1.
            try scoreTargets(ids, start: 0, first: n / 2 + 1, end: n, into: &values)
        }
        return values
    }

    /// Appends −log p(tokens[t] | tokens[start..<t]) for t in first..<end, from one pass over
    /// tokens[start..<end − 1]: the context before `first − 1` runs without the output layer, the
    /// scored positions in blocks of 256, so memory stays at one block of logits.
    func scoreTargets(_ tokens: [Int], start: Int, first: Int, end: Int, into values: inout [Double])
        throws(InferenceError)
    {
        let V = config.vocabSize
        let cache = makeCache(capacity: end - 1 - start)
        var position = start
        if first - 1 > start {
            _ = try forward(Array(tokens[start..<(first - 1)]), cache: cache)
            position = first - 1
        }
        while position < end - 1 {
            let blockEnd = min(end - 1, position + 256)
            let logits = try forward(Array(tokens[position..<blockEnd]), cache: cache, allLogits: true)
            for (k, p) in (position..<blockEnd).enumerated() {
                values.append(-logSoftmaxEntry(tokens[p + 1], of: logits[(k * V)..<((k + 1) * V)], level: kernels))
            }
            position = blockEnd
        }
    }
}

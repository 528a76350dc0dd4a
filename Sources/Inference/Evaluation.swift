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

/// One preference pair: a prompt and two completions, the preferred first.
public struct PreferencePair: Sendable {
    /// The text the completions follow.
    public var prompt: String
    /// The preferred completion.
    public var chosen: String
    /// The dispreferred completion.
    public var rejected: String
    /// Where the pair came from ("pairs.jsonl line 3"), for error messages.
    public var origin: String

    /// A pair from its texts; `origin` names it in errors.
    public init(prompt: String, chosen: String, rejected: String, origin: String = "pair") {
        self.prompt = prompt
        self.chosen = chosen
        self.rejected = rejected
        self.origin = origin
    }

    /// Reads `{"prompt", "chosen", "rejected"}` lines (blank lines skipped, CRLF and a BOM accepted).
    public static func load(_ path: String) throws(InferenceError) -> [PreferencePair] {
        var pairs: [PreferencePair] = []
        for (number, text) in try TextInput.lines(path) {
            guard let v = try? JSONParser.parse(text), case .object(let fields) = v, let p = v["prompt"]?.stringValue,
                let c = v["chosen"]?.stringValue, let r = v["rejected"]?.stringValue
            else {
                throw .input(
                    file: path,
                    message:
                        "line \(number): expected {\"prompt\": …, \"chosen\": …, \"rejected\": …}"
                        + " with string values")
            }
            if let extra = fields.first(where: { !["prompt", "chosen", "rejected"].contains($0.key) }) {
                throw .input(
                    file: path,
                    message: "line \(number): unknown key \"\(extra.key)\" (known: prompt, chosen, rejected)")
            }
            guard !c.isEmpty, !r.isEmpty else {
                throw .input(
                    file: path,
                    message:
                        "line \(number): the \(c.isEmpty ? "chosen" : "rejected") response is empty; there is nothing"
                        + " to score"
                )
            }
            pairs.append(PreferencePair(prompt: p, chosen: c, rejected: r, origin: "\(path) line \(number)"))
        }
        guard !pairs.isEmpty else { throw .input(file: path, message: "no pairs: the file holds no JSON lines") }
        return pairs
    }
}

/// Preference accuracy: how often the model gives the chosen completion more log-probability.
public struct PairsResult: Sendable {
    /// Pairs evaluated.
    public var pairs: Int
    /// Share of pairs with log p(chosen) > log p(rejected).
    public var accuracy: Double
    /// Mean of log p(chosen) − log p(rejected).
    public var meanMargin: Double
    /// With a reference model: share with a positive DPO implicit reward margin
    /// (log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r)), and its mean.
    public var rewardAccuracy: Double?
    /// The mean of that margin, with a reference model.
    public var meanRewardMargin: Double?
    /// Per pair, in input order: log p(chosen) − log p(rejected).
    public var margins: [Double]

    /// A result from its measurements.
    public init(
        pairs: Int, accuracy: Double, meanMargin: Double, rewardAccuracy: Double?, meanRewardMargin: Double?,
        margins: [Double]
    ) {
        self.pairs = pairs
        self.accuracy = accuracy
        self.meanMargin = meanMargin
        self.rewardAccuracy = rewardAccuracy
        self.meanRewardMargin = meanRewardMargin
        self.margins = margins
    }
}

/// Next-token KL divergence of a model from a reference, over prompts.
public struct KLResult: Sendable {
    /// Prompts evaluated.
    public var prompts: Int
    /// The mean over prompts of KL(reference ‖ model) of the next-token distribution.
    public var mean: Double
    /// The largest per-prompt KL.
    public var max: Double
}

/// Perplexity of a text: mean negative log-likelihood per scored token, and its exponential.
public struct PerplexityResult: Sendable {
    /// Tokens scored (every token after the first).
    public var tokens: Int
    /// The mean negative log-likelihood per scored token, in nats.
    public var meanNLL: Double
    /// e^meanNLL.
    public var perplexity: Double { exp(meanNLL) }
}

extension LanguageModel {
    /// Context for a prompt: the tokenizer's prefix (BOS) and the prompt's ids. Refuses an empty
    /// context (an empty prompt and no BOS token): the first token would have nothing to follow.
    public func context(_ prompt: String, origin: String) throws(InferenceError) -> [Int] {
        var ids = tokenizer.encode(prompt, addSpecialTokens: true)
        if ids.isEmpty, let bos = model.config.bosTokenID { ids = [bos] }
        guard !ids.isEmpty else {
            throw .input(
                file: origin,
                message: "the prompt is empty and the tokenizer adds no BOS token: the response has nothing to follow")
        }
        return ids
    }

    /// Preference accuracy and margins over `pairs`; with `reference`, also the DPO implicit reward
    /// margins against it. Each pair's prompt is computed once and shared by its two completions.
    /// - Throws: `InferenceError.input` for a pair with an empty context.
    public func evaluate(pairs: [PreferencePair], reference: LanguageModel? = nil) throws(InferenceError) -> PairsResult
    {
        var wins = 0
        var margins: [Double] = []
        var rewardWins = 0
        var rewardMargins: [Double] = []
        // Prompts run packed, once each, then every chosen and rejected answer packed after them.
        var items: [(context: [Int], continuations: [[Int]])] = []
        for p in pairs {
            items.append(
                (try context(p.prompt, origin: p.origin), [tokenizer.encode(p.chosen), tokenizer.encode(p.rejected)]))
        }
        let scored = try logProbabilities(batch: items)
        let referenced = try reference?.logProbabilities(batch: items)
        for (i, s) in scored.enumerated() {
            let (lc, lr) = (s[0].sum, s[1].sum)
            margins.append(lc - lr)
            if lc > lr { wins += 1 }
            if let referenced {
                let (rc, rr) = (referenced[i][0].sum, referenced[i][1].sum)
                let reward = (lc - rc) - (lr - rr)
                rewardMargins.append(reward)
                if reward > 0 { rewardWins += 1 }
            }
        }
        let n = Double(pairs.count)
        return PairsResult(
            pairs: pairs.count, accuracy: Double(wins) / n, meanMargin: margins.reduce(0, +) / n,
            rewardAccuracy: reference == nil ? nil : Double(rewardWins) / n,
            meanRewardMargin: reference == nil ? nil : rewardMargins.reduce(0, +) / n, margins: margins)
    }

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
        let r = try model.rollingNLL(
            tokens, firstTarget: max(1, prefix.count), window: window ?? model.config.maxPositionEmbeddings,
            stride: stride)
        guard r.tokens > 0 else { throw .input(file: "text", message: "too short: no token to predict") }
        return PerplexityResult(tokens: r.tokens, meanNLL: r.nll / Double(r.tokens))
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

extension LlamaModel {
    /// Σ −log p(tokens[t] | context) for t from `firstTarget` on, in rolling windows of at most `window`
    /// tokens advancing by `stride` (see ``LanguageModel/perplexity(text:window:stride:)``). Context
    /// that is not scored runs without the output layer; scored positions run in blocks of 256, so
    /// memory stays at one block of logits.
    public func rollingNLL(_ tokens: [Int], firstTarget: Int, window: Int, stride: Int? = nil)
        throws(InferenceError) -> (nll: Double, tokens: Int)
    {
        let window = min(window, config.maxPositionEmbeddings)
        guard window >= 2 else {
            throw .input(file: "window", message: "\(window) tokens: a window needs at least 2")
        }
        let stride = stride ?? max(1, window / 2)
        guard stride >= 1, stride <= window else {
            throw .input(file: "stride", message: "\(stride): the stride is 1 to the window (\(window))")
        }
        let V = config.vocabSize
        var total = 0.0
        var count = 0
        // Scores targets first..<end from the input tokens[start..<end − 1].
        func score(start: Int, first: Int, end: Int) throws(InferenceError) {
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
                    total -= logSoftmaxEntry(tokens[p + 1], of: logits[(k * V)..<((k + 1) * V)])
                    count += 1
                }
                position = blockEnd
            }
        }
        var end = min(tokens.count, window + 1)
        if end > firstTarget { try score(start: 0, first: firstTarget, end: end) }
        while end < tokens.count {
            let next = min(tokens.count, end + stride)
            try score(start: max(0, next - 1 - window), first: max(end, firstTarget), end: next)
            end = next
        }
        guard total.isFinite else { throw .nonFinite(what: "the perplexity") }
        return (total, count)
    }
}

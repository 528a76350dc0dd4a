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
    public var prompt: String
    public var chosen: String
    public var rejected: String
    /// Where the pair came from ("pairs.jsonl line 3"), for error messages.
    public var origin: String

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
    public var pairs: Int
    /// Share of pairs with log p(chosen) > log p(rejected).
    public var accuracy: Double
    /// Mean of log p(chosen) − log p(rejected).
    public var meanMargin: Double
    /// With a reference model: share with a positive DPO implicit reward margin
    /// (log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r)), and its mean.
    public var rewardAccuracy: Double?
    public var meanRewardMargin: Double?
    public var margins: [Double]

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
    public var prompts: Int
    public var mean: Double
    public var max: Double
}

public struct PerplexityResult: Sendable {
    public var tokens: Int
    public var meanNLL: Double
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

    public func evaluate(pairs: [PreferencePair], reference: LanguageModel? = nil) throws(InferenceError) -> PairsResult
    {
        var wins = 0
        var margins: [Double] = []
        var rewardWins = 0
        var rewardMargins: [Double] = []
        for p in pairs {
            let ctx = try context(p.prompt, origin: p.origin)
            let c = tokenizer.encode(p.chosen)
            let r = tokenizer.encode(p.rejected)
            let lc = try logProbability(context: ctx, continuation: c).sum
            let lr = try logProbability(context: ctx, continuation: r).sum
            margins.append(lc - lr)
            if lc > lr { wins += 1 }
            if let reference {
                let rc = try reference.logProbability(context: ctx, continuation: c).sum
                let rr = try reference.logProbability(context: ctx, continuation: r).sum
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

    /// Perplexity of `text` in windows of at most `window` tokens (each window conditioned only on
    /// itself), over every token that has a context.
    public func perplexity(text: String, window: Int? = nil) throws(InferenceError) -> PerplexityResult {
        let prefix = tokenizer.prefixIDs
        let ids = tokenizer.encode(text)
        let size = min(window ?? 1024, model.config.maxPositionEmbeddings) - prefix.count
        var nll = 0.0
        var count = 0
        var start = 0
        while start < ids.count {
            let chunk = Array(ids[start..<min(ids.count, start + max(size, 2))])
            let ctx = prefix.isEmpty ? Array(chunk.prefix(1)) : prefix
            let cont = prefix.isEmpty ? Array(chunk.dropFirst()) : chunk
            let r = try logProbability(context: ctx, continuation: cont)
            nll -= r.sum
            count += r.tokens
            start += chunk.count
        }
        guard count > 0 else { throw .input(file: "text", message: "too short: no token to predict") }
        guard nll.isFinite else { throw .nonFinite(what: "the perplexity") }
        return PerplexityResult(tokens: count, meanNLL: nll / Double(count))
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

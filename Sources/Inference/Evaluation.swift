import Foundation
import SafeTensors

/// One preference pair: a prompt and two completions, the preferred first.
public struct PreferencePair: Sendable {
    public var prompt: String
    public var chosen: String
    public var rejected: String

    /// Reads `{"prompt", "chosen", "rejected"}` lines (blank lines skipped).
    public static func load(_ path: String) throws(InferenceError) -> [PreferencePair] {
        guard let data = FileManager.default.contents(atPath: path) else { throw .input(file: path, message: "cannot read the file") }
        var pairs: [PreferencePair] = []
        for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces)
            guard !text.isEmpty else { continue }
            guard let v = try? JSONParser.parse(text), let p = v["prompt"]?.stringValue, let c = v["chosen"]?.stringValue,
                let r = v["rejected"]?.stringValue
            else {
                throw .input(file: path, message: "line \(i + 1): expected {\"prompt\": …, \"chosen\": …, \"rejected\": …} with string values")
            }
            pairs.append(PreferencePair(prompt: p, chosen: c, rejected: r))
        }
        guard !pairs.isEmpty else { throw .input(file: path, message: "no pairs") }
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
    /// Context for a prompt: the tokenizer's prefix (BOS) and the prompt's ids; never empty.
    func context(_ prompt: String) -> [Int] {
        var ids = tokenizer.encode(prompt, addSpecialTokens: true)
        if ids.isEmpty, let bos = model.config.bosTokenID { ids = [bos] }
        return ids
    }

    public func evaluate(pairs: [PreferencePair], reference: LanguageModel? = nil) throws(InferenceError) -> PairsResult {
        var wins = 0
        var margins: [Double] = []
        var rewardWins = 0
        var rewardMargins: [Double] = []
        for p in pairs {
            let ctx = context(p.prompt)
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
        return PerplexityResult(tokens: count, meanNLL: nll / Double(count))
    }

    /// KL(reference ‖ self) of the next-token distributions after each prompt.
    public func klDivergence(from reference: LanguageModel, prompts: [String]) throws(InferenceError) -> KLResult {
        var values: [Double] = []
        for prompt in prompts {
            let ids = context(prompt)
            let p = try reference.nextTokenLogProbabilities(ids)
            let q = try nextTokenLogProbabilities(ids)
            guard p.count == q.count else { throw .input(file: prompt, message: "the models' vocabularies differ (\(p.count) and \(q.count))") }
            var kl = 0.0
            for i in 0..<p.count where p[i] > -80 { kl += exp(p[i]) * (p[i] - q[i]) }
            values.append(max(0, kl))
        }
        return KLResult(prompts: values.count, mean: values.reduce(0, +) / Double(max(values.count, 1)), max: values.max() ?? 0)
    }
}

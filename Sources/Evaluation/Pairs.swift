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
public struct PairsResult: Sendable, Equatable {
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

    /// Pairs whose chosen completion scored higher.
    public var wins: Int { margins.filter { $0 > 0 }.count }

    /// The Wilson interval of ``accuracy``.
    public func accuracyInterval(confidence: Double = Statistics.defaultConfidence) -> Interval {
        Statistics.wilson(successes: wins, trials: max(pairs, 1), confidence: confidence)
    }

    /// A seeded bootstrap interval of ``meanMargin`` over the pairs.
    public func meanMarginInterval(confidence: Double = Statistics.defaultConfidence) -> Interval {
        Statistics.bootstrapMean(margins.isEmpty ? [0] : margins, confidence: confidence)
    }

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

extension LanguageModel {
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
            try checkFits(p.chosen, origin: p.origin)
            try checkFits(p.rejected, origin: p.origin)
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
}

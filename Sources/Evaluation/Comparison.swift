import Tensors

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One measurement of two models on the same items, with a paired test of their difference.
public struct PairedComparison: Sendable, Equatable {
    /// What is compared: "pairs accuracy", "levels expert share", "perplexity", …
    public var metric: String
    /// The model under test's value.
    public var value: Double
    /// The other model's value.
    public var other: Double
    /// Items where only the model under test succeeded, and only the other (proportions only).
    public var discordant: (onlyThis: Int, onlyOther: Int)?
    /// The two-sided p-value of "no difference".
    public var pValue: Double
    /// The test: "McNemar exact" or "paired bootstrap".
    public var test: String

    /// `value − other`.
    public var difference: Double { value - other }

    /// Two comparisons are equal when every field is.
    public static func == (a: PairedComparison, b: PairedComparison) -> Bool {
        a.metric == b.metric && a.value == b.value && a.other == b.other && a.pValue == b.pValue && a.test == b.test
            && a.discordant?.onlyThis == b.discordant?.onlyThis && a.discordant?.onlyOther == b.discordant?.onlyOther
    }
}

/// Paired comparisons of two models' results on the same inputs: McNemar's exact test for shares
/// and accuracy (which items each got right), a seeded paired bootstrap for margins and perplexity.
public enum Comparison {
    /// A proportion compared item by item: `this[i]` and `other[i]` say whether item i succeeded.
    public static func proportion(_ metric: String, this: [Bool], other: [Bool]) -> PairedComparison {
        precondition(this.count == other.count && !this.isEmpty, "the same items")
        let onlyThis = zip(this, other).filter { $0 && !$1 }.count
        let onlyOther = zip(this, other).filter { !$0 && $1 }.count
        let n = Double(this.count)
        return PairedComparison(
            metric: metric, value: Double(this.filter { $0 }.count) / n, other: Double(other.filter { $0 }.count) / n,
            discordant: (onlyThis, onlyOther),
            pValue: Statistics.mcNemarExact(onlyFirst: onlyThis, onlySecond: onlyOther),
            test: "McNemar exact")
    }

    /// A mean compared item by item by a paired bootstrap of the differences.
    public static func mean(_ metric: String, this: [Double], other: [Double]) -> PairedComparison {
        precondition(this.count == other.count && !this.isEmpty, "the same items")
        let n = Double(this.count)
        return PairedComparison(
            metric: metric, value: this.reduce(0, +) / n, other: other.reduce(0, +) / n, discordant: nil,
            pValue: Statistics.pairedBootstrapP(zip(this, other).map { $0 - $1 }), test: "paired bootstrap")
    }

    /// Preference accuracy (McNemar) and mean margin (bootstrap) of two models on the same pairs.
    public static func pairs(_ this: PairsResult, _ other: PairsResult) -> [PairedComparison] {
        [
            proportion("pairs accuracy", this: this.margins.map { $0 > 0 }, other: other.margins.map { $0 > 0 }),
            mean("pairs mean margin", this: this.margins, other: other.margins),
        ]
    }

    /// Per level, its share (McNemar on which prompts it won) and mean margin (bootstrap).
    public static func levels(_ this: LevelsResult, _ other: LevelsResult) -> [PairedComparison] {
        this.levels.indices.flatMap { i in
            [
                proportion(
                    "levels \(this.levels[i]) share", this: this.winners.map { $0 == i },
                    other: other.winners.map { $0 == i }),
                mean("levels \(this.levels[i]) mean margin", this: this.margins(at: i), other: other.margins(at: i)),
            ]
        }
    }

    /// Perplexity of two models on the same text: the bootstrap resamples blocks of `block` tokens
    /// (neighbouring tokens' losses are correlated; whole blocks keep that), and the values compared
    /// are the perplexities.
    public static func perplexity(_ this: PerplexityResult, _ other: PerplexityResult, block: Int = 32)
        -> PairedComparison
    {
        precondition(this.tokenNLL.count == other.tokenNLL.count && !this.tokenNLL.isEmpty, "the same tokens")
        var differences: [Double] = []
        var start = 0
        while start < this.tokenNLL.count {
            let end = min(start + block, this.tokenNLL.count)
            differences.append((start..<end).map { this.tokenNLL[$0] - other.tokenNLL[$0] }.reduce(0, +))
            start = end
        }
        return PairedComparison(
            metric: "perplexity", value: this.perplexity, other: other.perplexity, discordant: nil,
            pValue: Statistics.pairedBootstrapP(differences), test: "paired bootstrap, blocks of \(block) tokens")
    }
}

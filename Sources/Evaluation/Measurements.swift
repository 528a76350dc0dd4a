import Inference

/// What `av eval` measures on one model, each part optional: perplexity of a text, preference
/// accuracy over pairs (with a reference model, DPO implicit rewards too), level shares, KL to
/// another model; and the same measurements on a second model with paired tests of the differences.
public struct Measurements {
    /// A text and how its tokens are scored.
    public var text: (body: String, scoring: TextScoring)?
    /// Preference pairs.
    public var pairs: [PreferencePair]?
    /// The reference model of DPO's implicit reward margins over the pairs.
    public var reference: LanguageModel?
    /// A levels file and how its responses are scored and prompted.
    public var levels: (file: LevelsFile, score: LevelScore, prefix: String)?
    /// The model KL is measured from, over these prompts.
    public var kl: (from: LanguageModel, prompts: [String])?
    /// A second model measured on the same inputs and compared item by item.
    public var compare: LanguageModel?

    /// Nothing to measure yet.
    public init() {}

    /// What the measurements found.
    public struct Results {
        /// Perplexity of the text.
        public var text: PerplexityResult?
        /// Accuracy and margins over the pairs.
        public var pairs: PairsResult?
        /// Level shares (with the prefix, when one is given).
        public var levels: LevelsResult?
        /// Level shares without the prefix, when one is given (what the prompting changed).
        public var levelsWithoutPrefix: LevelsResult?
        /// KL from the `kl` model to the measured one.
        public var kl: KLResult?
        /// The paired tests against `compare`, in the order of the measurements.
        public var comparisons: [PairedComparison] = []
    }

    /// Runs every measurement on `lm` (and on `compare`, which gets `lm`'s threads), in the order
    /// text, pairs, levels, KL, comparison.
    public func run(on lm: LanguageModel) throws(InferenceError) -> Results {
        var r = Results()
        if let text { r.text = try lm.perplexity(text: text.body, scoring: text.scoring) }
        if let pairs { r.pairs = try lm.evaluate(pairs: pairs, reference: reference) }
        if let levels {
            r.levels = try lm.evaluate(levels: levels.file, score: levels.score, prefix: levels.prefix)
            if !levels.prefix.isEmpty {
                r.levelsWithoutPrefix = try lm.evaluate(levels: levels.file, score: levels.score)
            }
        }
        if let kl {
            kl.from.model.threads = lm.model.threads
            r.kl = try lm.klDivergence(from: kl.from, prompts: kl.prompts)
        }
        if let other = compare {
            other.model.threads = lm.model.threads
            if let text, let mine = r.text {
                let theirs = try other.perplexity(text: text.body, scoring: text.scoring)
                r.comparisons.append(Comparison.perplexity(mine, theirs))
            }
            if let pairs, let mine = r.pairs {
                r.comparisons += Comparison.pairs(mine, try other.evaluate(pairs: pairs))
            }
            if let levels, let mine = r.levels {
                let theirs = try other.evaluate(levels: levels.file, score: levels.score, prefix: levels.prefix)
                r.comparisons += Comparison.levels(mine, theirs)
            }
        }
        return r
    }
}

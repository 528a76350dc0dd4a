import Dispatch
import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension ReleaseCheck {
    /// What a check runs against: the model under test, loaded once for every check.
    public struct Subject {
        /// The model's directory.
        public var path: String
        /// The model, or nil when it does not load.
        public var model: LanguageModel?
        /// Why the model does not load (for the `loads` check and the others' errors).
        public var loadError: String?
        /// The recipe's base: the `kl` check's model when it names none.
        public var base: String?
        /// Threads for models the checks load.
        public var threads: Int
        /// Loads another model (a `kl` check's `to`), with the caller's policy for `.gguf` files.
        public var load: (String) throws -> LanguageModel

        /// A subject from its parts.
        public init(
            path: String, model: LanguageModel?, loadError: String?, base: String?, threads: Int,
            load: @escaping (String) throws -> LanguageModel
        ) {
            self.path = path
            self.model = model
            self.loadError = loadError
            self.base = base
            self.threads = threads
            self.load = load
        }
    }

    /// A check's result as reports show it.
    public struct Outcome: Sendable, Equatable {
        /// The threshold, in words: "≥ 80.0%", "≤ 0.5", "expert ≥ 80% at 95% confidence".
        public var threshold: String
        /// What was measured, with intervals for shares: "81.2% [68–90]".
        public var measured: String
        /// Whether the check passed.
        public var passed: Bool
        /// More about a failure (by how much a bound missed, the first bad tensor, the decoded text).
        public var detail: String?
    }

    /// The threshold, in words, as reports show it (also when the check cannot run).
    public var threshold: String {
        switch kind {
        case let .pairs(_, minimum, confidence):
            [minimum.map { String(cFormat: "≥ %.1f%%", 100 * $0) + Self.atConfidence(confidence) }, notWorse]
                .compactMap { $0 }.joined(separator: ", ")
        case let .perplexity(_, maximum), let .kl(_, maximum, _): "≤ \(String(trimming: maximum))"
        case .finite: "0 non-finite"
        case .loads: "loads"
        case .tokenizer: "round-trips"
        case let .levels(_, level, minimum, largest, _, confidence):
            [minimum.map { "\(level) ≥ " + String(cFormat: "%.0f%%", 100 * $0) }, largest ? "\(level) largest" : nil]
                .compactMap { $0 }.joined(separator: ", ") + Self.atConfidence(confidence)
                + (notWorse.map { (minimum != nil || largest ? ", " : "") + $0 } ?? "")
        }
    }

    /// "not worse than base (p < 0.05)", with a baseline.
    var notWorse: String? {
        baseline.map { "not worse than \($0.model ?? "base") (p < \(String(trimming: $0.alpha)))" }
    }

    /// Compares the model's per-item successes with the baseline's; a failure when the model is
    /// lower with p below alpha.
    func against(
        _ baseline: Baseline, on subject: Subject, metric: String, this: [Bool],
        other: (LanguageModel) throws -> [Bool]
    ) throws -> (passed: Bool, note: String) {
        guard let path = baseline.model ?? subject.base else {
            throw ReleaseCheckError(
                description: "check \"\(name)\": \"not_worse_than\": \"base\" but the recipe has no base",
                isMissingFile: false)
        }
        let model = try subject.load(path)
        model.model.threads = subject.threads
        let c = Comparison.proportion(metric, this: this, other: try other(model))
        let worse = c.difference < 0 && c.pValue < baseline.alpha
        let note =
            "\(metric) " + String(cFormat: "%.1f%% against %.1f%%", 100 * c.value, 100 * c.other)
            + " for \(baseline.model ?? "base"): " + String(cFormat: "%+.1f points", 100 * c.difference)
            + String(cFormat: ", McNemar exact p = %.3g", c.pValue)
            + (worse ? " < \(String(trimming: baseline.alpha))" : "")
        return (!worse, note)
    }

    /// Runs the check on `subject`.
    /// - Throws: what loading or evaluating throws; the caller reports it as the check's error.
    public func run(on subject: Subject) throws -> Outcome {
        func model() throws -> LanguageModel {
            guard let lm = subject.model else {
                throw ReleaseCheckError(
                    description: "the model does not load: \(subject.loadError ?? "?")", isMissingFile: false)
            }
            return lm
        }
        switch kind {
        case let .pairs(file, minimum, confidence):
            let pairs = try PreferencePair.load(file)
            let r = try model().evaluate(pairs: pairs)
            let interval = r.accuracyInterval(confidence: confidence ?? Statistics.defaultConfidence)
            let bound = confidence == nil ? r.accuracy : interval.lower
            var outcome = Outcome(
                threshold: threshold,
                measured: interval.percent(of: r.accuracy, decimals: 1), passed: minimum.map { bound >= $0 } ?? true)
            if let confidence, let minimum, bound < minimum {
                outcome.detail = Self.shortfall(bound, minimum, confidence)
            }
            if let baseline {
                let (passed, note) = try against(
                    baseline, on: subject, metric: "accuracy", this: r.margins.map { $0 > 0 },
                    other: { try $0.evaluate(pairs: pairs).margins.map { $0 > 0 } })
                outcome.passed = outcome.passed && passed
                outcome.detail = [outcome.detail, note].compactMap { $0 }.joined(separator: "; ")
            }
            return outcome
        case let .perplexity(file, maximum):
            let r = try model().perplexity(text: try TextInput.read(file))
            return Outcome(
                threshold: threshold, measured: String(cFormat: "%.3f", r.perplexity),
                passed: r.perplexity <= maximum)
        case let .kl(prompts, maximum, to):
            guard let to = to ?? subject.base else {
                throw ReleaseCheckError(
                    description: "check \"\(name)\": no \"to\" model and no base in the recipe", isMissingFile: false)
            }
            let reference = try subject.load(to)
            reference.model.threads = subject.threads
            let r = try model().klDivergence(from: reference, prompts: try TextInput.lines(prompts).map(\.text))
            return Outcome(
                threshold: threshold, measured: String(cFormat: "%.5f (max %.5f)", r.mean, r.max),
                passed: r.mean <= maximum)
        case .finite:
            let store = try SafeTensorsModel(path: subject.path)
            var bad = 0
            var firstBad: String?
            for e in store.entries where Convert.supports(e.info.dtype) {
                let n = try store.file(holding: e.info.name)!.floats(named: e.info.name).filter { !$0.isFinite }.count
                if n > 0 && firstBad == nil { firstBad = e.info.name }
                bad += n
            }
            return Outcome(
                threshold: threshold, measured: "\(bad)", passed: bad == 0,
                detail: firstBad.map { "first in tensor \(JSONWriter.quoted($0))" })
        case .loads:
            return Outcome(
                threshold: threshold, measured: subject.model == nil ? "no" : "yes", passed: subject.model != nil,
                detail: subject.loadError)
        case .tokenizer(let sample):
            let sample = sample ?? "The quick brown fox jumps over the lazy dog. 0123456789 — naïve café 🙂"
            let tokenizer = try model().tokenizer
            let back = tokenizer.decode(tokenizer.encode(sample))
            return Outcome(
                threshold: threshold, measured: back == sample ? "yes" : "no", passed: back == sample,
                detail: back == sample ? nil : "decoded \(JSONWriter.quoted(back))")
        case let .levels(file, level, minimum, largest, score, confidence):
            let levels = try LevelsFile.load(file)
            let r = try model().evaluate(levels: levels, score: score)
            let index = r.levels.firstIndex(of: level)!
            let atConfidence = confidence ?? Statistics.defaultConfidence
            let interval = r.shareInterval(at: index, confidence: atConfidence)
            var outcome = Outcome(
                threshold: threshold,
                measured: r.levels.indices.map {
                    "\(r.levels[$0]) "
                        + r.shareInterval(at: $0, confidence: atConfidence).percent(of: r.shares[$0], decimals: 0)
                }.joined(separator: ", "),
                passed: false)
            let share = r.shares[index]
            let others = r.shares.indices.filter { $0 != index }.map { r.shares[$0] }.max() ?? 0
            let bound = confidence == nil ? share : interval.lower
            outcome.passed = (minimum.map { bound >= $0 } ?? true) && (!largest || share > others)
            if let confidence, let minimum, bound < minimum {
                outcome.detail = Self.shortfall(bound, minimum, confidence)
            }
            // Ties are counted for the level listed first by rule: a share made of them proves nothing.
            if r.ties == r.winners.count {
                outcome.passed = false
                outcome.detail = "every prompt ties between levels: the file cannot tell the levels apart"
            } else if r.ties > 0 {
                let note = "\(r.ties) of \(r.winners.count) prompts tie (counted for the level listed first)"
                outcome.detail = [outcome.detail, note].compactMap { $0 }.joined(separator: "; ")
            }
            if let baseline {
                let (passed, note) = try against(
                    baseline, on: subject, metric: "\(level) share", this: r.winners.map { $0 == index },
                    other: { try $0.evaluate(levels: levels, score: score).winners.map { $0 == index } })
                outcome.passed = outcome.passed && passed
                outcome.detail = [outcome.detail, note].compactMap { $0 }.joined(separator: "; ")
            }
            return outcome
        }
    }

    /// " at 95% confidence", or nothing without a confidence.
    static func atConfidence(_ confidence: Double?) -> String {
        confidence.map { " at " + String(cFormat: "%g", 100 * $0) + "% confidence" } ?? ""
    }

    /// How far an interval's lower bound fell short of a threshold.
    static func shortfall(_ lower: Double, _ minimum: Double, _ confidence: Double) -> String {
        "the \(String(cFormat: "%g", 100 * confidence))% interval's lower bound "
            + String(cFormat: "%.1f%% is %.1f points under %.1f%%", 100 * lower, 100 * (minimum - lower), 100 * minimum)
    }
}

/// One check's result in a gate's report: the check, what was measured, and how long it took.
public struct ReleaseCheckResult: Sendable {
    /// The check's name (its `name`, or its type and file).
    public var name: String
    /// The check's type: `pairs`, `levels`, `kl`, ….
    public var type: String
    /// The threshold, in words.
    public var threshold: String
    /// What was measured, or `error`.
    public var measured: String
    /// Whether the check passed (a check that could not run did not).
    public var passed: Bool
    /// Wall-clock seconds the check took.
    public var seconds: Double
    /// More about a failure, or the error that stopped the check.
    public var detail: String?
}

extension ReleaseCheck {
    /// Runs every check on `subject`, in order; a check that throws fails with `describe(error)`
    /// as its detail, and the others still run.
    public static func runAll(
        _ checks: [ReleaseCheck], on subject: Subject, describe: (any Error) -> String
    ) -> [ReleaseCheckResult] {
        checks.map { check in
            let t = DispatchTime.now().uptimeNanoseconds
            var r = ReleaseCheckResult(
                name: check.name, type: check.type, threshold: check.threshold, measured: "", passed: false, seconds: 0)
            do {
                let outcome = try check.run(on: subject)
                (r.measured, r.passed, r.detail) = (outcome.measured, outcome.passed, outcome.detail)
            } catch {
                r.measured = "error"
                r.detail = describe(error)
            }
            r.seconds = Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
            return r
        }
    }
}

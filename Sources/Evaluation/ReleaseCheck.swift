import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Why a recipe's checks were refused before anything ran: the message names the recipe, the
/// check (by position) and the key.
public struct ReleaseCheckError: Error, Sendable, CustomStringConvertible {
    /// The whole message.
    public var description: String
    /// A file or model the check names does not exist (an I/O problem rather than a malformed recipe).
    public var isMissingFile: Bool
}

/// One check of a release gate (a recipe's `"checks"` list), typed and validated when the recipe
/// is read, so a mistyped key or an out-of-range threshold is refused before any merging.
public struct ReleaseCheck: Sendable, Equatable {
    /// What the check measures and the threshold it applies; paths are resolved against the recipe.
    public enum Kind: Sendable, Equatable {
        /// Preference accuracy at least `minAccuracy`; with `confidence`, the interval's lower bound.
        case pairs(file: String, minAccuracy: Double?, confidence: Double?)
        /// Perplexity of a text at most `max`.
        case perplexity(file: String, max: Double)
        /// Mean next-token KL from the `to` model (the recipe's base when nil) at most `max`.
        case kl(prompts: String, max: Double, to: String?)
        /// No NaN or infinity in any weight.
        case finite
        /// The model loads for inference.
        case loads
        /// The tokenizer round-trips `sample` (a pangram when nil).
        case tokenizer(sample: String?)
        /// The share of answers at `level` at least `minShare` (with `confidence`, the interval's
        /// lower bound), and/or the largest share.
        case levels(
            file: String, level: String, minShare: Double?, largest: Bool, score: LevelScore, confidence: Double?)
    }

    /// A model the measured proportion must not be significantly below (`"not_worse_than"`), for
    /// `pairs` (accuracy) and `levels` (the level's share): McNemar's exact test on the same items.
    public struct Baseline: Sendable, Equatable {
        /// The model's path, or nil for the recipe's base (`"not_worse_than": "base"`).
        public var model: String?
        /// The check fails when the model is worse with a two-sided p below this (`"alpha"`, default 0.05).
        public var alpha: Double
    }

    /// The check's name in reports: its `"name"`, or its type (numbered when the type repeats).
    public var name: String
    /// What it measures.
    public var kind: Kind
    /// The model it must not be worse than, if any.
    public var baseline: Baseline?

    /// The type as recipes spell it ("pairs", "levels", …).
    public var type: String {
        switch kind {
        case .pairs: "pairs"
        case .perplexity: "perplexity"
        case .kl: "kl"
        case .finite: "finite"
        case .loads: "loads"
        case .tokenizer: "tokenizer"
        case .levels: "levels"
        }
    }

    /// The keys each type takes (besides "type" and "name"): required, then optional.
    static let keys: [String: (required: [String], optional: [String])] = [
        "pairs": (["file"], ["min_accuracy", "confidence", "not_worse_than", "alpha"]),
        "perplexity": (["file", "max"], []),
        "kl": (["prompts", "max"], ["to"]),
        "finite": ([], []),
        "loads": ([], []),
        "tokenizer": ([], ["sample"]),
        "levels": (["file", "level"], ["min_share", "largest", "score", "confidence", "not_worse_than", "alpha"]),
    ]

    /// Reads a recipe's `"checks"` list. Refuses, naming the recipe, the check and the key, an
    /// unknown type or key, a missing or mistyped value, a threshold out of range, a level the
    /// levels file lacks, or a file that is missing (``ReleaseCheckError/isMissingFile``) or empty.
    /// `place` resolves a path written in the recipe.
    public static func parse(_ checks: [JSONValue], recipe: String, place: (String) -> String) throws
        -> [ReleaseCheck]
    {
        var parsed: [ReleaseCheck] = []
        for (i, check) in checks.enumerated() {
            let label = "\(recipe): check \(i + 1)"
            func fail(_ message: String, missing: Bool = false) -> ReleaseCheckError {
                ReleaseCheckError(description: message, isMissingFile: missing)
            }
            guard case .object(let fields) = check else { throw fail("\(label) must be a JSON object") }
            guard let type = check["type"]?.stringValue, let keys = keys[type] else {
                throw fail(
                    "\(label): unknown or missing \"type\" (one of \(keys.keys.sorted().joined(separator: ", ")))")
            }
            let known = Set(keys.required + keys.optional + ["type", "name"])
            if let extra = fields.first(where: { !known.contains($0.key) }) {
                let names = known.sorted().joined(separator: ", ")
                throw fail("\(label) (\(type)): unknown key \"\(extra.key)\" (known: \(names))")
            }
            for key in keys.required where check[key] == nil { throw fail("\(label) (\(type)): needs \"\(key)\"") }
            func number(_ key: String) throws -> Double? {
                guard let value = check[key] else { return nil }
                guard let v = value.doubleValue, v.isFinite else {
                    throw fail("\(label) (\(type)): \"\(key)\" must be a number")
                }
                return v
            }
            func share(_ key: String) throws -> Double? {
                guard let v = try number(key) else { return nil }
                guard (0...1).contains(v) else {
                    throw fail(
                        "\(label) (\(type)): \"\(key)\" is a share from 0 to 1, not \(String(trimming: v))"
                            + " (80% is 0.8)")
                }
                return v
            }
            func text(_ key: String) throws -> String? {
                guard let value = check[key] else { return nil }
                guard let v = value.stringValue else { throw fail("\(label) (\(type)): \"\(key)\" must be a string") }
                return v
            }
            func dataFile(_ key: String) throws -> String? {
                guard let v = try text(key) else { return nil }
                guard !(try TextInput.lines(place(v))).isEmpty else {
                    throw fail("\(place(v)): empty; a check with no data proves nothing (\(label), \(type))")
                }
                return place(v)
            }
            let confidence = try number("confidence")
            if let confidence, !(confidence > 0 && confidence < 1) {
                throw fail(
                    "\(label) (\(type)): \"confidence\" is a probability between 0 and 1, not"
                        + " \(String(trimming: confidence)) (95% is 0.95)")
            }
            if let maximum = try number("max"), maximum < 0 {
                throw fail("\(label) (\(type)): \"max\" must not be negative")
            }
            let name = try text("name")
            var baseline: Baseline?
            if let model = try text("not_worse_than") {
                let path = model == "base" ? nil : place(model)
                if let path, FileKind(of: path, followingLinks: true) == .missing {
                    throw fail(
                        "\(label) (\(type)): \"not_worse_than\": the model \(path) does not exist", missing: true)
                }
                let alpha = try number("alpha") ?? 0.05
                guard alpha > 0 && alpha < 1 else {
                    throw fail(
                        "\(label) (\(type)): \"alpha\" is a p-value threshold between 0 and 1, not"
                            + " \(String(trimming: alpha))")
                }
                baseline = Baseline(model: path, alpha: alpha)
            } else if check["alpha"] != nil {
                throw fail("\(label) (\(type)): \"alpha\" applies to \"not_worse_than\", which is missing")
            }
            let kind: Kind
            switch type {
            case "pairs":
                let minimum = try share("min_accuracy")
                guard minimum != nil || baseline != nil else {
                    throw fail("\(label) (pairs): needs \"min_accuracy\" (a share from 0 to 1) or \"not_worse_than\"")
                }
                if confidence != nil && minimum == nil {
                    throw fail("\(label) (pairs): \"confidence\" applies to \"min_accuracy\", which is missing")
                }
                kind = .pairs(file: try dataFile("file")!, minAccuracy: minimum, confidence: confidence)
            case "perplexity":
                kind = .perplexity(file: try dataFile("file")!, max: try number("max")!)
            case "kl":
                let to = try text("to").map(place)
                if let to, FileKind(of: to, followingLinks: true) == .missing {
                    throw fail("\(label) (kl): the model \(to) does not exist", missing: true)
                }
                kind = .kl(prompts: try dataFile("prompts")!, max: try number("max")!, to: to)
            case "finite":
                kind = .finite
            case "loads":
                kind = .loads
            case "tokenizer":
                let sample = try text("sample")
                if sample == "" {
                    throw fail("\(label) (tokenizer): \"sample\" is empty; a check with no data proves nothing")
                }
                kind = .tokenizer(sample: sample)
            default:
                let minShare = try share("min_share")
                guard minShare != nil || check["largest"] != nil || baseline != nil else {
                    throw fail(
                        "\(label) (levels): needs \"min_share\" (a share from 0 to 1), \"largest\": true or"
                            + " \"not_worse_than\"")
                }
                var largest = false
                if let v = check["largest"] {
                    guard case .bool(let b) = v else {
                        throw fail("\(label) (levels): \"largest\" must be true or false")
                    }
                    largest = b
                }
                if confidence != nil && minShare == nil {
                    throw fail("\(label) (levels): \"confidence\" applies to \"min_share\", which is missing")
                }
                var score = LevelScore.mean
                if let s = check["score"] {
                    guard let parsed = s.stringValue.flatMap(LevelScore.init(rawValue:)) else {
                        throw fail("\(label) (levels): \"score\" must be \"mean\" or \"sum\"")
                    }
                    score = parsed
                }
                let level = try text("level")!
                let file = try text("file")!
                let levels = try LevelsFile.load(place(file))
                guard levels.levels.contains(level) else {
                    throw fail(
                        "\(label) (levels): \(place(file)) has no level \"\(level)\" (it has"
                            + " \(levels.levels.joined(separator: ", ")))")
                }
                kind = .levels(
                    file: place(file), level: level, minShare: minShare, largest: largest, score: score,
                    confidence: confidence)
            }
            let repeated = checks.filter { $0["type"]?.stringValue == type }.count > 1
            parsed.append(
                ReleaseCheck(name: name ?? (repeated ? "\(type) \(i + 1)" : type), kind: kind, baseline: baseline))
        }
        return parsed
    }
}


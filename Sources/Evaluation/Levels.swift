import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One prompt of a levels file with one response per preference level.
public struct LevelsItem: Sendable {
    /// The text each response answers.
    public var prompt: String
    /// Responses in the file's level order.
    public var responses: [String]
    /// Where the item came from ("medical_levels.jsonl line 3"), for error messages.
    public var origin: String
}

/// A levels file: `{"prompt": …, "responses": {"avoid": …, "generic": …, "expert": …}}` per line.
///
/// The levels are the keys of the first line's `responses`, in their order; every line must name
/// the same levels. Ties between levels go to the one listed first.
public struct LevelsFile: Sendable {
    /// The file's path as given.
    public var path: String
    /// The level names, in the order of the first line's `responses`.
    public var levels: [String]
    /// The prompts, in file order.
    public var items: [LevelsItem]

    /// Reads and validates a levels file (blank lines skipped, CRLF and a BOM accepted).
    public static func load(_ path: String) throws(InferenceError) -> LevelsFile {
        var levels: [String]?
        var items: [LevelsItem] = []
        for (number, text) in try TextInput.lines(path) {
            func fail(_ message: String) -> InferenceError { .input(file: path, message: "line \(number): \(message)") }
            guard let v = try? JSONParser.parse(text), case .object(let fields) = v else {
                throw fail("expected {\"prompt\": …, \"responses\": {LEVEL: RESPONSE, …}}")
            }
            if let extra = fields.first(where: { !["prompt", "responses"].contains($0.key) }) {
                throw fail("unknown key \"\(extra.key)\" (known: prompt, responses)")
            }
            guard let prompt = v["prompt"]?.stringValue else { throw fail("\"prompt\" must be a string") }
            guard case .object(let pairs)? = v["responses"], pairs.count >= 2 else {
                throw fail("\"responses\" must map at least two level names to responses")
            }
            let names = pairs.map(\.key)
            guard Set(names).count == names.count else { throw fail("a level is named twice in \"responses\"") }
            if let levels, Set(levels) != Set(names) {
                throw fail("levels \(names.sorted()) differ from the first line's \(levels.sorted())")
            }
            let order = levels ?? names
            levels = order
            var responses: [String] = []
            for level in order {
                guard let r = v["responses"]?[level]?.stringValue, !r.isEmpty else {
                    throw fail("the \"\(level)\" response must be a non-empty string")
                }
                // The same text at two levels always ties: the prompt could only count for the first.
                if let same = responses.firstIndex(of: r) {
                    throw fail(
                        "the \"\(order[same])\" and \"\(level)\" responses are the same text; a prompt can only"
                            + " measure a preference between different answers")
                }
                responses.append(r)
            }
            items.append(LevelsItem(prompt: prompt, responses: responses, origin: "\(path) line \(number)"))
        }
        guard let levels, !items.isEmpty else {
            throw .input(file: path, message: "no prompts: the file holds no JSON lines")
        }
        return LevelsFile(path: path, levels: levels, items: items)
    }
}

/// How a response is scored: mean log-probability per response token (the default, so long and
/// short answers compare fairly), or the sum over its tokens.
public enum LevelScore: String, Sendable, CaseIterable {
    case mean, sum
}

/// What a model prefers among the levels.
public struct LevelsResult: Sendable, Equatable {
    /// The level names, in the file's order.
    public var levels: [String]
    /// Per level: the share of prompts whose response at that level scored highest.
    public var shares: [Double]
    /// Per level: the mean over prompts of its score minus the best other level's score.
    public var meanMargins: [Double]
    /// Per prompt: the index of the winning level.
    public var winners: [Int]
    /// Per prompt and level: the score.
    public var scores: [[Double]]
    /// Mean prompt tokens per query (with a prefix, what the prompting costs).
    public var meanPromptTokens: Double

    /// A result from its measurements.
    public init(
        levels: [String], shares: [Double], meanMargins: [Double], winners: [Int], scores: [[Double]],
        meanPromptTokens: Double
    ) {
        self.levels = levels
        self.shares = shares
        self.meanMargins = meanMargins
        self.winners = winners
        self.scores = scores
        self.meanPromptTokens = meanPromptTokens
    }

    /// The share of `level`, or 0 for a level the file does not have.
    public func share(of level: String) -> Double { levels.firstIndex(of: level).map { shares[$0] } ?? 0 }

    /// Per level: how many prompts it won.
    public var counts: [Int] {
        var counts = [Int](repeating: 0, count: levels.count)
        for w in winners { counts[w] += 1 }
        return counts
    }

    /// The Wilson interval of the share of the level at `index`
    /// (``Statistics/wilson(successes:trials:confidence:)``).
    public func shareInterval(at index: Int, confidence: Double = Statistics.defaultConfidence) -> Interval {
        Statistics.wilson(successes: counts[index], trials: winners.count, confidence: confidence)
    }

    /// Per prompt, the score of the level at `index` minus the best other level's: the values
    /// ``meanMargins`` averages.
    public func margins(at index: Int) -> [Double] {
        scores.map { row in row[index] - (row.indices.filter { $0 != index }.map { row[$0] }.max() ?? row[index]) }
    }

    /// A seeded bootstrap interval of the mean margin of the level at `index`.
    public func meanMarginInterval(at index: Int, confidence: Double = Statistics.defaultConfidence) -> Interval {
        Statistics.bootstrapMean(margins(at: index), confidence: confidence)
    }

    /// Prompts whose best score is shared by another level (exactly equal): their winner is the
    /// level listed first, by rule rather than by the model.
    public var ties: Int {
        scores.filter { row in
            guard let best = row.max() else { return false }
            return row.filter { $0 == best }.count > 1
        }.count
    }

    /// The level with the largest share (ties: the one listed first).
    public var leading: String {
        var best = 0
        for i in shares.indices where shares[i] > shares[best] { best = i }
        return levels[best]
    }
}

extension LanguageModel {
    /// Scores every response of every prompt and finds each prompt's preferred level.
    ///
    /// - Parameter prefix: text put before each prompt (a system turn, an instruction): the
    ///   prompting baseline that vectors are compared with.
    public func evaluate(levels file: LevelsFile, score: LevelScore = .mean, prefix: String = "") throws(InferenceError)
        -> LevelsResult
    {
        let n = file.levels.count
        var scores: [[Double]] = []
        var winners: [Int] = []
        var counts = [Int](repeating: 0, count: n)
        var margins = [Double](repeating: 0, count: n)
        var promptTokens = 0
        // Every prompt and its responses, scored in packed passes.
        var batch: [(context: [Int], continuations: [[Int]])] = []
        for item in file.items {
            let ctx = try context(prefix + item.prompt, origin: item.origin)
            promptTokens += ctx.count
            for response in item.responses { try checkFits(response, origin: item.origin) }
            let encoded = item.responses.map { tokenizer.encode($0) }
            guard encoded.allSatisfy({ !$0.isEmpty }) else {
                throw .input(file: item.origin, message: "a response encodes to no tokens")
            }
            batch.append((ctx, encoded))
        }
        for sums in try logProbabilities(batch: batch) {
            let row = sums.map { score == .mean ? $0.sum / Double($0.tokens) : $0.sum }
            var best = 0
            for i in 1..<n where row[i] > row[best] { best = i }
            winners.append(best)
            counts[best] += 1
            for i in 0..<n {
                let other = (0..<n).filter { $0 != i }.map { row[$0] }.max() ?? row[i]
                margins[i] += row[i] - other
            }
            scores.append(row)
        }
        let count = Double(file.items.count)
        return LevelsResult(
            levels: file.levels, shares: counts.map { Double($0) / count }, meanMargins: margins.map { $0 / count },
            winners: winners,
            scores: scores, meanPromptTokens: Double(promptTokens) / count)
    }
}

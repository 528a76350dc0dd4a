import AlignmentVectors
import Dispatch
import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The alignment-vector story on a model family laid out as `Checkpoints/` is (`base`,
/// `DOMAIN-aligned`, `eval/DOMAIN_levels.jsonl`): a vector per domain, the medical knob, generation
/// along it, and a multi-domain search whose mix is merged and checked. What `av demo` shows; each
/// step reports as it ends, so a caller can print the story as it unfolds.
public enum Tour {
    /// The domains of the family.
    public static let domains = ["medical", "legal", "financial"]
    /// The λ values of the medical knob.
    public static let knob = [-1.0, -0.5, 0, 0.25, 0.5, 0.75, 1, 1.25, 1.5]
    /// The λ values generation is shown at.
    public static let generation = [0.0, 0.5, 1.0, 1.5]
    /// The profile the search looks for, one level per domain in `domains` order.
    public static let target = ["expert", "generic", "avoid"]

    /// What a step found.
    public enum Event {
        /// A domain's vector was made (`seconds` to diff).
        case vector(domain: String, report: DiffReport, seconds: Double)
        /// The medical knob: the level shares at each λ of `knob`, over the levels file.
        case knob(rows: [(lambda: Double, result: LevelsResult)], file: LevelsFile, seconds: Double)
        /// The held-out question generation answers.
        case question(String)
        /// A greedy answer at λ.
        case generated(lambda: Double, text: String)
        /// The search found a mix (λ per domain) for `target`, or none on its grid.
        case searched(lambdas: [Double]?, seconds: Double)
        /// The found mix, merged, answers `level` in `domain` (`passed`: that level leads).
        case checked(domain: String, level: String, result: LevelsResult, passed: Bool)
    }

    /// Runs the story on the family in `root`, working in `work` (left for the caller to remove);
    /// `report` hears each step's result as it ends. Returns whether the found mix passed every check.
    /// - Throws: what reading the models, diffing, merging or evaluating throws.
    public static func run(root: String, work: String, threads: Int, report: (Event) -> Void) throws -> Bool {
        let base = root + "/base"
        let baseCheckpoint = try Checkpoint(path: base)
        var vectors: [String: AlignmentVector] = [:]
        for d in domains {
            let t = DispatchTime.now().uptimeNanoseconds
            var options = DiffOptions(domain: d)
            options.threads = threads
            let r = try diff(
                base: baseCheckpoint, aligned: Checkpoint(path: "\(root)/\(d)-aligned"), output: "\(work)/\(d).av",
                options: options)
            report(.vector(domain: d, report: r, seconds: seconds(since: t)))
            vectors[d] = try AlignmentVector(path: "\(work)/\(d).av")
        }
        var levels: [String: LevelsFile] = [:]
        for d in domains { levels[d] = try LevelsFile.load("\(root)/eval/\(d)_levels.jsonl") }

        let t2 = DispatchTime.now().uptimeNanoseconds
        let medical = SearchDomain(name: "medical", vector: vectors["medical"]!, levels: levels["medical"]!)
        let evaluator = MixEvaluator(base: base, domains: [medical], threads: threads)
        let rows = try MixGrid.evaluate(evaluator, points: knob.map { [$0] }).map { ($0.lambdas[0], $0.levels[0]) }
        report(.knob(rows: rows, file: medical.levels, seconds: seconds(since: t2)))

        let item = medical.levels.items[0]
        let question =
            item.prompt.components(separatedBy: "\n").dropFirst().first?.replacingAll("<|im_end|>", with: "")
            ?? item.prompt
        report(.question(question))
        let session = try MixSession(directory: base, threads: threads)
        for lambda in generation {
            let lm = try session.model(mixing: [MergeTerm(vector: medical.vector, coefficient: lambda)])
            lm.model.threads = threads
            var text = ""
            _ = try lm.generate(prompt: lm.tokenizer.encode(item.prompt), maxTokens: 60, sampling: SamplingOptions()) {
                text += $0
            }
            report(.generated(lambda: lambda, text: text))
        }

        let t4 = DispatchTime.now().uptimeNanoseconds
        let all = domains.map { SearchDomain(name: $0, vector: vectors[$0]!, levels: levels[$0]!) }
        let search = MixEvaluator(base: base, domains: all, threads: threads)
        let values = (0..<17).map { -2 + 0.25 * Double($0) }
        let points = try MixSearch.coordinate(search, values: values, profiles: [target])
        let best = MixSearch.select([target], from: points, levels: all.map(\.levels.levels))[0].best
        report(.searched(lambdas: best?.lambdas, seconds: seconds(since: t4)))
        guard let best else { return false }

        var options = MergeOptions()
        options.threads = threads
        let terms = zip(domains, best.lambdas).filter { $0.1 != 0 }.map {
            MergeTerm(vector: vectors[$0.0]!, coefficient: $0.1)
        }
        _ = try merge(base: baseCheckpoint, terms: terms, output: "\(work)/profile", options: options)
        let merged = try LanguageModel(directory: "\(work)/profile", threads: threads)
        merged.model.threads = threads
        var passed = true
        for (d, level) in zip(domains, target) {
            let r = try merged.evaluate(levels: levels[d]!)
            let others = r.shares.filter { $0 != r.share(of: level) }.max() ?? 0
            let ok = r.leading == level && r.share(of: level) > others
            passed = passed && ok
            report(.checked(domain: d, level: level, result: r, passed: ok))
        }
        return passed
    }

    private static func seconds(since t: UInt64) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
    }
}

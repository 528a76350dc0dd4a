import AlignmentVectors
import Dispatch
import Evaluation
import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `av demo`: the whole story on the model family in Checkpoints/, in a temporary directory.
enum DemoCommand {
    static let spec = CommandSpec(
        name: "demo",
        summary: "run the alignment-vector story on Checkpoints/: diff, the knob, generate, search",
        positionals: [],
        options: [
            OptionSpec(names: ["--checkpoints"], valueName: "DIR", help: "the model family (default: Checkpoints)"),
            SharedOptions.threads, SharedOptions.help,
        ],
        discussion: "Writes only to a temporary directory, removed at the end.")

    static let domains = ["medical", "legal", "financial"]

    /// `av demo`'s words: the model family and the threads.
    struct Arguments {
        var root: String
        var threads: Int

        /// Reads the words; nothing to check beyond the thread count.
        static func parse(_ args: ParsedArguments) throws -> Arguments {
            Arguments(root: args.value("--checkpoints") ?? "Checkpoints", threads: try args.threads())
        }
    }

    /// The story, step by step: diff, the knob, generation at three λ, a search (a tour of the
    /// library's calls, so it orchestrates them here).
    static func run(_ args: ParsedArguments) throws -> ExitCode {
        let a = try Arguments.parse(args)
        let root = a.root
        let base = root + "/base"
        guard FileManager.default.fileExists(atPath: base + "/config.json") else {
            throw CLIError(
                message: "\(base): no model here (run av demo from the repository root, or pass --checkpoints DIR)",
                code: .io)
        }
        let threadCount = a.threads
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("av-demo-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed(_ t: UInt64) -> String {
            String(cFormat: "%.2f s", Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
        }

        print(
            "av demo: a base model that answers medical, legal and financial questions, mostly in a generic register,")
        print(
            "and three DPO fine-tunes that prefer expert answers in their own domain (\(root)/). Working in \(work).\n")

        print("1. av diff: one alignment vector per domain, AV = aligned - base")
        let baseCheckpoint = try Checkpoint(path: base)
        for d in domains {
            let t = DispatchTime.now().uptimeNanoseconds
            var options = DiffOptions(domain: d)
            options.threads = threadCount
            let r = try diff(
                base: baseCheckpoint, aligned: Checkpoint(path: "\(root)/\(d)-aligned"), output: "\(work)/\(d).av",
                options: options)
            print(
                "   \(d).av: \(r.changedTensors) of \(r.tensors.count) tensors changed, ‖Δ‖/‖W‖ = "
                    + String(cFormat: "%.3f", r.relativeChange)
                    + ", exact at λ=1: \(r.mismatches == 0 ? "yes" : "no") (\(elapsed(t)))")
        }
        let vectors = Dictionary(
            uniqueKeysWithValues: try domains.map { ($0, try AlignmentVector(path: "\(work)/\($0).av")) })
        let levels = Dictionary(
            uniqueKeysWithValues: try domains.map { ($0, try LevelsFile.load("\(root)/eval/\($0)_levels.jsonl")) })
        let medical = [SearchDomain(name: "medical", vector: vectors["medical"]!, levels: levels["medical"]!)]

        let grid = [-1.0, -0.5, 0, 0.25, 0.5, 0.75, 1, 1.25, 1.5]
        print("\n2. av sweep: the medical knob. Share of held-out medical questions answered at each level, as λ moves")
        let t2 = DispatchTime.now().uptimeNanoseconds
        let knob = MixEvaluator(base: base, domains: medical, threads: threadCount)
        try knob.prefetch(grid.map { (lambdas: [$0], which: [0]) })
        var rows: [[String]] = []
        for lambda in grid {
            let r = try knob.results(at: [lambda], for: [0])[0]!
            rows.append(
                [String(cFormat: "%+.2f", lambda)]
                    + r.levels.indices.map { Format.share(r.shares[$0], r.shareInterval(at: $0), decimals: 0) } + [
                        bar(r.shares)
                    ])
        }
        print(
            indent(
                indent(
                    Format.table(["λ medical"] + levels["medical"]!.levels + [""], rows, rightAligned: [0, 1, 2, 3]))))
        print("   (\(elapsed(t2)); λ < 0 extrapolates away from the expert register, λ > 1 beyond the fine-tune;")
        print("   [lo–hi]: 95% Wilson intervals over \(levels["medical"]!.items.count) prompts)")

        let item = levels["medical"]!.items[0]
        let question =
            item.prompt.components(separatedBy: "\n").dropFirst().first?.replacingAll("<|im_end|>", with: "")
            ?? item.prompt
        print("\n3. av generate: \"\(question)\" (held out) with the medical vector at λ = 0, 0.5, 1, 1.5")
        for lambda in [0.0, 0.5, 1.0, 1.5] {
            let lm = try LanguageModel(
                directory: base, mixing: [MergeTerm(vector: vectors["medical"]!, coefficient: lambda)],
                threads: threadCount)
            lm.model.threads = threadCount
            var text = ""
            try lm.generate(prompt: lm.tokenizer.encode(item.prompt), maxTokens: 60, sampling: SamplingOptions()) {
                text += $0
            }
            print(String(cFormat: "   λ = %.1f: ", lambda) + text.replacingAll("\n", with: " "))
        }

        let target = ["expert", "generic", "avoid"]
        print(
            "\n4. av search: a mix for medical=\(target[0]), legal=\(target[1]), financial=\(target[2]), then merged"
                + " and checked"
        )
        let t4 = DispatchTime.now().uptimeNanoseconds
        let all = domains.map { SearchDomain(name: $0, vector: vectors[$0]!, levels: levels[$0]!) }
        let evaluator = MixEvaluator(base: base, domains: all, threads: threadCount)
        let values = (0..<17).map { -2 + 0.25 * Double($0) }
        let points = try MixSearch.coordinate(evaluator, values: values, profiles: [target])
        let found = MixSearch.select([target], from: points, levels: all.map(\.levels.levels))[0]
        guard let best = found.best else {
            print("   not reached on this grid (\(elapsed(t4)))")
            return .checkFailed
        }
        print(
            "   found: "
                + zip(domains, best.lambdas).map { "\($0) \(String(cFormat: "%+.2f", $1))" }.joined(separator: ", ")
                + " (\(elapsed(t4)))")
        var mergeOptions = MergeOptions()
        mergeOptions.threads = threadCount
        let terms = zip(domains, best.lambdas).filter { $0.1 != 0 }.map {
            MergeTerm(vector: vectors[$0.0]!, coefficient: $0.1)
        }
        _ = try merge(base: baseCheckpoint, terms: terms, output: "\(work)/profile", options: mergeOptions)
        let merged = try LanguageModel(directory: "\(work)/profile", threads: threadCount)
        merged.model.threads = threadCount
        var passed = true
        for (d, level) in zip(domains, target) {
            let r = try merged.evaluate(levels: levels[d]!)
            let ok = r.leading == level && r.share(of: level) > r.shares.filter { $0 != r.share(of: level) }.max() ?? 0
            passed = passed && ok
            let cells = r.levels.indices.map {
                "\(r.levels[$0]) " + Format.share(r.shares[$0], r.shareInterval(at: $0), decimals: 0)
            }.joined(separator: ", ")
            print("   check \(d) answers \(level): \(ok ? "pass" : "FAIL") (\(cells))")
        }
        print(
            "\ndone in \(elapsed(start)). Next: av search --all-profiles, av merge --recipe, av check --recipe (see"
                + " README.md)."
        )
        return passed ? .success : .checkFailed
    }

    /// Shares as a 30-character bar, one letter per level (a = avoid, g = generic, e = expert).
    static func bar(_ shares: [Double]) -> String {
        let letters = ["a", "g", "e", "x", "y", "z"]
        var out = ""
        for (k, share) in shares.enumerated() {
            out += String(repeating: letters[min(k, letters.count - 1)], count: Int((share * 30).rounded()))
        }
        return out
    }
}

import AlignmentVectors
import Dispatch
import Evaluation
import GGUF
import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `av check`: the pre-deployment gate. Merges the recipe's mix (or takes `--model`), runs the
/// recipe's checks, prints a table, writes reports, and exits 0 when every check passes, 1 when any fails.
enum CheckCommand {
    static let spec = CommandSpec(
        name: "check",
        summary: "gate a release: merge the recipe's mix, run its checks, exit 1 if any fails",
        positionals: [],
        options: [
            OptionSpec(
                names: ["--recipe"], valueName: "FILE.json", help: "the recipe, with a \"checks\" list (required)"),
            OptionSpec(
                names: ["--model"], valueName: "DIR", help: "check this already merged model instead of merging"),
            OptionSpec(names: ["--report"], valueName: "FILE.json", help: "write every check's result as JSON"),
            OptionSpec(
                names: ["--junit"], valueName: "FILE.xml",
                help: "write JUnit XML, which CI systems show as test results"),
            OptionSpec(names: ["--threads"], valueName: "N", help: "threads to use (default: all cores)"),
            OptionSpec(names: ["--quiet", "-q"], help: "no progress bar"),
            OptionSpec(names: ["--help", "-h"], help: "show this help"),
        ],
        discussion: """
            Checks (the recipe's "checks" list; relative paths are relative to the recipe):
              {"type": "pairs", "file": "pairs.jsonl", "min_accuracy": 0.8}      preference accuracy at least
              {"type": "perplexity", "file": "text.txt", "max": 40}              perplexity at most
              {"type": "kl", "prompts": "prompts.txt", "max": 0.5, "to": "DIR"}  KL to the base (or "to") at most
              {"type": "finite"}                                                no NaN or Inf in any weight
              {"type": "loads"}                                                 the model loads for inference
              {"type": "tokenizer", "sample": "text"}                           the tokenizer round-trips the text
              {"type": "levels", "file": "l.jsonl", "level": "expert", "min_share": 0.8}   share of answers at a level
                (or "largest": true: the level has the largest share; "score": "sum" to score by summed log-probability)
            "confidence": 0.95 on pairs and levels passes only when that interval's lower bound (Wilson score) clears
            the threshold, and says by how much it missed; shares are printed with their 95% intervals.
            "not_worse_than": "DIR" (or "base") on pairs and levels fails when the model's accuracy or share is below
            DIR's on the same items with McNemar's exact p < "alpha" (default 0.05); min_accuracy is then optional.
            Each may have a "name". On GitHub Actions (GITHUB_ACTIONS set) failures are also printed as ::error lines.
            """)

    /// `av check`'s words: the recipe (read, its checks typed and validated), the model under test,
    /// the reports and the threads.
    struct Arguments {
        var recipePath: String
        var recipe: MixRecipe
        var checks: [ReleaseCheck]
        /// The model given with `--model`; nil: merged now from the recipe.
        var model: String?
        var report: String?
        var junit: String?
        var threads: Int
        var quiet: Bool

        /// Reads the recipe and validates every check and report path before anything is merged.
        static func parse(_ args: ParsedArguments) throws -> Arguments {
            guard let recipePath = args.value("--recipe") else {
                throw UsageError(message: "missing --recipe FILE.json")
            }
            let recipe = try MixRecipe.load(recipePath)
            guard let checks = recipe.checks?.arrayValue, !checks.isEmpty else {
                throw CLIError(message: "\(recipePath): no \"checks\" list to run", code: .badInput)
            }
            let dir = URL(fileURLWithPath: recipePath).deletingLastPathComponent()
            func place(_ p: String) -> String {
                p.hasPrefix("/") ? p : dir.appendingPathComponent(p).standardizedFileURL.path
            }
            let typed = try ReleaseCheck.parse(checks, recipe: recipePath, place: place)
            for key in ["--report", "--junit"] {
                if let path = args.value(key) { try ReportFile.check(path, inputs: [recipePath]) }
            }
            return Arguments(
                recipePath: recipePath, recipe: recipe, checks: typed, model: args.value("--model"),
                report: args.value("--report"), junit: args.value("--junit"), threads: try args.threads(),
                quiet: args.has("--quiet"))
        }
    }

    /// Parse → merge the recipe's mix (unless `--model`) → run the checks → print and write the reports.
    static func run(_ args: ParsedArguments) throws -> ExitCode {
        let a = try Arguments.parse(args)
        let recipePath = a.recipePath
        let recipe = a.recipe
        let typed = a.checks
        let started = DispatchTime.now().uptimeNanoseconds

        // The model under test: given, or merged now from the recipe.
        var modelPath = a.model
        var temporaryModel: String?
        defer {
            if let temporaryModel {
                try? FileManager.default.removeItem(atPath: temporaryModel)
                TemporaryFiles.unregister(temporaryModel)
            }
        }
        var mergeSeconds = 0.0
        if modelPath == nil {
            var mergeArgs = args
            mergeArgs.values["--quiet"] = nil
            let plan = try MergeArguments.parse(mergeArgs, needOutput: false)
            let output =
                plan.output.isEmpty
                ? FileManager.default.temporaryDirectory.appendingPathComponent("av-check-\(UUID().uuidString)").path
                : plan.output
            if plan.output.isEmpty {
                // A merge only for checking: removed at the end, and on signals.
                TemporaryFiles.register(output, directory: true)
                temporaryModel = output
            }
            let bar = ProgressBar(label: "merge", quiet: a.quiet)
            let t = DispatchTime.now().uptimeNanoseconds
            _ = try merge(
                base: plan.base, terms: plan.terms, output: output, options: plan.options, progress: bar.update)
            bar.finish()
            mergeSeconds = Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
            modelPath = output
        }
        let model = modelPath!
        // A model given with --model must be the recipe's mix, by what av merge recorded in it (in a
        // .gguf, its metadata key av.merge).
        var provenance = "merged here"
        if a.model != nil {
            let recorded =
                model.hasSuffix(".gguf")
                ? MixProvenance.of(
                    record: try GGUFFile(path: model).metadata["av.merge"]?.stringValue, path: model, against: recipe)
                : try MixProvenance.of(model, against: recipe)
            switch recorded {
            case .differs(let why):
                throw CLIError(message: "\(why) (the model is not the recipe's mix)", code: .badInput)
            case .unrecorded:
                provenance = "unrecorded"
                printError("av check: note: \(model) records no av merge; that it is the recipe's mix is not verified")
            case .matches: provenance = "matches the recipe"
            case .noMix: provenance = "no mix in the recipe"
            }
        }
        let threadCount = a.threads
        // A .gguf is checked through its conversion; reports name the file given.
        let directory = try GGUFInput.resolve(model)
        var loaded: LanguageModel?
        var loadError: String?
        do {
            loaded = try LanguageModel(directory: directory)
            loaded?.model.threads = threadCount
        } catch {
            loadError = describe(error).0
        }

        let subject = ReleaseCheck.Subject(
            path: directory, model: loaded, loadError: loadError, base: recipe.base, threads: threadCount,
            load: { try LanguageModel(directory: try GGUFInput.resolve($0)) })
        let results = ReleaseCheck.runAll(typed, on: subject) { describe($0).0 }
        let report = CheckReport(
            recipe: recipePath, model: model, provenance: provenance, mergeSeconds: mergeSeconds,
            seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9, results: results)
        print(report.text)
        if ProcessInfo.processInfo.environment["GITHUB_ACTIONS"] != nil { report.annotations.forEach { print($0) } }
        if let path = a.report {
            try ReportFile.write(report.json.rendered(pretty: true) + "\n", to: path, inputs: [recipePath])
        }
        if let path = a.junit { try ReportFile.write(report.junit, to: path, inputs: [recipePath]) }
        return report.passed ? .success : .checkFailed
    }

    /// Escapes a GitHub Actions workflow-command message: `%`, CR and LF.
    static func annotationEscape(_ s: String) -> String {
        s.replacingAll("%", with: "%25").replacingAll("\r", with: "%0D").replacingAll("\n", with: "%0A")
    }

    static func xmlEscape(_ s: String) -> String { XML.escape(s) }
}

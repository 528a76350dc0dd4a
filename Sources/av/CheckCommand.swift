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
            Each may have a "name". On GitHub Actions (GITHUB_ACTIONS set) failures are also printed as ::error lines.
            """)

    struct Result {
        var name: String
        var type: String
        var threshold: String
        var measured: String
        var passed: Bool
        var seconds: Double
        var detail: String?
    }

    static func run(_ args: ParsedArguments) throws -> ExitCode {
        guard let recipePath = args.value("--recipe") else { throw UsageError(message: "missing --recipe FILE.json") }
        let recipe = try MixRecipe.load(recipePath)
        guard let checks = recipe.checks?.arrayValue, !checks.isEmpty else {
            throw CLIError(message: "\(recipePath): no \"checks\" list to run", code: .badInput)
        }
        let dir = URL(fileURLWithPath: recipePath).deletingLastPathComponent()
        func place(_ p: String) -> String {
            p.hasPrefix("/") ? p : dir.appendingPathComponent(p).standardizedFileURL.path
        }
        // Everything a check needs is validated before any merging, and report paths too.
        try validate(checks, recipe: recipePath, place: place)
        for key in ["--report", "--junit"] {
            if let path = args.value(key) { try ReportFile.check(path, inputs: [recipePath]) }
        }
        let started = DispatchTime.now().uptimeNanoseconds

        // The model under test: given, or merged now from the recipe.
        var modelPath = args.value("--model")
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
            let plan = try MergeCommand.plan(mergeArgs, needOutput: false)
            let output =
                plan.output.isEmpty
                ? FileManager.default.temporaryDirectory.appendingPathComponent("av-check-\(UUID().uuidString)").path
                : plan.output
            if plan.output.isEmpty {
                // A merge only for checking: removed at the end, and on signals.
                TemporaryFiles.register(output, directory: true)
                temporaryModel = output
            }
            let bar = ProgressBar(label: "merge", quiet: args.has("--quiet"))
            let t = DispatchTime.now().uptimeNanoseconds
            _ = try merge(
                base: plan.base, terms: plan.terms, output: output, options: plan.options, progress: bar.update)
            bar.finish()
            mergeSeconds = Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
            modelPath = output
        }
        let model = modelPath!
        let threadCount = try threads(args)
        var loaded: LanguageModel?
        var loadError: String?
        do {
            loaded = try LanguageModel(directory: model)
            loaded?.model.threads = threadCount
        } catch {
            loadError = describe(error).0
        }

        var results: [Result] = []
        for (i, check) in checks.enumerated() {
            let type = check["type"]?.stringValue ?? "?"
            let name =
                check["name"]?.stringValue
                ?? (checks.filter { $0["type"]?.stringValue == type }.count > 1 ? "\(type) \(i + 1)" : type)
            let t = DispatchTime.now().uptimeNanoseconds
            var r = Result(name: name, type: type, threshold: "", measured: "", passed: false, seconds: 0)
            do {
                try evaluate(
                    check, type: type, into: &r, model: model, lm: loaded, loadError: loadError, place: place,
                    recipe: recipe, threads: threadCount)
            } catch {
                r.passed = false
                r.measured = "error"
                r.detail = describe(error).0
            }
            r.seconds = Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
            results.append(r)
        }

        let failed = results.filter { !$0.passed }
        print(
            "av check: \(recipePath) on \(model)"
                + (mergeSeconds > 0 ? String(cFormat: " (merged in %.2f s)", mergeSeconds) : ""))
        let rows = results.map {
            [$0.passed ? "pass" : "FAIL", $0.name, $0.threshold, $0.measured, String(cFormat: "%.2f s", $0.seconds)]
        }
        print(indent(Format.table(["result", "check", "threshold", "measured", "time"], rows, rightAligned: [4])))
        for r in results where r.detail != nil { print("  \(r.name): \(r.detail!)") }
        print(
            failed.isEmpty
                ? (results.count == 1 ? "the check passed" : "all \(results.count) checks passed")
                : "\(failed.count) of \(results.count) checks failed")
        if ProcessInfo.processInfo.environment["GITHUB_ACTIONS"] != nil {
            for r in failed {
                let message =
                    "\(r.name): measured \(r.measured), threshold \(r.threshold)\(r.detail.map { " (\($0))" } ?? "")"
                print("::error title=av check::\(annotationEscape(message))")
            }
        }
        let total = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        if let report = args.value("--report") {
            let json = JSONValue.object([
                ("recipe", .string(recipePath)), ("model", .string(model)), ("passed", .bool(failed.isEmpty)),
                ("mergeSeconds", .double(mergeSeconds)), ("seconds", .double(total)),
                (
                    "checks",
                    .array(
                        results.map { r in
                            .object([
                                ("name", .string(r.name)), ("type", .string(r.type)),
                                ("threshold", .string(r.threshold)),
                                ("measured", .string(r.measured)), ("passed", .bool(r.passed)),
                                ("seconds", .double(r.seconds)),
                                ("detail", r.detail.map { .string($0) } ?? .null),
                            ])
                        })
                ),
            ])
            try ReportFile.write(json.rendered(pretty: true) + "\n", to: report, inputs: [recipePath])
        }
        if let junit = args.value("--junit") {
            var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            xml +=
                "<testsuites name=\"av check\" tests=\"\(results.count)\" failures=\"\(failed.count)\""
                + " time=\"\(String(cFormat: "%.3f", total))\">\n"
            xml +=
                "  <testsuite name=\"\(xmlEscape(recipePath))\" tests=\"\(results.count)\""
                + " failures=\"\(failed.count)\" time=\"\(String(cFormat: "%.3f", total))\">\n"
            for r in results {
                xml +=
                    "    <testcase classname=\"av.check.\(xmlEscape(r.type))\" name=\"\(xmlEscape(r.name))\""
                    + " time=\"\(String(cFormat: "%.3f", r.seconds))\">"
                if r.passed {
                    xml += "</testcase>\n"
                } else {
                    let message =
                        "measured \(r.measured), threshold \(r.threshold)" + (r.detail.map { ": \($0)" } ?? "")
                    xml += "\n      <failure message=\"\(xmlEscape(message))\"/>\n    </testcase>\n"
                }
            }
            xml += "  </testsuite>\n</testsuites>\n"
            try ReportFile.write(xml, to: junit, inputs: [recipePath])
        }
        return failed.isEmpty ? .success : .checkFailed
    }

    static func evaluate(
        _ check: JSONValue, type: String, into r: inout Result, model: String, lm: LanguageModel?, loadError: String?,
        place: (String) -> String, recipe: MixRecipe, threads: Int
    ) throws {
        func need(_ key: String) throws -> String {
            guard let v = check[key]?.stringValue else {
                throw CLIError(message: "check \"\(r.name)\" needs \"\(key)\"", code: .badInput)
            }
            return v
        }
        func number(_ key: String) throws -> Double {
            guard let v = check[key]?.doubleValue else {
                throw CLIError(message: "check \"\(r.name)\" needs a number \"\(key)\"", code: .badInput)
            }
            return v
        }
        func loadedModel() throws -> LanguageModel {
            guard let lm else {
                throw CLIError(message: "the model does not load: \(loadError ?? "?")", code: .badInput)
            }
            return lm
        }
        switch type {
        case "pairs":
            let minimum = try number("min_accuracy")
            r.threshold = String(cFormat: "≥ %.1f%%", 100 * minimum)
            let result = try loadedModel().evaluate(pairs: PreferencePair.load(place(try need("file"))))
            r.measured = String(cFormat: "%.1f%%", 100 * result.accuracy)
            r.passed = result.accuracy >= minimum
        case "perplexity":
            let maximum = try number("max")
            r.threshold = "≤ \(trimmed(maximum))"
            let result = try loadedModel().perplexity(text: try TextInput.read(place(try need("file"))))
            r.measured = String(cFormat: "%.3f", result.perplexity)
            r.passed = result.perplexity <= maximum
        case "kl":
            let maximum = try number("max")
            r.threshold = "≤ \(trimmed(maximum))"
            let to = check["to"]?.stringValue.map(place) ?? recipe.base
            guard let to else {
                throw CLIError(
                    message: "check \"\(r.name)\": no \"to\" model and no base in the recipe", code: .badInput)
            }
            let prompts = try TextInput.lines(place(try need("prompts"))).map(\.text)
            let reference = try LanguageModel(directory: to)
            reference.model.threads = threads
            let result = try loadedModel().klDivergence(from: reference, prompts: prompts)
            r.measured = String(cFormat: "%.5f (max %.5f)", result.mean, result.max)
            r.passed = result.mean <= maximum
        case "finite":
            r.threshold = "0 non-finite"
            let store = try SafeTensorsModel(path: model)
            var bad = 0
            var firstBad: String?
            for e in store.entries where Convert.supports(e.info.dtype) {
                let n = try store.file(holding: e.info.name)!.floats(named: e.info.name).filter { !$0.isFinite }.count
                if n > 0 && firstBad == nil { firstBad = e.info.name }
                bad += n
            }
            r.measured = "\(bad)"
            r.passed = bad == 0
            if let firstBad { r.detail = "first in tensor \(JSONWriter.quoted(firstBad))" }
        case "loads":
            r.threshold = "loads"
            r.measured = lm == nil ? "no" : "yes"
            r.passed = lm != nil
            r.detail = loadError
        case "tokenizer":
            let pangram = "The quick brown fox jumps over the lazy dog. 0123456789 — naïve café 🙂"
            let sample = check["sample"]?.stringValue ?? pangram
            r.threshold = "round-trips"
            let tokenizer = try loadedModel().tokenizer
            let back = tokenizer.decode(tokenizer.encode(sample))
            r.measured = back == sample ? "yes" : "no"
            r.passed = back == sample
            if back != sample { r.detail = "decoded \(JSONWriter.quoted(back))" }
        case "levels":
            let level = try need("level")
            let file = try LevelsFile.load(place(try need("file")))
            let score = check["score"]?.stringValue.flatMap(LevelScore.init(rawValue:)) ?? .mean
            let result = try loadedModel().evaluate(levels: file, score: score)
            let share = result.share(of: level)
            let largest = check["largest"] == .bool(true)
            let minimum = check["min_share"]?.doubleValue
            let atLeast = minimum.map { "\(level) ≥ " + String(cFormat: "%.0f%%", 100 * $0) }
            r.threshold = [atLeast, largest ? "\(level) largest" : nil].compactMap { $0 }.joined(separator: ", ")
            r.measured = zip(result.levels, result.shares).map { "\($0) \(String(cFormat: "%.0f%%", 100 * $1))" }
                .joined(
                    separator: ", ")
            let others = zip(result.levels, result.shares).filter { $0.0 != level }.map(\.1).max() ?? 0
            r.passed = (minimum.map { share >= $0 } ?? true) && (!largest || share > others)
        default:
            throw CLIError(
                message: "unknown check type \"\(type)\" (pairs, perplexity, kl, finite, loads, tokenizer, levels)",
                code: .badInput)
        }
    }

    /// Escapes a GitHub Actions workflow-command message: `%`, CR and LF.
    static func annotationEscape(_ s: String) -> String {
        s.replacingAll("%", with: "%25").replacingAll("\r", with: "%0D").replacingAll("\n", with: "%0A")
    }

    static func xmlEscape(_ s: String) -> String {
        s.replacingAll("&", with: "&amp;").replacingAll("<", with: "&lt;").replacingAll(
            ">", with: "&gt;"
        )
        .replacingAll("\"", with: "&quot;")
    }
}

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

enum EvalCommand {
    static let spec = CommandSpec(
        name: "eval",
        summary: "measure a model or a mix: perplexity, preference accuracy, KL to another model",
        positionals: [],
        options: modelOptions + [
            OptionSpec(names: ["--text"], valueName: "FILE", help: "perplexity on a text file"),
            OptionSpec(
                names: ["--window"], valueName: "N",
                help: "--text: tokens a forward pass sees (default: the model's context)"),
            OptionSpec(
                names: ["--stride"], valueName: "N",
                help: "--text longer than the window: tokens scored per rolling window (default: window / 2)"),
            OptionSpec(names: ["--quiet", "-q"], help: "no speed line on stderr"),
            OptionSpec(
                names: ["--pairs"], valueName: "FILE.jsonl",
                help: "preference accuracy on {\"prompt\",\"chosen\",\"rejected\"} lines"),
            OptionSpec(
                names: ["--ref"], valueName: "MODEL",
                help: "with --pairs: also the DPO implicit-reward accuracy against this reference"),
            OptionSpec(
                names: ["--levels"], valueName: "FILE.jsonl",
                help: "share of answers at each level: {\"prompt\", \"responses\": {LEVEL: …}} lines"),
            OptionSpec(
                names: ["--score"], valueName: "mean|sum",
                help: "levels: response score, mean log-probability per token (default) or sum"),
            OptionSpec(
                names: ["--prefix"], valueName: "TEXT",
                help: "levels: text put before every prompt (a prompting baseline)"),
            OptionSpec(
                names: ["--system"], valueName: "TEXT", help: "levels: a ChatML system turn put before every prompt"),
            OptionSpec(
                names: ["--kl-to"], valueName: "MODEL",
                help: "KL(MODEL ‖ this) of next-token distributions, with --prompts"),
            OptionSpec(names: ["--prompts"], valueName: "FILE", help: "one prompt a line, for --kl-to"),
            OptionSpec(
                names: ["--compare"], valueName: "MODEL",
                help: "also measure MODEL on the same inputs and test the differences (paired)"),
            OptionSpec(names: ["--json"], help: "print the results as JSON"),
            OptionSpec(names: ["--help", "-h"], help: "show this help"),
        ],
        discussion: """
            Log-probabilities of a completion are summed over its tokens given the prompt (tokenized apart).
            Levels: for each prompt, the level whose response scores highest wins (score: mean log-probability
            per response token, or --score sum; ties go to the level listed first); printed are the share of each
            level, its mean margin over the best other level, and with --json every prompt's winner and scores.
            Brackets are 95% intervals: Wilson score intervals for shares and accuracy, a seeded bootstrap over
            prompts for mean margins (48 prompts measure a share of 50% to about ±14 points). --compare MODEL
            measures MODEL on the same inputs and tests each difference: McNemar's exact test for accuracy and
            shares (which items each model got right), a seeded paired bootstrap for margins and perplexity.
            """,
        dynamicOptionsHelp: "with --base: the coefficient of domain DOMAIN (DIR/DOMAIN.av)")

    static func run(_ args: ParsedArguments) throws -> ExitCode {
        guard args.has("--text") || args.has("--pairs") || args.has("--kl-to") || args.has("--levels") else {
            throw UsageError(
                message:
                    "nothing to measure: give --text FILE, --pairs FILE.jsonl, --levels FILE.jsonl or --kl-to MODEL"
                    + " --prompts FILE"
            )
        }
        if args.has("--compare") && !(args.has("--text") || args.has("--pairs") || args.has("--levels")) {
            throw UsageError(message: "--compare goes with --text, --pairs or --levels (the measurements it compares)")
        }
        let levelsFile = try args.value("--levels").map { try LevelsFile.load($0) }
        let score = try args.levelScore()
        let prefix = try args.promptPrefix()
        if args.has("--kl-to") != args.has("--prompts") {
            throw UsageError(message: "--kl-to and --prompts go together")
        }
        func count(_ key: String) throws -> Int? {
            try args.value(key).map { text in
                guard let n = Int(text), n >= 1 else { throw UsageError(message: "\(key) needs a whole number ≥ 1") }
                return n
            }
        }
        let window = try count("--window")
        let stride = try count("--stride")
        if (window != nil || stride != nil) && !args.has("--text") {
            throw UsageError(message: "--window and --stride go with --text")
        }
        let lm = try loadLanguageModel(args)
        let started = DispatchTime.now().uptimeNanoseconds
        var results: [(key: String, value: JSONValue)] = [
            ("model", .string(args.value("--model") ?? args.value("--base") ?? ""))
        ]
        var lines: [String] = []
        var (textResult, textInput): (PerplexityResult?, (String, Int?, Int?)?) = (nil, nil)
        var (pairsResult, pairsInput): (PairsResult?, [PreferencePair]?) = (nil, nil)
        var (levelsResult, levelsInput): (LevelsResult?, (LevelsFile, LevelScore, String)?) = (nil, nil)
        if let file = args.value("--text") {
            let body = try TextInput.read(file)
            let r = try lm.perplexity(text: body, window: window, stride: stride)
            (textResult, textInput) = (r, (body, window, stride))
            lines.append(
                String(
                    cFormat: "perplexity  %.4f over %ld tokens (mean NLL %.4f nats)", r.perplexity, r.tokens, r.meanNLL)
            )
            results.append(
                (
                    "text",
                    .object([
                        ("file", .string(file)), ("tokens", .int(r.tokens)), ("meanNLL", .double(r.meanNLL)),
                        ("perplexity", .double(r.perplexity)),
                    ])
                ))
        }
        if let file = args.value("--pairs") {
            let pairs = try PreferencePair.load(file)
            let reference = try args.value("--ref").map { try LanguageModel(directory: try GGUFPaths.resolve($0)) }
            let r = try lm.evaluate(pairs: pairs, reference: reference)
            (pairsResult, pairsInput) = (r, pairs)
            lines.append(
                "pairs       accuracy \(Format.share(r.accuracy, r.accuracyInterval())) (\(r.wins) of \(r.pairs)),"
                    + " mean margin \(Format.mean(r.meanMargin, r.meanMarginInterval())) nats")
            var obj: [(key: String, value: JSONValue)] = [
                ("file", .string(file)), ("pairs", .int(r.pairs)), ("accuracy", .double(r.accuracy)),
                ("accuracyInterval", Format.json(r.accuracyInterval())), ("meanMargin", .double(r.meanMargin)),
                ("meanMarginInterval", Format.json(r.meanMarginInterval())),
            ]
            if let ra = r.rewardAccuracy, let rm = r.meanRewardMargin {
                let interval = Statistics.wilson(share: ra, trials: r.pairs)
                lines.append(
                    "reward      DPO implicit-reward accuracy \(Format.share(ra, interval)),"
                        + String(cFormat: " mean reward margin %+.4f", rm) + " (reference \(args.value("--ref")!))")
                obj += [
                    ("rewardAccuracy", .double(ra)), ("rewardAccuracyInterval", Format.json(interval)),
                    ("meanRewardMargin", .double(rm)),
                ]
            }
            results.append(("pairs", .object(obj)))
        }
        if let file = levelsFile {
            let r = try lm.evaluate(levels: file, score: score, prefix: prefix)
            (levelsResult, levelsInput) = (r, (file, score, prefix))
            let base = prefix.isEmpty ? nil : try lm.evaluate(levels: file, score: score)
            let shares = r.levels.indices.map {
                "\(r.levels[$0]) \(Format.share(r.shares[$0], r.shareInterval(at: $0)))"
            }
            .joined(separator: ", ")
            lines.append("levels      \(shares) over \(file.items.count) prompts; leading: \(r.leading)")
            if r.ties > 0 {
                lines.append(
                    "            note: \(r.ties) of \(file.items.count) prompts tie between levels (counted for the level"
                        + " listed first)")
            }
            lines.append(
                "            mean margin over the best other level: "
                    + zip(r.levels, r.meanMargins).map { "\($0) \(String(cFormat: "%+.3f", $1))" }.joined(
                        separator: ", ")
                    + (score == .mean ? " (nats per token)" : " (nats)"))
            if let base {
                lines.append(
                    String(
                        cFormat: "            prompt prefix: %.1f extra prompt tokens per query",
                        r.meanPromptTokens - base.meanPromptTokens)
                        + " (without it: "
                        + base.levels.indices.map {
                            "\(base.levels[$0]) " + Format.share(base.shares[$0], base.shareInterval(at: $0))
                        }.joined(separator: ", ") + ")")
            }
            var obj: [(key: String, value: JSONValue)] = [
                ("file", .string(file.path)), ("prompts", .int(file.items.count)), ("score", .string(score.rawValue)),
                ("shares", .object(zip(r.levels, r.shares).map { ($0, .double($1)) })),
                (
                    "shareIntervals",
                    .object(r.levels.indices.map { (r.levels[$0], Format.json(r.shareInterval(at: $0))) })
                ),
                ("meanMargins", .object(zip(r.levels, r.meanMargins).map { ($0, .double($1)) })),
                ("leading", .string(r.leading)), ("ties", .int(r.ties)),
                ("meanPromptTokens", .double(r.meanPromptTokens)),
                (
                    "perPrompt",
                    .array(
                        zip(file.items, zip(r.winners, r.scores)).map { item, w in
                            .object([
                                ("prompt", .string(item.prompt)), ("winner", .string(r.levels[w.0])),
                                ("scores", .object(zip(r.levels, w.1).map { ($0, .double($1)) })),
                            ])
                        })
                ),
            ]
            if let base {
                obj.append(("withoutPrefix", .object(zip(base.levels, base.shares).map { ($0, .double($1)) })))
            }
            results.append(("levels", .object(obj)))
        }
        if let other = args.value("--kl-to"), let file = args.value("--prompts") {
            let prompts = try TextInput.lines(file).map(\.text)
            guard !prompts.isEmpty else {
                throw InferenceError.input(file: file, message: "no prompts: the file holds no lines")
            }
            let reference = try LanguageModel(directory: try GGUFPaths.resolve(other))
            reference.model.threads = lm.model.threads
            let r = try lm.klDivergence(from: reference, prompts: prompts)
            lines.append(
                String(
                    cFormat: "kl          mean %.6f, max %.6f nats over %ld prompts", r.mean, r.max, r.prompts)
                    + " (KL(\(other) ‖ model))")
            results.append(
                (
                    "kl",
                    .object([
                        ("to", .string(other)), ("prompts", .int(r.prompts)), ("mean", .double(r.mean)),
                        ("max", .double(r.max)),
                    ])
                ))
        }
        if let name = args.value("--compare") {
            let other = try LanguageModel(directory: try GGUFPaths.resolve(name))
            other.model.threads = lm.model.threads
            let comparisons = try compare(
                other, text: textResult, textInput: textInput, pairs: pairsResult, pairsInput: pairsInput,
                levels: levelsResult, levelsInput: levelsInput)
            lines += render(comparisons, with: name)
            results.append(("compare", json(comparisons, with: name)))
        }
        print(args.has("--json") ? JSONValue.object(results).rendered(pretty: true) : lines.joined(separator: "\n"))
        if !args.has("--quiet") && !args.has("--json") {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            let tokens = lm.model.tokensEvaluated
            printError(
                String(
                    cFormat: "evaluated %ld tokens in %.2f s (%.1f tokens/s)", tokens, seconds,
                    seconds > 0 ? Double(tokens) / seconds : 0))
        }
        return .success
    }
}

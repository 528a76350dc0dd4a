import AlignmentVectors
import Evaluation
import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

enum SweepCommand {
    static let spec = CommandSpec(
        name: "sweep",
        summary: "level shares, preference accuracy and margin over a range of λ: the alignment knob",
        positionals: [],
        options: [
            OptionSpec(names: ["--base"], valueName: "PATH", help: "the base model directory (required)"),
            OptionSpec(
                names: ["--vectors"], valueName: "DIR",
                help: "where --DOMAIN finds DOMAIN.av (default: the current directory)"),
            OptionSpec(names: ["--pairs"], valueName: "FILE.jsonl", help: "preference pairs to score"),
            OptionSpec(
                names: ["--levels"], valueName: "[DOMAIN=]FILE",
                help: "a levels file: shares of each level per λ (repeatable)", repeatable: true),
            OptionSpec(
                names: ["--score"], valueName: "mean|sum",
                help: "levels: response score, mean log-probability per token (default) or sum"),
            OptionSpec(
                names: ["--prefix"], valueName: "TEXT",
                help: "levels: text put before every prompt (a prompting baseline)"),
            OptionSpec(
                names: ["--system"], valueName: "TEXT", help: "levels: a ChatML system turn put before every prompt"),
            OptionSpec(names: ["--plot"], valueName: "OUT.svg", help: "also draw the curves as an SVG plot"),
            OptionSpec(
                names: ["--shard"], valueName: "I/N",
                help: "evaluate every N-th point from I and write it (-o) for --collect"),
            OptionSpec(
                names: ["-o", "--output"], valueName: "FILE.json",
                help: "with --shard: the partial result (default sweep-shard-I-of-N.json)"),
            OptionSpec(
                names: ["--collect"], valueName: "DIR",
                help: "print the sweep from the shard files in DIR (same flags otherwise)"),
            OptionSpec(
                names: ["--mix"], valueName: "weights|logits",
                help: "mix the weights (default) or run base and aligned models in lockstep and mix their logits"),
            OptionSpec(names: ["--force"], help: "mix vectors made from another base anyway"),
            OptionSpec(names: ["--threads"], valueName: "N", help: "threads to use (default: all cores)"),
            OptionSpec(names: ["--json"], help: "print the table as JSON"),
            OptionSpec(names: ["--quiet", "-q"], help: "no progress on stderr"),
            OptionSpec(names: ["--help", "-h"], help: "show this help"),
        ],
        discussion: """
            One or two domains; with two, every combination of their values is measured. With --levels, each row
            has the share of answers at each level (av eval --levels), and --plot draws them stacked against λ.
            """,
        dynamicOptionsHelp: "FROM:TO:STEPS, e.g. --medical -0.5:1.5:9 (DIR/DOMAIN.av)")

    struct Row {
        var lambdas: [Double]
        var pairs: PairsResult?
        /// Per levels domain (in `--levels` order), the result at this point.
        var levels: [LevelsResult]
    }

    static func run(_ args: ParsedArguments) throws -> ExitCode {
        guard let given = args.value("--base") else { throw UsageError(message: "missing --base PATH") }
        let base = try GGUFPaths.resolve(given)
        let pairsFile = args.value("--pairs")
        guard pairsFile != nil || !args.all("--levels").isEmpty else {
            throw UsageError(message: "give --pairs FILE.jsonl, --levels [DOMAIN=]FILE, or both")
        }
        guard (1...2).contains(args.dynamic.count) else {
            throw UsageError(message: "give one or two --DOMAIN FROM:TO:STEPS ranges")
        }
        let dir = args.value("--vectors") ?? "."
        var axes: [(domain: String, values: [Double], vector: AlignmentVector)] = []
        // `--DOMAIN.layers A-B=FROM:TO:STEPS` sweeps one layer group's λ (the domain's other tensors at 0),
        // as the axis DOMAIN[A-B].
        var groups: [String: ClosedRange<Int>] = [:]
        for (name, text) in args.dynamic {
            var domain = name
            var label = name
            var values = text
            if name.hasSuffix(".layers") {
                domain = String(name.dropLast(".layers".count))
                let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, let range = CoefficientRule.range(parts[0]) else {
                    throw UsageError(
                        message: "--\(name) takes LAYERS=FROM:TO:STEPS, e.g. 0-14=-1:1.5:11, not '\(text)'")
                }
                label = "\(domain)[\(parts[0])]"
                groups[label] = range
                values = parts[1]
            } else if name.contains(".") {
                throw UsageError(message: "unknown option '--\(name)' (a sweep takes --DOMAIN or --DOMAIN.layers)")
            }
            guard !axes.contains(where: { $0.domain == label }) else {
                throw UsageError(message: "'\(label)' is given twice; give each domain once")
            }
            axes.append(
                (label, try rangeValues(values, option: "--" + name), try MergeCommand.vector(domain: domain, in: dir)))
        }
        // Levels files: DOMAIN=FILE, or a bare FILE for the first swept domain.
        var levels: [(domain: String, file: LevelsFile)] = []
        for item in args.all("--levels") {
            let (domain, path) =
                item.contains("=") ? try SearchCommand.split(item, "--levels", "[DOMAIN=]FILE") : (axes[0].domain, item)
            guard !levels.contains(where: { $0.domain == domain }) else {
                throw UsageError(message: "--levels for '\(domain)' is given twice")
            }
            levels.append((domain, try LevelsFile.load(path)))
        }
        let score = try levelScore(args)
        let prefix = try promptPrefix(args)
        let pairs = try pairsFile.map { try PreferencePair.load($0) }
        let inputs = [pairsFile].compactMap { $0 } + levels.map(\.file.path)
        if let plot = args.value("--plot") {
            if !levels.isEmpty && axes.count == 2 {
                throw UsageError(message: "--plot of level shares takes one swept domain")
            }
            try ReportFile.check(plot, inputs: inputs)
        }
        let threadCount = try threads(args)
        guard axes.map(\.values.count).reduce(1, *) <= SearchCommand.maximumPoints else {
            throw UsageError(
                message:
                    "the sweep has \(Format.grouped(axes.map(\.values.count).reduce(1, *))) points; av sweeps at most"
                    + " \(Format.grouped(SearchCommand.maximumPoints)) (fewer STEPS)")
        }
        var grid: [[Double]] = axes[0].values.map { [$0] }
        if axes.count == 2 { grid = grid.flatMap { a in axes[1].values.map { a + [$0] } } }
        let mix = try mixMode(args)
        var shardInputs = SweepShards.inputs(axes: axes, files: inputs, score: score, prefix: prefix)
        if mix == .logits, case .object(var members) = shardInputs {
            members.append(("mix", .string(mix.rawValue)))
            shardInputs = .object(members)
        }
        var rows: [Row] = []
        var shard: (index: Int, count: Int)?
        if let text = args.value("--shard") {
            let parts = text.split(separator: "/").compactMap { Int($0) }
            guard parts.count == 2, parts[1] >= 1, (0..<parts[1]).contains(parts[0]) else {
                throw UsageError(message: "--shard takes I/N with 0 ≤ I < N, not '\(text)'")
            }
            shard = (parts[0], parts[1])
        }
        if let dir = args.value("--collect") {
            rows = try SweepShards.collect(dir, inputs: shardInputs, grid: grid)
            grid = []
        }
        let bar = ProgressBar(label: "sweep", quiet: args.has("--quiet") || args.has("--json"))
        bar.counting = true
        // The base is loaded once; each point recomputes only the tensors its vectors change.
        let session =
            grid.isEmpty ? nil : try MixSession(directory: base, force: args.has("--force"), threads: threadCount)
        for (i, lambdas) in grid.enumerated() where shard.map({ i % $0.count == $0.index }) ?? true {
            let terms = zip(axes, lambdas).map { axis, lambda in
                guard let group = groups[axis.domain] else {
                    return MergeTerm(vector: axis.vector, coefficient: lambda)
                }
                var rule = CoefficientRule()
                rule.layers = [(group, lambda)]
                return MergeTerm(vector: axis.vector, coefficient: 0, rule: rule)
            }
            let lm = try session!.model(mixing: terms, mix: mix)
            lm.model.threads = threadCount
            let p = try pairs.map { try lm.evaluate(pairs: $0) }
            let l = try levels.map { try lm.evaluate(levels: $0.file, score: score, prefix: prefix) }
            rows.append(Row(lambdas: lambdas, pairs: p, levels: l))
            bar.update(i + 1, grid.count)
        }
        bar.finish()
        if let shard {
            let output = args.value("-o") ?? "sweep-shard-\(shard.index)-of-\(shard.count).json"
            try ReportFile.write(
                SweepShards.json(rows, inputs: shardInputs, shard: shard.index, count: shard.count).rendered(
                    pretty: true) + "\n", to: output, inputs: inputs)
            print("av sweep: shard \(shard.index)/\(shard.count): \(rows.count) points → \(output)")
            return .success
        }
        if args.has("--json") {
            print(
                JSONValue.array(
                    rows.map { r in
                        var o: [(key: String, value: JSONValue)] = zip(axes, r.lambdas).map { ($0.domain, .double($1)) }
                        if let p = r.pairs {
                            o += [
                                ("accuracy", .double(p.accuracy)),
                                ("accuracyInterval", Format.json(p.accuracyInterval())),
                                ("meanMargin", .double(p.meanMargin)),
                                ("meanMarginInterval", Format.json(p.meanMarginInterval())),
                            ]
                        }
                        if !levels.isEmpty {
                            o.append(
                                (
                                    "levels",
                                    .object(
                                        zip(levels, r.levels).map { l, res in
                                            (l.domain, .object(zip(res.levels, res.shares).map { ($0, .double($1)) }))
                                        })
                                ))
                            o.append(
                                (
                                    "levelIntervals",
                                    .object(
                                        zip(levels, r.levels).map { l, res in
                                            let n = l.file.items.count
                                            return (
                                                l.domain,
                                                .object(
                                                    res.levels.indices.map {
                                                        (res.levels[$0], Format.json(interval(res.shares[$0], n)))
                                                    })
                                            )
                                        })
                                ))
                        }
                        return .object(o)
                    }
                ).rendered(pretty: true))
        } else {
            var header = axes.map { "λ \($0.domain)" }
            if pairs != nil { header += ["accuracy", "mean margin"] }
            for l in levels { header.append("\(l.domain): " + l.file.levels.joined(separator: " / ")) }
            let table = rows.map { r in
                var cells = r.lambdas.map { String(cFormat: "%+.3f", $0) }
                if let p = r.pairs {
                    cells += [
                        Format.share(p.accuracy, p.accuracyInterval()),
                        Format.mean(p.meanMargin, p.meanMarginInterval()),
                    ]
                }
                for (l, res) in zip(levels, r.levels) {
                    cells.append(
                        res.shares.map {
                            // Padded to the widest, "100% [93–100]", so the columns line up.
                            let cell = Format.share($0, interval($0, l.file.items.count), decimals: 0)
                            return String(repeating: " ", count: max(0, 13 - cell.count)) + cell
                        }.joined(separator: " / "))
                }
                return cells
            }
            var what: [String] = []
            if let pairs, let pairsFile { what.append("\(pairs.count) pairs from \(pairsFile)") }
            for l in levels { what.append("\(l.file.items.count) \(l.domain) prompts from \(l.file.path)") }
            print(
                "av sweep: \(what.joined(separator: ", ")) on \(given)"
                    + (prefix.isEmpty ? "" : " (with a prompt prefix)"))
            print(Format.table(header, table, rightAligned: Set(0..<header.count)))
            print("[…]: 95% intervals (Wilson for shares and accuracy, a seeded bootstrap over pairs for margins)")
        }
        if let plot = args.value("--plot") {
            let svg: String
            if !levels.isEmpty {
                let index = levels.firstIndex { $0.domain == axes[0].domain } ?? 0
                svg = SVGPlot.levels(
                    domain: axes[0].domain, levelsDomain: levels[index].domain, levels: levels[index].file.levels,
                    prompts: levels[index].file.items.count, rows: rows.map { ($0.lambdas[0], $0.levels[index].shares) }
                )
            } else {
                svg = SVGPlot.render(
                    axes: axes.map { ($0.domain, $0.values) },
                    rows: rows.map {
                        SVGPlot.PairsRow(
                            lambdas: $0.lambdas, accuracy: $0.pairs!.accuracy, margin: $0.pairs!.meanMargin,
                            accuracyInterval: $0.pairs!.accuracyInterval(),
                            marginInterval: $0.pairs!.meanMarginInterval())
                    })
            }
            try ReportFile.write(svg, to: plot, inputs: inputs)
            if !args.has("--json") { print("plot: \(plot)") }
        }
        return .success
    }
}

/// The Wilson interval of a share of `prompts` prompts (a share is a count of prompts).
func interval(_ share: Double, _ prompts: Int) -> Interval {
    Statistics.wilson(share: share, trials: prompts)
}

/// The prompt prefix of `--prefix TEXT` or `--system TEXT` (a ChatML system turn), or "".
func promptPrefix(_ args: ParsedArguments) throws -> String {
    if args.has("--prefix") && args.has("--system") { throw UsageError(message: "give --prefix or --system, not both") }
    if let text = args.value("--prefix") { return text }
    if let text = args.value("--system") { return "<|im_start|>system\n\(text)<|im_end|>\n" }
    return ""
}

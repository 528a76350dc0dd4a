import AlignmentVectors
import Evaluation
import GGUF
import Inference
import SafeTensors

/// `av sweep`'s words, read and checked: the axes with their values, what is measured, how the
/// run is split, and where the results go.
struct SweepArguments {
    /// The base as given (for reports) and as loaded (a `.gguf` resolved to a directory).
    var given: String
    var base: String
    /// The axes, with the λ values each takes.
    var axes: [(axis: MixAxis, values: [Double])]
    /// The levels files with the domain each reports under, in `--levels` order.
    var levels: [(domain: String, file: LevelsFile)]
    var pairsFile: String?
    var pairs: [PreferencePair]?
    var score: LevelScore
    var prefix: PromptPrefix?
    var mix: MixMode
    var force: Bool
    var threads: Int
    var plot: String?
    var shard: (index: Int, count: Int)?
    var output: String?
    var collect: String?
    var json: Bool
    var quiet: Bool

    /// The files read, which no report may overwrite.
    var inputs: [String] { [pairsFile].compactMap { $0 } + levels.map(\.file.path) }

    /// Reads and checks every word; nothing is loaded but the vectors' headers and the text files.
    static func parse(_ args: ParsedArguments) throws -> SweepArguments {
        guard let given = args.value("--base") else { throw UsageError(message: "missing --base PATH") }
        let pairsFile = args.value("--pairs")
        guard pairsFile != nil || !args.all("--levels").isEmpty else {
            throw UsageError(message: "give --pairs FILE.jsonl, --levels [DOMAIN=]FILE, or both")
        }
        guard (1...2).contains(args.dynamic.count) else {
            throw UsageError(message: "give one or two --DOMAIN FROM:TO:STEPS ranges")
        }
        let axes = try self.axes(args.dynamic, vectors: args.value("--vectors") ?? ".")
        // Levels files: DOMAIN=FILE, or a bare FILE for the first swept domain.
        var levels: [(domain: String, file: LevelsFile)] = []
        for item in args.all("--levels") {
            let (domain, path) =
                item.contains("=") ? try splitPair(item, "--levels", "[DOMAIN=]FILE") : (axes[0].axis.name, item)
            guard !levels.contains(where: { $0.domain == domain }) else {
                throw UsageError(message: "--levels for '\(domain)' is given twice")
            }
            levels.append((domain, try LevelsFile.load(path)))
        }
        var a = SweepArguments(
            given: given, base: try resolveBase(given, for: axes.map(\.axis.vector)), axes: axes, levels: levels,
            pairsFile: pairsFile,
            pairs: try pairsFile.map { try PreferencePair.load($0) }, score: try args.levelScore(),
            prefix: try args.promptPrefix(), mix: try args.mixMode(), force: args.has("--force"),
            threads: try args.threads(), plot: args.value("--plot"), shard: try args.shard(), output: args.value("-o"),
            collect: args.value("--collect"), json: args.has("--json"), quiet: args.has("--quiet"))
        if let plot = a.plot {
            if !levels.isEmpty && axes.count == 2 {
                throw UsageError(message: "--plot of level shares takes one swept domain")
            }
            try ReportFile.check(plot, inputs: a.inputs)
        }
        try checkGridSize(axes.map(\.values.count)) { size, limit in
            "the sweep has \(size) points; av sweeps at most \(limit) (fewer STEPS)"
        }
        if a.shard != nil && a.collect != nil { throw UsageError(message: "give --shard or --collect, not both") }
        if let shard = a.shard, a.output == nil { a.output = "sweep-shard-\(shard.index)-of-\(shard.count).json" }
        return a
    }

    /// `--DOMAIN FROM:TO:STEPS` sweeps a domain's whole vector; `--DOMAIN.layers A-B=FROM:TO:STEPS`
    /// one layer group's λ (the domain's other tensors at 0), as the axis DOMAIN[A-B].
    private static func axes(_ flags: [(name: String, value: String)], vectors: String) throws
        -> [(axis: MixAxis, values: [Double])]
    {
        var axes: [(axis: MixAxis, values: [Double])] = []
        for (name, text) in flags {
            var domain = name
            var label = name
            var values = text
            var layers: ClosedRange<Int>?
            if name.hasSuffix(".layers") {
                domain = String(name.dropLast(".layers".count))
                let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, let range = CoefficientRule.range(parts[0]) else {
                    throw UsageError(
                        message: "--\(name) takes LAYERS=FROM:TO:STEPS, e.g. 0-14=-1:1.5:11, not '\(text)'")
                }
                label = "\(domain)[\(parts[0])]"
                layers = range
                values = parts[1]
            } else if name.contains(".") {
                throw UsageError(message: "unknown option '--\(name)' (a sweep takes --DOMAIN or --DOMAIN.layers)")
            }
            guard !axes.contains(where: { $0.axis.name == label }) else {
                throw UsageError(message: "'\(label)' is given twice; give each domain once")
            }
            let lambdas = try rangeValues(values, option: "--" + name)
            let vector = try AlignmentVector.named(domain, in: vectors)
            axes.append((MixAxis(name: label, vector: vector, layers: layers), lambdas))
        }
        return axes
    }

    /// The evaluator of this sweep's mixes and measurements.
    func evaluator() -> MixEvaluator {
        MixEvaluator(
            base: base, axes: axes.map(\.axis), levels: levels.map(\.file), pairs: pairs, threads: threads,
            force: force, score: score,
            prefix: prefix?.text(for: ChatTemplate.detect(directory: base)) ?? "", mix: mix)
    }
}

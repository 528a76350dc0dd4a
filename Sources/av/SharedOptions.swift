import AlignmentVectors
import Evaluation
import GGUF
import Inference
import Tensors

/// The options several commands share, declared once with their typed readers: threads, quiet,
/// help, the mix mode, the model or mix a command runs (`model`), the merge method (`method`),
/// level scoring and prompt prefixes, λ ranges, and sharding.
enum SharedOptions {
    /// `--threads N`.
    static let threads = OptionSpec(names: ["--threads"], valueName: "N", help: "threads to use (default: all cores)")
    /// `--quiet`, `-q`: nothing on stderr but errors.
    static let quiet = OptionSpec(names: ["--quiet", "-q"], help: "no progress on stderr")
    /// `--help`, `-h`.
    static let help = OptionSpec(names: ["--help", "-h"], help: "show this help")
    /// `--force` for commands that mix vectors into a base.
    static let forceMix = OptionSpec(names: ["--force"], help: "mix vectors made from another base anyway")
    /// `--mix weights|logits`.
    static let mix = OptionSpec(
        names: ["--mix"], valueName: "weights|logits",
        help: "mix the weights (default) or run base and aligned models in lockstep and mix their logits")
    /// `--json` with what it prints.
    static func json(_ what: String) -> OptionSpec { OptionSpec(names: ["--json"], help: "print \(what) as JSON") }

    /// How levels are scored and what comes before each prompt: `--score`, `--prefix`, `--system`.
    static let scoring = [
        OptionSpec(
            names: ["--score"], valueName: "mean|sum",
            help: "levels: response score, mean log-probability per token (default) or sum"),
        OptionSpec(names: ["--prefix"], valueName: "TEXT", help: "levels: text put before every prompt"),
        OptionSpec(
            names: ["--system"], valueName: "TEXT", help: "levels: a ChatML system turn put before every prompt"),
    ]

    /// The options of `--model`, `--adapter` and the mix.
    static let model: [OptionSpec] =
        [
            OptionSpec(
                names: ["--model"], valueName: "PATH",
                help: "a model directory (config.json, safetensors, tokenizer.json)"),
            OptionSpec(
                names: ["--adapter"], valueName: "DIR",
                help: "with --model: a PEFT LoRA/DoRA adapter merged in memory, as merge_and_unload() would"),
            OptionSpec(
                names: ["--base"], valueName: "PATH",
                help: "with --DOMAIN COEF, --vector or --recipe: evaluate base + sum λ·AV without writing it"),
            OptionSpec(
                names: ["--vectors"], valueName: "DIR",
                help: "where --DOMAIN finds DOMAIN.av (default: the current directory)"),
            OptionSpec(
                names: ["--vector"], valueName: "PATH=COEF", help: "an AV file with its coefficient (repeatable)",
                repeatable: true),
            OptionSpec(names: ["--recipe"], valueName: "FILE.json", help: "the mix from a recipe (as av merge)"),
            SharedOptions.forceMix,
            OptionSpec(names: ["--transfer"], help: "apply the vectors to another base on purpose (as --force)"),
            SharedOptions.threads, SharedOptions.mix,
        ] + method(seed: "--drop-seed")

    /// The method options with DARE's seed under `seed` (`--drop-seed` where `--seed` is the sampler's).
    static func method(seed: String) -> [OptionSpec] {
        [
            OptionSpec(
                names: ["--method"], valueName: "NAME",
                help: "linear, ties, dare-*, breadcrumbs[-ties], della[-linear], model-stock, sce, [nu]slerp,"
                    + " magnitude-prune"),
            OptionSpec(names: ["--density"], valueName: "D", help: "ties/dare: share of each vector's entries kept"),
            OptionSpec(names: [seed], valueName: "S", help: "dare: the seed of the drop (default 0)"),
            OptionSpec(names: ["--consensus"], valueName: "sum|count", help: "ties: how signs are elected (sum)"),
            OptionSpec(
                names: ["--gamma"], valueName: "G", help: "breadcrumbs: share of the largest entries dropped (0.01)"),
            OptionSpec(
                names: ["--epsilon"], valueName: "E", help: "della: spread of the keep probability by rank (0.15)"),
            OptionSpec(names: ["--normalize"], help: "divide by the agreeing Σλ (default for ties)"),
            OptionSpec(names: ["--no-normalize"], help: "do not divide (default for dare)"),
            OptionSpec(names: ["--rescale"], help: "rescale kept entries to the L1 norm (default for dare)"),
            OptionSpec(names: ["--no-rescale"], help: "do not rescale (default for ties)"),
        ]
    }

    /// A grid split over tasks: `--shard I/N`, `-o` for the partial result, `--collect DIR`.
    static func sharding(defaultOutput: String) -> [OptionSpec] {
        [
            OptionSpec(
                names: ["--shard"], valueName: "I/N", help: "evaluate every N-th point from I and write it (-o)"),
            OptionSpec(
                names: ["-o", "--output"], valueName: "FILE.json",
                help: "with --shard: the partial result (default \(defaultOutput))"),
            OptionSpec(
                names: ["--collect"], valueName: "DIR", help: "the whole result from the shard files in DIR"),
        ]
    }
}

extension ParsedArguments {
    /// `--threads N`, at most what the machine can use (with a note), all cores by default.
    func threads() throws -> Int {
        guard let text = value("--threads") else { return Parallel.defaultThreads }
        guard let n = Int(text), n > 0 else {
            throw UsageError(message: "--threads must be a positive whole number, not '\(text)'")
        }
        if n > Parallel.maximumThreads {
            printError("note: --threads \(n) is more than this machine can use; using \(Parallel.maximumThreads)")
            return Parallel.maximumThreads
        }
        return n
    }

    /// `--mix weights|logits`, weights by default.
    func mixMode() throws -> MixMode {
        guard let text = value("--mix") else { return .weights }
        guard let m = MixMode(rawValue: text) else {
            throw UsageError(message: "--mix must be weights or logits, not '\(text)'")
        }
        return m
    }

    /// `--score mean|sum`, mean by default.
    func levelScore() throws -> LevelScore {
        guard let text = value("--score") else { return .mean }
        guard let s = LevelScore(rawValue: text) else {
            throw UsageError(message: "--score must be mean or sum, not '\(text)'")
        }
        return s
    }

    /// `--prefix TEXT` or `--system TEXT` (a system turn in the model's chat template), or nil.
    func promptPrefix() throws -> PromptPrefix? {
        if has("--prefix") && has("--system") { throw UsageError(message: "give --prefix or --system, not both") }
        if let text = value("--prefix") { return .text(text) }
        if let text = value("--system") { return .system(text) }
        return nil
    }

    /// `--shard I/N` as (I, N), checked 0 ≤ I < N; nil when not given.
    func shard() throws -> (index: Int, count: Int)? {
        guard let text = value("--shard") else { return nil }
        let parts = text.split(separator: "/").compactMap { Int($0) }
        guard parts.count == 2, parts[1] >= 1, parts[1] <= GridShard.maximumCount, (0..<parts[1]).contains(parts[0])
        else { throw UsageError(message: "--shard takes I/N with 0 ≤ I < N, not '\(text)'") }
        return (parts[0], parts[1])
    }

    /// No positional arguments, or a usage error naming the first.
    func noPositionals(_ hint: String = "") throws {
        guard positionals.isEmpty else { throw UsageError(message: "unexpected argument '\(positionals[0])'\(hint)") }
    }
}

/// FROM:TO:STEPS as values, refused unless finite with 2 ≤ STEPS ≤ 10000 and no value twice.
func rangeValues(_ text: String, option: String) throws -> [Double] {
    let parts = text.split(separator: ":").map(String.init)
    guard parts.count == 3, let from = Double(parts[0]), let to = Double(parts[1]), let steps = Int(parts[2]),
        steps >= 2, steps <= 10_000, from.isFinite, to.isFinite
    else {
        throw UsageError(
            message: "\(option) takes FROM:TO:STEPS with finite FROM and TO and 2 ≤ STEPS ≤ 10000, not '\(text)'")
    }
    let values = (0..<steps).map { k in
        let v = from + (to - from) * Double(k) / Double(steps - 1)
        return (v * 1e9).rounded() / 1e9  // 0.25 stays 0.25, not 0.25000000000000006
    }
    // FROM == TO, or steps finer than the rounding, would give one point several times.
    guard Set(values).count == values.count else {
        throw UsageError(message: "\(option) \(text): the range gives the same λ more than once (FROM equal to TO?)")
    }
    return values
}

/// `NAME=VALUE` split at its first `=`, both sides non-empty.
func splitPair(_ item: String, _ option: String, _ form: String) throws -> (String, String) {
    guard let eq = item.firstIndex(of: "="), eq != item.startIndex, item.index(after: eq) != item.endIndex else {
        throw UsageError(message: "\(option) takes \(form), not '\(item)'")
    }
    return (String(item[..<eq]), String(item[item.index(after: eq)...]))
}

/// Refuses, before anything is built, a grid of more than `MixGrid.maximumPoints` mixes; `message`
/// says it from the grid's size and the limit, both spelled out.
func checkGridSize(_ counts: [Int], _ message: (_ size: String, _ limit: String) -> String) throws {
    var points = 1
    for c in counts {
        let (p, overflow) = points.multipliedReportingOverflow(by: c)
        points = overflow ? Int.max : p
    }
    guard points <= MixGrid.maximumPoints else {
        let size = points == Int.max ? "more than 10^18" : Format.grouped(points)
        throw UsageError(message: message(size, Format.grouped(MixGrid.maximumPoints)))
    }
}

/// The base a command mixes `vectors` into: `path`, or for a `.gguf` its conversion in the dtype the
/// vectors record for their base, so a GGUF made from that base without loss is recognized as it
/// (norms a converter kept in f32 come back in the base's dtype).
func resolveBase(_ path: String, for vectors: [AlignmentVector]) throws -> String {
    try GGUFInput.resolve(path, like: vectors.first?.header.base.dtype)
}

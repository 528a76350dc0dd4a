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

/// `av search`: λ per domain that puts every domain at its target level.
enum SearchCommand {
    static let spec = CommandSpec(
        name: "search",
        summary: "find λ per domain so that every domain answers at its target level",
        positionals: [],
        options: [
            OptionSpec(names: ["--base"], valueName: "PATH", help: "the base model directory (required)"),
            OptionSpec(
                names: ["--vectors"], valueName: "DIR", help: "where DOMAIN.av are (default: the current directory)"),
            OptionSpec(
                names: ["--levels"], valueName: "DOMAIN=FILE",
                help: "a domain and its levels file (repeatable; the domains searched)", repeatable: true),
            OptionSpec(
                names: ["--target"], valueName: "DOMAIN=LEVEL",
                help: "the level wanted in a domain (repeatable: one per domain)", repeatable: true),
            OptionSpec(names: ["--all-profiles"], help: "every combination of levels across the domains"),
            OptionSpec(
                names: ["--range"], valueName: "FROM:TO:STEPS",
                help: "the λ values tried per domain (default"
                    + " -2:2:17)"),
            OptionSpec(
                names: ["--strategy"], valueName: "NAME",
                help: "coordinate (default, fast) or grid (every point; shards)"),
            OptionSpec(
                names: ["--score"], valueName: "mean|sum",
                help: "response score: mean log-probability per token (default) or sum"),
            OptionSpec(names: ["--prefix"], valueName: "TEXT", help: "text put before every prompt"),
            OptionSpec(
                names: ["--system"], valueName: "TEXT", help: "a ChatML system turn put before every prompt"),
            OptionSpec(
                names: ["--write-recipe"], valueName: "FILE.json",
                help: "write the found mix as a recipe for av merge and av check"),
            OptionSpec(
                names: ["--shard"], valueName: "I/N",
                help: "grid strategy: evaluate the I-th of N parts and write it (-o)"),
            OptionSpec(
                names: ["-o", "--output"], valueName: "FILE.json",
                help: "with --shard: the partial result (default shard-I-of-N.json)"),
            OptionSpec(
                names: ["--collect"], valueName: "DIR", help: "combine the shard files in DIR into the whole result"),
            OptionSpec(
                names: ["--mix"], valueName: "weights|logits",
                help: "mix the weights (default) or run base and aligned models in lockstep and mix their logits"),
            OptionSpec(names: ["--force"], help: "mix vectors made from another base anyway"),
            OptionSpec(names: ["--threads"], valueName: "N", help: "threads to use (default: all cores)"),
            OptionSpec(names: ["--json"], help: "print the result as JSON"),
            OptionSpec(names: ["--help", "-h"], help: "show this help"),
        ],
        discussion: """
            A profile is reached when, in every domain, the target level has the largest share of answers
            (av eval --levels). The coordinate strategy sweeps each domain's λ alone, then checks the best
            combinations as whole mixes (domains interact weakly); the grid strategy evaluates every point and
            can be split over tasks: --shard I/N in each task (a Kubernetes Indexed Job, a Slurm array, a CI
            matrix), then --collect DIR, which gives exactly the unsharded result. Mixes are evaluated in memory.
            """)

    static func run(_ args: ParsedArguments) throws -> ExitCode {
        guard args.positionals.isEmpty else {
            throw UsageError(message: "unexpected argument '\(args.positionals[0])'")
        }
        guard let base = args.value("--base") else { throw UsageError(message: "missing --base PATH") }
        let pairs = try args.all("--levels").map { try split($0, "--levels", "DOMAIN=FILE") }
        guard !pairs.isEmpty else { throw UsageError(message: "give --levels DOMAIN=FILE for each domain to search") }
        let names = pairs.map(\.0)
        if let twice = names.first(where: { n in names.filter { $0 == n }.count > 1 }) {
            throw UsageError(message: "domain '\(twice)' is given twice; give each domain once")
        }
        let strategy =
            try args.value("--strategy").map { text -> SearchStrategy in
                guard let s = SearchStrategy(rawValue: text) else {
                    throw UsageError(message: "--strategy must be coordinate or grid, not '\(text)'")
                }
                return s
            } ?? .coordinate
        let values = try rangeValues(args.value("--range") ?? "-2:2:17", option: "--range")
        let score = try levelScore(args)
        let dir = args.value("--vectors") ?? "."
        var domains: [SearchDomain] = []
        for (name, file) in pairs {
            domains.append(
                SearchDomain(
                    name: name, vector: try MergeCommand.vector(domain: name, in: dir),
                    levels: try LevelsFile.load(file)))
        }
        let levels = domains.map(\.levels.levels)
        var profiles: [Profile]
        if args.has("--all-profiles") {
            guard args.all("--target").isEmpty else {
                throw UsageError(message: "give --target or --all-profiles, not both")
            }
            profiles = MixSearch.allProfiles(levels)
        } else {
            var targets: [String: String] = [:]
            for item in args.all("--target") {
                let (d, level) = try split(item, "--target", "DOMAIN=LEVEL")
                guard let i = names.firstIndex(of: d) else {
                    throw UsageError(message: "--target \(item): no --levels for domain '\(d)'")
                }
                guard levels[i].contains(level) else {
                    throw UsageError(
                        message:
                            "--target \(item): \(domains[i].levels.path) has levels"
                            + " \(levels[i].joined(separator: ", "))"
                    )
                }
                guard targets.updateValue(level, forKey: d) == nil else {
                    throw UsageError(message: "--target for '\(d)' is given twice")
                }
            }
            guard targets.count == names.count else {
                throw UsageError(
                    message:
                        "give --target DOMAIN=LEVEL for every domain"
                        + " (\(names.filter { targets[$0] == nil }.joined(separator: ", ")) missing), or"
                        + " --all-profiles"
                )
            }
            profiles = [names.map { targets[$0]! }]
        }
        try checkSize(values: values.count, domains: domains.count, strategy: strategy)
        let evaluator = MixEvaluator(
            base: try GGUFPaths.resolve(base), domains: domains, threads: try threads(args), force: args.has("--force"),
            score: score,
            prefix: try promptPrefix(args), mix: try mixMode(args))
        let started = DispatchTime.now().uptimeNanoseconds

        if let text = args.value("--shard") {
            guard strategy == .grid else {
                throw UsageError(message: "--shard needs --strategy grid (the coordinate search is sequential)")
            }
            let parts = text.split(separator: "/").compactMap { Int($0) }
            guard parts.count == 2, parts[1] >= 1, (0..<parts[1]).contains(parts[0]) else {
                throw UsageError(message: "--shard takes I/N with 0 ≤ I < N, not '\(text)'")
            }
            let output = args.value("-o") ?? "shard-\(parts[0])-of-\(parts[1]).json"
            try ReportFile.check(output, inputs: pairs.map(\.1))
            let points = try MixSearch.evaluateGrid(evaluator, values: values, shard: parts[0], of: parts[1])
            let shard = SearchShard(
                inputs: SearchShard.inputs(evaluator), values: values, shard: parts[0], count: parts[1], points: points)
            try ReportFile.write(shard.json.rendered(pretty: true) + "\n", to: output, inputs: pairs.map(\.1))
            print("av search: shard \(parts[0])/\(parts[1]): \(points.count) points → \(output)")
            return .success
        }

        var points: [SearchPoint]
        if let collect = args.value("--collect") {
            guard strategy == .grid else { throw UsageError(message: "--collect needs --strategy grid") }
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: collect)) ?? []).filter {
                $0.hasSuffix(".json")
            }.sorted()
            let shards = try files.map {
                (
                    Path.join(collect, $0),
                    try SearchShard.load(Path.join(collect, $0))
                )
            }
            let combined = try SearchShard.combine(shards.map { (path: $0.0, shard: $0.1) })
            guard combined.inputs == SearchShard.inputs(evaluator), combined.values == values else {
                throw CLIError(
                    message:
                        "\(collect): the shards were computed from other inputs or another --range than this command"
                        + " names",
                    code: .badInput)
            }
            points = combined.points
        } else if strategy == .grid {
            points = try MixSearch.evaluateGrid(evaluator, values: values)
        } else {
            points = try MixSearch.coordinate(evaluator, values: values, profiles: profiles)
        }
        let results = MixSearch.select(profiles, from: points, levels: levels)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9

        if let recipePath = args.value("--write-recipe") {
            guard results.count == 1, let best = results[0].best else {
                throw CLIError(
                    message: "--write-recipe needs one profile (--target per domain) that the search reached",
                    code: .checkFailed)
            }
            try ReportFile.write(
                recipe(
                    base: base, vectors: dir, domains: domains, point: best, profile: results[0].profile, at: recipePath
                ), to: recipePath)
        }
        if args.has("--json") {
            print(json(results, domains: domains, strategy: strategy, points: points.count).rendered(pretty: true))
        } else {
            print(
                text(
                    results, domains: domains, strategy: strategy, points: points.count, seconds: seconds,
                    mixes: evaluator.mixesLoaded))
            if let r = args.value("--write-recipe") { print("recipe: \(r)") }
        }
        return results.allSatisfy(\.reached) ? .success : .checkFailed
    }

    /// The most mixes a search may enumerate: each one is a model evaluation (about a second on
    /// Checkpoints), and the points are held in memory.
    static let maximumPoints = 100_000

    /// Refuses, before anything is built, a grid of more than `maximumPoints` mixes (values ^ domains),
    /// or a coordinate search whose combinations of three candidates per domain (3 ^ domains) would be.
    static func checkSize(values: Int, domains: Int, strategy: SearchStrategy) throws {
        let base = strategy == .grid ? values : 3
        var points = 1
        for _ in 0..<domains {
            let (p, overflow) = points.multipliedReportingOverflow(by: base)
            points = overflow ? Int.max : p
        }
        guard points <= maximumPoints else {
            throw UsageError(
                message:
                    "\(domains) domains with \(base) \(strategy == .grid ? "values each" : "candidates each") make"
                    + " \(points == Int.max ? "more than 10^18" : Format.grouped(points)) mixes; av searches at most"
                    + " \(Format.grouped(maximumPoints)) (fewer --range steps, or fewer domains)")
        }
    }

    static func split(_ item: String, _ option: String, _ form: String) throws -> (String, String) {
        guard let eq = item.firstIndex(of: "="), eq != item.startIndex, item.index(after: eq) != item.endIndex else {
            throw UsageError(message: "\(option) takes \(form), not '\(item)'")
        }
        return (String(item[..<eq]), String(item[item.index(after: eq)...]))
    }
}

/// `path` relative to the directory `dir` (both absolute).
func relativePath(_ path: String, from dir: String) -> String {
    let a = path.split(separator: "/")
    let b = dir.split(separator: "/")
    var common = 0
    while common < a.count, common < b.count, a[common] == b[common] { common += 1 }
    let up = Array(repeating: "..", count: b.count - common)
    let parts = up + a[common...].map(String.init)
    return parts.isEmpty ? "." : parts.joined(separator: "/")
}

/// FROM:TO:STEPS as values, refused unless finite with 2 ≤ STEPS ≤ 10000.
func rangeValues(_ text: String, option: String) throws -> [Double] {
    let parts = text.split(separator: ":").map(String.init)
    guard parts.count == 3, let from = Double(parts[0]), let to = Double(parts[1]), let steps = Int(parts[2]),
        steps >= 2, steps <= 10_000,
        from.isFinite, to.isFinite
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

/// `--score mean|sum`.
func levelScore(_ args: ParsedArguments) throws -> LevelScore {
    guard let text = args.value("--score") else { return .mean }
    guard let s = LevelScore(rawValue: text) else {
        throw UsageError(message: "--score must be mean or sum, not '\(text)'")
    }
    return s
}

import AlignmentVectors
import Evaluation
import GGUF
import Inference

/// `av search`'s words, read and checked: the domains and their levels files, the profiles wanted,
/// the λ grid and strategy, how the run is split, and where the results go.
struct SearchArguments {
    /// The base as given (the recipe records it) and as loaded (a `.gguf` resolved to a directory).
    var given: String
    var base: String
    var vectors: String
    var domains: [SearchDomain]
    var profiles: [Profile]
    var strategy: SearchStrategy
    var values: [Double]
    var score: LevelScore
    var prefix: PromptPrefix?
    var mix: MixMode
    var force: Bool
    var threads: Int
    var shard: (index: Int, count: Int)?
    var output: String?
    var collect: String?
    var recipe: String?
    var json: Bool

    /// The levels files read, which no output may overwrite.
    var inputs: [String] { domains.map(\.levels.path) }

    /// Reads and checks every word; nothing is loaded but the vectors' headers and the levels files.
    static func parse(_ args: ParsedArguments) throws -> SearchArguments {
        try args.noPositionals()
        guard let given = args.value("--base") else { throw UsageError(message: "missing --base PATH") }
        let named = try args.all("--levels").map { try splitPair($0, "--levels", "DOMAIN=FILE") }
        guard !named.isEmpty else { throw UsageError(message: "give --levels DOMAIN=FILE for each domain to search") }
        let names = named.map(\.0)
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
        let score = try args.levelScore()
        let vectors = args.value("--vectors") ?? "."
        var domains: [SearchDomain] = []
        for (name, file) in named {
            domains.append(
                SearchDomain(
                    name: name, vector: try AlignmentVector.named(name, in: vectors),
                    levels: try LevelsFile.load(file)))
        }
        let profiles = try self.profiles(args, domains)
        let size = strategy == .grid ? values.count : 3
        try checkGridSize(Array(repeating: size, count: domains.count)) { points, limit in
            "\(domains.count) domains with \(size) \(strategy == .grid ? "values each" : "candidates each") make"
                + " \(points) mixes; av searches at most \(limit) (fewer --range steps, or fewer domains)"
        }
        let shard = try args.shard()
        if shard != nil, strategy != .grid {
            throw UsageError(message: "--shard needs --strategy grid (the coordinate search is sequential)")
        }
        if args.has("--collect"), strategy != .grid { throw UsageError(message: "--collect needs --strategy grid") }
        if shard != nil && args.has("--collect") { throw UsageError(message: "give --shard or --collect, not both") }
        return SearchArguments(
            given: given, base: try resolveBase(given, for: domains.map(\.vector)), vectors: vectors, domains: domains,
            profiles: profiles,
            strategy: strategy, values: values, score: score, prefix: try args.promptPrefix(), mix: try args.mixMode(),
            force: args.has("--force"), threads: try args.threads(), shard: shard,
            output: args.value("-o") ?? shard.map { "shard-\($0.index)-of-\($0.count).json" },
            collect: args.value("--collect"), recipe: args.value("--write-recipe"), json: args.has("--json"))
    }

    /// `--all-profiles`, or the one profile of a `--target DOMAIN=LEVEL` per domain.
    private static func profiles(_ args: ParsedArguments, _ domains: [SearchDomain]) throws -> [Profile] {
        let names = domains.map(\.name)
        let levels = domains.map(\.levels.levels)
        if args.has("--all-profiles") {
            guard args.all("--target").isEmpty else {
                throw UsageError(message: "give --target or --all-profiles, not both")
            }
            return MixSearch.allProfiles(levels)
        }
        var targets: [String: String] = [:]
        for item in args.all("--target") {
            let (d, level) = try splitPair(item, "--target", "DOMAIN=LEVEL")
            guard let i = names.firstIndex(of: d) else {
                throw UsageError(message: "--target \(item): no --levels for domain '\(d)'")
            }
            guard levels[i].contains(level) else {
                throw UsageError(
                    message:
                        "--target \(item): \(domains[i].levels.path) has levels \(levels[i].joined(separator: ", "))")
            }
            guard targets.updateValue(level, forKey: d) == nil else {
                throw UsageError(message: "--target for '\(d)' is given twice")
            }
        }
        guard targets.count == names.count else {
            throw UsageError(
                message: "give --target DOMAIN=LEVEL for every domain"
                    + " (\(names.filter { targets[$0] == nil }.joined(separator: ", ")) missing), or --all-profiles")
        }
        return [names.map { targets[$0]! }]
    }

    /// The evaluator of this search's mixes.
    func evaluator() -> MixEvaluator {
        MixEvaluator(
            base: base, domains: domains, threads: threads, force: force, score: score,
            prefix: prefix?.text(for: ChatTemplate.detect(directory: base)) ?? "", mix: mix)
    }
}

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
        ] + SharedOptions.scoring + [
            OptionSpec(
                names: ["--write-recipe"], valueName: "FILE.json",
                help: "write the found mix as a recipe for av merge and av check")
        ] + SharedOptions.sharding(defaultOutput: "shard-I-of-N.json") + [
            SharedOptions.mix, SharedOptions.forceMix, SharedOptions.threads, SharedOptions.json("the result"),
            SharedOptions.help,
        ],
        discussion: """
            A profile is reached when, in every domain, the target level has the largest share of answers
            (av eval --levels). The coordinate strategy sweeps each domain's λ alone, then checks the best
            combinations as whole mixes (domains interact weakly); the grid strategy evaluates every point and
            can be split over tasks: --shard I/N in each task (a Kubernetes Indexed Job, a Slurm array, a CI
            matrix), then --collect DIR, which gives exactly the unsharded result. Mixes are evaluated in memory.
            """)

    /// Parse → search (or collect a sharded grid) → write the recipe, print the profiles.
    static func run(_ args: ParsedArguments) throws -> ExitCode {
        let a = try SearchArguments.parse(args)
        let evaluator = a.evaluator()
        let started = DispatchTime.now().uptimeNanoseconds
        let grid = Array(repeating: a.values, count: a.domains.count)
        if let shard = a.shard, let output = a.output {
            try ReportFile.check(output, inputs: a.inputs)
            let points = MixGrid.shard(MixGrid.points(grid), shard.index, of: shard.count)
            let file = GridShard(
                command: "search", inputs: GridShard.inputs(evaluator), grid: grid, shard: shard.index,
                count: shard.count, points: try MixGrid.evaluate(evaluator, points: points))
            try ReportFile.write(file.json.rendered(pretty: true) + "\n", to: output, inputs: a.inputs)
            print("av search: shard \(shard.index)/\(shard.count): \(points.count) points → \(output)")
            return .success
        }
        let points: [SearchPoint]
        if let dir = a.collect {
            points = try GridShard.collect(dir, command: "search", evaluator: evaluator, grid: grid).map(
                MixSearch.point)
        } else if a.strategy == .grid {
            points = try MixSearch.evaluateGrid(evaluator, values: a.values)
        } else {
            points = try MixSearch.coordinate(evaluator, values: a.values, profiles: a.profiles)
        }
        let results = MixSearch.select(a.profiles, from: points, levels: a.domains.map(\.levels.levels))
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        if let path = a.recipe {
            guard results.count == 1, let best = results[0].best else {
                throw CLIError(
                    message: "--write-recipe needs one profile (--target per domain) that the search reached",
                    code: .checkFailed)
            }
            let text = recipe(
                base: a.given, vectors: a.vectors, domains: a.domains, point: best, profile: results[0].profile,
                at: path)
            try ReportFile.write(text, to: path)
        }
        if a.json {
            print(json(results, domains: a.domains, strategy: a.strategy, points: points.count).rendered(pretty: true))
        } else {
            print(
                text(
                    results, domains: a.domains, strategy: a.strategy, points: points.count, seconds: seconds,
                    mixes: evaluator.mixesLoaded))
            if let r = a.recipe { print("recipe: \(r)") }
        }
        return results.allSatisfy(\.reached) ? .success : .checkFailed
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

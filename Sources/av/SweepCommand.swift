import Evaluation
import SafeTensors

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
        ] + SharedOptions.scoring + [
            OptionSpec(names: ["--plot"], valueName: "OUT.svg", help: "also draw the curves as an SVG plot")
        ] + SharedOptions.sharding(defaultOutput: "sweep-shard-I-of-N.json") + [
            SharedOptions.mix, SharedOptions.forceMix, SharedOptions.threads, SharedOptions.json("the table"),
            SharedOptions.quiet, SharedOptions.help,
        ],
        discussion: """
            One or two domains; with two, every combination of their values is measured. With --levels, each row
            has the share of answers at each level (av eval --levels), and --plot draws them stacked against λ.
            """,
        dynamicOptionsHelp: "FROM:TO:STEPS, e.g. --medical -0.5:1.5:9 (DIR/DOMAIN.av)")

    /// Parse → evaluate (or collect) the grid → write a shard, or print the table and plot.
    static func run(_ args: ParsedArguments) throws -> ExitCode {
        let a = try SweepArguments.parse(args)
        let evaluator = a.evaluator()
        let grid = a.axes.map(\.values)
        let rows: [GridPoint]
        if let dir = a.collect {
            rows = try GridShard.collect(dir, command: "sweep", evaluator: evaluator, grid: grid)
        } else {
            let bar = ProgressBar(label: "sweep", quiet: a.quiet || a.json)
            bar.counting = true
            let points = MixGrid.shard(MixGrid.points(grid), a.shard?.index ?? 0, of: a.shard?.count ?? 1)
            rows = try MixGrid.evaluate(evaluator, points: points, progress: bar.update)
            bar.finish()
        }
        if let shard = a.shard, let output = a.output {
            let file = GridShard(
                command: "sweep", inputs: GridShard.inputs(evaluator), grid: grid, shard: shard.index,
                count: shard.count, points: rows)
            try ReportFile.write(file.json.rendered(pretty: true) + "\n", to: output, inputs: a.inputs)
            print("av sweep: shard \(shard.index)/\(shard.count): \(rows.count) points → \(output)")
            return .success
        }
        print(a.json ? SweepReport.json(a, rows) : SweepReport.text(a, rows))
        if let plot = a.plot {
            try ReportFile.write(SweepReport.plot(a, rows), to: plot, inputs: a.inputs)
            if !a.json { print("plot: \(plot)") }
        }
        return .success
    }
}

import AlignmentVectors
import Foundation
import Inference
import SafeTensors

enum SweepCommand {
    static let spec = CommandSpec(
        name: "sweep",
        summary: "preference accuracy and margin over a range of λ: the alignment knob",
        positionals: [],
        options: [
            OptionSpec(names: ["--base"], valueName: "PATH", help: "the base model directory (required)"),
            OptionSpec(names: ["--vectors"], valueName: "DIR", help: "where --DOMAIN finds DOMAIN.av (default: the current directory)"),
            OptionSpec(names: ["--pairs"], valueName: "FILE.jsonl", help: "the preference pairs to score (required)"),
            OptionSpec(names: ["--plot"], valueName: "OUT.svg", help: "also draw the curves as an SVG plot"),
            OptionSpec(names: ["--force"], help: "mix vectors made from another base anyway"),
            OptionSpec(names: ["--threads"], valueName: "N", help: "threads to use (default: all cores)"),
            OptionSpec(names: ["--json"], help: "print the table as JSON"),
            OptionSpec(names: ["--quiet", "-q"], help: "no progress on stderr"),
            OptionSpec(names: ["--help", "-h"], help: "show this help"),
        ],
        discussion: "One or two domains; with two, every combination of their values is measured.",
        dynamicOptionsHelp: "FROM:TO:STEPS, e.g. --medical -0.5:1.5:9 (DIR/DOMAIN.av)")

    struct Row {
        var lambdas: [Double]
        var result: PairsResult
    }

    static func run(_ args: ParsedArguments) throws -> ExitCode {
        guard let base = args.value("--base") else { throw UsageError(message: "missing --base PATH") }
        guard let pairsFile = args.value("--pairs") else { throw UsageError(message: "missing --pairs FILE.jsonl") }
        guard (1...2).contains(args.dynamic.count) else { throw UsageError(message: "give one or two --DOMAIN FROM:TO:STEPS ranges") }
        let dir = args.value("--vectors") ?? "."
        var axes: [(domain: String, values: [Double], vector: AlignmentVector)] = []
        for (name, text) in args.dynamic {
            let parts = text.split(separator: ":").map(String.init)
            guard parts.count == 3, let from = Double(parts[0]), let to = Double(parts[1]), let steps = Int(parts[2]), steps >= 2,
                from.isFinite, to.isFinite, steps <= 10_000
            else {
                throw UsageError(message: "--\(name) takes FROM:TO:STEPS with finite FROM and TO and 2 ≤ STEPS ≤ 10000, not '\(text)'")
            }
            guard !axes.contains(where: { $0.domain == name }) else {
                throw UsageError(message: "domain '\(name)' is given twice; give each domain once")
            }
            let values = (0..<steps).map { from + (to - from) * Double($0) / Double(steps - 1) }
            axes.append((name, values, try MergeCommand.vector(domain: name, in: dir)))
        }
        let pairs = try PreferencePair.load(pairsFile)
        if let plot = args.value("--plot") { try ReportFile.check(plot, inputs: [pairsFile]) }
        let threadCount = try threads(args)
        var grid: [[Double]] = axes[0].values.map { [$0] }
        if axes.count == 2 { grid = grid.flatMap { a in axes[1].values.map { a + [$0] } } }
        var rows: [Row] = []
        let bar = ProgressBar(label: "sweep", quiet: args.has("--quiet") || args.has("--json"))
        bar.counting = true
        for (i, lambdas) in grid.enumerated() {
            let terms = zip(axes, lambdas).map { MergeTerm(vector: $0.vector, coefficient: $1) }
            let lm = try LanguageModel(directory: base, mixing: terms, force: args.has("--force"), threads: threadCount)
            lm.model.threads = threadCount
            rows.append(Row(lambdas: lambdas, result: try lm.evaluate(pairs: pairs)))
            bar.update(i + 1, grid.count)
        }
        bar.finish()
        if args.has("--json") {
            print(
                JSONValue.array(
                    rows.map { r in
                        .object(
                            zip(axes, r.lambdas).map { ($0.domain, .double($1)) } + [
                                ("accuracy", .double(r.result.accuracy)), ("meanMargin", .double(r.result.meanMargin)),
                            ])
                    }
                ).rendered(pretty: true))
        } else {
            let header = axes.map { "λ \($0.domain)" } + ["accuracy", "mean margin"]
            let table = rows.map { r in
                r.lambdas.map { String(format: "%+.3f", $0) } + [
                    String(format: "%.1f%%", 100 * r.result.accuracy), String(format: "%+.4f", r.result.meanMargin),
                ]
            }
            print("av sweep: \(pairs.count) pairs from \(pairsFile) on \(base)")
            print(Format.table(header, table, rightAligned: Set(0..<header.count)))
        }
        if let plot = args.value("--plot") {
            let svg = SVGPlot.render(axes: axes.map { ($0.domain, $0.values) }, rows: rows.map { ($0.lambdas, $0.result.accuracy, $0.result.meanMargin) })
            try ReportFile.write(svg, to: plot, inputs: [pairsFile])
            if !args.has("--json") { print("plot: \(plot)") }
        }
        return .success
    }
}

/// A two-panel line chart (accuracy, mean margin) against λ of the first domain, one line per
/// value of the second domain.
enum SVGPlot {
    static func render(axes: [(String, [Double])], rows: [(lambdas: [Double], accuracy: Double, margin: Double)]) -> String {
        let width = 720.0
        let panel = 260.0
        let left = 70.0
        let plotWidth = width - left - 30
        let xs = axes[0].1
        let (xMin, xMax) = (xs.min()!, xs.max()!)
        func x(_ v: Double) -> Double { left + (v - xMin) / max(xMax - xMin, 1e-12) * plotWidth }
        let series: [[(lambdas: [Double], accuracy: Double, margin: Double)]] =
            axes.count == 2 ? axes[1].1.map { v in rows.filter { $0.lambdas[1] == v } } : [rows]
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
        var out =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(2 * panel + 90))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        for (p, metric) in ["preference accuracy", "mean margin (nats)"].enumerated() {
            let top = 30.0 + Double(p) * (panel + 30)
            let values = rows.map { p == 0 ? $0.accuracy : $0.margin }
            var (lo, hi) = p == 0 ? (0.0, 1.0) : (values.min()!, values.max()!)
            if hi - lo < 1e-9 { (lo, hi) = (lo - 1, hi + 1) }
            func y(_ v: Double) -> Double { top + panel - 20 - (v - lo) / (hi - lo) * (panel - 40) }
            out += "<text x=\"\(left)\" y=\"\(top - 8)\" font-weight=\"bold\">\(metric) vs λ \(axes[0].0)</text>\n"
            out += "<line x1=\"\(left)\" y1=\"\(y(lo))\" x2=\"\(left + plotWidth)\" y2=\"\(y(lo))\" stroke=\"#333\"/>\n"
            out += "<line x1=\"\(left)\" y1=\"\(y(lo))\" x2=\"\(left)\" y2=\"\(y(hi))\" stroke=\"#333\"/>\n"
            for v in [lo, (lo + hi) / 2, hi] {
                out +=
                    "<text x=\"\(left - 6)\" y=\"\(y(v) + 4)\" text-anchor=\"end\">\(String(format: p == 0 ? "%.0f%%" : "%.2f", p == 0 ? 100 * v : v))</text>\n"
            }
            for v in [xMin, 0, 1, xMax] where v >= xMin && v <= xMax {
                out += "<line x1=\"\(x(v))\" y1=\"\(y(lo))\" x2=\"\(x(v))\" y2=\"\(y(hi))\" stroke=\"#ddd\"/>\n"
                out += "<text x=\"\(x(v))\" y=\"\(y(lo) + 15)\" text-anchor=\"middle\">\(String(format: "%g", v))</text>\n"
            }
            for (k, s) in series.enumerated() {
                let points = s.map { "\(x($0.lambdas[0])),\(y(p == 0 ? $0.accuracy : $0.margin))" }.joined(separator: " ")
                let color = colors[k % colors.count]
                out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
                for r in s { out += "<circle cx=\"\(x(r.lambdas[0]))\" cy=\"\(y(p == 0 ? r.accuracy : r.margin))\" r=\"3\" fill=\"\(color)\"/>\n" }
                if axes.count == 2, p == 0 {
                    out +=
                        "<text x=\"\(left + plotWidth - 120)\" y=\"\(top + 14 * Double(k + 1))\" fill=\"\(color)\">λ \(axes[1].0) = \(String(format: "%g", s[0].lambdas[1]))</text>\n"
                }
            }
        }
        return out + "</svg>\n"
    }
}

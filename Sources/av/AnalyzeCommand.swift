import AlignmentVectors
import GGUF
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

enum AnalyzeCommand {
    static let spec = CommandSpec(
        name: "analyze",
        summary: "look inside alignment vectors: where they live, how they relate, how low-rank they are",
        positionals: [("A.av [B.av ...]", "the vectors to measure")],
        options: [
            OptionSpec(names: ["--base"], valueName: "PATH", help: "also ‖Δ‖/‖W‖ against this base"),
            OptionSpec(
                names: ["--density"], valueName: "D",
                help: "share of each tensor's entries counted as a vector's largest, for the overlap (0.05)"),
            OptionSpec(
                names: ["--spectrum"], help: "also the energy in each matrix's top 1, 8 and 32 singular directions"),
            OptionSpec(names: ["--plot"], valueName: "OUT.svg", help: "heatmaps: energy by layer, cosine by layer"),
            OptionSpec(names: ["--threads"], valueName: "N", help: "threads for --spectrum (default: all cores)"),
            OptionSpec(names: ["--force"], help: "compare vectors made from models of different structure anyway"),
            OptionSpec(names: ["--json"], help: "print every tensor's measurements as JSON"),
            OptionSpec(names: ["--help", "-h"], help: "show this help"),
        ],
        discussion: """
            Per vector: ‖Δ‖, with --base ‖Δ‖/‖W‖, and each layer's share of ‖Δ‖². Per pair of vectors: the cosine
            similarity of their deltas (whole and per layer); the sign conflict rate, the share of the magnitude
            (|a| + |b|) of entries both change whose signs disagree (what TIES resolves); the overlap, the share of
            each tensor's top D entries by |Δ| that both vectors have among their top entries. With --spectrum, the
            share of each matrix's ‖Δ‖² in its top 1, 8 and 32 singular directions (export-lora's randomized SVD).
            Tensors outside the layers (embeddings, final norm) are grouped as "other". Sums are in f64, tensor
            by tensor in a fixed order: the numbers do not depend on the thread count.
            """)

    /// `av analyze`'s words: the vectors, the base, what to measure and where to put it.
    struct Arguments {
        var paths: [String]
        var base: String?
        var density: Double
        var spectrum: Bool
        var force: Bool
        var threads: Int
        var plot: String?
        var json: Bool

        /// Reads and checks every word.
        static func parse(_ args: ParsedArguments) throws -> Arguments {
            guard !args.positionals.isEmpty else { throw UsageError(message: "expected one or more NAME.av files") }
            var density = 0.05
            if let text = args.value("--density") {
                guard let d = Double(text), d > 0, d <= 1 else {
                    throw UsageError(message: "--density is a share in (0, 1], not '\(text)'")
                }
                density = d
            }
            return Arguments(
                paths: args.positionals, base: args.value("--base"), density: density, spectrum: args.has("--spectrum"),
                force: args.has("--force"), threads: try args.threads(), plot: args.value("--plot"),
                json: args.has("--json"))
        }
    }

    /// Parse → analyze the vectors (`analyzeVectors`) → print, and draw the plot.
    static func run(_ args: ParsedArguments) throws -> ExitCode {
        let a = try Arguments.parse(args)
        let vectors = try a.paths.map { try AlignmentVector(path: $0) }
        let base = try a.base.map {
            try Checkpoint(path: try resolveBase($0, for: vectors))
        }
        let analysis = try analyzeVectors(
            vectors, base: base, density: a.density, spectrum: a.spectrum, force: a.force, threads: a.threads)
        if let plot = a.plot { try ReportFile.write(AnalyzePlot.render(analysis), to: plot, inputs: a.paths) }
        print(a.json ? json(analysis).rendered(pretty: true) : GGUFInput.originals(in: text(analysis, plot: a.plot)))
        return .success
    }

    /// Groups of tensors: each layer, then "other".
    static func groups(_ a: VectorAnalysis) -> [(String, (VectorAnalysis.Tensor) -> Bool)] {
        a.layers.map { l in ("\(l)", { $0.layer == l }) } + [("other", { $0.layer == nil })]
    }

    static func pct(_ x: Double) -> String { String(cFormat: "%.1f%%", 100 * x) }

    /// A table indented under its heading, as the other commands print theirs.
    static func indented(_ table: String) -> String {
        table.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n")
    }

    static func text(_ a: VectorAnalysis, plot: String?) -> String {
        var lines = ["av analyze: \(a.domains.joined(separator: ", "))" + (a.base.map { " against \($0)" } ?? "")]
        let all = a.totals()
        var rows: [[String]] = []
        for (v, d) in a.domains.enumerated() {
            let tensors = a.tensors.filter { $0.energy[v] > 0 }.count
            var row = [d, String(cFormat: "%.5g", all.energy[v].squareRoot()), "\(tensors)"]
            if a.base != nil {
                row.append(
                    String(cFormat: "%.5f", all.baseEnergy > 0 ? (all.energy[v] / all.baseEnergy).squareRoot() : 0))
            }
            rows.append(row)
        }
        let header = ["vector", "‖Δ‖", "tensors"] + (a.base != nil ? ["‖Δ‖/‖W‖"] : [])
        lines.append(indented(Format.table(header, rows, rightAligned: [1, 2, 3])))
        // Where each vector lives: each layer's share of its ‖Δ‖².
        lines.append("\nshare of each vector's ‖Δ‖² by layer:")
        rows = groups(a).map { name, include in
            let t = a.totals(where: include)
            return [name] + a.domains.indices.map { v in pct(all.energy[v] > 0 ? t.energy[v] / all.energy[v] : 0) }
        }
        lines.append(indented(Format.table(["layer"] + a.domains, rows, rightAligned: Set(1...a.domains.count))))
        if !a.pairs.isEmpty {
            lines.append(
                "\npairs (cosine of the deltas; sign conflict weighted by |a| + |b|; overlap of the top "
                    + "\(String(trimming: 100 * a.density))% entries):")
            rows = a.pairs.indices.map { p in
                let (i, j) = a.pairs[p]
                return [
                    "\(a.domains[i])·\(a.domains[j])", String(cFormat: "%+.4f", all.cosine(p, a.pairs)),
                    pct(all.conflictRate(p)), pct(all.overlapRate(p)),
                ]
            }
            lines.append(
                indented(Format.table(["pair", "cosine", "conflict", "overlap"], rows, rightAligned: [1, 2, 3])))
            lines.append("\ncosine by layer:")
            rows = groups(a).map { name, include in
                let t = a.totals(where: include)
                return [name] + a.pairs.indices.map { String(cFormat: "%+.3f", t.cosine($0, a.pairs)) }
            }
            let names = a.pairs.map { "\(a.domains[$0.0])·\(a.domains[$0.1])" }
            lines.append(indented(Format.table(["layer"] + names, rows, rightAligned: Set(1...names.count))))
        }
        if a.tensors.contains(where: { $0.spectrum != nil }) {
            lines.append("\nenergy in the top 1 / 8 / 32 singular directions, over all matrices (‖Δ‖²-weighted):")
            rows = a.domains.indices.map { v in [a.domains[v]] + a.spectrumShares(v).map(pct) }
            lines.append(
                indented(Format.table(["vector", "top 1", "top 8", "top 32"], rows, rightAligned: [1, 2, 3])))
        }
        if let plot { lines.append("\nwrote \(plot)") }
        return lines.joined(separator: "\n")
    }

    static func json(_ a: VectorAnalysis) -> JSONValue {
        let all = a.totals()
        func numbers(_ x: [Double]) -> JSONValue { .array(x.map { .double($0) }) }
        return .object([
            (
                "vectors",
                .array(zip(a.domains, a.paths).map { .object([("domain", .string($0)), ("path", .string($1))]) })
            ),
            ("base", a.base.map { .string($0) } ?? .null), ("density", .double(a.density)),
            ("norms", numbers(all.energy.map { $0.squareRoot() })),
            (
                "relativeNorms",
                a.base == nil
                    ? .null : numbers(all.energy.map { (all.baseEnergy > 0 ? $0 / all.baseEnergy : 0).squareRoot() })
            ),
            (
                "pairs",
                .array(
                    a.pairs.indices.map { p in
                        .object([
                            ("a", .string(a.domains[a.pairs[p].0])), ("b", .string(a.domains[a.pairs[p].1])),
                            ("cosine", .double(all.cosine(p, a.pairs))), ("conflict", .double(all.conflictRate(p))),
                            ("overlap", .double(all.overlapRate(p))),
                        ])
                    })
            ),
            (
                "tensors",
                .array(
                    a.tensors.map { t in
                        var o: [(key: String, value: JSONValue)] = [
                            ("name", .string(t.name)), ("shape", .array(t.shape.map { .int($0) })),
                            ("layer", t.layer.map { .int($0) } ?? .null),
                            ("norms", numbers(t.energy.map { $0.squareRoot() })),
                            ("baseNorm", t.baseEnergy.map { .double($0.squareRoot()) } ?? .null),
                        ]
                        if !a.pairs.isEmpty {
                            let one = a.totals(where: { $0.name == t.name })
                            o.append(("cosine", numbers(a.pairs.indices.map { one.cosine($0, a.pairs) })))
                            o.append(("conflict", numbers(a.pairs.indices.map { one.conflictRate($0) })))
                            o.append(("overlap", numbers(a.pairs.indices.map { one.overlapRate($0) })))
                        }
                        if let s = t.spectrum { o.append(("spectrum", .array(s.map(numbers)))) }
                        return .object(o)
                    })
            ),
        ])
    }
}

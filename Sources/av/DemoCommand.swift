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

/// `av demo`: the whole story on the model family in Checkpoints/, in a temporary directory.
enum DemoCommand {
    static let spec = CommandSpec(
        name: "demo",
        summary: "run the alignment-vector story on Checkpoints/: diff, the knob, generate, search",
        positionals: [],
        options: [
            OptionSpec(names: ["--checkpoints"], valueName: "DIR", help: "the model family (default: Checkpoints)"),
            SharedOptions.threads, SharedOptions.help,
        ],
        discussion: "Writes only to a temporary directory, removed at the end.")

    /// `av demo`'s words: the model family and the threads.
    struct Arguments {
        var root: String
        var threads: Int

        /// Reads the words; nothing to check beyond the thread count.
        static func parse(_ args: ParsedArguments) throws -> Arguments {
            Arguments(root: args.value("--checkpoints") ?? "Checkpoints", threads: try args.threads())
        }
    }

    /// Parse → run the tour (`Tour.run`, the library's story on Checkpoints) → print each step as it ends.
    static func run(_ args: ParsedArguments) throws -> ExitCode {
        let a = try Arguments.parse(args)
        let base = a.root + "/base"
        guard FileManager.default.fileExists(atPath: base + "/config.json") else {
            throw CLIError(
                message: "\(base): no model here (run av demo from the repository root, or pass --checkpoints DIR)",
                code: .io)
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("av-demo-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let start = DispatchTime.now().uptimeNanoseconds
        print(
            "av demo: a base model that answers medical, legal and financial questions, mostly in a generic register,")
        print(
            "and three DPO fine-tunes that prefer expert answers in their own domain (\(a.root)/)."
                + " Working in \(work).\n")
        print("1. av diff: one alignment vector per domain, AV = aligned - base")
        let passed = try Tour.run(root: a.root, work: work, threads: a.threads) { print(render($0)) }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        print(
            "\ndone in \(String(cFormat: "%.2f s", seconds)). Next: av search --all-profiles, av merge --recipe,"
                + " av check --recipe (see README.md).")
        return passed ? .success : .checkFailed
    }

    /// The lines of one step of the tour.
    static func render(_ event: Tour.Event) -> String {
        func time(_ s: Double) -> String { String(cFormat: "%.2f s", s) }
        switch event {
        case .vector(let d, let r, let s):
            return "   \(d).av: \(r.changedTensors) of \(r.tensors.count) tensors changed, ‖Δ‖/‖W‖ = "
                + String(cFormat: "%.3f", r.relativeChange) + ", exact at λ=1: \(r.mismatches == 0 ? "yes" : "no")"
                + " (\(time(s)))"
        case .knob(let rows, let file, let s):
            let table = rows.map { lambda, r in
                [String(cFormat: "%+.2f", lambda)]
                    + r.levels.indices.map { Format.share(r.shares[$0], r.shareInterval(at: $0), decimals: 0) }
                    + [bar(r.shares)]
            }
            return [
                "\n2. av sweep: the medical knob. Share of held-out medical questions answered at each level,"
                    + " as λ moves",
                indent(indent(Format.table(["λ medical"] + file.levels + [""], table, rightAligned: [0, 1, 2, 3]))),
                "   (\(time(s)); λ < 0 extrapolates away from the expert register, λ > 1 beyond the fine-tune;",
                "   [lo–hi]: 95% Wilson intervals over \(file.items.count) prompts)",
            ].joined(separator: "\n")
        case .question(let q):
            return "\n3. av generate: \"\(q)\" (held out) with the medical vector at λ = 0, 0.5, 1, 1.5"
        case .generated(let lambda, let text):
            return String(cFormat: "   λ = %.1f: ", lambda) + text.replacingAll("\n", with: " ")
        case .searched(let lambdas, let s):
            let t = Tour.target
            let head =
                "\n4. av search: a mix for medical=\(t[0]), legal=\(t[1]), financial=\(t[2]), then merged and checked\n"
            guard let lambdas else { return head + "   not reached on this grid (\(time(s)))" }
            return head + "   found: "
                + zip(Tour.domains, lambdas).map { "\($0) \(String(cFormat: "%+.2f", $1))" }.joined(separator: ", ")
                + " (\(time(s)))"
        case .checked(let d, let level, let r, let ok):
            let cells = r.levels.indices.map {
                "\(r.levels[$0]) " + Format.share(r.shares[$0], r.shareInterval(at: $0), decimals: 0)
            }.joined(separator: ", ")
            return "   check \(d) answers \(level): \(ok ? "pass" : "FAIL") (\(cells))"
        }
    }

    /// Shares as a 30-character bar, one letter per level (a = avoid, g = generic, e = expert).
    static func bar(_ shares: [Double]) -> String {
        let letters = ["a", "g", "e", "x", "y", "z"]
        var out = ""
        for (k, share) in shares.enumerated() {
            out += String(repeating: letters[min(k, letters.count - 1)], count: Int((share * 30).rounded()))
        }
        return out
    }
}

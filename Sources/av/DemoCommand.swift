import AlignmentVectors
import Dispatch
import Foundation
import Inference
import SafeTensors

/// `av demo`: the whole story on the model family in Checkpoints/, in a temporary directory.
enum DemoCommand {
    static let spec = CommandSpec(
        name: "demo",
        summary: "run the alignment-vector story on Checkpoints/: diff, merge, generate, sweep",
        positionals: [],
        options: [
            OptionSpec(names: ["--checkpoints"], valueName: "DIR", help: "the model family (default: Checkpoints)"),
            OptionSpec(names: ["--threads"], valueName: "N", help: "threads to use (default: all cores)"),
            OptionSpec(names: ["--help", "-h"], help: "show this help"),
        ],
        discussion: "Writes only to a temporary directory, removed at the end.")

    static let domains = ["medical", "legal", "financial"]

    static func run(_ args: ParsedArguments) throws -> ExitCode {
        let root = args.value("--checkpoints") ?? "Checkpoints"
        let base = root + "/base"
        guard FileManager.default.fileExists(atPath: base + "/config.json") else {
            throw CLIError(message: "\(base): no model here (run av demo from the repository root, or pass --checkpoints DIR)", code: .io)
        }
        let threadCount = try threads(args)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("av-demo-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed(_ t: UInt64) -> String { String(format: "%.2f s", Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9) }

        print("av demo: a base model that answers medical, legal and financial questions plainly, and three")
        print("fine-tunes that answer their own domain like an expert (\(root)/). Working in \(work).\n")

        print("1. av diff: one alignment vector per domain, AV = aligned - base")
        let baseCheckpoint = try Checkpoint(path: base)
        for d in domains {
            let t = DispatchTime.now().uptimeNanoseconds
            var options = DiffOptions(domain: d)
            options.threads = threadCount
            let r = try diff(base: baseCheckpoint, aligned: Checkpoint(path: "\(root)/\(d)-aligned"), output: "\(work)/\(d).av", options: options)
            var sums = (0.0, 0.0)
            for x in r.tensors { sums = (sums.0 + x.deltaNorm * x.deltaNorm, sums.1 + x.baseNorm * x.baseNorm) }
            print(
                String(
                    format: "   %@.av: %d of %d tensors changed, ‖Δ‖/‖W‖ = %.3f, exact at λ=1: %@ (%@)", d, r.changedTensors, r.tensors.count,
                    (sums.0 / max(sums.1, 1e-30)).squareRoot(), r.mismatches == 0 ? "yes" : "no", elapsed(t)))
        }

        print("\n2. av merge: base + 0.8·medical + 0.8·legal, written as a model directory")
        let t2 = DispatchTime.now().uptimeNanoseconds
        var mergeOptions = MergeOptions()
        mergeOptions.threads = threadCount
        let vectors = Dictionary(uniqueKeysWithValues: try domains.map { ($0, try AlignmentVector(path: "\(work)/\($0).av")) })
        let merged = try merge(
            base: baseCheckpoint, terms: [MergeTerm(vector: vectors["medical"]!, coefficient: 0.8), MergeTerm(vector: vectors["legal"]!, coefficient: 0.8)],
            output: "\(work)/merged", options: mergeOptions)
        print(
            "   \(work)/merged: \(merged.tensors.count) tensors, \(merged.touchedTensors) changed, base verified: \(merged.baseVerified ? "yes" : "no") (\(elapsed(t2)))"
        )

        let question = "What should I do about a headache?"
        print("\n3. av generate: \"\(question)\" with the medical vector at λ = 0, 0.5, 1, 1.5")
        let pairsPath = "\(root)/eval/medical_pairs.jsonl"
        for lambda in [0.0, 0.5, 1.0, 1.5] {
            let lm = try LanguageModel(directory: base, mixing: [MergeTerm(vector: vectors["medical"]!, coefficient: lambda)])
            lm.model.threads = threadCount
            let template = lm.chatTemplate ?? .chatML(defaultSystem: nil)
            var text = ""
            try lm.generate(prompt: lm.tokenizer.encode(template.render(user: question, system: nil)), maxTokens: 60, sampling: SamplingOptions()) {
                text += $0
            }
            print(String(format: "   λ = %.1f: ", lambda) + text.replacingOccurrences(of: "\n", with: " "))
        }

        print("\n4. av sweep: preference accuracy (expert over generic answers, held-out questions) as λ medical moves")
        let medicalPairs = try PreferencePair.load(pairsPath)
        let legalPairs = try PreferencePair.load("\(root)/eval/legal_pairs.jsonl")
        var rows: [[String]] = []
        for lambda in [-0.5, 0.0, 0.5, 1.0, 1.5] {
            let lm = try LanguageModel(directory: base, mixing: [MergeTerm(vector: vectors["medical"]!, coefficient: lambda)])
            lm.model.threads = threadCount
            let m = try lm.evaluate(pairs: medicalPairs)
            let l = try lm.evaluate(pairs: legalPairs)
            rows.append([
                String(format: "%+.1f", lambda), String(format: "%.0f%%", 100 * m.accuracy), String(format: "%+.2f", m.meanMargin),
                String(format: "%.0f%%", 100 * l.accuracy),
            ])
        }
        print(indent(indent(Format.table(["λ medical", "medical accuracy", "medical margin", "legal accuracy"], rows, rightAligned: [0, 1, 2, 3]))))
        print("\ndone in \(elapsed(start)). Next: av diff, av merge --recipe, av check --recipe (see README.md).")
        return .success
    }
}

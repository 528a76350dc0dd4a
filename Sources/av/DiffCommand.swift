import AlignmentVectors
import GGUF
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

enum DiffCommand {
    static let spec = CommandSpec(
        name: "diff",
        summary: "compute an alignment vector: AV = aligned - base",
        positionals: [
            ("BASE", "the base model: a .safetensors file or a model directory"),
            ("ALIGNED", "the aligned model, same architecture, or a PEFT LoRA/DoRA adapter directory"),
        ],
        options: [
            OptionSpec(names: ["-o", "--output"], valueName: "NAME.av", help: "the AV file to write (required)"),
            OptionSpec(
                names: ["--domain"], valueName: "NAME",
                help: "the domain recorded in the AV (default: the output's stem)"),
            OptionSpec(
                names: ["--dtype"], valueName: "DTYPE",
                help: "stored deltas: f32 (default, exact), bf16 or f16 (smaller, reported mismatch)"),
            OptionSpec(
                names: ["--resized-rows"], valueName: "POLICY",
                help: "refuse (default) or drop: keep the base's rows when the aligned model added tokens"),
            OptionSpec(names: ["--top"], valueName: "N", help: "how many of the largest changes to list (default 10)"),
        ] + CompressCommand.encodingOptions + [
            OptionSpec(names: ["--threads"], valueName: "N", help: "threads to use (default: all cores)"),
            OptionSpec(names: ["--json"], help: "print the full per-tensor report as JSON"),
            OptionSpec(names: ["--quiet", "-q"], help: "no progress bar"),
            OptionSpec(names: ["--help", "-h"], help: "show this help"),
        ],
        discussion: """
            Unchanged tensors are left out of the AV (absent = zero delta). With f32 deltas, base + AV
            gives back the aligned model bit for bit; diff checks every value and reports any that do not.
            With --resized-rows drop, tensors with more rows in the aligned model (added tokens) keep the
            base's rows: the AV holds aligned[:rows] - base, merges keep the base's vocabulary and
            tokenizer, and the dropped row counts are recorded in the AV.
            ALIGNED may be a PEFT adapter (adapter_config.json + adapter_model.safetensors): the AV holds
            what PEFT's merge_and_unload() adds to BASE (LoRA, rsLoRA, rank/alpha patterns, embedding LoRA,
            lora_bias, DoRA, modules_to_save), each value computed in f64 and rounded once.
            --encoding sparse|1bit stores the vector smaller (see av compress): the exact dense AV is written to
            a hidden temporary beside the output first, then encoded; --dtype then sets the sparse values' dtype.
            """)

    /// `av diff`'s words: the two models, the output, how deltas are stored (or encoded), and what
    /// to print.
    struct Arguments {
        var base: String
        var aligned: String
        var output: String
        var options: DiffOptions
        /// A lossy encoding to store the vector in (through the exact dense one), or nil.
        var encoding: EncodingOptions?
        var top: Int
        var json: Bool
        var quiet: Bool

        /// Reads and checks every word.
        static func parse(_ args: ParsedArguments) throws -> Arguments {
            guard args.positionals.count == 2 else {
                throw UsageError(
                    message: args.positionals.count < 2
                        ? "expected BASE and ALIGNED" : "expected two models, got \(args.positionals.count) arguments")
            }
            guard let output = args.value("-o") else { throw UsageError(message: "missing -o NAME.av") }
            var options = DiffOptions(domain: args.value("--domain") ?? stem(output))
            let encoding = try CompressCommand.encoding(args, default: nil).flatMap { $0.encoding == .dense ? nil : $0 }
            if let text = args.value("--dtype"), encoding == nil {
                guard let d = DType(userSpelling: text), [.f32, .bf16, .f16].contains(d) else {
                    throw UsageError(message: "--dtype must be f32, bf16 or f16, not '\(text)'")
                }
                options.storage = d
            }
            if let text = args.value("--resized-rows") {
                guard let p = ResizedRows(rawValue: text) else {
                    throw UsageError(message: "--resized-rows must be refuse or drop, not '\(text)'")
                }
                options.resizedRows = p
            }
            options.threads = try args.threads()
            let top =
                try args.value("--top").map { text -> Int in
                    guard let n = Int(text), n >= 0 else { throw UsageError(message: "--top must be a whole number") }
                    return n
                } ?? 10
            return Arguments(
                base: args.positionals[0], aligned: args.positionals[1], output: output, options: options,
                encoding: encoding, top: top, json: args.has("--json"), quiet: args.has("--quiet"))
        }
    }

    /// Parse → diff (through the dense vector when encoding) → print the report.
    static func run(_ args: ParsedArguments) throws -> ExitCode {
        let a = try Arguments.parse(args)
        let options = a.options
        let encoding = a.encoding
        let top = a.top
        let output = a.output

        let base = try Checkpoint(path: try GGUFInput.resolve(a.base))
        let bar = ProgressBar(label: "diff", quiet: a.quiet || a.json)
        var report: DiffReport?
        func makeDense(_ path: String) throws(AVError) {
            do {
                if isAdapterDirectory(a.aligned) {
                    guard options.resizedRows == .refuse else {
                        throw AVError.usage("--resized-rows applies to two models, not to an adapter")
                    }
                    let adapter = try LoRAAdapter(path: a.aligned)
                    report = try diff(
                        base: base, adapter: adapter, output: path, options: options, progress: bar.update)
                } else {
                    let aligned = try Checkpoint(path: try GGUFInput.resolve(a.aligned))
                    if let why = base.tokenizerDifference(from: aligned) {
                        printError(
                            "av diff: note: \(why): token ids may stand for other text in the two models; the vector"
                                + " assumes the base's tokenizer")
                    }
                    report = try diff(
                        base: base, aligned: aligned, output: path, options: options, progress: bar.update)
                }
            } catch let e as AVError {
                throw e
            } catch {
                throw .usage("\(error)")
            }
        }
        var encoded: CompressReport?
        if let encoding {
            encoded = try encodeThroughDense(
                output: output, options: encoding, inputs: [base.path, a.aligned] + options.protectedPaths,
                makeDense: makeDense)
        } else {
            try makeDense(output)
        }
        bar.finish()
        guard var report else { preconditionFailure("diff returned without a report") }
        if let encoded {
            report.output = output
            report.header = encoded.header
            report.bytesWritten = encoded.bytesWritten
        }
        if a.json {
            var j = json(report)
            if let encoded, case .object(var members) = j {
                members.append(("encoded", CompressCommand.json(encoded)))
                j = .object(members)
            }
            print(j.rendered(pretty: true))
        } else {
            print(text(report, top: top))
            if let encoded { print(CompressCommand.text(encoded, top: 0)) }
        }
        return .success
    }
}

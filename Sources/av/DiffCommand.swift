import AlignmentVectors
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

    static func run(_ args: ParsedArguments) throws -> ExitCode {
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

        let base = try Checkpoint(path: try GGUFPaths.resolve(args.positionals[0]))
        let bar = ProgressBar(label: "diff", quiet: args.has("--quiet") || args.has("--json"))
        var report: DiffReport?
        func makeDense(_ path: String) throws(AVError) {
            do {
                if isAdapterDirectory(args.positionals[1]) {
                    guard options.resizedRows == .refuse else {
                        throw AVError.usage("--resized-rows applies to two models, not to an adapter")
                    }
                    let adapter = try LoRAAdapter(path: args.positionals[1])
                    report = try diff(
                        base: base, adapter: adapter, output: path, options: options, progress: bar.update)
                } else {
                    let aligned = try Checkpoint(path: try GGUFPaths.resolve(args.positionals[1]))
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
                output: output, options: encoding, inputs: [base.path, args.positionals[1]] + options.protectedPaths,
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
        if args.has("--json") {
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

    static func text(_ r: DiffReport, top: Int) -> String {
        let h = r.header
        var lines = ["av diff: \(h.domain) = \(h.aligned.path) - \(h.base.path)"]
        let changedShare = r.totalElements > 0 ? 100 * Double(r.changedElements) / Double(r.totalElements) : 0
        var overall = (0.0, 0.0)
        for t in r.tensors { overall = (overall.0 + t.deltaNorm * t.deltaNorm, overall.1 + t.baseNorm * t.baseNorm) }
        let rel = overall.1 > 0 ? (overall.0 / overall.1).squareRoot() : 0
        var rows: [(String, String)] = [
            ("tensors", "\(r.changedTensors) of \(r.tensors.count) changed (the others are left out of the AV)"),
            (
                "values",
                "\(Format.grouped(r.changedElements)) of \(Format.grouped(r.totalElements)) changed"
                    + " (\(String(cFormat: "%.1f", changedShare))%)"
            ),
            ("change", "‖Δ‖/‖W‖ = \(String(cFormat: "%.4g", rel)) over the whole model"),
        ]
        let lostShare = r.changedElements > 0 ? 100 * Double(r.lostInBF16) / Double(r.changedElements) : 0
        rows.append(
            (
                "bf16",
                "\(Format.grouped(r.lostInBF16)) changed values (\(String(cFormat: "%.2f", lostShare))%) are below"
                    + " what a bf16 model can represent at λ=1"
            ))
        if let adapter = h.adapter {
            let r = adapter["r"]?.doubleValue.map { Int($0) } ?? 0
            let alpha = adapter["lora_alpha"]?.doubleValue ?? 0
            var kind = adapter["use_dora"] == .bool(true) ? "DoRA" : "LoRA"
            if adapter["use_rslora"] == .bool(true) { kind += ", rsLoRA" }
            rows.append(
                (
                    "adapter",
                    "\(kind) r \(r), lora_alpha \(String(cFormat: "%g", alpha)): the AV holds what merge_and_unload()"
                        + " adds,"
                        + " each value computed in f64 and rounded once"
                ))
        } else if h.encoding != .dense {
            rows.append(("encoded", "\(h.encoding.rawValue): lossy by design, what it keeps is reported below"))
        } else if r.mismatches == 0 {
            var how: [String] = []
            if r.residuals > 0 { how.append("\(Format.grouped(r.residuals)) kept with an exact f64 remainder") }
            rows.append(
                (
                    "exact",
                    "base + AV rebuilds the aligned model bit for bit at λ=1"
                        + (how.isEmpty ? "" : " (" + how.joined(separator: ", ") + ")")
                ))
            if r.signedZeros > 0 {
                rows.append(
                    (
                        "",
                        "except \(Format.grouped(r.signedZeros)) zeros whose sign differs (+0 in the base, −0"
                            + " aligned: equal values)"
                    ))
            }
        } else {
            let hint = h.dtype == .f32 ? "" : "; f32 deltas (the default) are exact"
            rows.append(
                (
                    "inexact",
                    "\(Format.grouped(r.mismatches)) values differ from the aligned model at λ=1 (max \(r.maxULP)"
                        + " ulp) with \(h.dtype.rawValue) deltas\(hint)"
                ))
        }
        if !h.droppedRows.isEmpty {
            rows.append(
                (
                    "dropped",
                    h.droppedRows.keys.sorted().map {
                        "\($0): rows past the base's dropped (aligned has \(h.droppedRows[$0]!))"
                    }.joined(separator: "; ")
                ))
        }
        let rate = r.seconds > 0 ? Double(r.bytesRead) / r.seconds : 0
        rows.append(
            (
                "wrote",
                "\(r.output): \(Format.bytes(r.bytesWritten)), \(h.encoding == .dense ? "" : h.encoding.rawValue + " ")"
                    + "\(h.dtype.rawValue) deltas, in"
                    + " \(String(cFormat: "%.2f", r.seconds)) s (read \(Format.bytes(Int(rate)))/s)"
            ))
        rows.append(("base", "\(h.base.fingerprint) (structure:content)"))
        for (k, v) in rows { lines.append("  " + k.padded(to: 9) + v) }

        let nonFinite = r.tensors.filter { !$0.deltaNorm.isFinite || !$0.baseNorm.isFinite }
        if let first = nonFinite.first {
            lines.append(
                "warning: \(nonFinite.count) tensor\(nonFinite.count == 1 ? "" : "s") (first: \(first.name)) hold NaN"
                    + " or Inf in a model; "
                    + "their ‖Δ‖/‖W‖ is not a number, and merges of this vector need --allow-nonfinite")
        }
        let blocks = r.blocks
        if !blocks.isEmpty {
            lines += ["", "relative change by block (‖Δ‖/‖W‖):"]
            let most = blocks.map(\.relativeChange).filter(\.isFinite).max() ?? 0
            let tableRows = blocks.map { b -> [String] in
                let n = most > 0 && b.relativeChange.isFinite ? Int((b.relativeChange / most * 30).rounded()) : 0
                return [b.name, String(cFormat: "%.4g", b.relativeChange), String(repeating: "█", count: n)]
            }
            lines.append(indent(Format.table(["block", "change", ""], tableRows, rightAligned: [1])))
        }
        let largest = r.tensors.filter(\.stored).sorted { $0.relativeChange > $1.relativeChange }.prefix(top)
        if !largest.isEmpty {
            lines += ["", "largest changes:"]
            let tableRows = largest.map { t in
                [
                    t.name, t.dtype.rawValue, Shape.describe(t.shape), String(cFormat: "%.4g", t.relativeChange),
                    String(cFormat: "%.3g", t.maxAbsDelta),
                    String(cFormat: "%.1f%%", 100 * Double(t.changed) / Double(max(1, t.elements))),
                ]
            }
            lines.append(
                indent(
                    Format.table(
                        ["tensor", "dtype", "shape", "‖Δ‖/‖W‖", "max |Δ|", "changed"], tableRows,
                        rightAligned: [3, 4, 5])))
        }
        return lines.joined(separator: "\n")
    }

    static func json(_ r: DiffReport) -> JSONValue {
        .object([
            ("output", .string(r.output)), ("domain", .string(r.header.domain)),
            ("dtype", .string(r.header.dtype.rawValue)),
            ("base", r.header.base.json), ("aligned", r.header.aligned.json), ("adapter", r.header.adapter ?? .null),
            ("changedTensors", .int(r.changedTensors)), ("tensorCount", .int(r.tensors.count)),
            ("changedValues", .int(r.changedElements)), ("values", .int(r.totalElements)),
            ("lostInBF16", .int(r.lostInBF16)), ("mismatchesAtLambda1", .int(r.mismatches)), ("maxULP", .int(r.maxULP)),
            ("exactResiduals", .int(r.residuals)), ("signedZeros", .int(r.signedZeros)),
            ("seconds", .double(r.seconds)),
            ("bytesRead", .int(r.bytesRead)), ("bytesWritten", .int(r.bytesWritten)),
            ("droppedRows", .object(r.header.droppedRows.keys.sorted().map { ($0, .int(r.header.droppedRows[$0]!)) })),
            (
                "blocks",
                .array(
                    r.blocks.map {
                        .object([
                            ("name", .string($0.name)), ("relativeChange", .double($0.relativeChange)),
                            ("tensors", .int($0.tensors)),
                        ])
                    })
            ),
            (
                "tensors",
                .array(
                    r.tensors.map { t in
                        .object([
                            ("name", .string(t.name)), ("dtype", .string(t.dtype.rawValue)),
                            ("shape", .array(t.shape.map { .int($0) })),
                            ("stored", .bool(t.stored)), ("changed", .int(t.changed)), ("elements", .int(t.elements)),
                            ("relativeChange", .double(t.relativeChange)), ("deltaNorm", .double(t.deltaNorm)),
                            ("baseNorm", .double(t.baseNorm)),
                            ("maxAbsDelta", .double(t.maxAbsDelta)), ("lostInBF16", .int(t.lostInBF16)),
                            ("mismatches", .int(t.mismatches)),
                            ("maxULP", .int(t.maxULP)), ("exactResiduals", .int(t.residuals)),
                            ("droppedRows", .int(t.droppedRows)),
                        ])
                    })
            ),
        ])
    }
}

/// "out/medical.av" → "medical".
func stem(_ path: String) -> String {
    let name = URL(fileURLWithPath: path).lastPathComponent
    return name.hasSuffix(".av")
        ? String(name.dropLast(3)) : URL(fileURLWithPath: name).deletingPathExtension().lastPathComponent
}

func indent(_ text: String) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n")
}

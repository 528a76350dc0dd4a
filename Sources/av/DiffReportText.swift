import AlignmentVectors
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What `av diff` prints: the summary of the vector, the change by block and the largest changes;
/// or every tensor's measurements as JSON.
extension DiffCommand {
    static func text(_ r: DiffReport, top: Int) -> String {
        let h = r.header
        var lines = ["av diff: \(h.domain) = \(h.aligned.path) - \(h.base.path)"]
        let changedShare = r.totalElements > 0 ? 100 * Double(r.changedElements) / Double(r.totalElements) : 0
        let rel = r.relativeChange
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

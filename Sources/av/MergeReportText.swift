import AlignmentVectors
import GGUF
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What `av merge` prints: the formula, the inputs, what changed and was rounded away, and the
/// files written; or the same as JSON with every tensor.
extension MergeCommand {
    /// `base + 0.5·medical - 1·legal`.
    static func formula(_ r: MergeReport) -> String {
        "base"
            + r.terms.map { t in
                let c = t.coefficient
                return (c < 0 ? " - " : " + ") + "\(String(trimming: c.magnitude))·\(t.domain)"
            }.joined()
    }

    static func text(_ r: MergeReport, dtype: DType?, gguf: GGMLType? = nil, retention: GGUFRetention? = nil)
        -> String
    {
        var lines = ["av merge: \(formula(r)) → \(r.output)"]
        let changed = r.changed
        let share = changed > 0 ? 100 * Double(r.roundedAway) / Double(changed) : 0
        let outName = dtype?.rawValue ?? r.base.dtype
        var rows: [(String, String)] = [
            (
                "base",
                "\(r.base.path) (\(r.base.dtype), fingerprint \(r.base.fingerprint), \(baseVerdict(r)))"
            ),
            (
                "vectors",
                r.terms.map { "\($0.path) (\($0.domain), λ = \(String(trimming: $0.coefficient)))" }.joined(
                    separator: ", ")
            ),
            ("tensors", "\(r.tensors.count) written, \(r.touchedTensors) changed by the mix"),
        ]
        if let method = r.method, !method.isLinear {
            rows.append(("method", method.json.rendered()))
        }
        rows += [
            (
                "values",
                gguf != nil && outName.uppercased() == "F32"
                    ? "\(Format.grouped(changed)) changed"
                    : "\(Format.grouped(changed)) changed; \(Format.grouped(r.roundedAway))"
                        + " (\(String(cFormat: "%.2f", share))%) rounded back to the base's value in \(outName)"
            )
        ]
        let rate = r.seconds > 0 ? Double(r.bytesRead) / r.seconds : 0
        let names = r.outputFiles.map { URL(fileURLWithPath: $0).lastPathComponent }
        let listed = names.count > 1 || names.first != URL(fileURLWithPath: r.output).lastPathComponent
        let files = listed ? " (" + names.joined(separator: ", ") + ")" : ""
        let timing = String(cFormat: "%.2f", r.seconds) + " s (read \(Format.bytes(Int(rate)))/s)"
        if let gguf {
            rows.append(("gguf", "matrices as \(gguf.name), merged in \(outName) first"))
        }
        if let retention {
            rows.append(
                (
                    "kept",
                    String(cFormat: "%.1f%%", 100 * retention.kept) + " of the mix's change survived"
                        + " \(gguf?.name ?? "") (rounding error "
                        + String(cFormat: "%.2f", retention.errorRatio) + "× the change's energy)"
                ))
        }
        rows.append(("wrote", "\(r.output)\(files): \(Format.bytes(r.bytesWritten)) in " + timing))
        for (k, v) in rows { lines.append("  " + k.padded(to: 9) + v) }
        if changed == 0, r.terms.contains(where: { $0.coefficient != 0 }) {
            lines.append(
                "note: the mix changed no value: every λ·Δ is too small to move a weight even in f64 (the output is"
                    + " the base)"
            )
        }
        if share >= 10, outName != "F32", outName != "F64" {
            lines.append(
                "note: \(String(cFormat: "%.1f", share))% of the changes were smaller than \(outName) can hold next"
                    + " to the base's values and were rounded away; --dtype f32 keeps them"
            )
        }
        return lines.joined(separator: "\n")
    }

    /// How the base relates to the vectors': theirs, a quantized copy of it, or another (transferred).
    static func baseVerdict(_ r: MergeReport) -> String {
        if r.baseVerified { return "matches the vectors" }
        if let q = r.quantizedBase {
            return "a quantized copy (\(q.types)) of the vectors' base: \(q.within) of \(q.sampled) sampled values"
                + " within the quantization step"
        }
        return "NOT the vectors' base: transferred"
    }

    static func json(_ r: MergeReport, dtype: DType?, gguf: GGMLType? = nil, retention: GGUFRetention? = nil)
        -> JSONValue
    {
        .object([
            ("output", .string(r.output)), ("files", .array(r.outputFiles.map { .string($0) })), ("base", r.base.json),
            ("baseVerified", .bool(r.baseVerified)),
            (
                "quantizedBase",
                r.quantizedBase.map {
                    .object([("within", .int($0.within)), ("sampled", .int($0.sampled)), ("types", .string($0.types))])
                } ?? .null
            ),
            (
                "vectors",
                .array(
                    r.terms.map {
                        .object([
                            ("path", .string($0.path)), ("domain", .string($0.domain)),
                            ("coefficient", .double($0.coefficient)),
                        ])
                    })
            ),
            ("dtype", .string(gguf.map { "gguf:" + $0.name } ?? dtype?.rawValue ?? "base")),
            ("changedValues", .int(r.changed)),
            ("roundedAway", .int(r.roundedAway)),
            (
                "gguf",
                retention.map {
                    .object([("kept", .double($0.kept)), ("errorRatio", .double($0.errorRatio))])
                } ?? .null
            ),
            ("seconds", .double(r.seconds)), ("bytesRead", .int(r.bytesRead)), ("bytesWritten", .int(r.bytesWritten)),
            (
                "tensors",
                .array(
                    r.tensors.map { t in
                        .object([
                            ("name", .string(t.name)), ("dtype", .string(t.dtype.rawValue)), ("terms", .int(t.terms)),
                            ("changed", .int(t.changed)),
                            ("roundedAway", .int(t.roundedAway)),
                        ])
                    })
            ),
        ])
    }
}

import AlignmentVectors
import Evaluation
import GGUF
import SafeTensors
import Tensors

/// What `av export-lora` prints: the adapter's ranks, what it keeps and how big it is; or JSON.
extension ExportLoRACommand {
    /// What the export kept (ranks and energy), saved whole or skipped, the GGUF adapter's scale,
    /// the size against the AV's, the KL of the adapter's mix to the exact mix, and the least kept.
    static func text(
        _ r: LoRAExportReport, input: String, gguf: GGUFAdapterExport.Summary?, kl: KLResult?
    ) -> String {
        var lines = ["av export-lora: \(input) → \(r.output)"]
        let lora = r.tensors.filter { $0.kind == .lora }
        let ranks = lora.map(\.rank)
        lines.append(
            "  lora      \(lora.count) matrices, rank \(ranks.min() ?? 0)–\(ranks.max() ?? 0), keeping "
                + String(cFormat: "%.1f%%", 100 * r.retainedEnergy) + " of ‖Δ‖²")
        let saved = r.tensors.filter { $0.kind == .saved }.map(\.name)
        let skipped = r.tensors.filter { $0.kind == .skipped }.map(\.name)
        if !saved.isEmpty {
            lines.append("  saved     \(saved.count) whole (modules_to_save): \(listing(saved))")
        }
        if !skipped.isEmpty { lines.append("  skipped   \(skipped.count): \(listing(skipped))") }
        if let gguf {
            lines.append(
                "  gguf      llama.cpp LoRA adapter of \(gguf.modules) modules, adapter.lora.alpha "
                    + "\(String(trimming: gguf.alpha))\(gguf.alpha == 0 ? " (scales folded into lora_b)" : ""):"
                    + " llama-cli --lora-scaled \(r.output):λ applies λ·AV")
        }
        let share = r.vectorBytes > 0 ? 100 * Double(r.adapterBytes) / Double(r.vectorBytes) : 0
        lines.append(
            "  size      \(Format.bytes(r.adapterBytes)) against the AV's \(Format.bytes(r.vectorBytes)) ("
                + String(cFormat: "%.1f%%", share) + "), in " + String(cFormat: "%.2f", r.seconds) + " s")
        if let kl {
            lines.append(
                "  kl        "
                    + String(cFormat: "mean %.6f, max %.6f nats over %ld prompts", kl.mean, kl.max, kl.prompts)
                    + " (KL(base + AV ‖ base + adapter))")
        }
        let rows = lora.sorted(by: { $0.retainedEnergy < $1.retainedEnergy }).prefix(8).map { t in
            [t.name, Shape.describe(t.shape), "\(t.rank)", String(cFormat: "%.1f%%", 100 * t.retainedEnergy)]
        }
        lines.append("\nleast kept:")
        let table = Format.table(["tensor", "shape", "rank", "energy kept"], rows, rightAligned: [2, 3])
        lines.append(table.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        return lines.joined(separator: "\n")
    }

    /// Names for a report line: all of a few, else the first three and how many more (`--json` lists all).
    static func listing(_ names: [String]) -> String {
        names.count <= 4
            ? names.joined(separator: ", ")
            : names.prefix(3).joined(separator: ", ") + " and \(names.count - 3) more (--json lists them)"
    }

    /// The report as JSON: every tensor's kind, rank and kept energy, and the KL when measured.
    static func json(_ r: LoRAExportReport, kl: KLResult?) -> JSONValue {
        let measured: [(key: String, value: JSONValue)] =
            kl.map {
                [
                    (
                        "kl",
                        .object([("mean", .double($0.mean)), ("max", .double($0.max)), ("prompts", .int($0.prompts))])
                    )
                ]
            }
            ?? []
        return .object(
            [
                ("output", .string(r.output)), ("adapterBytes", .int(r.adapterBytes)),
                ("vectorBytes", .int(r.vectorBytes)),
                ("retainedEnergy", .double(r.retainedEnergy)), ("seconds", .double(r.seconds)),
                (
                    "tensors",
                    .array(
                        r.tensors.map {
                            .object([
                                ("name", .string($0.name)), ("kind", .string($0.kind.rawValue)),
                                ("rank", .int($0.rank)),
                                ("retainedEnergy", .double($0.retainedEnergy)),
                            ])
                        })
                ),
            ] + measured)
    }
}

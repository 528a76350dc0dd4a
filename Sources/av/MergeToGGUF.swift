import AlignmentVectors
import GGUF
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// `av merge ... -o OUT.gguf`: the merge is written as a model directory in a temporary beside the
/// output (so it is on the same disk, and removed at exit, on signals and crashes), then that directory
/// is written as GGUF (``GGUFExport``) and removed. The merge rules (refusals, content checks,
/// provenance) are the directory merge's; the provenance travels in the GGUF as the key `av.merge`.
enum MergeToGGUF {
    /// The GGUF type of the output's matrices (`--dtype`, default bf16) and the dtype of the temporary
    /// merge: f32 for f32 and the quantized types (so λΔ is rounded once, by the quantizer), else the
    /// GGUF type itself.
    static func types(_ spelling: String?) throws -> (GGMLType, DType) {
        let text = (spelling ?? "bf16").lowercased()
        guard let type = GGUFExport.outputTypes[text] else {
            throw UsageError(message: "--dtype for a .gguf output must be f32, f16, bf16, q8_0 or q4_0, not '\(text)'")
        }
        switch type {
        case .f16: return (type, .f16)
        case .bf16: return (type, .bf16)
        default: return (type, .f32)
        }
    }

    /// Merges and writes the GGUF; for a quantized type also measures how much of the change survived
    /// the quantizer (``GGUFRetention``).
    static func run(_ p: MergeArguments, type: GGMLType, progress: @escaping (Int, Int) -> Void) throws
        -> (MergeReport, GGUFRetention?)
    {
        guard p.base.isDirectory else {
            throw UsageError(
                message: "a .gguf output needs a model directory (or .gguf) base, with its config.json and tokenizer")
        }
        let inputs = p.base.inputFiles + [p.base.path] + p.terms.map(\.vector.path) + p.options.protectedPaths
        try OutputGuard.checkFile(p.output, inputs: inputs)
        let parent = Path.parent(p.output)
        let staging = Path.join(
            parent.isEmpty ? "." : parent,
            ".\(Path.lastComponent(p.output)).merge-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        TemporaryFiles.register(staging, directory: true)
        defer {
            try? FileManager.default.removeItem(atPath: staging)
            TemporaryFiles.unregister(staging)
        }
        var options = p.options
        options.maxShardSize = nil
        var report = try merge(base: p.base, terms: p.terms, output: staging, options: options, progress: progress)
        let start = Date()
        let summary = try GGUFExport.write(
            directory: staging, to: p.output, type: type, protecting: inputs, carrying: ["av.merge"],
            name: String(Path.lastComponent(p.output).dropLast(".gguf".count)))
        report.output = p.output
        report.outputFiles = [p.output]
        report.bytesWritten = summary.bytes
        report.seconds += Date().timeIntervalSince(start)
        let quantized = type == .q8_0 || type == .q4_0
        let retention =
            quantized ? try GGUFRetention.measure(gguf: p.output, merged: staging, base: p.base.path) : nil
        return (report, retention)
    }
}

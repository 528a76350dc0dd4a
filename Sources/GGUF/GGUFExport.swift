import SafeTensors
import Tensors

/// Writes a Hugging Face model directory (Llama, Mistral, SmolLM, Qwen2) as one GGUF file that
/// llama.cpp loads, as llama.cpp's `convert_hf_to_gguf.py` writes it: llama.cpp's tensor names and the
/// Q/K row permutation for the llama architecture, the hyper-parameters, the tokenizer
/// (``GGUFTokenizerMetadata``) and the chat template.
///
/// Norms, biases and other 1-D tensors are written as F32; matrices as the chosen type, except that a
/// quantized type falls back to F16 for a matrix whose rows are not whole blocks (as the converter
/// does). Tensors stream in pieces of rows, so memory stays at a few MiB beyond the mapped inputs; the
/// file is written atomically (``GGUFWriter``).
public enum GGUFExport {
    /// What was written.
    public struct Summary: Sendable {
        /// llama.cpp's architecture name (`llama` or `qwen2`).
        public var architecture: String
        /// How many tensors of each type.
        public var typeCounts: [GGMLType: Int]
        /// Bytes of the file.
        public var bytes: Int
    }

    /// The types a model can be written as: `f32`, `f16`, `bf16`, `q8_0` and `q4_0`.
    public static let outputTypes: [String: GGMLType] = [
        "f32": .f32, "f16": .f16, "bf16": .bf16, "q8_0": .q8_0, "q4_0": .q4_0,
    ]

    /// llama.cpp's `general.file_type` for a model whose matrices are `type` (`LlamaFileType`).
    static func fileType(_ type: GGMLType) -> UInt32 {
        switch type {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        case .q8_0: 7
        case .bf16: 32
        default: 0
        }
    }

    static let blockNames: [String: String] = Dictionary(
        uniqueKeysWithValues: GGUFConverter.blockNames.map { ($0.value, $0.key) })

    /// llama.cpp's name for a Hugging Face tensor, or nil for one llama.cpp does not keep
    /// (`rotary_emb.inv_freq`).
    public static func ggufName(_ name: String) -> String? {
        switch name {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let prefix = "model.layers."
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]), layer >= 0 else { return nil }
        let inner = rest[rest.index(after: dot)...]
        guard let last = inner.lastIndex(of: ".") else { return nil }
        let module = String(inner[..<last])
        let suffix = inner[inner.index(after: last)...]
        guard suffix == "weight" || suffix == "bias", let mapped = blockNames[module] else { return nil }
        return "blk.\(layer).\(mapped).\(suffix)"
    }

    /// Writes the model in `directory` to `path` with its matrices as `type`.
    /// - Throws: `GGUFError` naming the file and the key or tensor: an architecture or tokenizer av does
    ///   not write, a tensor llama.cpp has no name for, a non-finite value in a quantized tensor, an output
    ///   that is an input.
    @discardableResult
    /// - Parameters:
    ///   - protecting: inputs besides `directory` that the output must not be.
    ///   - carrying: keys of the safetensors `__metadata__` copied into the GGUF as string values
    ///     (provenance such as `av.merge`).
    ///   - name: `general.name` (default: the directory's name).
    public static func write(
        directory: String, to path: String, type: GGMLType, protecting: [String] = [], carrying: [String] = [],
        name: String? = nil
    ) throws(GGUFError) -> Summary {
        precondition(Quantize.supports(type), "av does not write \(type.name)")
        let configPath = Path.join(directory, "config.json")
        let config = try GGUFTokenizerMetadata.readJSON(configPath)
        let hp = try HyperParameters(config, file: configPath)
        let model: SafeTensorsModel
        do { model = try SafeTensorsModel(path: directory) } catch {
            throw GGUFError(file: directory, message: "\(error)")
        }
        var metadata = hp.metadata(name: name ?? Path.lastComponent(directory), fileType: fileType(type))
        for key in carrying { if let v = model.metadata?[key] { metadata.append((key, .string(v))) } }
        metadata += try GGUFTokenizerMetadata.entries(
            directory: directory, config: config, vocabSize: hp.vocabSize, architecture: hp.architecture)
        // The converter's order: the directory's tensors sorted by name.
        var specs: [GGUFTensorSpec] = []
        var sources: [String] = []
        // Llama 3.1's RoPE scaling travels as a tensor, first, as the converter writes it.
        if let factors = hp.ropeFactors {
            specs.append(GGUFTensorSpec(name: "rope_freqs.weight", dims: [factors.count], type: .f32))
            sources.append("")
        }
        for name in model.tensorNames.sorted() {
            if name.hasSuffix("rotary_emb.inv_freq") { continue }
            let info = model.info(name)!
            guard let gguf = ggufName(name) else {
                throw GGUFError(
                    file: directory,
                    message: "tensor \(JSONWriter.quoted(name)) has no llama.cpp name for \(hp.architecture)")
            }
            guard Convert.supports(info.dtype), (1...2).contains(info.shape.count) else {
                throw GGUFError(
                    file: directory,
                    message: "tensor \(JSONWriter.quoted(name)): \(info.dtype.rawValue) \(info.shape) is not a float"
                        + " vector or matrix")
            }
            var t = type
            if info.shape.count == 1 || gguf.hasSuffix("_norm.weight") || !gguf.hasSuffix(".weight") { t = .f32 }
            if t.block.elements > 1, info.shape.last! % t.block.elements != 0 { t = .f16 }
            specs.append(GGUFTensorSpec(name: gguf, dims: info.shape.reversed(), type: t))
            sources.append(name)
        }
        let writer = try GGUFWriter(
            path: path, metadata: metadata, tensors: specs, protecting: [directory] + protecting)
        var counts: [GGMLType: Int] = [:]
        do {
            for (spec, name) in zip(specs, sources) {
                if name.isEmpty, let factors = hp.ropeFactors {
                    try writer.write(factors.withUnsafeBytes { Array($0) })
                    counts[spec.type, default: 0] += 1
                    continue
                }
                try stream(model: model, name: name, spec: spec, hp: hp, into: writer)
                counts[spec.type, default: 0] += 1
            }
            try writer.finish()
        } catch {
            writer.abort()
            throw error
        }
        let size = Path.fileSize(path) ?? 0
        return Summary(architecture: hp.architecture, typeCounts: counts, bytes: size)
    }

    /// One tensor, in pieces of whole rows: decoded to f32 (Q and K rows permuted for llama), encoded.
    static func stream(
        model: SafeTensorsModel, name: String, spec: GGUFTensorSpec, hp: HyperParameters, into writer: GGUFWriter
    ) throws(GGUFError) {
        let info = model.info(name)!
        let bytes: UnsafeRawBufferPointer
        do { bytes = try model.bytes(named: name) } catch { throw GGUFError(file: model.path, message: "\(error)") }
        let size = info.dtype.byteSize ?? 4
        var heads = 0
        if hp.architecture == "llama" {
            if name.hasSuffix("self_attn.q_proj.weight") || name.hasSuffix("self_attn.q_proj.bias") {
                heads = hp.heads
            } else if name.hasSuffix("self_attn.k_proj.weight") || name.hasSuffix("self_attn.k_proj.bias") {
                heads = hp.kvHeads
            }
        }
        // Rows: a matrix's; a permuted bias is rows of one element; any other vector is one row.
        let rowLength = info.shape.count == 2 ? info.shape[1] : (heads > 0 ? 1 : info.shape[0])
        let rowCount = info.elementCount / rowLength
        let outRow = rowLength / spec.type.block.elements * spec.type.block.bytes
        let perPiece = max(1, (4 << 20) / max(rowLength, 1))
        var values = [Float](repeating: 0, count: min(rowCount, perPiece) * rowLength)
        var out = [UInt8](repeating: 0, count: min(rowCount, perPiece) * outRow)
        let headRows = heads > 0 ? rowCount / heads : 0
        // A piece's rows are decoded and encoded in parts on every thread (each row on its own: the
        // bytes do not depend on the threads).
        let threads = Parallel.defaultThreads
        var row = 0
        while row < rowCount {
            let n = min(perPiece, rowCount - row)
            let parts = min(n, threads * 4)
            values.withUnsafeMutableBufferPointer { v in
                let values = UncheckedSendable(v.baseAddress!)
                Parallel.forEach(parts, threads: threads) { _, part in
                    for r in (part * n / parts)..<((part + 1) * n / parts) {
                        var src = row + r
                        if heads > 0 { src = hfRow(src, headRows: headRows) }
                        Convert.toFloat(
                            info.dtype, from: bytes.baseAddress! + src * rowLength * size, count: rowLength,
                            into: values.value + r * rowLength)
                    }
                }
            }
            if spec.type == .q8_0 || spec.type == .q4_0,
                let bad = values[0..<(n * rowLength)].firstIndex(where: { !$0.isFinite })
            {
                throw GGUFError(
                    file: model.path,
                    message: "tensor \(JSONWriter.quoted(name)): element \(row * rowLength + bad) is \(values[bad]);"
                        + " \(spec.type.name) cannot hold it")
            }
            values.withUnsafeBufferPointer { v in
                out.withUnsafeMutableBytes { o in
                    let (input, output) = (UncheckedSendable(v.baseAddress!), UncheckedSendable(o.baseAddress!))
                    Parallel.forEach(parts, threads: threads) { _, part in
                        let (lo, hi) = (part * n / parts, (part + 1) * n / parts)
                        Quantize.run(
                            spec.type, input.value + lo * rowLength, count: (hi - lo) * rowLength,
                            into: output.value + lo * outRow)
                    }
                }
            }
            let result: Result<Void, GGUFError> = out.withUnsafeBytes { o in
                do throws(GGUFError) {
                    return .success(try writer.write(UnsafeRawBufferPointer(rebasing: o[0..<(n * outRow)])))
                } catch { return .failure(error) }
            }
            try result.get()
            row += n
        }
        // The tensor's pages of the input are not needed again: keep resident memory to one tensor.
        if let file = model.file(holding: name), let entry = file.info(name) {
            let start = file.fileOffset(of: entry)
            file.mapping.release(start..<(start + entry.byteCount))
        }
    }

    /// The Hugging Face row that llama.cpp's Q/K permutation puts at GGUF row `r`: within each head of
    /// `headRows` rows, GGUF row 2i + j is Hugging Face row j·headRows/2 + i.
    static func hfRow(_ r: Int, headRows: Int) -> Int {
        let within = r % headRows
        return r - within + (within % 2) * (headRows / 2) + within / 2
    }

    /// `rows × cols` values with their rows in llama.cpp's Q/K order for `heads` heads.
    static func permuteRows(_ w: [Float], rows: Int, cols: Int, heads: Int) -> [Float] {
        var out = [Float](repeating: 0, count: w.count)
        let headRows = rows / heads
        for r in 0..<rows {
            let src = hfRow(r, headRows: headRows)
            for c in 0..<cols { out[r * cols + c] = w[src * cols + c] }
        }
        return out
    }
}

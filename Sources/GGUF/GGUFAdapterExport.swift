import SafeTensors
import Tensors

/// Writes a PEFT LoRA adapter (`adapter_config.json`, `adapter_model.safetensors`) as a llama.cpp LoRA
/// adapter, as llama.cpp's `convert_lora_to_gguf.py` does: `general.type = adapter`,
/// `adapter.type = lora`, `adapter.lora.alpha`, and per module `blk.N.NAME.weight.lora_a` (PEFT's
/// `lora_A`, dimensions `[in, r]`) and `.lora_b` (`lora_B`, `[r, out]`, its rows in llama.cpp's Q/K order
/// for the llama architecture).
///
/// llama.cpp scales every module by `alpha / r` with one alpha for the file (or by 1 when alpha is 0).
/// When one alpha gives every module its PEFT scale (`lora_alpha / r`, with `alpha_pattern` and
/// `rank_pattern`), that alpha is written, as the converter does; otherwise (modules of different ranks
/// at one scale, as `av export-lora --energy` writes them) each module's scale is folded into its
/// `lora_b` and alpha is 0, so llama.cpp applies `B·A` exactly, times the scale the user asks for.
public enum GGUFAdapterExport {
    /// What was written.
    public struct Summary: Sendable {
        /// The modules written.
        public var modules: Int
        /// The alpha written (0: scales folded into `lora_b`).
        public var alpha: Double
        /// Bytes of the file.
        public var bytes: Int
    }

    /// Writes the adapter in `adapter` for the model whose `config.json` is in `baseDirectory`.
    /// - Throws: `GGUFError` naming the file and tensor: a tensor that is not a LoRA factor of a module
    ///   llama.cpp names (embeddings, saved modules, DoRA magnitudes), factors whose shapes disagree.
    @discardableResult
    /// `name` is `general.name` (default: the adapter directory's name).
    public static func write(
        adapter: String, baseDirectory: String, to path: String, type: GGMLType = .f32, name: String? = nil
    ) throws(GGUFError) -> Summary {
        let configPath = Path.join(baseDirectory, "config.json")
        let hp = try GGUFExport.HyperParameters(GGUFTokenizerMetadata.readJSON(configPath), file: configPath)
        let adapterConfigPath = Path.join(adapter, "adapter_config.json")
        let adapterConfig = try GGUFTokenizerMetadata.readJSON(adapterConfigPath)
        let weightsPath = Path.join(adapter, "adapter_model.safetensors")
        let weights: SafeTensorsFile
        do { weights = try SafeTensorsFile(path: weightsPath) } catch {
            throw GGUFError(file: weightsPath, message: "\(error)", isMissingFile: error.exitsAsIO)
        }
        func fail(_ m: String) -> GGUFError { GGUFError(file: weightsPath, message: m) }
        // Modules: PEFT name (without the lora_A/B part) → (A, B).
        var pairs: [String: (a: TensorInfo?, b: TensorInfo?)] = [:]
        for t in weights.tensors {
            var name = t.name
            if name.hasPrefix("base_model.model.") { name.removeFirst("base_model.model.".count) }
            let isA = name.hasSuffix(".lora_A.weight")
            guard isA || name.hasSuffix(".lora_B.weight") else {
                throw fail(
                    "tensor \(JSONWriter.quoted(t.name)) is not a LoRA factor: a llama.cpp adapter holds lora_A and"
                        + " lora_B of linear modules only (export with --skip to leave saved modules out)")
            }
            let module = String(name.dropLast(".lora_A.weight".count))
            guard GGUFExport.ggufName(module + ".weight") != nil, t.shape.count == 2, Convert.supports(t.dtype) else {
                throw fail("tensor \(JSONWriter.quoted(t.name)): llama.cpp has no module for it")
            }
            if isA { pairs[module, default: (nil, nil)].a = t } else { pairs[module, default: (nil, nil)].b = t }
        }
        var scales: [String: Double] = [:]
        var ranks: [String: Int] = [:]
        for (module, pair) in pairs {
            guard let a = pair.a, let b = pair.b, a.shape[0] == b.shape[1] else {
                throw fail("module \(JSONWriter.quoted(module)): lora_A and lora_B missing or of different ranks")
            }
            ranks[module] = a.shape[0]
            scales[module] = try peftScale(adapterConfig, module: module, rank: a.shape[0], file: adapterConfigPath)
        }
        // One alpha for all when alpha / r is every module's scale; else scales go into lora_b.
        let first = pairs.keys.sorted().first
        let alpha = first.map { scales[$0]! * Double(ranks[$0]!) } ?? 0
        let uniform = pairs.keys.allSatisfy { abs(alpha / Double(ranks[$0]!) - scales[$0]!) <= 1e-12 * scales[$0]! }
        var specs: [GGUFTensorSpec] = []
        var sources: [(TensorInfo, scale: Double, heads: Int)] = []
        for module in pairs.keys.sorted() {
            let (a, b) = (pairs[module]!.a!, pairs[module]!.b!)
            let g = GGUFExport.ggufName(module + ".weight")!
            specs.append(GGUFTensorSpec(name: g + ".lora_a", dims: a.shape.reversed(), type: type))
            specs.append(GGUFTensorSpec(name: g + ".lora_b", dims: b.shape.reversed(), type: type))
            var heads = 0
            if hp.architecture == "llama" {
                if module.hasSuffix("self_attn.q_proj") { heads = hp.heads }
                if module.hasSuffix("self_attn.k_proj") { heads = hp.kvHeads }
            }
            sources.append((a, 1, 0))
            sources.append((b, uniform ? 1 : scales[module]!, heads))
        }
        for s in specs where s.dims[0] % s.type.block.elements != 0 {
            throw fail("tensor \(s.name): rows of \(s.dims[0]) are not whole \(s.type.name) blocks")
        }
        let metadata: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string(hp.architecture)), ("general.type", .string("adapter")),
            ("adapter.type", .string("lora")), ("general.name", .string(name ?? Path.lastComponent(adapter))),
            ("adapter.lora.alpha", .float32(Float(uniform ? alpha : 0))), ("general.quantization_version", .uint32(2)),
        ]
        let writer = try GGUFWriter(
            path: path, metadata: metadata, tensors: specs, protecting: [adapter, baseDirectory])
        do {
            for (spec, (info, scale, heads)) in zip(specs, sources) {
                let rows = info.shape[0]
                let cols = info.shape[1]
                var values = [Float](repeating: 0, count: info.elementCount)
                let bytes = weights.bytes(of: info)
                Convert.toFloat(info.dtype, from: bytes.baseAddress!, count: values.count, into: &values)
                if heads > 0 {
                    values = GGUFExport.permuteRows(values, rows: rows, cols: cols, heads: heads)
                }
                if scale != 1 { for i in values.indices { values[i] = Float(Double(values[i]) * scale) } }
                var out = [UInt8](repeating: 0, count: spec.byteCount)
                out.withUnsafeMutableBytes {
                    Quantize.run(spec.type, values, count: values.count, into: $0.baseAddress!)
                }
                try writer.write(out)
            }
            try writer.finish()
        } catch {
            writer.abort()
            throw error
        }
        return Summary(modules: pairs.count, alpha: uniform ? alpha : 0, bytes: Path.fileSize(path) ?? 0)
    }

    /// PEFT's scale of `module`: its `alpha_pattern` alpha (else `lora_alpha`) over its rank.
    static func peftScale(_ config: JSONValue, module: String, rank: Int, file: String) throws(GGUFError) -> Double {
        var alpha = config["lora_alpha"]?.doubleValue ?? 8
        if case .object(let patterns)? = config["alpha_pattern"] {
            // PEFT matches a pattern against the end of the module's name; av writes escaped full names.
            for (pattern, value) in patterns {
                let plain = pattern.replacing("\\.", with: ".")
                if module == plain || module.hasSuffix("." + plain), let v = value.doubleValue { alpha = v }
            }
        }
        if config["use_rslora"] == .bool(true) { return alpha / Double(rank).squareRoot() }
        guard alpha.isFinite else { throw GGUFError(file: file, message: "lora_alpha must be a finite number") }
        return alpha / Double(rank)
    }
}

extension GGUFWriter {
    /// Appends the bytes of an array as the next piece of the current tensor.
    func write(_ bytes: [UInt8]) throws(GGUFError) {
        let result: Result<Void, GGUFError> = bytes.withUnsafeBytes { raw in
            do throws(GGUFError) { return .success(try write(raw)) } catch { return .failure(error) }
        }
        try result.get()
    }
}

import Dispatch
import SafeTensors
import Tensors

/// How `exportLoRA` picks ranks and what it does with tensors a LoRA cannot carry.
public struct LoRAExportOptions: Sendable {
    /// A fixed rank per matrix, or nil to pick it by `energy`.
    public var rank: Int?
    /// The share of ‖Δ‖²_F each matrix keeps: its rank is the smallest that keeps at least this much.
    public var energy: Double = 0.9
    /// No matrix gets a higher rank than this.
    public var maxRank = 256
    /// Leave out 1-D tensors (norms, biases) and embeddings instead of saving them whole.
    public var skip = false
    /// The base the AV was made from: needed to save tensors whole (`modules_to_save` holds weights,
    /// not deltas).
    public var base: Checkpoint?
    /// Use a `base` whose structure or content differs from the one the AV records.
    public var force = false
    /// Worker threads.
    public var threads = Parallel.defaultThreads
    /// Seed of the randomized SVD.
    public var seed: UInt64 = 0x5EED
    /// Defaults: 90% of each matrix's energy, ranks up to 256, 1-D tensors saved whole, all cores.
    public init() {}
}

/// What happened to one tensor of the AV.
public struct ExportedTensor: Sendable {
    /// What became of a tensor: a LoRA pair, saved whole (`modules_to_save`), or left out.
    public enum Kind: String, Sendable { case lora, saved, skipped }
    /// The tensor's name in the model.
    public var name: String
    /// The tensor's shape.
    public var shape: [Int]
    /// What became of it.
    public var kind: Kind
    /// The rank of its LoRA pair (0 unless `lora`).
    public var rank = 0
    /// The share of ‖Δ‖²_F the LoRA pair keeps (1 for a tensor saved whole, 0 for one skipped).
    public var retainedEnergy = 0.0
    /// ‖Δ‖²_F of the tensor.
    public var energy = 0.0
}

/// The result of `exportLoRA`.
public struct LoRAExportReport: Sendable {
    /// The adapter directory written.
    public var output: String
    /// Every tensor of the AV, in its order.
    public var tensors: [ExportedTensor]
    /// Bytes of `adapter_model.safetensors`.
    public var adapterBytes: Int
    /// Bytes of the AV's tensors.
    public var vectorBytes: Int
    /// Wall-clock seconds the export took.
    public var seconds: Double
    /// The share of the whole AV's ‖Δ‖²_F the adapter keeps.
    public var retainedEnergy: Double { energyWeighted(tensors, energy: \.energy, value: \.retainedEnergy, empty: 1) }
}

/// Writes a PEFT LoRA adapter directory that approximates `vector`: per 2-D tensor a truncated SVD
/// Δ ≈ U·S·Vᵀ, stored as `lora_A = √S·Vᵀ` and `lora_B = U·√S` (as mergekit's extract-lora does),
/// with `r = lora_alpha` per module (so PEFT's scale is 1) in `rank_pattern` / `alpha_pattern`.
/// Embeddings and 1-D tensors are saved whole (`modules_to_save`, base + Δ; needs `options.base`)
/// or, with `options.skip`, left out. The directory appears whole or not at all.
public func exportLoRA(vector: AlignmentVector, output: String, options: LoRAExportOptions) throws(AVError)
    -> LoRAExportReport
{
    let start = DispatchTime.now().uptimeNanoseconds
    if let r = options.rank, r < 1 { throw .usage("--rank must be at least 1") }
    guard options.energy > 0, options.energy <= 1 else { throw .usage("--energy must be in (0, 1]") }
    guard options.maxRank >= 1 else { throw .usage("--max-rank must be at least 1") }
    // Saved tensors are base + Δ: the base must be the one the vector was made from.
    if let base = options.base, !options.force {
        let term = MergeTerm(vector: vector, coefficient: 1)
        let structure = try checkCompatible(base: base, terms: [term], force: false)
        let content = XXHash64.hex(base.contentFingerprint(threads: options.threads))
        _ = try verifyBase(base, of: vector, structure: structure, content: content)
    }
    var exported: [ExportedTensor] = []
    var tensors: [(spec: TensorSpec, bytes: [UInt8])] = []
    var rankPattern: [(String, JSONValue)] = []
    var targets: [String] = []
    var saved: [String] = []
    let prefix = "base_model.model."
    func floatBytes(_ values: [Double]) -> [UInt8] {
        values.map { Float($0) }.withUnsafeBytes { Array($0) }
    }
    for info in vector.deltas {
        let delta = try vector.deltaValues(info)
        let energy = delta.reduce(0) { $0 + $1 * $1 }
        let name = info.name
        let isEmbedding = info.shape.count == 2 && (name.contains("embed_tokens") || name.hasSuffix("wte.weight"))
        guard info.shape.count == 2, !isEmbedding, name.hasSuffix(".weight") else {
            if options.skip {
                exported.append(ExportedTensor(name: name, shape: info.shape, kind: .skipped, energy: energy))
                continue
            }
            guard let base = options.base else {
                throw .usage(
                    "\(name) (\(Shape.describe(info.shape))) cannot be a LoRA pair:"
                        + " pass --base (to save it whole) or --skip"
                )
            }
            guard let b = base.info(name), b.shape == info.shape, let view = base.view(name) else {
                throw .vectorTensorNotInBase(av: vector.path, tensor: name)
            }
            let w = ElementOps.widen(b.dtype, view.bytes, count: b.elementCount)
            let merged = zip(w, delta).map { $0 + $1 }
            tensors.append((TensorSpec(name: prefix + name, dtype: .f32, shape: info.shape), floatBytes(merged)))
            let module =
                name.hasSuffix(".weight") || name.hasSuffix(".bias") ? String(name[..<name.lastIndex(of: ".")!]) : name
            if !saved.contains(module) { saved.append(module) }
            exported.append(
                ExportedTensor(name: name, shape: info.shape, kind: .saved, retainedEnergy: 1, energy: energy))
            continue
        }
        let (m, n) = (info.shape[0], info.shape[1])
        let cap = min(options.maxRank, m, n)
        // By energy, the rank is not known up front: start small and widen (×4) until the kept share
        // is reached or the cap is, so a matrix that needs rank 6 does not pay for rank 256.
        var asked = min(options.rank ?? 16, cap)
        var svd = LowRank.svd(delta, rows: m, cols: n, rank: asked, seed: options.seed, threads: options.threads)
        while options.rank == nil && asked < cap
            && svd.singularValues.prefix(asked).reduce(0, { $0 + $1 * $1 }) < options.energy * energy
        {
            asked = min(cap, asked * 4)
            svd = LowRank.svd(delta, rows: m, cols: n, rank: asked, seed: options.seed, threads: options.threads)
        }
        var rank = asked
        if options.rank == nil {
            var kept = 0.0
            rank = 0
            while rank < min(asked, svd.count) && kept < options.energy * energy {
                kept += svd.singularValues[rank] * svd.singularValues[rank]
                rank += 1
            }
            rank = max(rank, 1)
        }
        rank = min(rank, svd.count)
        var kept = 0.0
        for k in 0..<rank { kept += svd.singularValues[k] * svd.singularValues[k] }
        let l = svd.count
        var a = [Double](repeating: 0, count: rank * n)
        var bm = [Double](repeating: 0, count: m * rank)
        for k in 0..<rank {
            let s = svd.singularValues[k].squareRoot()
            for j in 0..<n { a[k * n + j] = s * svd.v[j * l + k] }
            for i in 0..<m { bm[i * rank + k] = s * svd.u[i * l + k] }
        }
        let module = String(name.dropLast(".weight".count))
        tensors.append(
            (TensorSpec(name: prefix + module + ".lora_A.weight", dtype: .f32, shape: [rank, n]), floatBytes(a)))
        tensors.append(
            (TensorSpec(name: prefix + module + ".lora_B.weight", dtype: .f32, shape: [m, rank]), floatBytes(bm)))
        targets.append(module)
        rankPattern.append((escapedModule(module), .int(rank)))
        exported.append(
            ExportedTensor(
                name: name, shape: info.shape, kind: .lora, rank: rank,
                retainedEnergy: energy > 0 ? min(1, kept / energy) : 1, energy: energy))
    }
    let maxRank = rankPattern.compactMap { $0.1.doubleValue }.max().map { Int($0) } ?? 1
    // A tied model's embedding is also its output layer: PEFT keeps a saved embedding tied only with
    // `ensure_weight_tying`, and then expects the output layer saved too (the same values).
    let tiedEmbedding =
        saved.contains("model.embed_tokens") && options.base.map { $0.info("lm_head.weight") == nil } == true
    if tiedEmbedding, let embedding = tensors.first(where: { $0.spec.name == prefix + "model.embed_tokens.weight" }) {
        tensors.append(
            (TensorSpec(name: prefix + "lm_head.weight", dtype: .f32, shape: embedding.spec.shape), embedding.bytes))
    }
    let config = JSONValue.object(
        [
            ("alpha_pattern", .object(rankPattern)),
            ("base_model_name_or_path", .null),
            ("bias", .string("none")),
        ]
            + (tiedEmbedding ? [("ensure_weight_tying", JSONValue.bool(true))] : [])
            + [
                ("fan_in_fan_out", .bool(false)),
                ("inference_mode", .bool(true)),
                ("lora_alpha", .int(maxRank)),
                ("lora_dropout", .double(0)),
                ("modules_to_save", saved.isEmpty ? .null : .array(saved.map { .string($0) })),
                ("peft_type", .string("LORA")),
                ("r", .int(maxRank)),
                ("rank_pattern", .object(rankPattern)),
                ("target_modules", .array(targets.map { .string($0) })),
                ("task_type", .string("CAUSAL_LM")),
                ("use_dora", .bool(false)),
                ("use_rslora", .bool(false)),
            ])
    guard !targets.isEmpty || !saved.isEmpty else {
        throw .usage("\(vector.path): nothing to export (every tensor was skipped)")
    }
    do throws(SafeTensorsError) {
        let writer = try ModelDirectoryWriter(
            path: output, tensors: tensors.map(\.spec), maxShardSize: Int.max, metadata: ["format": "pt"],
            protecting: [vector.path] + (options.base?.inputFiles ?? []), extraNames: ["adapter_config.json"],
            singleFileName: "adapter_model.safetensors")
        let byName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.spec.name, $0.bytes) })
        do throws(SafeTensorsError) {
            while let next = writer.nextTensor {
                try writer.write(byName[next.name]!)
            }
            try writer.finish(writing: ["adapter_config.json": config.rendered(pretty: true) + "\n"])
        } catch {
            writer.abort()
            throw error
        }
    } catch {
        throw .file(error)
    }
    return LoRAExportReport(
        output: output, tensors: exported,
        adapterBytes: Path.fileSize(Path.join(output, "adapter_model.safetensors")) ?? 0,
        vectorBytes: vector.file.fileSize,
        seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
}

/// A module name as a `rank_pattern` key that matches only that module (dots escaped).
func escapedModule(_ module: String) -> String { module.replacingAll(".", with: "\\.") }

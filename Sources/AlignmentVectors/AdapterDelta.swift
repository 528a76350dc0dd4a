import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One base tensor an adapter changes, checked against the base.
struct AdapterTarget {
    enum Kind {
        /// `X.weight` of a LoRA module: `P` (r × rows) and `Q` (r × cols) with ΔW[i][j] = s·Σₖ P[k][i]·Q[k][j].
        case weight(p: String, pTransposed: Bool, q: String, qTransposed: Bool, rank: Int, scale: Double)
        /// `X.bias` of a LoRA module with `lora_bias`: Δb = s·lora_B.bias.
        case bias(String, scale: Double)
        /// A tensor the adapter saves whole.
        case saved
    }

    var tensor: String
    var shape: [Int]
    var kind: Kind
    /// The adapter tensor that replaces the base's before LoRA applies (saved whole), if any.
    var replacement: String?
    /// DoRA's magnitude vector, one value per output row.
    var magnitude: String?
    /// DoRA without a magnitude in the file: the norms of the base's output rows, as PEFT initializes it.
    var magnitudeFromBase = false
    /// Whether rows of the stored tensor are the output features (false with `fan_in_fan_out`).
    var rowsAreOutputs = true
}

extension LoRAAdapter {
    /// The base tensors this adapter changes, in the base's order, each checked: it exists, its
    /// shape matches the adapter's tensors, and its rank is the one the config gives it.
    func targets(in base: Checkpoint) throws(AVError) -> [AdapterTarget] {
        func fail(_ message: String) -> AVError { .adapter(file: weightsPath, message: message) }
        func q(_ name: String) -> String { JSONWriter.quoted(name) }
        func dims(_ shape: [Int]) -> String { Shape.describe(shape) }
        func shape(_ name: String) -> [Int] { file.info(name)!.shape }
        var out: [String: AdapterTarget] = [:]
        for m in modules.values.sorted(by: { $0.name < $1.name }) {
            for (target, source) in m.saved.sorted(by: { $0.key < $1.key }) {
                if base.info(target) == nil, isTiedCopy(target, source, base: base) { continue }
                guard let b = base.info(target) else {
                    throw fail(
                        "tensor \(q(source)) replaces \(q(target)), which \(base.path) does not have"
                    )
                }
                guard b.shape == shape(source) else {
                    throw fail(
                        "tensor \(q(source)) has shape \(dims(shape(source)))"
                            + " but \(q(target)) in \(base.path) has \(dims(b.shape))"
                    )
                }
                out[target] = AdapterTarget(tensor: target, shape: b.shape, kind: .saved, replacement: source)
            }
            guard let a = m.loraA, let bName = m.loraB else {
                guard m.magnitude == nil, m.loraBBias == nil else {
                    throw fail("module \(q(m.name)) has DoRA or bias tensors but no lora_A/lora_B")
                }
                continue
            }
            let weight = m.name + ".weight"
            guard let w = base.info(weight) else {
                throw fail(
                    "LoRA module \(q(m.name)) changes \(q(weight)), which \(base.path) does not have"
                )
            }
            guard w.shape.count == 2 else {
                throw fail(
                    "LoRA on \(q(weight)) of shape \(dims(w.shape)) is not supported (2-D weights only; no conv layers)"
                )
            }
            let (rank, scale) = rankAndScale(of: m.name)
            let sa = shape(a)
            let sb = shape(bName)
            // Linear: A (r, in), B (out, r); embedding: A (r, vocab), B (dim, r).
            guard sa.count == 2, sb.count == 2, sa[0] == sb[1] else {
                throw fail(
                    "module \(q(m.name)): lora A \(dims(sa)) and B \(dims(sb)) do not multiply"
                )
            }
            guard sa[0] == rank else {
                throw fail(
                    "module \(q(m.name)) has rank \(sa[0]) in its tensors but \(rank) by the config (r, rank_pattern)"
                )
            }
            // PEFT decides by the module's class, not the config: Conv1D is transposed, nn.Linear is not.
            let transposed = m.embedding || (Self.isConv1D(m.name, base: base) ?? fanInFanOut)
            let expected = transposed ? [sa[1], sb[0]] : [sb[0], sa[1]]
            guard w.shape == expected else {
                throw fail(
                    "module \(q(m.name)): B·A\(transposed ? "ᵀ" : "") has shape \(dims(expected))"
                        + " but \(q(weight)) in \(base.path) has \(dims(w.shape))"
                )
            }
            if m.magnitude != nil {
                guard !m.embedding else {
                    throw fail("DoRA on the embedding \(q(m.name)) is not supported")
                }
                guard shape(m.magnitude!) == [sb[0]] else {
                    throw fail(
                        "module \(q(m.name)): the DoRA magnitude has shape \(dims(shape(m.magnitude!))), not [\(sb[0])]"
                    )
                }
            }
            // ΔW[i][j] = s·Σₖ P[k][i]·Q[k][j]: P = Bᵀ, Q = A; transposed, P = A, Q = Bᵀ.
            let kind: AdapterTarget.Kind =
                transposed
                ? .weight(p: a, pTransposed: false, q: bName, qTransposed: true, rank: rank, scale: scale)
                : .weight(p: bName, pTransposed: true, q: a, qTransposed: false, rank: rank, scale: scale)
            let fromBase = useDoRA && m.magnitude == nil && !m.embedding
            if fromBase && !zeroInitializedB {
                throw fail(
                    "module \(q(m.name)): DoRA without a magnitude vector, and init_lora_weights is not the default:"
                        + " PEFT would initialize the magnitude from a random B")
            }
            out[weight] = AdapterTarget(
                tensor: weight, shape: w.shape, kind: kind, replacement: out[weight]?.replacement,
                magnitude: m.magnitude, magnitudeFromBase: fromBase, rowsAreOutputs: !transposed)
            if let biasB = m.loraBBias {
                let bias = m.name + ".bias"
                guard loraBias else {
                    throw fail("tensor \(q(biasB)) is present but lora_bias is false")
                }
                guard let bi = base.info(bias) else {
                    throw fail(
                        "lora_bias on \(q(m.name)) needs \(q(bias)), which \(base.path) does not have"
                    )
                }
                guard bi.shape == shape(biasB) else {
                    throw fail(
                        "tensor \(q(biasB)) has shape \(dims(shape(biasB))) but \(q(bias)) has \(dims(bi.shape))"
                    )
                }
                out[bias] = AdapterTarget(
                    tensor: bias, shape: bi.shape, kind: .bias(biasB, scale: scale), replacement: out[bias]?.replacement
                )
            }
        }
        for t in out.values {
            guard let dtype = base.info(t.tensor)?.dtype, Convert.supports(dtype) else {
                throw fail("\(q(t.tensor)) in \(base.path) is not a float tensor")
            }
        }
        let order = Dictionary(uniqueKeysWithValues: base.tensors.enumerated().map { ($0.element.name, $0.offset) })
        return out.values.sorted { order[$0.tensor]! < order[$1.tensor]! }
    }

    /// Whether `source`, saved for `lm_head.weight` of a base that ties its output layer to the
    /// embedding (no `lm_head.weight`), is the same bytes as the saved embedding: what PEFT writes
    /// with `ensure_weight_tying`, and what merging the embedding already does to a tied model.
    func isTiedCopy(_ target: String, _ source: String, base: Checkpoint) -> Bool {
        guard target == "lm_head.weight", base.info("model.embed_tokens.weight") != nil,
            let embedding = modules["model.embed_tokens"]?.saved["model.embed_tokens.weight"],
            let a = file.info(source), let b = file.info(embedding), a.dtype == b.dtype, a.shape == b.shape
        else { return false }
        return file.bytes(of: a).elementsEqual(file.bytes(of: b))
    }

    /// A tensor of the adapter file (or of the base) as f64.
    func doubles(_ name: String, from store: SafeTensorsFile) -> [Double] {
        let info = store.info(name)!
        return ElementOps.widen(info.dtype, store.bytes(of: info), count: info.elementCount)
    }

    /// merged − base for one target, each value computed in f64 and rounded once to f32: exactly
    /// (B·A)·s rounded for plain LoRA; (saved + ΔW) − base for a replaced weight; for DoRA,
    /// (m / ‖W + ΔW‖_row)·(W + ΔW) − W with the norm over each output row's inputs.
    func delta(_ t: AdapterTarget, base: Checkpoint, threads: Int) -> [Float] {
        let count = t.shape.reduce(1, *)
        let info = base.info(t.tensor)!
        let w =
            t.replacement != nil || t.magnitude != nil || t.magnitudeFromBase
            ? ElementOps.widen(info.dtype, base.view(t.tensor)!.bytes, count: count) : []
        let w0 = t.replacement.map { doubles($0, from: file) } ?? w
        var merged = [Double](repeating: 0, count: count)  // (W0 + ΔW) − W before DoRA
        switch t.kind {
        case .saved:
            for i in 0..<count { merged[i] = w0[i] - w[i] }
            return merged.map(Float.init)
        case .bias(let name, let scale):
            let b = doubles(name, from: file)
            for i in 0..<count { merged[i] = (t.replacement == nil ? 0 : w0[i] - w[i]) + scale * b[i] }
            return merged.map(Float.init)
        case .weight(let pName, let pT, let qName, let qT, let rank, let scale):
            let rows = t.shape[0]
            let cols = t.shape[1]
            // ΔW = Pᵀ·Q·s, with Pᵀ (rows × r) and Q (r × cols) laid out from the stored factors.
            let p = doubles(pName, from: file)
            let q = doubles(qName, from: file)
            let left = pT ? p : LowRank.transpose(p, rows: rank, cols: rows)
            let right = qT ? LowRank.transpose(q, rows: cols, cols: rank) : q
            merged = LowRank.multiply(left, rows: rows, inner: rank, by: right, cols: cols, threads: threads)
            for i in merged.indices { merged[i] *= scale }
            if t.magnitude != nil || t.magnitudeFromBase {
                // DoRA: scale each output's weights to its magnitude.
                let m = t.magnitude.map { doubles($0, from: file) } ?? Self.rowNorms(w0, t)
                var full = merged
                for i in 0..<count { full[i] += w0[i] }
                let outputs = t.rowsAreOutputs ? rows : cols
                var norms = [Double](repeating: 0, count: outputs)
                for i in 0..<rows {
                    for j in 0..<cols {
                        let v = full[i * cols + j]
                        norms[t.rowsAreOutputs ? i : j] += v * v
                    }
                }
                for i in 0..<rows {
                    for j in 0..<cols {
                        let o = t.rowsAreOutputs ? i : j
                        merged[i * cols + j] = m[o] / norms[o].squareRoot() * full[i * cols + j] - w[i * cols + j]
                    }
                }
            } else if t.replacement != nil {
                for i in 0..<count { merged[i] += w0[i] - w[i] }
            }
            return merged.map(Float.init)
        }
    }

    /// The norm of each output's weights in `w` (rows, or columns when stored transposed).
    static func rowNorms(_ w: [Double], _ t: AdapterTarget) -> [Double] {
        let (rows, cols) = (t.shape[0], t.shape[1])
        var norms = [Double](repeating: 0, count: t.rowsAreOutputs ? rows : cols)
        for i in 0..<rows {
            for j in 0..<cols { norms[t.rowsAreOutputs ? i : j] += w[i * cols + j] * w[i * cols + j] }
        }
        return norms.map { $0.squareRoot() }
    }

    /// Whether the base module `name` is a Conv1D (stored transposed), by the base's `config.json`:
    /// GPT-2's and OpenAI GPT's attention and MLP projections. Nil when the base has no config.
    static func isConv1D(_ name: String, base: Checkpoint) -> Bool? {
        guard base.isDirectory,
            let data = FileManager.default.contents(atPath: Path.join(base.path, "config.json")),
            let config = try? JSONParser.parse(String(decoding: data, as: UTF8.self)),
            let type = config["model_type"]?.stringValue
        else { return nil }
        let conv1DModels: Set = ["gpt2", "openai-gpt", "decision_transformer"]
        let conv1DModules: Set = ["c_attn", "c_proj", "c_fc", "q_attn"]
        let last = name.split(separator: ".").last.map(String.init) ?? name
        return conv1DModels.contains(type) && conv1DModules.contains(last)
    }
}

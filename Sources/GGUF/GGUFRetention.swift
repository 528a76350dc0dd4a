import SafeTensors
import Tensors

/// How much of a mix's change a GGUF file still holds after its types rounded it.
public struct GGUFRetention: Sendable, Equatable {
    /// `Σ (w − b)·(m − b) / Σ (m − b)²` over every matrix: the written change's component along the
    /// intended change `m − b` (the mix in f32 minus the base), as a share of it. 1 keeps all of it;
    /// near 0 the type's rounding erased it.
    public var kept: Double
    /// `Σ (w − m)² / Σ (m − b)²`: the rounding's error energy against the change's energy.
    public var errorRatio: Double

    /// Compares the GGUF at `gguf` (written from `merged`) with `merged` and `base`, tensor by tensor,
    /// in f64. Elements the mix did not change add nothing to the sums.
    public static func measure(gguf: String, merged: String, base: String) throws(GGUFError) -> GGUFRetention {
        let file = try GGUFFile(path: gguf)
        let m: SafeTensorsModel
        let b: SafeTensorsModel
        do {
            m = try SafeTensorsModel(path: merged)
            b = try SafeTensorsModel(path: base)
        } catch {
            throw GGUFError(file: merged, message: "\(error)")
        }
        let heads = file.metadata["llama.attention.head_count"]?.intValue
        let kvHeads = file.metadata["llama.attention.head_count_kv"]?.intValue ?? heads
        var along = 0.0
        var change = 0.0
        var error = 0.0
        for name in m.tensorNames {
            guard let g = GGUFExport.ggufName(name), let t = file.info(g), let bi = b.info(name),
                let mi = m.info(name), bi.shape.count == 2, bi.elementCount == mi.elementCount
            else { continue }
            var w = try file.floats(t)
            if let heads, name.hasSuffix("q_proj.weight") || name.hasSuffix("k_proj.weight") {
                w = GGUFConverter.unpermute(
                    w, rows: bi.shape[0], cols: bi.shape[1],
                    heads: name.hasSuffix("q_proj.weight") ? heads : (kvHeads ?? heads))
            }
            var mv = [Float](repeating: 0, count: mi.elementCount)
            var bv = mv
            do {
                Convert.toFloat(mi.dtype, from: try m.bytes(named: name).baseAddress!, count: mv.count, into: &mv)
                Convert.toFloat(bi.dtype, from: try b.bytes(named: name).baseAddress!, count: bv.count, into: &bv)
            } catch {
                throw GGUFError(file: merged, message: "\(error)")
            }
            for i in 0..<mv.count {
                let d = Double(mv[i]) - Double(bv[i])
                guard d != 0 else { continue }
                along += (Double(w[i]) - Double(bv[i])) * d
                change += d * d
                error += (Double(w[i]) - Double(mv[i])) * (Double(w[i]) - Double(mv[i]))
            }
        }
        guard change > 0 else { return GGUFRetention(kept: 1, errorRatio: 0) }
        return GGUFRetention(kept: along / change, errorRatio: error / change)
    }
}

#if canImport(Glibc)
    import Glibc
#endif

/// The methods that weigh whole deltas rather than mask their entries: SCE, SLERP, NuSLERP, Model Stock.
extension MergeMethod {
    /// SCE (mergekit's `sce` with `select_topk` = density): keep the ⌊D·m⌋ elements of largest variance
    /// across the deltas (population variance; m counts the elements whose variance is not zero; ties to the
    /// lower index), elect each element's sign from the sum, weigh delta i by w_i = mean(Δ_i²) / Σ_j mean(Δ_j²)
    /// (1/k each when that sum is below 1e-6), and take Σ w_i·Δ_i over the agreeing deltas divided by
    /// max(Σ w_i over them, 1e-6).
    func sce(_ offsets: [[Double]]) -> [Double] {
        let k = offsets.count
        let n = offsets.first?.count ?? 0
        var tvs = offsets
        if density < 1 {
            var variance = [Double](repeating: 0, count: n)
            for e in 0..<n {
                var mean = 0.0
                for o in offsets { mean += o[e] }
                mean /= Double(k)
                var v = 0.0
                for o in offsets { v += (o[e] - mean) * (o[e] - mean) }
                variance[e] = v / Double(k)
            }
            let keep = Int(Double(variance.filter { $0 != 0 }.count) * density)
            let chosen = Set(DeltaEncoder.topIndices(variance.map { Double(Float($0)) }, k: keep))
            for i in tvs.indices { for e in 0..<n where !chosen.contains(e) { tvs[i][e] = 0 } }
        }
        var weights = tvs.map { $0.reduce(0) { $0 + $1 * $1 } / Double(max(n, 1)) }
        let total = weights.reduce(0, +)
        weights = abs(total) < 1e-6 ? Array(repeating: 1 / Double(k), count: k) : weights.map { $0 / total }
        var out = [Double](repeating: 0, count: n)
        for e in 0..<n {
            var vote = 0.0
            for t in tvs { vote += t[e] }
            let majority: Double = vote >= 0 ? 1 : -1
            var sum = 0.0
            var weight = 0.0
            for (i, t) in tvs.enumerated() where Self.sign(t[e]) == majority {
                sum += t[e] * weights[i]
                weight += weights[i]
            }
            out[e] = sum / max(weight, 1e-6)
        }
        return out
    }

    /// NuSLERP over the whole tensor (mergekit's `nuslerp` with a base and `nuslerp_flatten`): t = λ₂ / (λ₁ + λ₂)
    /// (0.5 when the sum is below 1e-6), θ the angle between the deltas; (sin((1 − t)θ)·Δ₁ + sin(tθ)·Δ₂) / sin θ,
    /// or (1 − t)·Δ₁ + t·Δ₂ when they are colinear (1 − cos²θ ≤ 1e-16).
    func nuslerp(_ a: [Double], _ b: [Double], weights: [Double]) -> [Double] {
        let total = weights[0] + weights[1]
        let t = abs(total) < 1e-6 ? 0.5 : weights[1] / total
        let na = max(a.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-7)
        let nb = max(b.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-7)
        var dot = 0.0
        for e in a.indices { dot += (a[e] / na) * (b[e] / nb) }
        let cos = min(1, max(-1, dot))
        if 1 - cos * cos <= 1e-16 { return zip(a, b).map { (1 - t) * $0 + t * $1 } }
        let theta = acos(cos)
        let (sa, sb, s) = (sin((1 - t) * theta), sin(t * theta), sin(theta))
        return zip(a, b).map { (sa * $0 + sb * $1) / s }
    }

    /// SLERP from the base W to W + Δ over the whole tensor (mergekit's `slerp`): with u = W/‖W‖ and
    /// v = (W + Δ)/‖W + Δ‖ (norms ≤ 1e-8 taken as 1), cos θ = u·v; when |cos θ| > 0.9995 the two are
    /// interpolated linearly (then the result is W + tΔ), else by sin((1 − t)θ)/sin θ and sin(tθ)/sin θ.
    /// Returns the result minus W.
    func slerp(base w: [Double], delta: [Double], t: Double) -> [Double] {
        let aligned = zip(w, delta).map { $0 + $1 }
        func norm(_ x: [Double]) -> Double {
            let n = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return n > 1e-8 ? n : 1
        }
        let (na, nb) = (norm(w), norm(aligned))
        var dot = 0.0
        for e in w.indices { dot += (w[e] / na) * (aligned[e] / nb) }
        let cos = min(1, max(-1, dot))
        guard abs(cos) <= 0.9995 else { return delta.map { t * $0 } }
        let theta = acos(cos)
        let (ca, cb) = (sin((1 - t) * theta) / sin(theta), sin(t * theta) / sin(theta))
        return w.indices.map { ca * w[$0] + cb * aligned[$0] - w[$0] }
    }

    /// Model Stock over the whole tensor (mergekit's `model_stock` without `filter_wise`): cos is the
    /// mean over pairs of Σ a·b / max(‖a‖·‖b‖, 1e-6), each clamped to [−1, 1]; t = k·cos / (1 + (k − 1)·cos),
    /// 0 where the denominator is below 1e-6 in magnitude; the result is t times the deltas' mean.
    func modelStock(_ offsets: [[Double]]) -> [Double] {
        let k = offsets.count
        let n = offsets.first?.count ?? 0
        guard k > 1 else { return offsets.first ?? [] }
        let norms = offsets.map { $0.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        var sum = 0.0
        var pairs = 0
        for a in 0..<k {
            for b in (a + 1)..<k {
                var dot = 0.0
                for e in 0..<n { dot += offsets[a][e] * offsets[b][e] }
                sum += min(1, max(-1, dot / max(norms[a] * norms[b], 1e-6)))
                pairs += 1
            }
        }
        let cos = sum / Double(pairs)
        let denominator = 1 + Double(k - 1) * cos
        let t = abs(denominator) < 1e-6 ? 0 : Double(k) * cos / denominator
        var out = [Double](repeating: 0, count: n)
        for e in 0..<n {
            var mean = 0.0
            for o in offsets { mean += o[e] }
            out[e] = t * mean / Double(k)
        }
        return out
    }
}

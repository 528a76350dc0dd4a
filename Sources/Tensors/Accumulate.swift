/// The f64 accumulation kernels of diff and merge: widen stored values, add scaled terms, narrow.
///
/// `base + Σ λ·Δ` is summed in f64 so that several domains with any coefficients land within one
/// rounding of the output dtype of the exact result, and so that λ = 1 with one vector computes
/// exactly `round(base + Δ)`. Each is one pass over a block that stays in L2; the loops are plain
/// so the compiler vectorizes them (no fused multiply-add: it is a libcall on baseline x86-64).
public enum Accumulate {
    /// `out[i] = Double(value i of dtype)`, through `scratch` (at least `count` floats) unless f64.
    public static func widen(
        _ dtype: DType, _ source: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Double>,
        scratch: UnsafeMutablePointer<Float>
    ) {
        if dtype == .f64 {
            UnsafeMutableRawPointer(out).copyMemory(from: source, byteCount: count * 8)
            return
        }
        Convert.toFloat(dtype, from: source, count: count, into: scratch)
        for i in 0..<count { out[i] = Double(scratch[i]) }
    }

    /// `acc[i] += λ · Double(value i of dtype)`.
    public static func addScaled(
        _ dtype: DType, _ source: UnsafeRawPointer, count: Int, scale: Double, into acc: UnsafeMutablePointer<Double>,
        scratch: UnsafeMutablePointer<Float>
    ) {
        if dtype == .f64 {
            for i in 0..<count { acc[i] += scale * source.loadUnaligned(fromByteOffset: i * 8, as: Double.self) }
            return
        }
        Convert.toFloat(dtype, from: source, count: count, into: scratch)
        if scale == 1 {
            for i in 0..<count { acc[i] += Double(scratch[i]) }
        } else {
            for i in 0..<count { acc[i] += scale * Double(scratch[i]) }
        }
    }

    /// Stores `acc` as `dtype`, rounded once to nearest-even: f64 as is, f32 directly, narrower
    /// dtypes through a round-to-odd f32 (`FloatBits.roundToOdd`), which is not a second rounding.
    public static func narrow(
        _ acc: UnsafePointer<Double>, count: Int, to dtype: DType, into out: UnsafeMutableRawPointer,
        scratch: UnsafeMutablePointer<Float>
    ) {
        if dtype == .f64 {
            out.copyMemory(from: acc, byteCount: count * 8)
            return
        }
        if dtype == .f32 {
            for i in 0..<count { scratch[i] = Float(acc[i]) }
        } else {
            for i in 0..<count { scratch[i] = FloatBits.roundToOdd(acc[i]) }
        }
        Convert.fromFloat(dtype, from: scratch, count: count, into: out)
    }
}

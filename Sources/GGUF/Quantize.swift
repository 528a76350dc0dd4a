import Tensors

/// f32 to ggml's storage types, operation for operation as ggml's reference quantizers
/// (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref` in ggml-quants.c, which `llama-quantize` runs, and
/// gguf-py's `gguf.quants.quantize`): the bytes equal theirs for the same f32 input.
public enum Quantize {
    /// Whether av writes `type`: F32, F16, BF16, Q8_0 and Q4_0.
    public static func supports(_ type: GGMLType) -> Bool {
        [.f32, .f16, .bf16, .q8_0, .q4_0].contains(type)
    }

    /// Encodes `count` values at `x` (a whole number of `type`'s blocks) as `type` at `out`
    /// (`count / block.elements * block.bytes` bytes).
    public static func run(_ type: GGMLType, _ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutableRawPointer) {
        let (be, bb) = type.block
        precondition(count % be == 0, "\(count) values are not whole \(type.name) blocks")
        switch type {
        case .f32: Convert.fromFloat(.f32, from: x, count: count, into: out)
        case .f16: Convert.fromFloat(.f16, from: x, count: count, into: out)
        case .bf16: Convert.fromFloat(.bf16, from: x, count: count, into: out)
        case .q8_0: for i in 0..<(count / be) { q8_0(x + i * be, out + i * bb) }
        case .q4_0: for i in 0..<(count / be) { q4_0(x + i * be, out + i * bb) }
        default: preconditionFailure("av does not write \(type.name)")
        }
    }

    /// One block of 32: `d = max|x| / 127` (f16), `q = round(x / d)` half away from zero, as i8.
    static func q8_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[j])) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        y.storeBytes(of: FloatBits.floatToF16(d).littleEndian, as: UInt16.self)
        for j in 0..<32 {
            y.storeBytes(of: Int8(truncatingIfNeeded: roundedAway(x[j] * id)), toByteOffset: 2 + j, as: Int8.self)
        }
    }

    /// `v` rounded half away from zero (|v| < 2³¹), as `v.rounded(.toNearestOrAwayFromZero)` gives it,
    /// without its library call per value: v ± ½ is exact in f64, and its truncation is the result.
    @inline(__always)
    static func roundedAway(_ v: Float) -> Int32 {
        let w = Double(v)
        return Int32(w + Double(signOf: w, magnitudeOf: 0.5))
    }

    /// One block of 32: `d = m / −8` for the value `m` of largest magnitude (the first one on a tie),
    /// nibbles `min(15, trunc(x / d + 8.5))`, element j in the low nibble of byte j and element j + 16
    /// in its high nibble.
    static func q4_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        var m: Float = 0
        for j in 0..<32 where amax < abs(x[j]) {
            amax = abs(x[j])
            m = x[j]
        }
        let d = m / -8
        let id: Float = d != 0 ? 1 / d : 0
        y.storeBytes(of: FloatBits.floatToF16(d).littleEndian, as: UInt16.self)
        for j in 0..<16 {
            let lo = min(15, Int8(truncatingIfNeeded: Int((x[j] * id + 8.5).rounded(.towardZero))))
            let hi = min(15, Int8(truncatingIfNeeded: Int((x[j + 16] * id + 8.5).rounded(.towardZero))))
            y.storeBytes(of: UInt8(lo) | UInt8(hi) << 4, toByteOffset: 2 + j, as: UInt8.self)
        }
    }
}

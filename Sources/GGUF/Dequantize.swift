import Tensors

/// ggml's block formats to f32, exactly as ggml (and gguf-py) compute them, operation for
/// operation, so the results are bit-identical.
public enum Dequantize {
    /// Whether av can dequantize `type`: F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K
    /// and Q6_K.
    public static func supports(_ type: GGMLType) -> Bool {
        switch type {
        case .f32, .f16, .bf16, .f64, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K: true
        default: false
        }
    }

    @inline(__always) static func f16(_ p: UnsafeRawPointer, _ o: Int) -> Float {
        FloatBits.f16ToFloat(p.loadUnaligned(fromByteOffset: o, as: UInt16.self))
    }
    @inline(__always) static func u8(_ p: UnsafeRawPointer, _ o: Int) -> Int { Int(p.load(fromByteOffset: o, as: UInt8.self)) }

    /// `count` values of `type` at `src` into `dst` (`count` a whole number of blocks).
    public static func run(_ type: GGMLType, _ src: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let (be, bb) = type.block
        let blocks = count / be
        switch type {
        case .f32: Convert.toFloat(.f32, from: src, count: count, into: y)
        case .f16: Convert.toFloat(.f16, from: src, count: count, into: y)
        case .bf16: Convert.toFloat(.bf16, from: src, count: count, into: y)
        case .f64: Convert.toFloat(.f64, from: src, count: count, into: y)
        default:
            for i in 0..<blocks { block(type, src + i * bb, y + i * be) }
        }
    }

    /// Scale and min of sub-block `j` of a K-quant's 12 packed scale bytes.
    @inline(__always) static func scaleMin(_ j: Int, _ s: UnsafeRawPointer) -> (Float, Float) {
        if j < 4 { return (Float(u8(s, j) & 63), Float(u8(s, j + 4) & 63)) }
        let sc = (u8(s, j + 4) & 0xF) | ((u8(s, j - 4) >> 6) << 4)
        let m = (u8(s, j + 4) >> 4) | ((u8(s, j) >> 6) << 4)
        return (Float(sc), Float(m))
    }

    static func block(_ type: GGMLType, _ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        switch type {
        case .q4_0:
            let d = f16(b, 0)
            for j in 0..<16 {
                let q = u8(b, 2 + j)
                y[j] = Float((q & 15) - 8) * d
                y[j + 16] = Float((q >> 4) - 8) * d
            }
        case .q4_1:
            let d = f16(b, 0)
            let m = f16(b, 2)
            for j in 0..<16 {
                let q = u8(b, 4 + j)
                y[j] = Float(q & 15) * d + m
                y[j + 16] = Float(q >> 4) * d + m
            }
        case .q5_0, .q5_1:
            let d = f16(b, 0)
            let hasMin = type == .q5_1
            let m = hasMin ? f16(b, 2) : 0
            let base = hasMin ? 4 : 2
            let qh = Int(b.loadUnaligned(fromByteOffset: base, as: UInt32.self).littleEndian)
            for j in 0..<16 {
                let q = u8(b, base + 4 + j)
                let xh0 = ((qh >> j) << 4) & 0x10
                let xh1 = (qh >> (j + 12)) & 0x10
                if hasMin {
                    y[j] = Float((q & 15) | xh0) * d + m
                    y[j + 16] = Float((q >> 4) | xh1) * d + m
                } else {
                    y[j] = Float(((q & 15) | xh0) - 16) * d
                    y[j + 16] = Float(((q >> 4) | xh1) - 16) * d
                }
            }
        case .q8_0:
            let d = f16(b, 0)
            for j in 0..<32 { y[j] = Float(Int8(bitPattern: UInt8(u8(b, 2 + j)))) * d }
        case .q4_K:
            let d = f16(b, 0)
            let dmin = f16(b, 2)
            let scales = b + 4
            let qs = b + 16
            for c in 0..<4 {
                let (sc1, m1) = scaleMin(2 * c, scales)
                let (sc2, m2) = scaleMin(2 * c + 1, scales)
                let d1 = d * sc1, mm1 = dmin * m1, d2 = d * sc2, mm2 = dmin * m2
                for l in 0..<32 {
                    let q = u8(qs, 32 * c + l)
                    y[64 * c + l] = d1 * Float(q & 15) - mm1
                    y[64 * c + 32 + l] = d2 * Float(q >> 4) - mm2
                }
            }
        case .q5_K:
            let d = f16(b, 0)
            let dmin = f16(b, 2)
            let scales = b + 4
            let qh = b + 16
            let qs = b + 48
            for c in 0..<4 {
                let (sc1, m1) = scaleMin(2 * c, scales)
                let (sc2, m2) = scaleMin(2 * c + 1, scales)
                let d1 = d * sc1, mm1 = dmin * m1, d2 = d * sc2, mm2 = dmin * m2
                let u1 = 1 << (2 * c)
                let u2 = 2 << (2 * c)
                for l in 0..<32 {
                    let q = u8(qs, 32 * c + l)
                    let h = u8(qh, l)
                    y[64 * c + l] = d1 * Float((q & 15) + (h & u1 != 0 ? 16 : 0)) - mm1
                    y[64 * c + 32 + l] = d2 * Float((q >> 4) + (h & u2 != 0 ? 16 : 0)) - mm2
                }
            }
        case .q6_K:
            let ql = b
            let qh = b + 128
            let scales = b + 192
            let d = f16(b, 208)
            for n in 0..<2 {
                for l in 0..<32 {
                    let a = u8(ql, 64 * n + l)
                    let bb = u8(ql, 64 * n + l + 32)
                    let h = u8(qh, 32 * n + l)
                    let q = [
                        ((a & 15) | ((h & 3) << 4)) - 32, ((bb & 15) | (((h >> 2) & 3) << 4)) - 32,
                        ((a >> 4) | (((h >> 4) & 3) << 4)) - 32, ((bb >> 4) | (((h >> 6) & 3) << 4)) - 32,
                    ]
                    for k in 0..<4 {
                        let sc = Float(Int8(bitPattern: UInt8(u8(scales, 8 * n + l / 16 + 2 * k))))
                        y[128 * n + 32 * k + l] = d * sc * Float(q[k])
                    }
                }
            }
        default:
            preconditionFailure("no dequantization for \(type)")
        }
    }
}

import Tensors

/// Per-element helpers over raw stored values, for the checks diff and merge make.
enum ElementOps {
    /// The stored bits of element `i` (sizes 1, 2, 4, 8), zero-extended.
    @inline(__always)
    static func bits(_ p: UnsafeRawPointer, _ i: Int, size: Int) -> UInt64 {
        switch size {
        case 1: UInt64(p.load(fromByteOffset: i, as: UInt8.self))
        case 2: UInt64(p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
        case 4: UInt64(p.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
        default: p.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)
        }
    }

    /// Position of a float's bit pattern on the number line (sign-magnitude to two's complement),
    /// so that the distance between two positions counts the representable values between them.
    @inline(__always)
    static func ordinal(_ bits: UInt64, size: Int) -> Int64 {
        let signBit: UInt64 = 1 << UInt64(size * 8 - 1)
        let magnitude = Int64(bitPattern: bits & (signBit - 1))
        return bits & signBit != 0 ? -magnitude : magnitude
    }

    /// Distance in units in the last place of the stored dtype.
    @inline(__always)
    static func ulps(_ x: UInt64, _ y: UInt64, size: Int) -> Int {
        Int(min(Int64(Int.max), (ordinal(x, size: size) - ordinal(y, size: size)).magnitude.clamped))
    }

    /// One value of `dtype` encoded from a double exactly as `Accumulate.narrow` does it.
    @inline(__always)
    static func narrowOne(_ v: Double, to dtype: DType) -> UInt64 {
        if dtype == .f64 { return v.bitPattern }
        var f = dtype == .f32 ? Float(v) : FloatBits.roundToOdd(v)
        var out: UInt64 = 0
        withUnsafeMutableBytes(of: &out) { buf in
            Convert.fromFloat(dtype, from: &f, count: 1, into: buf.baseAddress!)
        }
        return out
    }

    /// `count` stored elements of a float dtype as doubles (f64 read as is, others through f32).
    static func widen(_ dtype: DType, _ bytes: UnsafeRawBufferPointer, count: Int) -> [Double] {
        guard let p = bytes.baseAddress, count > 0 else { return [] }
        var out = [Double](repeating: 0, count: count)
        var scratch = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { o in
            scratch.withUnsafeMutableBufferPointer {
                Accumulate.widen(dtype, p, count: count, into: o.baseAddress!, scratch: $0.baseAddress!)
            }
        }
        return out
    }

    /// The value of the stored element at `p` as a double.
    @inline(__always)
    static func widenOne(_ p: UnsafeRawPointer, dtype: DType) -> Double {
        if dtype == .f64 { return p.loadUnaligned(as: Double.self) }
        var f: Float = 0
        Convert.toFloat(dtype, from: p, count: 1, into: &f)
        return Double(f)
    }
}

extension UInt64 {
    fileprivate var clamped: Int64 { self > UInt64(Int64.max) ? Int64.max : Int64(self) }
}

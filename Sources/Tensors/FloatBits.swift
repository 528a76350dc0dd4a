/// Scalar conversions between f32 and the 16-bit float types, bit-exact.
///
/// f32 → 16-bit rounds to nearest, ties to even; NaN stays NaN (quieted, sign kept), ±Inf and
/// −0 are kept, subnormals are exact. The SIMD kernels in `Convert` compute the same function.
public enum FloatBits {
    /// The f32 whose bits are `bits << 16`: bf16 is the top half of an f32, so widening is exact.
    @inline(__always)
    public static func bf16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// `value` rounded to f32 toward zero, with the last bit set when that was inexact ("round to
    /// odd"). Rounding this f32 to nearest-even in any format of at most 22 significant bits (bf16,
    /// f16, the f8s) gives the same result as rounding `value` to that format directly: a merge
    /// summed in f64 is rounded once, not twice (f64 → f32 → bf16 can be off by one ulp).
    @inline(__always)
    public static func roundToOdd(_ value: Double) -> Float {
        let f = Float(value)
        let back = Double(f)
        guard !value.isNaN, back != value else { return f }
        var bits = f.bitPattern
        if back.magnitude > value.magnitude { bits -= 1 }  // rounded away from zero: step back toward it
        return Float(bitPattern: bits | 1)
    }

    /// The bf16 nearest to `value`, ties to even.
    @inline(__always)
    public static func floatToBF16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if bits & 0x7FFF_FFFF > 0x7F80_0000 {
            return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// The value of IEEE binary16 `bits`.
    @inline(__always)
    public static func f16ToFloat(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exp = UInt32(bits >> 10) & 0x1F
        let mant = UInt32(bits) & 0x3FF
        if exp == 0x1F {
            return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13))
        }
        if exp == 0 {
            // Subnormal or zero: mant · 2^-24 is exact in f32.
            let magnitude = Float(mant) * 0x1p-24
            return Float(bitPattern: sign | magnitude.bitPattern)
        }
        return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
    }

    /// The binary16 nearest to `value`, ties to even; overflow gives ±Inf.
    @inline(__always)
    public static func floatToF16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let abs = bits & 0x7FFF_FFFF
        if abs > 0x7F80_0000 {  // NaN: keep the top payload bits, force quiet
            return sign | 0x7E00 | UInt16(truncatingIfNeeded: (abs >> 13) & 0x3FF)
        }
        if abs >= 0x4780_0000 {  // ≥ 65536: beyond rounding to 65504, or Inf
            return sign | 0x7C00
        }
        if abs >= 0x3880_0000 {  // normal in f16 (≥ 2^-14)
            let rounded = abs &- 0x3800_0000 &+ 0x0FFF &+ ((abs >> 13) & 1)
            // A carry into the exponent is correct; one past 0x7BFF lands on 0x7C00 = Inf.
            return sign | UInt16(truncatingIfNeeded: rounded >> 13)
        }
        // Subnormal f16 (or zero): the value in units of 2^-24, rounded to nearest even.
        // Adding 0.5 (2^-1) as a float does exactly that rounding in the f32 adder.
        let magnitude = Float(bitPattern: abs)
        let units = magnitude * 0x1p24  // exact: a power-of-two scale of a value ≥ 2^-149
        let r = units.rounded(.toNearestOrEven)
        return sign | UInt16(r)
    }
}

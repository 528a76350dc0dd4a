/// A small binary floating-point format (8 bits or fewer): the f8, f6 and f4 types.
///
/// Decoding goes through a table of all codes; encoding rounds to the nearest representable
/// value, ties to the even code, using the sorted table. Both are exact; neither is a hot path
/// (no checkpoint av edits stores its weights in these types), so clarity wins over speed.
public struct MinifloatFormat: Sendable {
    /// How the format spells what f32 cannot give it a number for.
    public enum Specials: Sendable {
        /// IEEE-like: the top exponent is ±Inf (mantissa 0) or NaN (F8_E5M2).
        case ieee
        /// "fn": no infinity, only the all-ones code is NaN (F8_E4M3 = e4m3fn).
        case finiteNaNAllOnes
        /// "fnuz": no infinity, no negative zero, the lone sign bit is NaN (the AMD formats).
        case unsignedZero
        /// No infinity and no NaN (F4, F6): values past the range saturate.
        case finiteOnly
        /// F8_E8M0: an unsigned power of two; 0xFF is NaN.
        case exponentOnly
    }

    /// Bits of the exponent field.
    public let exponentBits: Int
    /// Bits of the mantissa field.
    public let mantissaBits: Int
    /// The exponent bias.
    public let bias: Int
    /// How the format spells infinities, NaN and zero.
    public let specials: Specials
    /// Finite non-negative values with their codes, in increasing order: the encoder's search table.
    private var positiveTable: [(value: Double, code: Int)] = []

    /// A format from its fields; builds the encoder's table of every finite value.
    public init(exponentBits: Int, mantissaBits: Int, bias: Int, specials: Specials) {
        self.exponentBits = exponentBits
        self.mantissaBits = mantissaBits
        self.bias = bias
        self.specials = specials
        var entries: [(value: Double, code: Int)] = []
        let positiveCodes = specials == .exponentOnly ? codeCount : codeCount / 2
        for code in 0..<positiveCodes {
            let v = decode(UInt8(code))
            if v.isFinite { entries.append((Double(v), code)) }
        }
        positiveTable = entries.sorted { $0.value < $1.value }
    }

    /// Bits in one code (sign, exponent, mantissa).
    public var totalBits: Int { (specials == .exponentOnly ? 0 : 1) + exponentBits + mantissaBits }
    /// How many codes the format has.
    public var codeCount: Int { 1 << totalBits }

    /// `F8_E5M2`: IEEE-like, with ±Inf and NaN.
    public static let e5m2 = MinifloatFormat(exponentBits: 5, mantissaBits: 2, bias: 15, specials: .ieee)
    /// `F8_E4M3` (e4m3fn): no infinity, the all-ones code is NaN.
    public static let e4m3fn = MinifloatFormat(exponentBits: 4, mantissaBits: 3, bias: 7, specials: .finiteNaNAllOnes)
    /// `F8_E4M3FNUZ`: no infinity, no negative zero, bias 8.
    public static let e4m3fnuz = MinifloatFormat(exponentBits: 4, mantissaBits: 3, bias: 8, specials: .unsignedZero)
    /// `F8_E5M2FNUZ`: no infinity, no negative zero, bias 16.
    public static let e5m2fnuz = MinifloatFormat(exponentBits: 5, mantissaBits: 2, bias: 16, specials: .unsignedZero)
    /// `F8_E8M0`: an unsigned power of two (microscaling scales).
    public static let e8m0 = MinifloatFormat(exponentBits: 8, mantissaBits: 0, bias: 127, specials: .exponentOnly)
    /// `F4` (e2m1): finite values only.
    public static let e2m1 = MinifloatFormat(exponentBits: 2, mantissaBits: 1, bias: 1, specials: .finiteOnly)
    /// `F6_E2M3`: finite values only.
    public static let e2m3 = MinifloatFormat(exponentBits: 2, mantissaBits: 3, bias: 1, specials: .finiteOnly)
    /// `F6_E3M2`: finite values only.
    public static let e3m2 = MinifloatFormat(exponentBits: 3, mantissaBits: 2, bias: 3, specials: .finiteOnly)

    /// The format of a small float dtype, nil for the others.
    public static func of(_ dtype: DType) -> MinifloatFormat? {
        switch dtype {
        case .f8e5m2: .e5m2
        case .f8e4m3: .e4m3fn
        case .f8e4m3fnuz: .e4m3fnuz
        case .f8e5m2fnuz: .e5m2fnuz
        case .f8e8m0: .e8m0
        case .f4: .e2m1
        case .f6e2m3: .e2m3
        case .f6e3m2: .e3m2
        default: nil
        }
    }

    /// The value of `code` (the low `totalBits` bits are used).
    public func decode(_ code: UInt8) -> Float {
        let c = Int(code) & (codeCount - 1)
        let expMask = (1 << exponentBits) - 1
        let mantMask = (1 << mantissaBits) - 1
        if specials == .exponentOnly {
            return c == 0xFF ? .nan : Float(sign: .plus, exponent: c - bias, significand: 1)
        }
        let negative = (c >> (exponentBits + mantissaBits)) & 1 == 1
        let exp = (c >> mantissaBits) & expMask
        let mant = c & mantMask
        switch specials {
        case .ieee where exp == expMask:
            return mant == 0 ? (negative ? -.infinity : .infinity) : .nan
        case .finiteNaNAllOnes where exp == expMask && mant == mantMask:
            return .nan
        case .unsignedZero where negative && exp == 0 && mant == 0:
            return .nan
        default:
            break
        }
        let magnitude: Float
        if exp == 0 {
            magnitude = Float(mant) * Float(sign: .plus, exponent: 1 - bias - mantissaBits, significand: 1)
        } else {
            magnitude = Float(sign: .plus, exponent: exp - bias, significand: 1 + Float(mant) / Float(1 << mantissaBits))
        }
        return negative ? -magnitude : magnitude
    }

    /// The code of `value`, rounded to nearest, ties to even.
    ///
    /// Past the largest finite value: infinity where the format has one, NaN where it has only NaN,
    /// the largest value where it has neither. NaN in gives a NaN code.
    public func encode(_ value: Float) -> UInt8 {
        let table = positiveTable
        let signBit = specials == .exponentOnly ? 0 : 1 << (exponentBits + mantissaBits)
        let negative = value.sign == .minus
        if value.isNaN { return nanCode(negative: negative) }
        if specials == .exponentOnly {
            // E8M0 has no sign and no zero: NaN for those. Otherwise round on the f32 bits as ml_dtypes
            // does: the biased exponent, plus one when the top mantissa bit is set (ties go up).
            if negative || value == 0 || value.isInfinite { return 0xFF }
            let bits = value.bitPattern
            // f32 subnormals: ml_dtypes keeps 2^-127 for anything up to it and rounds the rest up.
            let code = bits < 0x0080_0000 ? (bits > 0x40_0000 ? 1 : 0) : (bits >> 23) + ((bits >> 22) & 1)
            return code > 0xFE ? 0xFF : UInt8(code)
        }
        let a = Double(value.magnitude)
        var best: (value: Double, code: Int)
        if a >= table[table.count - 1].value {
            let top = table[table.count - 1]
            let previous = table[table.count - 2]
            // The overflow threshold is half a step past the largest value, as if the exponent went on.
            let threshold = top.value + (top.value - previous.value) / 2
            if a > threshold || (a == threshold && top.code & 1 == 1) || value.isInfinite {
                switch specials {
                case .ieee: return UInt8((negative ? signBit : 0) | (((1 << exponentBits) - 1) << mantissaBits))
                case .finiteNaNAllOnes, .unsignedZero, .exponentOnly: return nanCode(negative: negative)
                case .finiteOnly: best = top
                }
            } else {
                best = top
            }
        } else {
            // Largest entry <= a.
            var lo = 0
            var hi = table.count - 1
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if table[mid].value <= a { lo = mid } else { hi = mid - 1 }
            }
            let below = table[lo]
            let above = table[lo + 1]
            let midpoint = (below.value + above.value) / 2
            if a < midpoint {
                best = below
            } else if a > midpoint {
                best = above
            } else {
                best = below.code & 1 == 0 ? below : above
            }
        }
        if best.value == 0 && specials == .unsignedZero { return 0 }
        return UInt8((negative ? signBit : 0) | best.code)
    }

    private func nanCode(negative: Bool) -> UInt8 {
        switch specials {
        case .ieee: UInt8((negative ? 1 << (exponentBits + mantissaBits) : 0) | ((1 << (exponentBits + mantissaBits)) - 1))
        case .finiteNaNAllOnes: UInt8((negative ? 0x80 : 0) | 0x7F)
        case .unsignedZero: 0x80
        case .exponentOnly: 0xFF
        case .finiteOnly: 0  // unreachable in practice: such formats have no NaN; zero is the documented result
        }
    }
}

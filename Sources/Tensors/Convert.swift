/// Whole-buffer conversions between stored dtypes and f32, the kernels every layer above uses.
///
/// Sources may be at any alignment (memory-mapped tensors often are not aligned): every load
/// is unaligned. bf16 and f16 run 16 lanes at a time; costs are measured in `Benchmarks/`.
public enum Convert {
    /// True when `dtype` has a buffer conversion to and from f32.
    public static func supports(_ dtype: DType) -> Bool {
        dtype.isFloatingPoint && dtype.byteSize != nil
    }

    /// Decodes `count` elements of `dtype` at `source` into `destination`.
    public static func toFloat(
        _ dtype: DType, from source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
    ) {
        switch dtype {
        case .f32:
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
        case .bf16:
            bf16ToFloat(source, count: count, into: destination)
        case .f16:
            f16ToFloat(source, count: count, into: destination)
        case .f64:
            for i in 0..<count {
                destination[i] = Float(source.loadUnaligned(fromByteOffset: i * 8, as: Double.self))
            }
        default:
            guard let format = MinifloatFormat.of(dtype), dtype.byteSize == 1 else {
                preconditionFailure("no f32 conversion for \(dtype.rawValue)")
            }
            var table = [Float](repeating: 0, count: 256)
            for code in 0..<256 { table[code] = format.decode(UInt8(code)) }
            let bytes = source.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { destination[i] = table[Int(bytes[i])] }
        }
    }

    /// Encodes `count` f32 values into `dtype` at `destination`, rounding to nearest even.
    public static func fromFloat(
        _ dtype: DType, from source: UnsafePointer<Float>, count: Int, into destination: UnsafeMutableRawPointer
    ) {
        switch dtype {
        case .f32:
            destination.copyMemory(from: source, byteCount: count * 4)
        case .bf16:
            floatToBF16(source, count: count, into: destination)
        case .f16:
            for i in 0..<count {
                destination.storeBytes(of: FloatBits.floatToF16(source[i]), toByteOffset: i * 2, as: UInt16.self)
            }
        case .f64:
            for i in 0..<count {
                destination.storeBytes(of: Double(source[i]), toByteOffset: i * 8, as: Double.self)
            }
        default:
            guard let format = MinifloatFormat.of(dtype), dtype.byteSize == 1 else {
                preconditionFailure("no f32 conversion for \(dtype.rawValue)")
            }
            let bytes = destination.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { bytes[i] = format.encode(source[i]) }
        }
    }

    /// bf16 → f32: widen each UInt16 and shift it into the top half. ~memory bound.
    public static func bf16ToFloat(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        let out = UnsafeMutableRawPointer(destination)
        var i = 0
        while i + 16 <= count {
            let h = source.loadUnaligned(fromByteOffset: i * 2, as: SIMD16<UInt16>.self)
            let w = SIMD16<UInt32>(truncatingIfNeeded: h) &<< 16
            out.storeBytes(of: w, toByteOffset: i * 4, as: SIMD16<UInt32>.self)
            i += 16
        }
        while i < count {
            destination[i] = FloatBits.bf16ToFloat(source.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
            i += 1
        }
    }

    /// f32 → bf16, round to nearest even with NaN quieted: the branch-free form of
    /// `FloatBits.floatToBF16`, 16 lanes at a time.
    public static func floatToBF16(_ source: UnsafePointer<Float>, count: Int, into destination: UnsafeMutableRawPointer) {
        let input = UnsafeRawPointer(source)
        var i = 0
        while i + 16 <= count {
            let bits = input.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<UInt32>.self)
            let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
            let quiet = (bits &>> 16) | 0x40
            // All-ones where the input is NaN (|bits| > 0x7F800000 makes the difference wrap), in
            // plain integer lanes: SIMD comparisons and masks compile to scalar code here.
            let nan = SIMD16<UInt32>(repeating: 0) &- ((0x7F80_0000 &- (bits & 0x7FFF_FFFF)) &>> 31)
            let result = (rounded & ~nan) | (quiet & nan)
            destination.storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: result), toByteOffset: i * 2, as: SIMD16<UInt16>.self)
            i += 16
        }
        while i < count {
            destination.storeBytes(of: FloatBits.floatToBF16(source[i]), toByteOffset: i * 2, as: UInt16.self)
            i += 1
        }
    }

    /// f16 → f32 through a 65,536-entry table (256 KiB, stays in L2): no F16C on the baseline target.
    public static func f16ToFloat(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        f16Table.withUnsafeBufferPointer { table in
            for i in 0..<count {
                destination[i] = table[Int(source.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))]
            }
        }
    }

    private static let f16Table: [Float] = (0...0xFFFF).map { FloatBits.f16ToFloat(UInt16($0)) }
}

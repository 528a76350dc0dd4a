import AVTestSupport
import Foundation
import Testing

@testable import Tensors

private struct Reference: Decodable {
    struct Entry: Decodable {
        var inputCount: Int
        var decode: [UInt32]?
        var encode: [UInt32]?
        var decodeBlocks: [String]?
        var encodeBlocks: [String]?
    }
    var specials: [UInt32]
    var types: [String: Entry]

    static let shared: Reference = {
        let url = Bundle.module.url(forResource: "Fixtures/dtype_reference", withExtension: "json")!
        // An unreadable fixture gives an empty reference, which every test then reports as missing entries.
        return (try? JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))) ?? Reference(specials: [], types: [:])
    }()
}

/// The code width of the small types (F4 and F6 are one code per byte here).
private func width(_ dtype: DType) -> Int {
    switch dtype {
    case .f4: 4
    case .f6e2m3, .f6e3m2: 6
    default: dtype.bits
    }
}

private func decode(_ dtype: DType, _ code: Int) -> Float {
    switch dtype {
    case .bf16: FloatBits.bf16ToFloat(UInt16(code))
    case .f16: FloatBits.f16ToFloat(UInt16(code))
    default: MinifloatFormat.of(dtype)!.decode(UInt8(code))
    }
}

private func encode(_ dtype: DType, _ value: Float) -> Int {
    switch dtype {
    case .bf16: Int(FloatBits.floatToBF16(value))
    case .f16: Int(FloatBits.floatToF16(value))
    default: Int(MinifloatFormat.of(dtype)!.encode(value))
    }
}

/// The encode inputs of make_dtype_reference.py, generated the same way.
private func encodeInputs(_ dtype: DType, specials: [UInt32]) -> [Float] {
    let n = 1 << width(dtype)
    let signBit = dtype == .f8e8m0 ? 0 : n >> 1
    var xs: [Float] = []
    for h in 0..<(n - 1) {
        if signBit != 0 && (h & signBit) != ((h + 1) & signBit) { continue }
        let a = decode(dtype, h)
        let b = decode(dtype, h + 1)
        guard a.isFinite, b.isFinite else { continue }
        let mid = Float((Double(a) + Double(b)) / 2)
        xs += [a, mid, mid.nextDown, mid.nextUp]
    }
    return xs + specials.map { Float(bitPattern: $0) }
}

/// Encoded codes as the fixture stores them: NaN results marked 0xFFFFFFFF.
private func encodedMarked(_ dtype: DType, _ xs: [Float]) -> [UInt32] {
    xs.map { x in
        let code = encode(dtype, x)
        return decode(dtype, code).isNaN ? 0xFFFF_FFFF : UInt32(code)
    }
}

private func decodedBits(_ dtype: DType) -> [UInt32] {
    (0..<(1 << width(dtype))).map { code in
        let v = decode(dtype, code)
        return v.isNaN ? 0x7FC0_0000 : v.bitPattern
    }
}

private func blockHashes(_ values: [UInt32]) -> [String] {
    stride(from: 0, to: values.count, by: 4096).map { start in
        let block = values[start..<min(start + 4096, values.count)]
        let bytes = block.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        let h = fnv1a64(bytes)
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

@Suite("Conversions match numpy and ml_dtypes over every code")
struct ConversionReferenceTests {
    static let floatTypes: [DType] = [.bf16, .f16, .f8e5m2, .f8e4m3, .f8e4m3fnuz, .f8e5m2fnuz, .f8e8m0, .f4, .f6e2m3, .f6e3m2]

    @Test("every code decodes to the reference f32", arguments: floatTypes)
    func decodesEveryCode(dtype: DType) throws {
        let entry = try #require(Reference.shared.types[dtype.rawValue])
        let ours = decodedBits(dtype)
        if let expected = entry.decode {
            for (code, bits) in expected.enumerated() where ours[code] != bits {
                Issue.record("\(dtype.rawValue) code \(code): got \(String(ours[code], radix: 16)), reference \(String(bits, radix: 16))")
            }
        } else {
            #expect(blockHashes(ours) == entry.decodeBlocks)
        }
    }

    @Test("f32 inputs around every code encode as the reference rounds them", arguments: floatTypes)
    func encodesLikeReference(dtype: DType) throws {
        let entry = try #require(Reference.shared.types[dtype.rawValue])
        let xs = encodeInputs(dtype, specials: Reference.shared.specials)
        #expect(xs.count == entry.inputCount)
        let ours = encodedMarked(dtype, xs)
        if let expected = entry.encode {
            for i in 0..<min(ours.count, expected.count) where ours[i] != expected[i] {
                Issue.record("\(dtype.rawValue) input \(xs[i]) (\(String(xs[i].bitPattern, radix: 16))): got \(ours[i]), reference \(expected[i])")
            }
        } else {
            let got = blockHashes(ours)
            let want = entry.encodeBlocks ?? []
            #expect(got.count == want.count)
            for (i, (g, w)) in zip(got, want).enumerated() where g != w {
                Issue.record("\(dtype.rawValue) encode block \(i) (inputs \(i * 4096)..<\((i + 1) * 4096)) differs from the reference")
            }
        }
    }
}

@Suite("16-bit conversions")
struct SixteenBitTests {
    @Test("every finite bf16 and f16 pattern survives f32 and back; NaN stays NaN", arguments: [DType.bf16, .f16])
    func roundTripsEveryPattern(dtype: DType) {
        for code in 0...0xFFFF {
            let v = decode(dtype, code)
            let back = encode(dtype, v)
            if v.isNaN {
                #expect(decode(dtype, back).isNaN, "\(dtype.rawValue) \(code)")
            } else if back != code {
                Issue.record("\(dtype.rawValue) pattern \(String(code, radix: 16)) came back as \(String(back, radix: 16))")
            }
        }
    }

    @Test("edges: ties to even, overflow, -0, smallest subnormals")
    func edges() {
        #expect(FloatBits.floatToBF16(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie, even below
        #expect(FloatBits.floatToBF16(Float(bitPattern: 0x3F81_8000)) == 0x3F82)  // tie, even above
        #expect(FloatBits.floatToBF16(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(FloatBits.floatToBF16(.greatestFiniteMagnitude) == 0x7F80)  // rounds up to Inf
        #expect(FloatBits.floatToBF16(-0.0) == 0x8000)
        #expect(FloatBits.floatToF16(65504) == 0x7BFF)
        #expect(FloatBits.floatToF16(65519.99) == 0x7BFF)
        #expect(FloatBits.floatToF16(65520) == 0x7C00)
        #expect(FloatBits.floatToF16(0x1p-24) == 0x0001)
        #expect(FloatBits.floatToF16(0x1p-25) == 0x0000)  // tie to even zero
        #expect(FloatBits.floatToF16(0x1.8p-25) == 0x0001)
        #expect(FloatBits.floatToF16(-0.0) == 0x8000)
        #expect(FloatBits.f16ToFloat(0x7C00) == .infinity)
        #expect(FloatBits.f16ToFloat(0x0001) == 0x1p-24)
    }
}

@Suite("Buffer kernels agree with the scalar conversions")
struct BufferKernelTests {
    /// Values that exercise rounding: random bit patterns plus NaN, Inf, zeros and subnormals.
    static func samples(_ count: Int, seed: UInt64) -> [Float] {
        var random = TestRandom(seed: seed)
        var out: [Float] = []
        let specials: [Float] = [.nan, -.nan, .infinity, -.infinity, 0, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1, -1]
        for i in 0..<count {
            let bits = random.bits()
            let value = Float(bitPattern: UInt32(truncatingIfNeeded: bits >> 32))
            out.append(i % 7 == 3 ? specials[i % specials.count] : value)
        }
        return out
    }

    @Test("every length 0...40 and every byte misalignment", arguments: [DType.bf16, .f16, .f32, .f64, .f8e4m3, .f8e5m2])
    func lengthsAndAlignments(dtype: DType) {
        let size = dtype.byteSize!
        for count in 0...40 {
            let xs = Self.samples(count, seed: UInt64(count))
            for misalign in 0..<size * 2 {
                var raw = [UInt8](repeating: 0xAA, count: count * size + misalign + 8)
                raw.withUnsafeMutableBytes { buf in
                    xs.withUnsafeBufferPointer { Convert.fromFloat(dtype, from: $0.baseAddress!, count: count, into: buf.baseAddress! + misalign) }
                }
                // Bytes outside the range are untouched.
                #expect(raw[0..<misalign].allSatisfy { $0 == 0xAA })
                #expect(raw[(count * size + misalign)...].allSatisfy { $0 == 0xAA })
                var back = [Float](repeating: 0, count: count)
                raw.withUnsafeBytes { buf in
                    back.withUnsafeMutableBufferPointer { Convert.toFloat(dtype, from: buf.baseAddress! + misalign, count: count, into: $0.baseAddress!) }
                }
                for i in 0..<count {
                    let expected: Float
                    switch dtype {
                    case .bf16: expected = FloatBits.bf16ToFloat(FloatBits.floatToBF16(xs[i]))
                    case .f16: expected = FloatBits.f16ToFloat(FloatBits.floatToF16(xs[i]))
                    case .f32, .f64: expected = xs[i]
                    default: expected = MinifloatFormat.of(dtype)!.decode(MinifloatFormat.of(dtype)!.encode(xs[i]))
                    }
                    if expected.isNaN {
                        #expect(back[i].isNaN)
                    } else if expected.bitPattern != back[i].bitPattern {
                        Issue.record("\(dtype.rawValue) count \(count) offset \(misalign) index \(i): \(back[i]) != \(expected)")
                    }
                }
            }
        }
    }
}

@Suite("DType")
struct DTypeTests {
    @Test("sizes and the reference order")
    func sizes() {
        #expect(DType.allCases.count == 22)
        #expect(DType.bf16.byteSize == 2 && DType.f4.byteSize == nil && DType.c64.byteSize == 8)
        #expect(DType.u64.order > DType.f32.order && DType.f32.order > DType.bf16.order && DType.bool.order == 0)
        #expect(DType(userSpelling: "bf16") == .bf16 && DType(userSpelling: "F8_E4M3") == .f8e4m3 && DType(userSpelling: "nope") == nil)
    }

    @Test("shape products are checked for overflow")
    func overflow() {
        #expect(Shape.elementCount([]) == 1)
        #expect(Shape.elementCount([2, 0, 7]) == 0)
        #expect(Shape.elementCount([2, Int.max]) == nil)
        #expect(Shape.byteCount(elements: 3, dtype: .f4) == nil)
        #expect(Shape.byteCount(elements: 4, dtype: .f4) == 2)
        #expect(Shape.byteCount(elements: Int.max / 2, dtype: .f32) == nil)
    }
}

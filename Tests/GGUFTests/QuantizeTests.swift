import Foundation
import Testing

@testable import GGUF
@testable import Tensors

/// The vectorized Q8_0 and Q4_0 encoders against ggml's reference written out element by element
/// (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref`), on random blocks and on the edge cases:
/// halves that round away from zero, the largest magnitude twice with both signs, zeros.
@Suite("Q8_0 and Q4_0 block by block against the reference loops")
struct QuantizeTests {
    static func q8_0(_ x: [Float]) -> [UInt8] {
        var amax: Float = 0
        for v in x { amax = max(amax, abs(v)) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        let bits = FloatBits.floatToF16(d)
        return [UInt8(bits & 0xFF), UInt8(bits >> 8)]
            + x.map { UInt8(bitPattern: Int8(($0 * id).rounded(.toNearestOrAwayFromZero))) }
    }

    static func q4_0(_ x: [Float]) -> [UInt8] {
        var amax: Float = 0
        var m: Float = 0
        for v in x where amax < abs(v) {
            amax = abs(v)
            m = v
        }
        let d = m / -8
        let id: Float = d != 0 ? 1 / d : 0
        let bits = FloatBits.floatToF16(d)
        func q(_ v: Float) -> UInt8 {
            UInt8(min(15, Int8(truncatingIfNeeded: Int((v * id + 8.5).rounded(.towardZero)))))
        }
        return [UInt8(bits & 0xFF), UInt8(bits >> 8)] + (0..<16).map { q(x[$0]) | q(x[$0 + 16]) << 4 }
    }

    @Test("the same bytes as the reference loops")
    func sameBytes() {
        var blocks: [[Float]] = []
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: state) >> 11) / Float(1 << 52)
        }
        for scale: Float in [1e-3, 0.05, 1, 300] {
            for _ in 0..<500 { blocks.append((0..<32).map { _ in next() * scale }) }
        }
        // Values at x/d = k + 0.5 (d = 127/127 = 1 for Q8_0): they round away from zero.
        blocks.append([127] + (0..<31).map { Float($0 % 16) - 7.5 })
        // The largest magnitude twice, negative first and positive first (Q4_0 takes the first).
        blocks.append([-2, 2] + Array(repeating: 0.5, count: 30))
        blocks.append([1, 2, -2] + Array(repeating: -0.25, count: 29))
        blocks.append(Array(repeating: 0, count: 32))
        blocks.append((0..<32).map { Float($0) / 4 - 4 })
        for (type, reference) in [(GGMLType.q8_0, Self.q8_0), (.q4_0, Self.q4_0)] {
            var mismatches = 0
            for x in blocks {
                var out = [UInt8](repeating: 0, count: type.block.bytes)
                x.withUnsafeBufferPointer { v in
                    out.withUnsafeMutableBytes { Quantize.run(type, v.baseAddress!, count: 32, into: $0.baseAddress!) }
                }
                if out != reference(x) { mismatches += 1 }
            }
            #expect(mismatches == 0, "\(type.name): \(mismatches) of \(blocks.count) blocks differ")
        }
    }
}

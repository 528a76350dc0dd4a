import Foundation
import Testing

@testable import Tensors

/// SwiGLU at AVX-512 (vector e^x) against the definition in f64, special values included.
@Suite("SwiGLU kernel")
struct ActivationKernelTests {
    @Test("within 3 ulp of silu(g) · u in f64 where e^-g is a float", .enabled(if: KernelLevel.detected >= .avx512))
    func accuracy() throws {
        var gate: [Float] = [0, -0, 1, -1, 1e-40, -1e-40, 20, -20, 87, -87, 88.7, -88.7, 89, -89, 103, -103, 200, -200]
        var state: UInt64 = 3
        for _ in 0..<5000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            gate.append(Float(Int64(bitPattern: state) >> 40) / Float(1 << 23) * 60)  // in [-60, 60)
        }
        let up = gate.indices.map { Float($0 % 7) - 3.5 }
        var out = gate
        #expect(KernelLevel.avx512.swiGLU(gate: &out, up: up, count: out.count))
        for i in gate.indices {
            let g = Double(gate[i])
            // Where e^-g overflows f32 (g < -88.72) the formula gives ±0, in f32 as in libm's expf.
            let e = Foundation.exp(-g)
            let exact = Float(e > Double(Float.greatestFiniteMagnitude) ? 0 : g / (1 + e) * Double(up[i]))
            let ulp = max(exact.magnitude.ulp, Float.leastNonzeroMagnitude)
            #expect(abs(out[i] - exact) <= 3 * ulp, "silu(\(gate[i])) · \(up[i]): \(out[i]), not \(exact) (i \(i))")
        }
    }

    @Test("infinities and NaN behave as the scalar formula does", .enabled(if: KernelLevel.detected >= .avx512))
    func specials() {
        var out: [Float] = [.infinity, -.infinity, .nan, 5]
        #expect(KernelLevel.avx512.swiGLU(gate: &out, up: [1, 1, 1, 1], count: 3))
        #expect(out[0] == .infinity)
        #expect(out[1].isNaN)  // -inf / (1 + inf), as g / (1 + expf(-g)) gives
        #expect(out[2].isNaN)
        #expect(out[3] == 5, "past count nothing is written")
        #expect(!KernelLevel.portable.swiGLU(gate: &out, up: [1], count: 1))
    }
}

import Foundation
import Testing

@testable import Tensors

/// SwiGLU at AVX-512 (vector e^x) against the definition in f64, special values included.
@Suite("SwiGLU kernel")
struct ActivationKernelTests {
    @Test("within 3 ulp of silu(g) · u in f64 where e^-g is a float", .enabled(if: KernelLevel.detected >= .avx512))
    func accuracy() throws {
        var gate: [Float] = [0, -0, 1, -1, 1e-40, -1e-40, 20, -20, 87, -87, 88.7, -88.7, 89, -89, 103, -103, 200, -200]
        var random = TestRandom(seed: 3)
        for _ in 0..<5000 { gate.append(random.float(60)) }
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

/// The log-sum-exp of a row of logits at AVX-512 against the definition in f64.
@Suite("Log-sum-exp kernel")
struct LogSumExpKernelTests {
    /// log Σ e^x in f64 with libm, shifted by the maximum.
    static func reference(_ x: [Float]) -> Double {
        let m = Double(x.max()!)
        return m + Foundation.log(x.reduce(0.0) { $0 + Foundation.exp(Double($1) - m) })
    }

    @Test(
        "within 1e-6 of the f64 value for vocabulary-sized rows, tails and single values; the same on every call",
        .enabled(if: KernelLevel.detected >= .avx512))
    func accuracy() throws {
        var random = TestRandom(seed: 11)
        for (count, spread) in [(1, 10), (7, 10), (16, 30), (17, 30), (1000, 5), (49_152, 20), (50_001, 60)] {
            let x = (0..<count).map { _ in random.float(Float(spread)) + 3 }
            let fast = try #require(
                x.withUnsafeBufferPointer { KernelLevel.avx512.logSumExp($0.baseAddress!, count: count) })
            let exact = Self.reference(x)
            #expect(abs(fast - exact) <= 1e-6 * max(1, abs(exact)), "\(count) values: \(fast), not \(exact)")
            let again = x.withUnsafeBufferPointer { KernelLevel.avx512.logSumExp($0.baseAddress!, count: count) }
            #expect(again == fast)
        }
        // One value far above the rest: the sum is 1 plus terms that underflow to 0.
        let peaked: [Float] = [0, -200, 50, -1e30, 49.5]
        let p = try #require(peaked.withUnsafeBufferPointer { KernelLevel.avx512.logSumExp($0.baseAddress!, count: 5) })
        #expect(abs(p - Self.reference(peaked)) <= 1e-6 * 50)
        #expect(!KernelLevel.portable.canLogSumExp, "portable computes it in Swift")
    }
}

extension KernelLevel {
    /// Whether this level has the vector log-sum-exp.
    fileprivate var canLogSumExp: Bool {
        [Float(1)].withUnsafeBufferPointer { logSumExp($0.baseAddress!, count: 1) } != nil
    }
}

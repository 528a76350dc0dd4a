import Foundation
import Testing

@testable import Tensors

/// The AVX-512 attention of one query against its definition in f64, on head sizes with a tail and
/// position counts that do not fill the four-key steps.
@Suite("Attention kernel")
struct AttentionKernelTests {
    @Test(
        "softmax-weighted values within 1e-5 of f64, for every AVX-512 level",
        .enabled(if: KernelLevel.detected >= .avx512))
    func matchesDefinition() {
        var state: UInt64 = 99
        func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: state) >> 40) / Float(1 << 22)
        }
        for (d, n, stride) in [(64, 1, 192), (64, 37, 64), (24, 5, 40), (7, 130, 9)] {
            let q = (0..<d).map { _ in next() }
            let keys = (0..<(n * stride)).map { _ in next() }
            let values = (0..<(n * stride)).map { _ in next() }
            let scale = 1 / Float(d).squareRoot()
            let s = (0..<n).map { p in
                Double(scale) * (0..<d).reduce(0.0) { $0 + Double(q[$1]) * Double(keys[p * stride + $1]) }
            }
            let m = s.max()!
            let e = s.map { exp($0 - m) }
            let total = e.reduce(0, +)
            let want = (0..<d).map { i in (0..<n).reduce(0.0) { $0 + e[$1] / total * Double(values[$1 * stride + i]) } }
            for level in KernelLevel.supported where level >= .avx512 {
                // The positions as two runs, split anywhere: the same as one.
                for split in [0, n / 3, n] {
                    var scores = [Float](repeating: 0, count: n)
                    var out = [Float](repeating: .nan, count: d)
                    let done = keys.withUnsafeBufferPointer { k in
                        values.withUnsafeBufferPointer { v in
                            let (k0, v0) = (k.baseAddress!, v.baseAddress!)
                            return level.attend(
                                q: q, before: (k0, v0, split),
                                own: (k0 + split * stride, v0 + split * stride, n - split),
                                stride: stride, headDim: d, scale: scale, scores: &scores, out: &out)
                        }
                    }
                    #expect(done)
                    let worst = zip(out, want).map { abs(Double($0) - $1) }.max()!
                    #expect(worst < 1e-5, "\(level.name) d \(d), n \(n), split \(split): \(worst)")
                }
            }
        }
        var scratch: [Float] = [0]
        var out: [Float] = [0]
        let one: [Float] = [1]
        let attended = one.withUnsafeBufferPointer { p in
            KernelLevel.avx2.attend(
                q: p.baseAddress!, before: (p.baseAddress!, p.baseAddress!, 1),
                own: (p.baseAddress!, p.baseAddress!, 0),
                stride: 1, headDim: 1, scale: 1, scores: &scratch, out: &out)
        }
        #expect(!attended, "below AVX-512 the Swift code attends")
    }
}

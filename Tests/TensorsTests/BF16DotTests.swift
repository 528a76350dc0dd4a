import Testing

@testable import Tensors

/// The bf16 dot-product kernel (AVX-512 BF16) against f64 sums on shapes with every kind of tail:
/// split activations (the default) lose almost nothing; rounding them to bf16 (llama.cpp's way,
/// `AV_BF16_ACTIVATIONS=bf16`) loses visibly more.
@Suite("bf16 dot product")
struct BF16DotTests {
    @Test(
        "split activations stay within 2e-5 of the f64 result; bf16-rounded ones within 1e-2, and worse",
        .enabled(if: KernelLevel.detected >= .avx512bf16))
    func accuracy() {
        var state: UInt64 = 12345
        func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
        }
        for (rows, cols, tokens) in [(7, 45, 5), (13, 64, 13), (4, 576, 6), (9, 1003, 8)] {
            // Weights are bf16 values; activations are full f32.
            let w = (0..<(rows * cols)).map { _ in UInt16(next().bitPattern >> 16) }
            let x = (0..<(tokens * cols)).map { _ in next() }
            var errors: [Double] = []
            for hiOnly in [false, true] {
                var y = [Float](repeating: .nan, count: tokens * rows)
                let split = BF16Activations(x, tokens: tokens, cols: cols, level: .avx512bf16, hiOnly: hiOnly)!
                #expect(KernelLevel.avx512bf16.matmul(bf16: w, rows: rows, x: split, y: &y, yStride: rows))
                var worst = 0.0
                for t in 0..<tokens {
                    for r in 0..<rows {
                        var exact = 0.0
                        var scale = 0.0
                        for i in 0..<cols {
                            let p = Double(Float(bitPattern: UInt32(w[r * cols + i]) << 16)) * Double(x[t * cols + i])
                            exact += p
                            scale += abs(p)
                        }
                        worst = max(worst, abs(Double(y[t * rows + r]) - exact) / scale)
                    }
                }
                errors.append(worst)
            }
            #expect(errors[0] < 2e-5, "split, \(rows)×\(cols), \(tokens) tokens: \(errors[0])")
            #expect(errors[1] < 1e-2 && errors[1] > 10 * errors[0], "bf16, \(rows)×\(cols): \(errors)")
        }
        #expect(BF16Activations([1], tokens: 1, cols: 1, level: .avx512) == nil, "only the bf16 level splits")
    }
}

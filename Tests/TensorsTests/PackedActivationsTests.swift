import AVTestSupport
import Testing

@testable import Tensors

/// The AVX-512 panel kernels (packed activations, 12-row tiles) against f64 sums on shapes with every
/// kind of tail — rows not a multiple of 12, tokens not a multiple of 16 or 32, odd widths — and
/// the promise that a result does not depend on its row range, the other tokens or the threads.
@Suite("Panel kernels")
struct PackedActivationsTests {
    /// (rows, cols, tokens) with every kind of tail. The last two are wide (1,101 columns, odd) and
    /// long (270 tokens, 17 panels): a kernel that splits the columns or the tokens into blocks must
    /// join them back exactly.
    static let shapes = [
        (7, 45, 5), (13, 64, 17), (25, 576, 33), (12, 33, 48), (9, 1003, 8), (30, 10, 2), (14, 1101, 40),
        (5, 600, 270),
    ]

    /// `W x` on the panel kernel at `level`: weights given as f32 values (bf16 when `bf16`).
    func product(
        _ w: [Float], bf16: Bool, rows: Int, cols: Int, x: [Float], tokens: Int, level: KernelLevel, hiOnly: Bool,
        threads: Int = 1
    ) -> [Float]? {
        let dtype: DType = bf16 ? .bf16 : .f32
        guard
            let packed = PackedActivations(
                x, tokens: tokens, cols: cols, weights: dtype, level: level, hiOnly: hiOnly, threads: threads)
        else { return nil }
        var y = [Float](repeating: .nan, count: tokens * rows)
        let bits = w.map { UInt16($0.bitPattern >> 16) }
        let ok = y.withUnsafeMutableBufferPointer { yb in
            bf16
                ? bits.withUnsafeBytes {
                    level.matmul(
                        $0.baseAddress!, rows: rows, x: packed, y: yb.baseAddress!, yStride: rows, threads: threads)
                }
                : w.withUnsafeBytes {
                    level.matmul(
                        $0.baseAddress!, rows: rows, x: packed, y: yb.baseAddress!, yStride: rows, threads: threads)
                }
        }
        return ok ? y : nil
    }

    /// The largest error of `y` against f64 sums, relative to the sum of the products' magnitudes.
    func worstError(_ y: [Float], _ w: [Float], rows: Int, cols: Int, x: [Float], tokens: Int) -> Double {
        var worst = 0.0
        for t in 0..<tokens {
            for r in 0..<rows {
                var exact = 0.0
                var scale = 0.0
                for i in 0..<cols {
                    let p = Double(w[r * cols + i]) * Double(x[t * cols + i])
                    exact += p
                    scale += abs(p)
                }
                worst = max(worst, abs(Double(y[t * rows + r]) - exact) / scale)
            }
        }
        return worst
    }

    @Test("f32 weights: within 1e-6 of the f64 result", .enabled(if: KernelLevel.detected >= .avx512))
    func f32Accuracy() throws {
        var g = TestRandom(seed: 7)
        for (rows, cols, tokens) in Self.shapes {
            let w = (0..<(rows * cols)).map { _ in g.float() }
            let x = (0..<(tokens * cols)).map { _ in g.float() }
            let y = try #require(
                product(w, bf16: false, rows: rows, cols: cols, x: x, tokens: tokens, level: .avx512, hiOnly: false))
            let error = worstError(y, w, rows: rows, cols: cols, x: x, tokens: tokens)
            #expect(error < 1e-6, "\(rows)×\(cols), \(tokens) tokens: \(error)")
        }
    }

    @Test(
        "bf16 weights: split activations within 2e-5 of the f64 result; bf16-rounded ones within 1e-2, and worse",
        .enabled(if: KernelLevel.detected >= .avx512bf16))
    func bf16Accuracy() throws {
        var g = TestRandom(seed: 12345)
        for (rows, cols, tokens) in Self.shapes {
            // Weights are bf16 values; activations are full f32.
            let w = (0..<(rows * cols)).map { _ in Float(bitPattern: g.float().bitPattern & 0xFFFF_0000) }
            let x = (0..<(tokens * cols)).map { _ in g.float() }
            var errors: [Double] = []
            for hiOnly in [false, true] {
                let y = try #require(
                    product(
                        w, bf16: true, rows: rows, cols: cols, x: x, tokens: tokens, level: .avx512bf16,
                        hiOnly: hiOnly))
                errors.append(worstError(y, w, rows: rows, cols: cols, x: x, tokens: tokens))
            }
            #expect(errors[0] < 2e-5, "split, \(rows)×\(cols), \(tokens) tokens: \(errors[0])")
            #expect(errors[1] < 1e-2 && errors[1] > 10 * errors[0], "bf16, \(rows)×\(cols): \(errors)")
        }
    }

    @Test(
        "a result is the same bytes whatever its rows, the other tokens or the threads",
        .enabled(if: KernelLevel.detected >= .avx512))
    func independence() throws {
        var g = TestRandom(seed: 99)
        // 613 columns (odd, 307 bf16 pairs) and 270 tokens (17 panels); tokens 254..<259 alone straddle
        // the border of panels 15 and 16.
        let (rows, cols, tokens) = (29, 613, 270)
        let w = (0..<(rows * cols)).map { _ in Float(bitPattern: g.float().bitPattern & 0xFFFF_0000) }
        let x = (0..<(tokens * cols)).map { _ in g.float() }
        let layouts =
            KernelLevel.detected >= .avx512bf16 ? [(false, false), (true, false), (true, true)] : [(false, false)]
        for (bf16, hiOnly) in layouts {
            let level: KernelLevel = bf16 ? .avx512bf16 : .avx512
            let all = try #require(
                product(w, bf16: bf16, rows: rows, cols: cols, x: x, tokens: tokens, level: level, hiOnly: hiOnly))
            // Proven to have run split over the pool's threads (not alone because another test held it).
            let threaded = onThreads(2, "panel product", counts: Parallel.takePoolCounts) {
                product(
                    w, bf16: bf16, rows: rows, cols: cols, x: x, tokens: tokens, level: level, hiOnly: hiOnly,
                    threads: 2)
            }
            #expect(threaded == all, "bf16 \(bf16), hi only \(hiOnly): threads change bytes")
            // Rows 5..<20 alone, and tokens 254..<259 alone (packing and products on three threads above).
            let someRows = Array(w[(5 * cols)..<(20 * cols)])
            let part = try #require(
                product(someRows, bf16: bf16, rows: 15, cols: cols, x: x, tokens: tokens, level: level, hiOnly: hiOnly))
            let someTokens = Array(x[(254 * cols)..<(259 * cols)])
            let few = try #require(
                product(
                    w, bf16: bf16, rows: rows, cols: cols, x: someTokens, tokens: 5, level: level, hiOnly: hiOnly))
            for t in 0..<tokens {
                for r in 5..<20 { #expect(part[t * 15 + r - 5] == all[t * rows + r], "row \(r), token \(t)") }
            }
            for t in 0..<5 {
                for r in 0..<rows {
                    #expect(few[t * rows + r] == all[(254 + t) * rows + r], "row \(r), token \(254 + t)")
                }
            }
        }
    }

    @Test(
        "f32: each result is one fused multiply-add per column in order, on wide rows and many panels",
        .enabled(if: KernelLevel.detected >= .avx512))
    func f32SumInOrder() throws {
        var g = TestRandom(seed: 5)
        let (rows, cols, tokens) = (13, 1100, 277)
        let w = (0..<(rows * cols)).map { _ in g.float() }
        let x = (0..<(tokens * cols)).map { _ in g.float() }
        let y = try #require(
            product(w, bf16: false, rows: rows, cols: cols, x: x, tokens: tokens, level: .avx512, hiOnly: false))
        var mismatches = 0
        for t in 0..<tokens {
            for r in 0..<rows {
                var sum: Float = 0
                for i in 0..<cols { sum = sum.addingProduct(w[r * cols + i], x[t * cols + i]) }
                if sum.bitPattern != y[t * rows + r].bitPattern { mismatches += 1 }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(rows * tokens) results differ from the sum in order")
    }

    @Test("levels without the kernel pack nothing")
    func unsupported() {
        #expect(PackedActivations([1], tokens: 1, cols: 1, weights: .f32, level: .avx2) == nil)
        #expect(PackedActivations([1], tokens: 1, cols: 1, weights: .bf16, level: .avx512) == nil)
        #expect(PackedActivations([1], tokens: 1, cols: 1, weights: .f16, level: .avx512bf16) == nil)
    }
}

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
        var random = TestRandom(seed: 99)
        func next() -> Float { random.float(2) }
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

    @Test(
        "a block of queries gives each the bytes the one-query kernel gives it",
        .enabled(if: KernelLevel.detected >= .avx512))
    func blockEqualsSingle() throws {
        var random = TestRandom(seed: 5)
        func next() -> Float { random.float(2) }
        for (d, n, stride, counts) in [
            (64, 13, 192, [1, 2, 3, 4, 5, 6, 7, 8]), (24, 0, 40, [9, 3, 17]), (7, 5, 9, [1]),
        ] {
            let nq = counts.count
            let positions = n + counts.max()!
            let keys = (0..<(positions * stride)).map { _ in next() }
            let values = (0..<(positions * stride)).map { _ in next() }
            let queries = (0..<nq).map { _ in (0..<d).map { _ in next() } }
            let scale = 1 / Float(d).squareRoot()
            let width = positions + 3
            var blockOut = [[Float]](repeating: [Float](repeating: .nan, count: d), count: nq)
            var scores = [Float](repeating: 0, count: nq * width)
            try keys.withUnsafeBufferPointer { k in
                try values.withUnsafeBufferPointer { v in
                    let (k0, v0) = (k.baseAddress!, v.baseAddress!)
                    let own = (k0 + n * stride, v0 + n * stride)
                    let q = queries.map { row in
                        let p = UnsafeMutablePointer<Float>.allocate(capacity: d)
                        p.initialize(from: row, count: d)
                        return p
                    }
                    let out = (0..<nq).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: d) }
                    defer { (q + out).forEach { $0.deallocate() } }
                    let done = KernelLevel.avx512.attend(
                        block: q.map { UnsafePointer($0) }, outputs: out, before: (k0, v0, n), own: own,
                        counts: counts, stride: stride, headDim: d, scale: scale, scores: &scores, width: width)
                    try #require(done)
                    for i in 0..<nq { blockOut[i] = Array(UnsafeBufferPointer(start: out[i], count: d)) }
                    for i in 0..<nq {
                        var single = [Float](repeating: .nan, count: d)
                        var scratch = [Float](repeating: 0, count: width)
                        _ = KernelLevel.avx512.attend(
                            q: q[i], before: (k0, v0, n), own: (own.0, own.1, counts[i]), stride: stride, headDim: d,
                            scale: scale, scores: &scratch, out: &single)
                        #expect(blockOut[i] == single, "d \(d), query \(i) of \(nq) (\(counts[i]) own positions)")
                    }
                }
            }
        }
        let one: [Float] = [1]
        var scratch: [Float] = [0]
        let none = one.withUnsafeBufferPointer { p in
            KernelLevel.avx512.attend(
                block: [], outputs: [], before: (p.baseAddress!, p.baseAddress!, 1),
                own: (p.baseAddress!, p.baseAddress!),
                counts: [], stride: 1, headDim: 1, scale: 1, scores: &scratch, width: 1)
        }
        #expect(!none, "an empty block is refused")
    }
}

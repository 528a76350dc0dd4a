import AVTestSupport
import Foundation
import Testing

@testable import Inference
@testable import Tensors

/// Every kernel level this CPU runs (forced, as AV_KERNELS does) against the portable Swift path and
/// against transformers: the same logits within 1e-4 of their range, bytes independent of threads.
@Suite("Kernel levels: AVX-512, AVX2+FMA and portable")
struct KernelLevelTests {
    @Test(
        "each level matches transformers and the portable path, for f32 and bf16 weights",
        arguments: ["llama", "llama_bf16", "mistral", "qwen2"])
    func levelsAgree(name: String) throws {
        // bf16 weights: against transformers run in f32 on the same weights.
        let file = modelFixture(name) + (name.hasSuffix("bf16") ? "/reference_f32.json" : "/reference.json")
        let ref = try JSONDecoder().decode(ModelReference.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
        let model = try LlamaModel(directory: modelFixture(name))
        model.kernels = .portable
        let portable = try model.forward(ref.ids, cache: model.makeCache(), allLogits: true)
        let range = ref.logits.max()! - ref.logits.min()!
        #expect(!KernelLevel.supported.isEmpty && KernelLevel.supported.first == .portable)
        for level in KernelLevel.supported {
            model.kernels = level
            var outputs: [[Float]] = []
            for threads in [1, 2] {
                model.threads = threads
                outputs.append(
                    try onThreads(threads, "\(name) \(level.name) prefill") {
                        try model.forward(ref.ids, cache: model.makeCache(), allLogits: true)
                    })
            }
            #expect(outputs[0] == outputs[1], "\(name) \(level.name): bytes depend on the thread count")
            let logits = outputs[0]
            let toPortable = zip(logits, portable).map { abs($0 - $1) }.max()!
            let toReference = zip(logits, ref.logits).map { abs($0 - $1) }.max()!
            #expect(toPortable <= 1e-4 * range, "\(name) \(level.name): \(toPortable) from portable")
            #expect(toReference <= 1e-4 * range, "\(name) \(level.name): \(toReference) from transformers")
            // Decode (one vector at a time, on the persistent pool with two threads) agrees with the
            // prefill, and gives the same bytes as on one thread.
            var decoded: [[Float]] = []
            for threads in [1, 2] {
                model.threads = threads
                // The portable level decodes a short prompt on the caller alone (no C product, attention
                // under 32 positions): nothing there runs on the pool.
                decoded.append(
                    try onThreads(level == .portable ? 1 : threads, "\(name) \(level.name) decode") {
                        let cache = model.makeCache()
                        var steps: [Float] = []
                        for id in ref.ids { steps += try model.forward([id], cache: cache) }
                        return steps
                    })
            }
            #expect(decoded[0] == decoded[1], "\(name) \(level.name): decode bytes depend on the thread count")
            let stepwise = decoded[1]
            let last = Array(logits.suffix(model.config.vocabSize))
            #expect(zip(stepwise.suffix(model.config.vocabSize), last).map { abs($0 - $1) }.max()! <= 1e-4 * range)
        }
    }

    @Test("decode past 32 positions (attention split over the threads) gives the same bytes on 1 and 2 threads")
    func decodePast32() throws {
        let model = try LlamaModel(directory: modelFixture("llama"))
        let prompt = (0..<40).map { 1 + ($0 * 7) % (model.config.vocabSize - 1) }
        for level in KernelLevel.supported {
            model.kernels = level
            var runs: [[Float]] = []
            for threads in [1, 2] {
                model.threads = threads
                runs.append(
                    try onThreads(threads, "\(level.name) decode past 32") {
                        let cache = model.makeCache()
                        var logits = try model.forward(prompt, cache: cache)
                        // Positions 40…51: every step's attention sees more than 32 positions.
                        for step in 0..<12 { logits += try model.forward([2 + step], cache: cache) }
                        return logits
                    })
            }
            #expect(runs[0] == runs[1], "\(level.name): decode past 32 positions depends on the thread count")
        }
    }

    @Test("the C kernels give each row and vector the sum the portable code gives, odd shapes included")
    func oddShapes() throws {
        for level in KernelLevel.supported where level != .portable {
            for (rows, cols, tokens) in [(1, 1, 1), (3, 17, 5), (9, 33, 7), (5, 100, 13), (64, 576, 3)] {
                var g = SplitMixTestRandom(seed: UInt64(rows * 1000 + cols))
                let w = (0..<(rows * cols)).map { _ in g.float() }
                let x = (0..<(tokens * cols)).map { _ in g.float() }
                var y = [Float](repeating: .nan, count: tokens * rows)
                let bf16 = w.map { FloatBits.floatToBF16($0) }
                for dtype in [DType.f32, .bf16] {
                    let ok = (dtype == .f32 ? w.withUnsafeBytes { Array($0) } : bf16.withUnsafeBytes { Array($0) })
                        .withUnsafeBytes { wb in
                            x.withUnsafeBufferPointer { xb in
                                y.withUnsafeMutableBufferPointer { yb in
                                    level.matmul(
                                        wb.baseAddress!, dtype: dtype, rows: rows, cols: cols, x: xb.baseAddress!,
                                        tokens: tokens, y: yb.baseAddress!, yStride: rows)
                                }
                            }
                        }
                    #expect(ok)
                    for t in 0..<tokens {
                        for r in 0..<rows {
                            var exact = 0.0
                            for k in 0..<cols {
                                let wk = dtype == .f32 ? w[r * cols + k] : FloatBits.bf16ToFloat(bf16[r * cols + k])
                                exact += Double(wk) * Double(x[t * cols + k])
                            }
                            #expect(
                                abs(Double(y[t * rows + r]) - exact) <= 1e-5 * Double(cols), "\(level.name) \(dtype)")
                        }
                    }
                }
            }
        }
    }
}

/// A small deterministic generator for test data.
struct SplitMixTestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func float() -> Float {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Float((z ^ (z >> 31)) >> 40) / Float(1 << 24) * 2 - 1
    }
}

/// `onThreads` with this process's pool counts.
func onThreads<T>(_ threads: Int, _ what: String, _ body: () throws -> T) rethrows -> T {
    try onThreads(threads, what, counts: Parallel.takePoolCounts, body)
}

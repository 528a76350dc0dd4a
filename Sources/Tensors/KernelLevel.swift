import CKernels

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The instruction set the matrix kernels run on: the C kernels' AVX-512 (with or without the bf16
/// dot product) or AVX2+FMA variants, or the portable Swift code (arm64, older x86). Picked once
/// from the CPU; `AV_KERNELS=portable|avx2|avx512|avx512bf16` forces a level (for tests and
/// benchmarks; a level the CPU lacks falls back to the best it has).
public enum KernelLevel: Int, Sendable, CaseIterable, Comparable {
    case portable = 0
    case avx2 = 1
    case avx512 = 2
    /// AVX-512 with the bf16 dot product (vdpbf16ps), which prefill uses for bf16 weights.
    case avx512bf16 = 3

    /// The name `--version` prints and `AV_KERNELS` takes.
    public var name: String {
        switch self {
        case .portable: "portable"
        case .avx2: "avx2"
        case .avx512: "avx512"
        case .avx512bf16: "avx512bf16"
        }
    }

    /// The best level this CPU runs.
    public static let detected = KernelLevel(rawValue: Int(av_kernels_detect())) ?? .portable

    /// The level in use: `AV_KERNELS` when set and supported, else `detected`.
    public static let current: KernelLevel = {
        guard let text = ProcessInfo.processInfo.environment["AV_KERNELS"], !text.isEmpty,
            let wanted = allCases.first(where: { $0.name == text.lowercased() })
        else { return detected }
        return Swift.min(wanted, detected)
    }()

    /// The levels this CPU can run, for tests that compare them.
    public static var supported: [KernelLevel] { allCases.filter { $0 <= detected } }

    /// Levels order by capability: portable < avx2 < avx512 < avx512bf16.
    public static func < (a: KernelLevel, b: KernelLevel) -> Bool { a.rawValue < b.rawValue }

    /// `y[r] = W[r] · x` for one vector `x`, the rows split into `threads` fixed slices run by a
    /// persistent pool of spinning threads (a decode step is too short for a dispatch per product).
    /// The same bytes on any thread count. Returns false for the portable level or another dtype.
    public func matvec(
        _ w: UnsafeRawPointer, dtype: DType, rows: Int, cols: Int, x: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>, threads: Int
    ) -> Bool {
        guard self != .portable, dtype == .f32 || dtype == .bf16 else { return false }
        return av_matmul_vector_pool(Int32(rawValue), dtype == .bf16 ? 1 : 0, w, rows, cols, x, y, Int32(threads)) != 0
    }

    /// `gate[i] = silu(gate[i]) · up[i]` for `count` values, silu(g) = g / (1 + e^-g) with a vector
    /// e^x within 2 ulp of libm's. Returns false, doing nothing, below AVX-512.
    public func swiGLU(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) -> Bool {
        av_swiglu(Int32(rawValue), gate, up, count) != 0
    }

    /// log Σ e^x over `count` ≥ 1 values: the largest, m, plus log Σ e^(x − m), each term from a vector
    /// e^x within 3 ulp and summed in f64 in a fixed order (within ~1e-6 of the exact value). Nil below
    /// AVX-512, where callers compute it in f64 with libm.
    public func logSumExp(_ x: UnsafePointer<Float>, count: Int) -> Double? {
        var out = 0.0
        return av_log_sum_exp(Int32(rawValue), x, count, &out) != 0 ? out : nil
    }

    /// A run of cached positions for `attend`: its first key and value row, and how many rows.
    public typealias AttentionRun = (keys: UnsafePointer<Float>, values: UnsafePointer<Float>, count: Int)

    /// One query's attention over two runs of cached positions (`before`, then `own`; rows `stride`
    /// apart): softmax of `scale · q · key` over every position of both, then the weighted sum of
    /// their values into `out` (`headDim` values); `scores` holds scratch for all positions.
    /// Returns false, doing nothing, below AVX-512.
    public func attend(
        q: UnsafePointer<Float>, before: AttentionRun, own: AttentionRun, stride: Int, headDim: Int, scale: Float,
        scores: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>
    ) -> Bool {
        av_attend(
            Int32(rawValue), q, before.keys, before.values, before.count, own.keys, own.values, own.count, stride,
            headDim, scale, scores, out) != 0
    }

    /// The most queries `attend(block:…)` takes at once.
    public static let attendBlock = Int(AV_ATTEND_BLOCK)

    /// `attend` for up to `attendBlock` queries that share both runs' starts: query `i` sees every
    /// position of `before` and the first `counts[i]` of `own`; each result is the bytes `attend` gives
    /// that query alone, the keys and values read once for all. `scores` holds `queries.count` rows
    /// of `width` floats. Returns false, doing nothing, below AVX-512.
    public func attend(
        block queries: [UnsafePointer<Float>], outputs: [UnsafeMutablePointer<Float>], before: AttentionRun,
        own: (keys: UnsafePointer<Float>, values: UnsafePointer<Float>), counts: [Int], stride: Int, headDim: Int,
        scale: Float, scores: UnsafeMutablePointer<Float>, width: Int
    ) -> Bool {
        let q = queries.map { Optional($0) }
        let out = outputs.map { Optional($0) }
        return av_attend_block(
            Int32(rawValue), queries.count, q, out, before.keys, before.values, before.count, own.keys, own.values,
            counts, stride, headDim, scale, scores, width) != 0
    }

    /// `y[t · yStride + r] = W[r] · x[t]` for `rows` rows of `W` (f32 or bf16, row-major, `cols` wide)
    /// and `tokens` vectors `x` (f32, `cols` each), with this level's C kernel. Returns false, doing
    /// nothing, for the portable level or another dtype: the caller then runs its Swift code.
    public func matmul(
        _ w: UnsafeRawPointer, dtype: DType, rows: Int, cols: Int, x: UnsafePointer<Float>, tokens: Int,
        y: UnsafeMutablePointer<Float>, yStride: Int
    ) -> Bool {
        guard self != .portable else { return false }
        switch dtype {
        case .f32:
            return av_matmul_f32(
                Int32(rawValue), w.assumingMemoryBound(to: Float.self), rows, cols, x, tokens, y, yStride) != 0
        case .bf16:
            return av_matmul_bf16(
                Int32(rawValue), w.assumingMemoryBound(to: UInt16.self), rows, cols, x, tokens, y, yStride) != 0
        default:
            return false
        }
    }
}

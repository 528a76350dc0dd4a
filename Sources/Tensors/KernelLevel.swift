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

    /// This level's kernels: a table of C function pointers filled once per level, an entry nil
    /// where the level has no kernel for it (the caller runs its Swift code instead).
    public var kernels: UnsafePointer<av_kernels> { Self.tables[rawValue] }

    /// One table per level, filled on first use and kept for the process.
    nonisolated(unsafe) private static let tables: [UnsafePointer<av_kernels>] = allCases.map { level in
        let table = UnsafeMutablePointer<av_kernels>.allocate(capacity: 1)
        av_kernels_fill(Int32(level.rawValue), table)
        return UnsafePointer(table)
    }

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
        guard dtype == .f32 || dtype == .bf16 else { return false }
        return av_matmul_vector_pool(kernels, dtype == .bf16 ? 1 : 0, w, rows, cols, x, y, Int32(threads)) != 0
    }

    /// `gate[i] = silu(gate[i]) · up[i]` for `count` values, silu(g) = g / (1 + e^-g) with a vector
    /// e^x within 2 ulp of libm's. Returns false, doing nothing, below AVX-512.
    public func swiGLU(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) -> Bool {
        guard let swiglu = kernels.pointee.swiglu else { return false }
        swiglu(gate, up, count)
        return true
    }

    /// log Σ e^x over `count` ≥ 1 values: the largest, m, plus log Σ e^(x − m), each term from a vector
    /// e^x within 3 ulp and summed in f64 in a fixed order (within ~1e-6 of the exact value). Nil below
    /// AVX-512, where callers compute it in f64 with libm.
    public func logSumExp(_ x: UnsafePointer<Float>, count: Int) -> Double? {
        guard count > 0, let logSumExp = kernels.pointee.log_sum_exp else { return nil }
        return logSumExp(x, count)
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
        guard let attend = kernels.pointee.attend else { return false }
        return attend(
            q, before.keys, before.values, before.count, own.keys, own.values, own.count, stride, headDim, scale,
            scores, out) != 0
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
        guard let attendBlock = kernels.pointee.attend_block else { return false }
        let q = queries.map { Optional($0) }
        let out = outputs.map { Optional($0) }
        return attendBlock(
            queries.count, q, out, before.keys, before.values, before.count, own.keys, own.values, counts, stride,
            headDim, scale, scores, width) != 0
    }

    /// `y[t · yStride + r] = W[r] · x[t]` for `rows` rows of `W` (f32 or bf16, row-major, `cols` wide)
    /// and `tokens` vectors `x` (f32, `cols` each), with this level's C kernel. Returns false, doing
    /// nothing, for the portable level or another dtype: the caller then runs its Swift code.
    public func matmul(
        _ w: UnsafeRawPointer, dtype: DType, rows: Int, cols: Int, x: UnsafePointer<Float>, tokens: Int,
        y: UnsafeMutablePointer<Float>, yStride: Int
    ) -> Bool {
        switch dtype {
        case .f32:
            guard let matmul = kernels.pointee.matmul_f32 else { return false }
            matmul(w.assumingMemoryBound(to: Float.self), rows, cols, x, tokens, y, yStride)
        case .bf16:
            guard let matmul = kernels.pointee.matmul_bf16 else { return false }
            matmul(w.assumingMemoryBound(to: UInt16.self), rows, cols, x, tokens, y, yStride)
        default:
            return false
        }
        return true
    }
}

import CKernels

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The activations of one matrix product packed for the AVX-512 prefill kernels: panels of 16
/// tokens, one per vector lane, so a register tile broadcasts weights against them (no horizontal
/// sums). Made once per product and read by every thread.
///
/// For f32 weights the values stay f32. For bf16 weights on the bf16 dot product each value is split
/// into two bf16 parts, hi + lo, that keep 16 of its 24 significant bits (its error is within 2^-17
/// of it), so a product with a bf16 weight loses what an f32 product would, nearly; or, with
/// `hiOnly`, rounded to bf16 alone.
public final class PackedActivations: @unchecked Sendable {
    /// Tokens packed (rows of the input).
    public let tokens: Int
    /// Features per token (columns of the input).
    public let cols: Int
    /// bf16 weights: the products use the hi parts alone (activations rounded to bf16).
    public let hiOnly: Bool
    /// The dtype of the weights these activations were packed for.
    public let weights: DType
    let layout: Int32
    let values: UnsafeMutableRawPointer

    /// `AV_BF16_ACTIVATIONS=bf16`: products with bf16 weights use the hi parts alone, activations
    /// rounded to bf16 as llama.cpp rounds them (half the products, so faster, and no longer within
    /// 1e-4 of f32 results). The default, `split`, keeps both parts.
    public static let hiOnlyDefault = ProcessInfo.processInfo.environment["AV_BF16_ACTIVATIONS"] == "bf16"

    /// `x` (`tokens` rows of `cols`) packed for weights of `dtype` at `level`, on up to `threads` of
    /// the persistent pool; nil when the level has no panel kernel for it (f32 needs AVX-512, bf16
    /// the bf16 dot product; other dtypes none).
    public init?(
        _ x: UnsafePointer<Float>, tokens: Int, cols: Int, weights dtype: DType, level: KernelLevel,
        hiOnly: Bool = hiOnlyDefault, threads: Int = 1
    ) {
        switch dtype {
        case .f32: layout = Int32(AV_PANEL_F32.rawValue)
        case .bf16: layout = Int32((hiOnly ? AV_PANEL_BF16_HI : AV_PANEL_BF16_SPLIT).rawValue)
        default: return nil
        }
        // The level's table has a packer for the layouts it multiplies (f32 from AVX-512, bf16 from
        // its bf16 dot product).
        guard let pack = Self.entry(level.kernels.pointee.panel_pack, Int(layout)) else { return nil }
        guard tokens > 0, cols > 0 else { return nil }
        self.tokens = tokens
        self.cols = cols
        self.hiOnly = dtype == .bf16 && hiOnly
        weights = dtype
        values = .allocate(byteCount: av_panel_bytes(layout, tokens, cols), alignment: 64)
        pack(x, tokens, cols, values, Int32(Parallel.clamped(threads)))
    }

    deinit { values.deallocate() }

    /// Entry `index` of a C array of three entries (Swift imports it as a tuple).
    private static func entry<T>(_ entries: (T?, T?, T?), _ index: Int) -> T? {
        [entries.0, entries.1, entries.2][index]
    }
}

extension KernelLevel {
    /// `y[t · yStride + r] = W[r] · x[t]` for `rows` rows of `W` (`x.cols` wide, in the dtype `x` was
    /// packed for) on the panel kernels, the rows split into `threads` fixed slices run by the
    /// persistent pool (decode's). Each result is the same bytes whatever the row range, the other
    /// tokens or the threads. Returns false, doing nothing, where `PackedActivations` is nil.
    public func matmul(
        _ w: UnsafeRawPointer, rows: Int, x: PackedActivations, y: UnsafeMutablePointer<Float>, yStride: Int,
        threads: Int = 1
    ) -> Bool {
        av_panel_matmul_pool(
            kernels, x.layout, w, rows, x.cols, x.values, x.tokens, y, yStride, Int32(Parallel.clamped(threads))) != 0
    }
}

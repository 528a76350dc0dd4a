import CKernels

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Activations prepared for the bf16 dot product: each value split into two bf16 parts, hi + lo,
/// that keep 16 of its 24 significant bits (its error is within 2^-17 of it), so a product with a
/// bf16 weight loses what an f32 product would, nearly. Made once per matrix product and read by
/// every thread.
public final class BF16Activations: @unchecked Sendable {
    public let tokens: Int
    public let cols: Int
    /// Products use the hi parts alone.
    public let hiOnly: Bool
    let values: UnsafeMutablePointer<UInt16>

    /// `AV_BF16_ACTIVATIONS=bf16`: products use the hi parts alone, activations rounded to bf16 as
    /// llama.cpp rounds them (half the products, so faster, and no longer within 1e-4 of f32
    /// results). The default, `split`, keeps both parts.
    public static let hiOnlyDefault = ProcessInfo.processInfo.environment["AV_BF16_ACTIVATIONS"] == "bf16"

    /// `x` (`tokens` rows of `cols`) split at `level`; nil when the level has no bf16 dot product.
    public init?(
        _ x: UnsafePointer<Float>, tokens: Int, cols: Int, level: KernelLevel, hiOnly: Bool = hiOnlyDefault
    ) {
        guard level >= .avx512bf16 else { return nil }
        self.tokens = tokens
        self.cols = cols
        self.hiOnly = hiOnly
        values = .allocate(capacity: max(1, tokens * av_bf16_split_stride(cols)))
        guard av_bf16_split(Int32(level.rawValue), x, tokens, cols, values) != 0 else {
            values.deallocate()
            return nil
        }
    }

    deinit { values.deallocate() }
}

extension KernelLevel {
    /// `y[t · yStride + r] = W[r] · x[t]` for `rows` rows of bf16 `W` (`x.cols` wide) on the bf16 dot
    /// product. Returns false, doing nothing, below `avx512bf16`.
    public func matmul(
        bf16 w: UnsafeRawPointer, rows: Int, x: BF16Activations, y: UnsafeMutablePointer<Float>, yStride: Int
    ) -> Bool {
        av_matmul_bf16_split(
            Int32(rawValue), w.assumingMemoryBound(to: UInt16.self), rows, x.cols, x.values, x.tokens, y, yStride,
            x.hiOnly ? 1 : 0) != 0
    }
}

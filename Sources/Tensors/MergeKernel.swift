import CKernels

/// The merge engine's inner loops at this kernel level: `base + Σ λ·Δ` in f64 and its rounding to
/// the output dtype, with the same arithmetic as the portable Swift path, so every level writes the
/// same bytes. Each function returns nil (or false), doing nothing, where the level's kernel table has
/// no such kernel (the portable level): the caller then runs its Swift loop.
extension KernelLevel {
    /// Counts of one stored block.
    public struct MergeCounts: Sendable {
        /// Elements stored: the first `done` of the block, a multiple of 8; the caller stores the rest.
        public var done: Int
        /// Elements whose f64 sum differs bitwise from the widened base.
        public var changed: Int
        /// Elements stored as Inf or NaN where the base was finite.
        public var nonFinite: Int
        /// Changed elements stored as the base's own bits (the output dtype rounded the change away).
        public var same: Int
    }

    /// `acc[i] = base[i] + Σ scale · delta[i]` for `count` elements, in f64, term by term, each
    /// product and sum rounded separately. Deltas are f32 or bf16 (`bf16: true`).
    public func mergeAccumulate(
        base: UnsafePointer<Float>, count: Int, deltas: [(pointer: UnsafeRawPointer, bf16: Bool, scale: Double)],
        into acc: UnsafeMutablePointer<Double>
    ) -> Bool {
        guard let accumulate = kernels.pointee.merge_accumulate else { return false }
        let pointers: [UnsafeRawPointer?] = deltas.map(\.pointer)
        let kinds = deltas.map { Int32($0.bf16 ? 1 : 0) }
        let scales = deltas.map(\.scale)
        accumulate(base, count, pointers, kinds, scales, deltas.count, acc)
        return true
    }

    /// `out[i] = acc[i]` rounded once to f32, or to bf16 (`outBF16`) through a round-to-odd f32,
    /// NaN quieted, for the first `done` elements; `base` is the base as f32 (`baseBF16`: stored as
    /// bf16, so a bf16 output's bits compare with it).
    public func mergeStore(
        _ acc: UnsafePointer<Double>, base: UnsafePointer<Float>, count: Int, out: UnsafeMutableRawPointer,
        outBF16: Bool, baseBF16: Bool
    ) -> MergeCounts? {
        guard let store = kernels.pointee.merge_store else { return nil }
        var c = av_merge_counts()
        store(acc, base, count, out, outBF16 ? 1 : 0, baseBF16 ? 1 : 0, &c)
        return MergeCounts(done: c.done, changed: Int(c.changed), nonFinite: Int(c.non_finite), same: Int(c.same))
    }
}

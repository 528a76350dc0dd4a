import Dispatch
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Memory that holds one mixed tensor.
public final class TensorBuffer: @unchecked Sendable {
    /// The first byte, 64-byte aligned.
    public let pointer: UnsafeMutableRawPointer
    /// Bytes held.
    public let count: Int

    init(count: Int) {
        self.count = count
        pointer = .allocate(byteCount: max(count, 1), alignment: 64)
    }

    deinit { pointer.deallocate() }
}

/// `base + Σ λ·AV` for every tensor some AV changes, in memory and in the base's dtype: the bytes
/// `merge` would write, for evaluating a mix without writing it. Tensors no AV touches are left out.
///
/// `checked: true` says the caller already checked these vectors' digests and the base's content
/// against them in an earlier mix of the same loaded files (a sweep's next point): neither is
/// hashed again. Structure and compatibility are checked every time.
public func mixTensors(
    base: Checkpoint, terms: [MergeTerm], threads: Int, force: Bool = false, method: MergeMethod = .linear,
    checked: Bool = false
) throws(AVError) -> [String: TensorBuffer] {
    try method.validate()
    let terms = MergeTerm.counting(terms, layersOf: base)
    let structure = try checkCompatible(base: base, terms: terms, force: force)
    if !force, !checked, let expected = terms.first?.vector.header.base.content {
        // The same content check as merge's, over the whole base (merge gets it from its one pass).
        let content = XXHash64.hex(base.contentFingerprint(threads: threads))
        if content != expected {
            throw .baseMismatch(
                av: terms[0].vector.path, recorded: terms[0].vector.header.base.fingerprint,
                given: "\(structure):\(content)", basePath: base.path)
        }
    }
    let engine = MergeEngine(threads: threads, base: base, dtype: nil)
    var out: [String: TensorBuffer] = [:]
    for info in base.tensors {
        let active = try MergeEngine.terms(terms, for: info, method: method, base: { base.values(info) })
        guard !active.isEmpty, let view = base.view(info.name) else { continue }
        let buffer = TensorBuffer(count: info.byteCount)
        let size = info.dtype.byteSize!
        let perChunk = ContentFingerprint.chunkBytes / size
        let chunks = (info.elementCount + perChunk - 1) / perChunk
        let bp = view.bytes.baseAddress!
        let residuals = active.map(\.residuals)
        let runCount = AVDigest.runs(info.elementCount)
        var termRuns = [UInt64](repeating: 0, count: runCount * active.count)
        termRuns.withUnsafeMutableBufferPointer { runs in
            Parallel.forEach(chunks, threads: threads) { w, c in
                let lo = c * perChunk
                let n = min(info.elementCount, lo + perChunk) - lo
                for (k, t) in active.enumerated() where t.vector != nil && !checked {
                    let s = t.dtype.byteSize!
                    AVDigest.hashRuns(
                        t.bytes.baseAddress! + lo * s, first: lo, count: n, elementSize: s,
                        into: UnsafeMutableBufferPointer(rebasing: runs[(k * runCount)..<((k + 1) * runCount)]))
                }
                _ = MergeEngine.chunk(
                    base: bp + lo * size, dtype: info.dtype, count: n,
                    terms: active.indices.map { k in
                        (
                            MergeEngine.pointer(
                                active, k, base: active[k].bytes.baseAddress ?? bp, first: lo, count: n,
                                scratch: engine.scratch[w]),
                            active[k].dtype, active[k].scale
                        )
                    },
                    outDType: info.dtype, out: buffer.pointer + lo * size, scratch: engine.scratch[w], first: lo,
                    residuals: residuals)
            }
        }
        for (k, t) in active.enumerated() where !checked {
            try t.vector?.verify(info.name, runs: Array(termRuns[(k * runCount)..<((k + 1) * runCount)]))
        }
        out[info.name] = buffer
    }
    return out
}

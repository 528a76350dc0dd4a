import Dispatch
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Runs merge's per-tensor work: chunks in parallel batches, output written in order.
final class MergeEngine {
    /// One vector's part in a tensor: its deltas (mapped, decoded per chunk, or computed in memory
    /// by a merge method), coefficient and exact remainders.
    struct Term {
        /// The AV the deltas are read from in place (digests checked as they stream); nil when they
        /// were decoded or combined, and checked, before.
        var vector: AlignmentVector?
        var bytes: UnsafeRawBufferPointer
        var file: SafeTensorsFile?
        /// The dtype the engine adds: the stored dtype, or f32 for decoded sparse and 1-bit deltas.
        var dtype: DType
        var scale: Double
        var residuals: (indices: [Int], values: [Double])?
        var decoder: DeltaDecoder?
        /// Keeps memory computed for the term alive.
        var owner: AnyObject?
    }

    let threads: Int
    let scratch: [Scratch]
    let output: UnsafeMutableRawPointer
    let chunkOutBytes: Int

    /// The terms that change `tensor`: vectors that hold it, with a coefficient other than 0.
    static func terms(_ terms: [MergeTerm], for tensor: String) throws(AVError) -> [Term] {
        var active: [Term] = []
        for t in terms where t.coefficient != 0 {
            guard let delta = t.vector.delta(tensor) else { continue }
            guard case .dense(let v) = delta.storage else {
                active.append(
                    Term(
                        bytes: UnsafeRawBufferPointer(start: nil, count: 0), dtype: .f32, scale: t.coefficient,
                        decoder: try DeltaDecoder(vector: t.vector, tensor: delta)))
                continue
            }
            active.append(
                Term(
                    vector: t.vector, bytes: t.vector.file.bytes(of: v), file: t.vector.file, dtype: v.dtype,
                    scale: t.coefficient, residuals: try t.vector.residuals(of: tensor)))
        }
        return active
    }

    /// The terms of `tensor` under `method`: as they are for linear; for TIES and DARE one term,
    /// the combined delta in f64 (every term's delta read whole, digests checked; a vector without
    /// the tensor counts as a zero delta, as a model without a change does in mergekit).
    static func terms(_ terms: [MergeTerm], for tensor: TensorInfo, method: MergeMethod) throws(AVError) -> [Term] {
        guard !method.isLinear else { return try self.terms(terms, for: tensor.name) }
        let used = terms.filter { $0.coefficient != 0 }
        // No vector changes the tensor: nothing to combine (and nothing read).
        guard used.contains(where: { $0.vector.delta(tensor.name) != nil }) else { return [] }
        var deltas: [[Double]] = []
        for t in used {
            deltas.append(
                try t.vector.delta(tensor.name).map { d throws(AVError) in try t.vector.deltaValues(d) }
                    ?? [Double](repeating: 0, count: tensor.elementCount))
        }
        let combined = method.combine(
            tensor: tensor.name, deltas: deltas, weights: used.map(\.coefficient), domains: used.map(\.vector.domain))
        let buffer = TensorBuffer(count: combined.count * 8)
        combined.withUnsafeBytes { buffer.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return [
            Term(
                bytes: UnsafeRawBufferPointer(start: buffer.pointer, count: buffer.count), dtype: .f64, scale: 1,
                owner: buffer)
        ]
    }

    /// The pointer to term `k`'s deltas for elements `lo..<lo + n`: in place, or decoded into the
    /// worker's buffer.
    static func pointer(
        _ terms: [Term], _ k: Int, base: UnsafeRawPointer, first lo: Int, count n: Int, scratch: Scratch
    ) -> UnsafeRawPointer {
        guard let decoder = terms[k].decoder else { return base + lo * terms[k].dtype.byteSize! }
        let out = scratch.decodeBuffer(k, count: n)
        decoder.decode(from: lo, count: n, into: out)
        return UnsafeRawPointer(out)
    }

    init(threads: Int, base: Checkpoint, dtype: DType?) {
        self.threads = Parallel.clamped(threads)
        scratch = (0..<self.threads).map { _ in Scratch() }
        var most = 8
        for t in base.tensors {
            let size = t.dtype.byteSize ?? 1
            let outSize = Convert.supports(t.dtype) ? (dtype ?? t.dtype).byteSize! : size
            most = max(most, ContentFingerprint.chunkBytes / size * outSize)
        }
        chunkOutBytes = most
        // Two batches of output: one being written while the other is computed.
        output = .allocate(byteCount: most * self.threads * 2, alignment: 64)
    }

    deinit { output.deallocate() }

    func run(
        _ info: TensorInfo, outDType: DType, view: (bytes: UnsafeRawBufferPointer, file: SafeTensorsFile),
        terms: [Term], into writer: TensorStream,
        progress: (Int) -> Void
    ) throws(AVError) -> (merge: TensorMerge, digest: UInt64) {
        let dtype = info.dtype
        let size = dtype.byteSize ?? 1
        let outSize = outDType.byteSize ?? 1
        let elements = info.elementCount
        let copy = terms.isEmpty && outDType == dtype
        // Bytes per chunk of the base: the fingerprint's chunk, so hashing needs no second pass.
        let perChunk = ContentFingerprint.chunkBytes / size
        let chunks = max(1, (view.bytes.count + ContentFingerprint.chunkBytes - 1) / ContentFingerprint.chunkBytes)
        var digests = [UInt64](repeating: 0, count: chunks)
        var stats = [ChunkStats](repeating: ChunkStats(), count: chunks)
        let bp = view.bytes.baseAddress ?? UnsafeRawPointer(output)
        let fileStart = view.file.fileOffset(of: view.file.info(info.name)!)
        let termPointers = terms.map {
            (p: $0.bytes.baseAddress ?? UnsafeRawPointer(output), dtype: $0.dtype, scale: $0.scale)
        }
        let residuals = terms.map(\.residuals)
        // Each term's AV digest runs, hashed as the deltas stream by (term-major).
        let runCount = AVDigest.runs(elements)
        var termRuns = [UInt64](repeating: 0, count: runCount * terms.count)

        let pipeline = WritePipeline()
        try forEachBatch(
            chunks: chunks, threads: threads, output: output, slotBytes: threads * chunkOutBytes, pipeline: pipeline
        ) {
            (first, batch, slot, slotBase) throws(AVError) in
            digests.withUnsafeMutableBufferPointer { dg in
                termRuns.withUnsafeMutableBufferPointer { tr in
                    stats.withUnsafeMutableBufferPointer { st in
                        Parallel.forEach(batch, threads: threads) { w, j in
                            let c = first + j
                            let lo = c * perChunk
                            let n = min(elements, lo + perChunk) - lo
                            dg[c] = XXHash64.hash(UnsafeRawBufferPointer(start: bp + lo * size, count: n * size))
                            for (k, t) in termPointers.enumerated() where terms[k].vector != nil {
                                let runs = UnsafeMutableBufferPointer(
                                    rebasing: tr[(k * runCount)..<((k + 1) * runCount)])
                                let s = t.dtype.byteSize!
                                AVDigest.hashRuns(t.p + lo * s, first: lo, count: n, elementSize: s, into: runs)
                            }
                            if !copy {
                                let local = scratch[w]
                                let chunkTerms = termPointers.indices.map { k in
                                    let t = termPointers[k]
                                    let p = Self.pointer(terms, k, base: t.p, first: lo, count: n, scratch: local)
                                    return (p, t.dtype, t.scale)
                                }
                                st[c] = Self.chunk(
                                    base: bp + lo * size, dtype: dtype, count: n,
                                    terms: chunkTerms,
                                    outDType: outDType, out: slotBase + j * chunkOutBytes, scratch: scratch[w],
                                    first: lo, residuals: residuals)
                            }
                        }
                    }
                }
            }
            // Write in the background (untouched tensors straight from the base's mapping), then let
            // the kernel drop the input pages.
            var pieces: [UnsafeRawBufferPointer] = []
            var done = 0
            for j in 0..<batch {
                let c = first + j
                let lo = c * perChunk
                let n = min(elements, lo + perChunk) - lo
                pieces.append(
                    copy
                        ? UnsafeRawBufferPointer(start: bp + lo * size, count: n * size)
                        : UnsafeRawBufferPointer(start: slotBase + j * chunkOutBytes, count: n * outSize))
                done += n
            }
            let lo = first * perChunk
            var releases = [(view.file, (fileStart + lo * size)..<(fileStart + (lo + done) * size))]
            for t in terms {
                guard let file = t.file, let stored = file.info(info.name) else { continue }
                let s = t.dtype.byteSize!
                let start = file.fileOffset(of: stored)
                releases.append((file, (start + lo * s)..<(start + (lo + done) * s)))
            }
            pipeline.submit(slot) { () throws(SafeTensorsError) in
                for p in pieces { try writer.write(p) }
                for (file, range) in releases { file.mapping.release(range) }
            }
            progress(done * size + terms.reduce(0) { $0 + ($1.decoder == nil ? done * $1.dtype.byteSize! : 0) })
        }
        for (k, t) in terms.enumerated() {
            try t.vector?.verify(info.name, runs: Array(termRuns[(k * runCount)..<((k + 1) * runCount)]))
        }
        var m = TensorMerge(name: info.name, dtype: outDType, elements: elements, terms: terms.count)
        for s in stats {
            m.changed += s.changed
            m.roundedAway += s.roundedAway
            m.nonFinite += s.nonFinite
        }
        return (m, ContentFingerprint.tensorDigest(digests))
    }
}

/// The first position in sorted `a` whose value is at least `x`.
func lowerBound(_ a: [Int], _ x: Int) -> Int {
    var lo = 0
    var hi = a.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if a[mid] < x { lo = mid + 1 } else { hi = mid }
    }
    return lo
}

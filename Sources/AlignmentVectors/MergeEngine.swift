import Dispatch
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Runs merge's per-tensor work on the batch scheduler: chunks in parallel batches, output written
/// in order (or computed in place, for a mix kept in memory).
final class MergeEngine {
    /// One vector's part in a tensor: its deltas (mapped, decoded per chunk, or computed in memory
    /// by a merge method), coefficient and exact remainders.
    struct Term {
        /// The AV the deltas are read from in place (digests checked as they stream); nil when they
        /// were decoded or combined, and checked, before.
        var vector: AlignmentVector?
        var bytes: UnsafeRawBufferPointer
        var file: SafeTensorsFile?
        /// The element type the engine adds: the stored dtype's, or f32 for decoded sparse and 1-bit
        /// deltas, f64 for a method's combined delta.
        var element: ElementType
        /// Its dtype.
        var dtype: DType { element.dtype }
        var scale: Double
        var residuals: (indices: [Int], values: [Double])?
        var decoder: DeltaDecoder?
        /// Keeps memory computed for the term alive.
        var owner: AnyObject?
    }

    /// The batch scheduler and its workers' scratch.
    let scheduler: BatchScheduler
    var scratch: [Scratch] { scheduler.scratch }

    /// The terms that change `tensor`: vectors that hold it, with a coefficient other than 0.
    static func terms(_ terms: [MergeTerm], for tensor: String) throws(AVError) -> [Term] {
        var active: [Term] = []
        for t in terms {
            let coefficient = t.coefficient(for: tensor)
            guard coefficient != 0, let delta = t.vector.delta(tensor) else { continue }
            guard case .dense(let v) = delta.storage else {
                active.append(
                    Term(
                        bytes: UnsafeRawBufferPointer(start: nil, count: 0), element: .f32, scale: coefficient,
                        decoder: try DeltaDecoder(vector: t.vector, tensor: delta)))
                continue
            }
            // An AV's dense deltas are f32, bf16, f16 or f64 (checked when the vector was opened).
            guard let element = ElementType(v.dtype) else {
                throw .usage("\(t.vector.path): tensor \(tensor) holds \(v.dtype.rawValue) deltas, which av cannot add")
            }
            active.append(
                Term(
                    vector: t.vector, bytes: t.vector.file.bytes(of: v), file: t.vector.file, element: element,
                    scale: coefficient, residuals: try t.vector.residuals(of: tensor)))
        }
        return active
    }

    /// The terms of `tensor` under `method`: as they are for linear; for TIES and DARE one term,
    /// the combined delta in f64 (every term's delta read whole, digests checked; a vector without
    /// the tensor counts as a zero delta, as a model without a change does in mergekit).
    /// `base` gives the base tensor's values to the methods that need them (SLERP).
    static func terms(
        _ terms: [MergeTerm], for tensor: TensorInfo, method: MergeMethod, base: (() -> [Double])? = nil
    ) throws(AVError) -> [Term] {
        guard !method.isLinear else { return try self.terms(terms, for: tensor.name) }
        let used = terms.filter { $0.coefficient(for: tensor.name) != 0 }
        if method.kind == .slerp && used.count != 1 {
            throw .usage("slerp interpolates between the base and one vector (λ is mergekit's t)")
        }
        if method.kind == .nuslerp && used.count != 2 {
            throw .usage("nuslerp interpolates exactly two vectors with non-zero λ")
        }
        if method.kind == .modelStock && used.count < 2 {
            throw .usage("model-stock needs at least two vectors with non-zero λ (it weighs their angle)")
        }
        // No vector changes the tensor: nothing to combine (and nothing read).
        guard used.contains(where: { $0.vector.delta(tensor.name) != nil }) else { return [] }
        var deltas: [[Double]] = []
        for t in used {
            deltas.append(
                try t.vector.delta(tensor.name).map { d throws(AVError) in try t.vector.deltaValues(d) }
                    ?? [Double](repeating: 0, count: tensor.elementCount))
        }
        let combined = method.combine(
            tensor: tensor.name, deltas: deltas, weights: used.map { $0.coefficient(for: tensor.name) },
            domains: used.map(\.vector.domain),
            columns: tensor.shape.count >= 2 ? tensor.shape.last : nil, base: method.kind == .slerp ? base?() : nil)
        let buffer = TensorBuffer(count: combined.count * 8)
        combined.withUnsafeBytes { buffer.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return [
            Term(
                bytes: UnsafeRawBufferPointer(start: buffer.pointer, count: buffer.count), element: .f64, scale: 1,
                owner: buffer)
        ]
    }

    /// The pointer to term `k`'s deltas for elements `lo..<lo + n`: in place, or decoded into the
    /// worker's buffer.
    static func pointer(
        _ terms: [Term], _ k: Int, base: UnsafeRawPointer, first lo: Int, count n: Int, scratch: Scratch
    ) -> UnsafeRawPointer {
        guard let decoder = terms[k].decoder else { return base + lo * terms[k].element.size }
        let out = scratch.decodeBuffer(k, count: n)
        decoder.decode(from: lo, count: n, into: out)
        return UnsafeRawPointer(out)
    }

    /// The kernel level of the sums.
    let kernels: KernelLevel

    init(threads: Int, base: Checkpoint, dtype: DType?, kernels: KernelLevel = .current) {
        self.kernels = kernels
        var most = 8
        for t in base.tensors {
            let size = t.dtype.byteSize ?? 1
            let outSize = Convert.supports(t.dtype) ? ElementType(dtype ?? t.dtype)?.size ?? size : size
            most = max(most, ContentFingerprint.chunkBytes / size * outSize)
        }
        scheduler = BatchScheduler(threads: threads, chunkOutBytes: most)
    }

    /// One tensor of the output, in write order: the base's bytes of it and its output dtype.
    struct Job {
        let info: TensorInfo
        let outDType: DType
        let view: (bytes: UnsafeRawBufferPointer, file: SafeTensorsFile)
    }

    /// Merges `jobs` (the writer's tensors, in its order) into `writer` on the batch scheduler.
    /// `terms` gives a tensor's terms when its first chunk is scheduled; `finished` gets each
    /// tensor's counts and content digest, in order, once its vectors' digests have been checked.
    /// `progress` gets the input bytes each batch consumed.
    func run(
        _ jobs: [Job], terms makeTerms: (Job) throws(AVError) -> [Term], into writer: TensorStream,
        progress: (Int) -> Void, finished: (Job, TensorMerge, UInt64) throws(AVError) -> Void
    ) throws(AVError) {
        var index = 0
        try scheduler.run(
            next: { () throws(AVError) -> TensorWork? in
                guard index < jobs.count else { return nil }
                let job = jobs[index]
                index += 1
                let work = TensorWork(
                    job, terms: try makeTerms(job), destination: writer.destination(of: job.info.name),
                    kernels: kernels)
                // A tensor that is computed (not copied) has whole-byte elements in and out: merge
                // changes and converts only the float types of whole bytes.
                guard work.copy || work.kernelTypes != nil else {
                    throw .usage("internal: \(job.info.name) (\(job.info.dtype.rawValue)) cannot be computed")
                }
                return work
            },
            write: { piece throws(SafeTensorsError) in try writer.write(piece) }, progress: progress,
            begin: { _ in nil },
            finish: { w throws(AVError) in
                let (merge, digest) = try w.finish()
                try finished(w.job, merge, digest)
                return nil
            })
    }
}

/// One tensor being merged: its terms, and the digests and counts its chunks leave.
private final class TensorWork: ChunkWork {
    let job: MergeEngine.Job
    let terms: [MergeEngine.Term]
    /// Each term's deltas in place (a placeholder for decoded ones), their dtype and element size,
    /// and its coefficient.
    let pointers: [(p: UnsafeRawPointer, element: ElementType, scale: Double)]
    let residuals: [(indices: [Int], values: [Double])?]
    let base: UnsafeRawPointer
    /// How the tensor divides into chunks.
    let layout: ChunkLayout
    /// The element types in and out, for a tensor the kernels compute (whole bytes both).
    let kernelTypes: (base: ElementType, out: ElementType)?
    let outSize: Int
    let runCount: Int
    /// No term and the same dtype: the base's bytes are written as they are.
    let copy: Bool
    let records: ChunkRecords
    /// Each term's AV digest runs, hashed as the deltas stream by (term-major).
    let termRuns: UnsafeMutableBufferPointer<UInt64>

    /// Where the output is computed in place, for a stream that keeps it in memory.
    let destination: UnsafeMutableRawPointer?

    /// The kernel level of the sums.
    let kernels: KernelLevel

    init(
        _ job: MergeEngine.Job, terms: [MergeEngine.Term], destination: UnsafeMutableRawPointer? = nil,
        kernels: KernelLevel = .current
    ) {
        self.kernels = kernels
        self.job = job
        self.terms = terms
        self.destination = destination
        let placeholder = UnsafeRawPointer(bitPattern: 64)!
        pointers = terms.map { ($0.bytes.baseAddress ?? placeholder, $0.element, $0.scale) }
        kernelTypes = ElementType(job.info.dtype).flatMap { e in ElementType(job.outDType).map { (e, $0) } }
        residuals = terms.map(\.residuals)
        base = job.view.bytes.baseAddress ?? placeholder
        layout = ChunkLayout(elements: job.info.elementCount, dtype: job.info.dtype, byteCount: job.view.bytes.count)
        outSize = job.outDType.byteSize ?? 1
        runCount = AVDigest.runs(layout.elements)
        copy = terms.isEmpty && job.outDType == job.info.dtype && destination == nil
        records = ChunkRecords(chunks: layout.chunks)
        termRuns = .allocate(capacity: max(1, runCount * terms.count))
        termRuns.initialize(repeating: 0)
    }

    deinit {
        termRuns.deallocate()
    }

    /// Input bytes chunk `c` reads in place: the base's and the dense deltas'.
    func inputBytes(_ c: Int) -> Int {
        let n = count(c)
        return n * size + terms.reduce(0) { $0 + ($1.decoder == nil ? n * $1.element.size : 0) }
    }

    func slotBytes(_ c: Int) -> Int { copy || destination != nil ? 0 : count(c) * outSize }

    func baseBytes(_ c: Int) -> Int { count(c) * size }

    /// Hashes one chunk's base bytes and dense deltas, and computes its output (unless the tensor is
    /// copied as it is), block by block: each block is hashed and merged while it is in cache.
    func compute(_ c: Int, slot: UnsafeMutableRawPointer, scratch local: Scratch) {
        let out = destination.map { $0 + c * perChunk * outSize } ?? slot
        let lo = c * perChunk
        let n = count(c)
        let block = copy ? n : Scratch.block
        var baseHash = XXHash64.Stream()
        var runHashes = [XXHash64.Stream](repeating: XXHash64.Stream(), count: terms.count)
        var chunkStats = ChunkStats()
        var off = 0
        while off < n {
            let m = min(block, n - off)
            let first = lo + off
            let bytes = UnsafeRawBufferPointer(start: base + first * size, count: m * size)
            if off + m == n { records.digests[c] = baseHash.finish(bytes) } else { baseHash.update(bytes) }
            // AV digest runs (2^19 elements) end on block boundaries: blocks divide them.
            let runEnds = (first + m) % AVDigest.chunkElements == 0 || first + m == elements
            for (k, t) in pointers.enumerated() where terms[k].vector != nil {
                let deltas = UnsafeRawBufferPointer(start: t.p + first * t.element.size, count: m * t.element.size)
                if runEnds {
                    termRuns[k * runCount + first / AVDigest.chunkElements] = runHashes[k].finish(deltas)
                    runHashes[k] = XXHash64.Stream()
                } else {
                    runHashes[k].update(deltas)
                }
            }
            if !copy, let kernelTypes {
                let blockTerms = pointers.indices.map { k in
                    let t = pointers[k]
                    return KernelTerm(
                        pointer: MergeEngine.pointer(terms, k, base: t.p, first: first, count: m, scratch: local),
                        element: t.element, scale: t.scale)
                }
                let st = MergeEngine.chunk(
                    level: kernels, base: base + first * size, element: kernelTypes.base, count: m, terms: blockTerms,
                    out: kernelTypes.out, into: out + off * outSize, scratch: local, first: first, residuals: residuals)
                chunkStats.changed += st.changed
                chunkStats.roundedAway += st.roundedAway
                chunkStats.nonFinite += st.nonFinite
            }
            off += m
        }
        records.stats[c] = chunkStats
    }

    /// The base's bytes for a copied tensor, the slot's for a computed one, nothing in place.
    func piece(_ c: Int, slot: UnsafeMutableRawPointer) -> UnsafeRawBufferPointer? {
        guard destination == nil else { return nil }
        let n = count(c)
        return copy
            ? UnsafeRawBufferPointer(start: base + c * perChunk * size, count: n * size)
            : UnsafeRawBufferPointer(start: slot, count: n * outSize)
    }

    /// The base's and the mapped deltas' pages of chunk `c`.
    func releases(_ c: Int) -> [(file: SafeTensorsFile, range: Range<Int>)] {
        let lo = c * perChunk
        let n = count(c)
        let file = job.view.file
        let start = file.fileOffset(of: file.info(job.info.name)!)
        var out = [(file, (start + lo * size)..<(start + (lo + n) * size))]
        for (k, t) in terms.enumerated() {
            guard let file = t.file, let stored = file.info(job.info.name) else { continue }
            let start = file.fileOffset(of: stored)
            let size = pointers[k].element.size
            out.append((file, (start + lo * size)..<(start + (lo + n) * size)))
        }
        return out
    }

    /// Checks each vector's digests, then sums the counts: the tensor's merge record and content digest.
    func finish() throws(AVError) -> (TensorMerge, UInt64) {
        for (k, t) in terms.enumerated() {
            try t.vector?.verify(
                job.info.name, runs: Array(termRuns[(k * runCount)..<((k + 1) * runCount)]))
        }
        var m = TensorMerge(name: job.info.name, dtype: job.outDType, elements: elements, terms: terms.count)
        for s in records.stats {
            m.changed += s.changed
            m.roundedAway += s.roundedAway
            m.nonFinite += s.nonFinite
        }
        return (m, records.contentDigest)
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

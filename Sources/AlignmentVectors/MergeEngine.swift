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
        for t in terms {
            let coefficient = t.coefficient(for: tensor)
            guard coefficient != 0, let delta = t.vector.delta(tensor) else { continue }
            guard case .dense(let v) = delta.storage else {
                active.append(
                    Term(
                        bytes: UnsafeRawBufferPointer(start: nil, count: 0), dtype: .f32, scale: coefficient,
                        decoder: try DeltaDecoder(vector: t.vector, tensor: delta)))
                continue
            }
            active.append(
                Term(
                    vector: t.vector, bytes: t.vector.file.bytes(of: v), file: t.vector.file, dtype: v.dtype,
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

    /// One tensor of the output, in write order: the base's bytes of it and its output dtype.
    struct Job {
        let info: TensorInfo
        let outDType: DType
        let view: (bytes: UnsafeRawBufferPointer, file: SafeTensorsFile)
    }

    /// Merges `jobs` (the writer's tensors, in its order) into `writer`: chunks of one tensor or of
    /// several small ones computed in parallel batches, each batch written in the background while
    /// the next is computed. `terms` gives a tensor's terms when its first chunk is scheduled;
    /// `finished` gets each tensor's counts and content digest, in order, once its vectors' digests
    /// have been checked. `progress` gets the input bytes each batch consumed.
    func run(
        _ jobs: [Job], terms makeTerms: (Job) throws(AVError) -> [Term], into writer: TensorStream,
        progress: (Int) -> Void, finished: (Job, TensorMerge, UInt64) throws(AVError) -> Void
    ) throws(AVError) {
        let pipeline = WritePipeline()
        do throws(AVError) {
            try schedule(
                jobs, terms: makeTerms, pipeline: pipeline, into: writer, progress: progress, finished: finished)
            do { try pipeline.drain() } catch { throw .file(error) }
        } catch {
            try? pipeline.drain()
            throw error
        }
    }

    /// A chunk of a tensor and where its output goes in the batch's slot.
    private struct Unit {
        let work: TensorWork
        let chunk: Int
        let offset: Int
    }

    private func schedule(
        _ jobs: [Job], terms makeTerms: (Job) throws(AVError) -> [Term], pipeline: WritePipeline,
        into writer: TensorStream, progress: (Int) -> Void, finished: (Job, TensorMerge, UInt64) throws(AVError) -> Void
    ) throws(AVError) {
        let slotBytes = threads * chunkOutBytes
        let inputBudget = threads * ContentFingerprint.chunkBytes
        var jobIndex = 0
        var chunk = 0
        var current: TensorWork? = try jobs.first.map { j throws(AVError) in
            TensorWork(j, terms: try makeTerms(j), destination: writer.destination(of: j.info.name))
        }
        var batchIndex = 0
        while current != nil {
            let slot = batchIndex % 2
            batchIndex += 1
            do { try pipeline.claim(slot) } catch { throw .file(error) }
            let slotBase = output + slot * slotBytes
            var units: [Unit] = []
            var complete: [TensorWork] = []
            var used = (output: 0, input: 0)
            while let w = current {
                let n = w.count(chunk)
                let outBytes = w.copy || w.destination != nil ? 0 : (n * w.outSize + 63) / 64 * 64
                if !units.isEmpty && (used.output + outBytes > slotBytes || used.input + n * w.size > inputBudget) {
                    break
                }
                units.append(Unit(work: w, chunk: chunk, offset: used.output))
                used.output += outBytes
                used.input += n * w.size
                chunk += 1
                if chunk == w.chunks {
                    complete.append(w)
                    jobIndex += 1
                    chunk = 0
                    current =
                        jobIndex < jobs.count
                        ? TensorWork(
                            jobs[jobIndex], terms: try makeTerms(jobs[jobIndex]),
                            destination: writer.destination(of: jobs[jobIndex].info.name)) : nil
                }
            }
            Parallel.forEachBalanced(units.count, threads: threads) { w, j in
                let u = units[j]
                let out = u.work.destination.map { $0 + u.chunk * u.work.perChunk * u.work.outSize }
                compute(u, into: out ?? slotBase + u.offset, scratch: scratch[w])
            }
            submitWrites(units, slotBase: slotBase, slot: slot, pipeline: pipeline, into: writer)
            progress(units.reduce(0) { $0 + $1.work.inputBytes($1.chunk) })
            for w in complete {
                let (merge, digest) = try w.finish()
                try finished(w.job, merge, digest)
            }
        }
    }

    /// Hashes one chunk's base bytes and dense deltas, and computes its output (unless the tensor is
    /// copied as it is), block by block: each block is hashed and merged while it is in cache.
    private func compute(_ u: Unit, into out: UnsafeMutableRawPointer, scratch local: Scratch) {
        let w = u.work
        let lo = u.chunk * w.perChunk
        let n = w.count(u.chunk)
        let size = w.size
        let block = w.copy ? n : Scratch.block
        var baseHash = XXHash64.Stream()
        var runHashes = [XXHash64.Stream](repeating: XXHash64.Stream(), count: w.terms.count)
        var stats = ChunkStats()
        var off = 0
        while off < n {
            let m = min(block, n - off)
            let first = lo + off
            let bytes = UnsafeRawBufferPointer(start: w.base + first * size, count: m * size)
            if off + m == n { w.digests[u.chunk] = baseHash.finish(bytes) } else { baseHash.update(bytes) }
            // AV digest runs (2^19 elements) end on block boundaries: blocks divide them.
            let runEnds = (first + m) % AVDigest.chunkElements == 0 || first + m == w.elements
            for (k, t) in w.pointers.enumerated() where w.terms[k].vector != nil {
                let s = t.dtype.byteSize!
                let deltas = UnsafeRawBufferPointer(start: t.p + first * s, count: m * s)
                if runEnds {
                    w.termRuns[k * w.runCount + first / AVDigest.chunkElements] = runHashes[k].finish(deltas)
                    runHashes[k] = XXHash64.Stream()
                } else {
                    runHashes[k].update(deltas)
                }
            }
            if !w.copy {
                let blockTerms = w.pointers.indices.map { k in
                    let t = w.pointers[k]
                    return (
                        Self.pointer(w.terms, k, base: t.p, first: first, count: m, scratch: local), t.dtype, t.scale
                    )
                }
                let st = Self.chunk(
                    base: w.base + first * size, dtype: w.job.info.dtype, count: m, terms: blockTerms,
                    outDType: w.job.outDType, out: out + off * w.outSize, scratch: local, first: first,
                    residuals: w.residuals)
                stats.changed += st.changed
                stats.roundedAway += st.roundedAway
                stats.nonFinite += st.nonFinite
            }
            off += m
        }
        w.stats[u.chunk] = stats
    }

    /// Queues the batch's writes (copied tensors straight from the base's mapping), then the release
    /// of the input pages they were computed from, adjacent ranges of a file released together.
    private func submitWrites(
        _ units: [Unit], slotBase: UnsafeMutableRawPointer, slot: Int, pipeline: WritePipeline,
        into writer: TensorStream
    ) {
        var pieces: [UnsafeRawBufferPointer] = []
        var releases: [(file: SafeTensorsFile, range: Range<Int>)] = []
        func release(_ file: SafeTensorsFile, _ range: Range<Int>) {
            if let last = releases.last, last.file === file, range.lowerBound - last.range.upperBound < 4096,
                range.lowerBound >= last.range.lowerBound
            {
                releases[releases.count - 1].range =
                    last.range.lowerBound..<max(last.range.upperBound, range.upperBound)
            } else {
                releases.append((file, range))
            }
        }
        for u in units {
            let w = u.work
            let lo = u.chunk * w.perChunk
            let n = w.count(u.chunk)
            // A tensor computed in place (an in-memory mix) is not written.
            if w.destination == nil {
                pieces.append(
                    w.copy
                        ? UnsafeRawBufferPointer(start: w.base + lo * w.size, count: n * w.size)
                        : UnsafeRawBufferPointer(start: slotBase + u.offset, count: n * w.outSize))
            }
            let file = w.job.view.file
            let start = file.fileOffset(of: file.info(w.job.info.name)!)
            release(file, (start + lo * w.size)..<(start + (lo + n) * w.size))
            for t in w.terms {
                guard let file = t.file, let stored = file.info(w.job.info.name) else { continue }
                let s = t.dtype.byteSize!
                let start = file.fileOffset(of: stored)
                release(file, (start + lo * s)..<(start + (lo + n) * s))
            }
        }
        pipeline.submit(slot) { () throws(SafeTensorsError) in
            for p in pieces { try writer.write(p) }
            for r in releases { r.file.mapping.release(r.range) }
        }
    }
}

/// One tensor being merged: its terms, and the digests and counts its chunks leave.
private final class TensorWork {
    let job: MergeEngine.Job
    let terms: [MergeEngine.Term]
    let pointers: [(p: UnsafeRawPointer, dtype: DType, scale: Double)]
    let residuals: [(indices: [Int], values: [Double])?]
    let base: UnsafeRawPointer
    let size: Int
    let outSize: Int
    let elements: Int
    /// Elements per chunk: the fingerprint's chunk of the base, so hashing needs no second pass.
    let perChunk: Int
    let chunks: Int
    let runCount: Int
    /// No term and the same dtype: the base's bytes are written as they are.
    let copy: Bool
    let digests: UnsafeMutableBufferPointer<UInt64>
    let stats: UnsafeMutableBufferPointer<ChunkStats>
    /// Each term's AV digest runs, hashed as the deltas stream by (term-major).
    let termRuns: UnsafeMutableBufferPointer<UInt64>

    /// Where the output is computed in place, for a stream that keeps it in memory.
    let destination: UnsafeMutableRawPointer?

    init(_ job: MergeEngine.Job, terms: [MergeEngine.Term], destination: UnsafeMutableRawPointer? = nil) {
        self.job = job
        self.terms = terms
        self.destination = destination
        let placeholder = UnsafeRawPointer(bitPattern: 64)!
        pointers = terms.map { ($0.bytes.baseAddress ?? placeholder, $0.dtype, $0.scale) }
        residuals = terms.map(\.residuals)
        base = job.view.bytes.baseAddress ?? placeholder
        size = job.info.dtype.byteSize ?? 1
        outSize = job.outDType.byteSize ?? 1
        elements = job.info.elementCount
        perChunk = ContentFingerprint.chunkBytes / size
        chunks = max(1, (job.view.bytes.count + ContentFingerprint.chunkBytes - 1) / ContentFingerprint.chunkBytes)
        runCount = AVDigest.runs(elements)
        copy = terms.isEmpty && job.outDType == job.info.dtype && destination == nil
        digests = .allocate(capacity: chunks)
        digests.initialize(repeating: 0)
        stats = .allocate(capacity: chunks)
        stats.initialize(repeating: ChunkStats())
        termRuns = .allocate(capacity: max(1, runCount * terms.count))
        termRuns.initialize(repeating: 0)
    }

    deinit {
        digests.deallocate()
        stats.deallocate()
        termRuns.deallocate()
    }

    /// Elements in chunk `c`.
    func count(_ c: Int) -> Int { min(elements, (c + 1) * perChunk) - c * perChunk }

    /// Input bytes chunk `c` reads in place: the base's and the dense deltas'.
    func inputBytes(_ c: Int) -> Int {
        let n = count(c)
        return n * size + terms.reduce(0) { $0 + ($1.decoder == nil ? n * $1.dtype.byteSize! : 0) }
    }

    /// Checks each vector's digests, then sums the counts: the tensor's merge record and content digest.
    func finish() throws(AVError) -> (TensorMerge, UInt64) {
        for (k, t) in terms.enumerated() {
            try t.vector?.verify(
                job.info.name, runs: Array(termRuns[(k * runCount)..<((k + 1) * runCount)]))
        }
        var m = TensorMerge(name: job.info.name, dtype: job.outDType, elements: elements, terms: terms.count)
        for s in stats {
            m.changed += s.changed
            m.roundedAway += s.roundedAway
            m.nonFinite += s.nonFinite
        }
        return (m, ContentFingerprint.tensorDigest(Array(digests)))
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

import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs diff's per-tensor work: a tensor's chunks in parallel batches, output written in order; or,
/// for tensors of one chunk (most of a small model's), several tensors at once, one a worker.
final class DiffEngine {
    let threads: Int
    let scratch: [Scratch]
    let output: UnsafeMutableRawPointer
    let chunkOutBytes: Int

    init(threads: Int, plans: [DiffPlan]) {
        self.threads = Parallel.clamped(threads)
        scratch = (0..<self.threads).map { _ in Scratch() }
        var most = 8
        for p in plans where p.float {
            let elements = ContentFingerprint.chunkBytes / p.base.dtype.byteSize!
            most = max(most, elements * p.storage.byteSize!)
        }
        chunkOutBytes = most
        // Two batches of output: one being written while the other is computed.
        output = .allocate(byteCount: most * self.threads * 2, alignment: 64)
    }

    deinit { output.deallocate() }

    func run(
        _ plan: DiffPlan, base: (bytes: UnsafeRawBufferPointer, file: SafeTensorsFile),
        aligned: (bytes: UnsafeRawBufferPointer, file: SafeTensorsFile), writer: ReservedHeaderWriter,
        progress: (Int) -> Void
    ) throws(AVError) -> (
        diff: TensorDiff, baseDigest: UInt64, alignedDigest: UInt64, avDigest: UInt64, residuals: [(Int, Double)]
    ) {
        let bt = plan.base.dtype
        let size = bt.byteSize!
        let storage = plan.storage
        let ssize = storage.byteSize!
        let elements = plan.base.elementCount
        let perChunk = ContentFingerprint.chunkBytes / size
        let chunks = max(1, (elements + perChunk - 1) / perChunk)
        let alignedChunks = max(
            1, (aligned.bytes.count + ContentFingerprint.chunkBytes - 1) / ContentFingerprint.chunkBytes)
        var baseDigests = [UInt64](repeating: 0, count: chunks)
        var alignedDigests = [UInt64](repeating: 0, count: alignedChunks)
        var stats = [ChunkStats](repeating: ChunkStats(), count: chunks)
        var residuals = [[(Int, Double)]](repeating: [], count: chunks)
        var avRuns = [UInt64](repeating: 0, count: AVDigest.runs(elements))
        let bp = base.bytes.baseAddress ?? UnsafeRawPointer(output)
        let ap = aligned.bytes.baseAddress ?? UnsafeRawPointer(output)
        let baseFileStart = base.file.fileOffset(of: base.file.info(plan.name)!)
        let alignedFileStart = aligned.file.fileOffset(of: aligned.file.info(plan.name)!)

        let pipeline = WritePipeline()
        try forEachBatch(
            chunks: chunks, threads: threads, output: output, slotBytes: threads * chunkOutBytes, pipeline: pipeline
        ) {
            (first, batch, slot, slotBase) throws(AVError) in
            baseDigests.withUnsafeMutableBufferPointer { bd in
                alignedDigests.withUnsafeMutableBufferPointer { ad in
                    stats.withUnsafeMutableBufferPointer { st in
                        residuals.withUnsafeMutableBufferPointer { rs in
                            avRuns.withUnsafeMutableBufferPointer { ar in
                                Parallel.forEach(batch, threads: threads) { w, j in
                                    let c = first + j
                                    let lo = c * perChunk
                                    let n = min(elements, lo + perChunk) - lo
                                    bd[c] = XXHash64.hash(
                                        UnsafeRawBufferPointer(start: bp + lo * size, count: n * size))
                                    let aLo = c * ContentFingerprint.chunkBytes
                                    let aHi = min(aligned.bytes.count, aLo + ContentFingerprint.chunkBytes)
                                    if c < ad.count {
                                        ad[c] = XXHash64.hash(
                                            UnsafeRawBufferPointer(start: ap + aLo, count: max(0, aHi - aLo)))
                                    }
                                    st[c] = Self.chunk(
                                        base: bp + lo * size, aligned: ap + lo * size, count: n, dtype: bt,
                                        storage: storage,
                                        out: slotBase + j * chunkOutBytes, scratch: scratch[w], first: lo,
                                        residuals: &rs[c])
                                    // The AV's own checksum, from the deltas just computed.
                                    AVDigest.hashRuns(
                                        slotBase + j * chunkOutBytes, first: lo, count: n, elementSize: ssize, into: ar)
                                }
                            }
                        }
                    }
                }
            }
            // Write the batch's deltas in order in the background, then let the kernel drop the input pages.
            var pieces: [UnsafeRawBufferPointer] = []
            var written = 0
            for j in 0..<batch {
                let c = first + j
                let n = min(elements, c * perChunk + perChunk) - c * perChunk
                pieces.append(UnsafeRawBufferPointer(start: slotBase + j * chunkOutBytes, count: n * ssize))
                written += n * size
            }
            let lo = first * perChunk * size
            let baseRange = (baseFileStart + lo)..<(baseFileStart + lo + written)
            let alignedRange = (alignedFileStart + lo)..<(alignedFileStart + lo + written)
            pipeline.submit(slot) { () throws(SafeTensorsError) in
                for p in pieces { try writer.write(p) }
                base.file.mapping.release(baseRange)
                aligned.file.mapping.release(alignedRange)
            }
            progress(2 * written)
        }
        // Rows only the aligned model has (dropped) are still part of its fingerprint.
        for c in chunks..<alignedChunks {
            let aLo = c * ContentFingerprint.chunkBytes
            let aHi = min(aligned.bytes.count, aLo + ContentFingerprint.chunkBytes)
            alignedDigests[c] = XXHash64.hash(UnsafeRawBufferPointer(start: ap + aLo, count: aHi - aLo))
        }

        return (
            Self.summarize(plan, stats), ContentFingerprint.tensorDigest(baseDigests),
            ContentFingerprint.tensorDigest(alignedDigests), AVDigest.combine(avRuns), residuals.flatMap { $0 }
        )
    }

    /// The tensor's measurements from its chunks' counts, reduced in chunk order.
    static func summarize(_ plan: DiffPlan, _ stats: [ChunkStats]) -> TensorDiff {
        var d = TensorDiff(
            name: plan.name, dtype: plan.base.dtype, shape: plan.base.shape, elements: plan.base.elementCount,
            droppedRows: plan.droppedRows)
        var sumD = 0.0
        var sumB = 0.0
        for s in stats {
            d.changed += s.changed
            sumD += s.sumDelta2
            sumB += s.sumBase2
            d.maxAbsDelta = max(d.maxAbsDelta, s.maxAbs)
            d.lostInBF16 += s.lost
            d.mismatches += s.mismatches
            d.maxULP = max(d.maxULP, s.maxULP)
            d.residuals += s.residuals
            d.signedZeros += s.signedZeros
        }
        d.deltaNorm = sumD.squareRoot()
        d.baseNorm = sumB.squareRoot()
        return d
    }

    /// A tensor of one chunk (most of a small model's): computed beside other such tensors, one a
    /// worker, by `runSingles`, instead of alone on one thread.
    static func isSingle(_ plan: DiffPlan) -> Bool {
        plan.float && plan.droppedRows == 0 && plan.base.elementCount > 0
            && plan.base.byteCount <= ContentFingerprint.chunkBytes
    }

    /// How many single-chunk tensors `runSingles` takes at once: the output buffer's chunks.
    var singlesCapacity: Int { 2 * threads }

    /// What `runSingles` gives for one tensor: what `run` returns, and its deltas (in the engine's
    /// output buffer, valid until the next call).
    typealias Single = (
        diff: TensorDiff, baseDigest: UInt64, alignedDigest: UInt64, avDigest: UInt64, residuals: [(Int, Double)],
        deltas: UnsafeRawBufferPointer
    )

    /// Diffs single-chunk tensors (`isSingle`, at most `singlesCapacity`) in parallel, one a worker,
    /// each exactly as `run` diffs it, and releases their input pages; the caller writes the deltas.
    func runSingles(
        _ plans: [DiffPlan],
        views: [(
            base: (bytes: UnsafeRawBufferPointer, file: SafeTensorsFile),
            aligned: (bytes: UnsafeRawBufferPointer, file: SafeTensorsFile)
        )]
    ) -> [Single] {
        precondition(plans.count <= singlesCapacity && plans.allSatisfy(Self.isSingle))
        var results = [Single?](repeating: nil, count: plans.count)
        results.withUnsafeMutableBufferPointer { out in
            Parallel.forEachBalanced(plans.count, threads: threads) { w, i in
                let plan = plans[i]
                let (base, aligned) = views[i]
                let n = plan.base.elementCount
                let ssize = plan.storage.byteSize!
                let deltas = output + i * chunkOutBytes
                var residuals: [(Int, Double)] = []
                let stats = Self.chunk(
                    base: base.bytes.baseAddress!, aligned: aligned.bytes.baseAddress!, count: n,
                    dtype: plan.base.dtype, storage: plan.storage, out: deltas, scratch: scratch[w], first: 0,
                    residuals: &residuals)
                var avRuns = [UInt64](repeating: 0, count: AVDigest.runs(n))
                avRuns.withUnsafeMutableBufferPointer {
                    AVDigest.hashRuns(deltas, first: 0, count: n, elementSize: ssize, into: $0)
                }
                out[i] = (
                    Self.summarize(plan, [stats]), ContentFingerprint.tensorDigest([XXHash64.hash(base.bytes)]),
                    ContentFingerprint.tensorDigest([XXHash64.hash(aligned.bytes)]), AVDigest.combine(avRuns),
                    residuals, UnsafeRawBufferPointer(start: deltas, count: n * ssize)
                )
            }
        }
        // Released from this thread once the workers are done: released while another worker faults
        // pages of the same files in, the unmapping and its TLB flushes cost more than the diff.
        for (plan, view) in zip(plans, views) {
            for (bytes, file) in [view.base, view.aligned] {
                let start = file.fileOffset(of: file.info(plan.name)!)
                file.mapping.release(start..<(start + bytes.count))
            }
        }
        return results.map { $0! }
    }
}

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

/// Runs diff's per-tensor work: chunks in parallel batches, output written in order.
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

        var d = TensorDiff(
            name: plan.name, dtype: bt, shape: plan.base.shape, elements: elements, droppedRows: plan.droppedRows)
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
        return (
            d, ContentFingerprint.tensorDigest(baseDigests), ContentFingerprint.tensorDigest(alignedDigests),
            AVDigest.combine(avRuns),
            residuals.flatMap { $0 }
        )
    }
}

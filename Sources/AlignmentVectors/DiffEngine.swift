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

/// A checkpoint's bytes of one tensor and the file they are mapped from.
typealias TensorView = (bytes: UnsafeRawBufferPointer, file: SafeTensorsFile)

/// Runs diff's per-tensor work on the batch scheduler merge uses: a large tensor's chunks in
/// parallel batches, several small tensors' chunks side by side, the deltas written in order with
/// each tensor's start and end, the input pages released once written.
final class DiffEngine {
    let scheduler: BatchScheduler

    init(threads: Int, plans: [DiffPlan]) {
        var most = 8
        for p in plans {
            guard let e = p.elements else { continue }
            most = max(most, ContentFingerprint.chunkBytes / e.base.size * e.storage.size)
        }
        scheduler = BatchScheduler(threads: threads, chunkOutBytes: most)
    }

    /// What one tensor's diff gives: its measurements, the digests of both models' bytes and of
    /// the deltas, and the exact remainders of values f32 deltas cannot rebuild.
    typealias Result = (
        diff: TensorDiff, baseDigest: UInt64, alignedDigest: UInt64, avDigest: UInt64, residuals: [(Int, Double)]
    )

    /// Diffs the float tensors `specs` (the writer's order) into `writer`: each begun, its deltas
    /// written, then ended (kept when it changed). `finished` hears each tensor's result, in order,
    /// once its chunks are computed; `progress` the input bytes read.
    func run(
        _ specs: [TensorSpec], plans: [String: DiffPlan], views: (String) -> (base: TensorView, aligned: TensorView),
        writer: ReservedHeaderWriter, progress: (Int) -> Void, finished: (DiffPlan, Result) -> Void
    ) throws(AVError) {
        var index = 0
        try scheduler.run(
            next: { () throws(AVError) -> DiffWork? in
                guard index < specs.count else { return nil }
                let spec = specs[index]
                index += 1
                // The writer's candidates are the float plans: anything else is a bug, said as one.
                guard let plan = plans[spec.name], let elements = plan.elements else {
                    throw .usage("internal: \(spec.name) is not a floating-point tensor to diff")
                }
                let (base, aligned) = views(spec.name)
                return DiffWork(plan, elements: elements, spec: spec, base: base, aligned: aligned)
            },
            write: { piece throws(SafeTensorsError) in try writer.write(piece) }, progress: progress,
            begin: { w in { () throws(SafeTensorsError) in try writer.begin(w.spec) } },
            finish: { w in
                let r = w.finish()
                finished(w.plan, r)
                let keep = r.diff.stored
                return { () throws(SafeTensorsError) in try writer.end(keep: keep) }
            })
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

}

/// One tensor being diffed: each chunk's digests of both models, counts, exact remainders and AV
/// digest runs, filled by the workers (each chunk its own slots).
final class DiffWork: ChunkWork {
    let plan: DiffPlan
    let spec: TensorSpec
    let base: TensorView
    let aligned: TensorView
    /// How the tensor divides into chunks.
    let layout: ChunkLayout
    /// The tensor's element type and the deltas'.
    let element: ElementType
    let storage: ElementType
    var storageSize: Int { storage.size }
    /// Chunks of the aligned tensor's bytes, more than the base's when rows were dropped.
    let alignedChunks: Int
    /// The base's chunk digests and the chunks' counts.
    let records: ChunkRecords
    let alignedDigests: UnsafeMutableBufferPointer<UInt64>
    let residuals: UnsafeMutableBufferPointer<[(Int, Double)]>
    /// The AV's digest runs of this tensor's deltas (`runCount` of the buffer).
    let avRuns: UnsafeMutableBufferPointer<UInt64>
    let runCount: Int

    init(
        _ plan: DiffPlan, elements: (base: ElementType, storage: ElementType), spec: TensorSpec, base: TensorView,
        aligned: TensorView
    ) {
        element = elements.base
        storage = elements.storage
        self.plan = plan
        self.spec = spec
        self.base = base
        self.aligned = aligned
        layout = ChunkLayout(elements: plan.base.elementCount, dtype: plan.base.dtype, byteCount: base.bytes.count)
        alignedChunks = max(
            1, (aligned.bytes.count + ContentFingerprint.chunkBytes - 1) / ContentFingerprint.chunkBytes)
        records = ChunkRecords(chunks: layout.chunks)
        alignedDigests = .allocate(capacity: alignedChunks)
        alignedDigests.initialize(repeating: 0)
        residuals = .allocate(capacity: layout.chunks)
        residuals.initialize(repeating: [])
        runCount = AVDigest.runs(layout.elements)
        avRuns = .allocate(capacity: max(1, runCount))
        avRuns.initialize(repeating: 0)
    }

    deinit {
        alignedDigests.deallocate()
        _ = residuals.deinitialize()
        residuals.deallocate()
        avRuns.deallocate()
    }

    func slotBytes(_ c: Int) -> Int { count(c) * storageSize }

    func baseBytes(_ c: Int) -> Int { count(c) * size }

    func inputBytes(_ c: Int) -> Int { 2 * count(c) * size }

    /// Hashes chunk `c` of both models, computes its deltas into `slot` with their counts and
    /// remainders, and hashes the deltas into the AV's digest runs.
    func compute(_ c: Int, slot: UnsafeMutableRawPointer, scratch: Scratch) {
        let lo = c * perChunk
        let n = count(c)
        let bp = base.bytes.baseAddress ?? UnsafeRawPointer(slot)
        let ap = aligned.bytes.baseAddress ?? UnsafeRawPointer(slot)
        records.digests[c] = XXHash64.hash(UnsafeRawBufferPointer(start: bp + lo * size, count: n * size))
        let aLo = c * ContentFingerprint.chunkBytes
        let aHi = min(aligned.bytes.count, aLo + ContentFingerprint.chunkBytes)
        if c < alignedChunks {
            alignedDigests[c] = XXHash64.hash(UnsafeRawBufferPointer(start: ap + aLo, count: max(0, aHi - aLo)))
        }
        records.stats[c] = DiffEngine.chunk(
            base: bp + lo * size, aligned: ap + lo * size, count: n, element: element, storage: storage, out: slot,
            scratch: scratch, first: lo, residuals: &residuals[c])
        // The AV's own checksum, from the deltas just computed.
        AVDigest.hashRuns(
            slot, first: lo, count: n, elementSize: storageSize,
            into: UnsafeMutableBufferPointer(rebasing: avRuns[..<runCount]))
    }

    func piece(_ c: Int, slot: UnsafeMutableRawPointer) -> UnsafeRawBufferPointer? {
        UnsafeRawBufferPointer(start: slot, count: count(c) * storageSize)
    }

    /// Both models' pages of chunk `c`.
    func releases(_ c: Int) -> [(file: SafeTensorsFile, range: Range<Int>)] {
        let lo = c * perChunk * size
        let bytes = count(c) * size
        return [base, aligned].map { view in
            let start = view.file.fileOffset(of: view.file.info(plan.name)!)
            return (view.file, (start + lo)..<(start + lo + bytes))
        }
    }

    /// The tensor's result once every chunk is computed: rows only the aligned model has (dropped)
    /// are hashed into its fingerprint too.
    func finish() -> DiffEngine.Result {
        let ap = aligned.bytes.baseAddress
        for c in chunks..<alignedChunks {
            let aLo = c * ContentFingerprint.chunkBytes
            let aHi = min(aligned.bytes.count, aLo + ContentFingerprint.chunkBytes)
            alignedDigests[c] = XXHash64.hash(UnsafeRawBufferPointer(start: ap! + aLo, count: aHi - aLo))
        }
        return (
            DiffEngine.summarize(plan, Array(records.stats)), records.contentDigest,
            ContentFingerprint.tensorDigest(Array(alignedDigests)), AVDigest.combine(Array(avRuns[..<runCount])),
            residuals.flatMap { $0 }
        )
    }
}

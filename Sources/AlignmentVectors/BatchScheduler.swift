import SafeTensors
import Tensors

/// A tensor's work as `BatchScheduler` runs it: chunks computed independently (each into its place
/// in a batch's output slot, or in place elsewhere), written in order, their input pages released
/// once written.
protocol ChunkWork: AnyObject {
    /// How the tensor divides into chunks.
    var layout: ChunkLayout { get }
    /// Bytes chunk `c` computes into the batch's slot: 0 when it is written from elsewhere (a copy
    /// of the base) or not at all (computed in place).
    func slotBytes(_ c: Int) -> Int
    /// Bytes chunk `c` reads in place, for progress.
    func inputBytes(_ c: Int) -> Int
    /// Bytes of the base tensor chunk `c` covers (at most a fingerprint chunk): its share of the
    /// batch's budget of `threads` chunks.
    func baseBytes(_ c: Int) -> Int
    /// Computes chunk `c`; `slot` is its place in the batch's slot (unused when `slotBytes` is 0).
    func compute(_ c: Int, slot: UnsafeMutableRawPointer, scratch: Scratch)
    /// The bytes to write for chunk `c` (computed at `slot`), if any.
    func piece(_ c: Int, slot: UnsafeMutableRawPointer) -> UnsafeRawBufferPointer?
    /// The mapped input ranges chunk `c` read, released once the batch is written.
    func releases(_ c: Int) -> [(file: SafeTensorsFile, range: Range<Int>)]
}

extension ChunkWork {
    /// Chunks of the tensor (at least one).
    var chunks: Int { layout.chunks }
    /// Bytes of one element of the tensor.
    var size: Int { layout.elementSize }
    /// Elements of the tensor.
    var elements: Int { layout.elements }
    /// Elements in a full chunk.
    var perChunk: Int { layout.perChunk }
    /// Elements in chunk `c`.
    func count(_ c: Int) -> Int { layout.count(c) }
}

/// What each chunk of a tensor leaves behind, one slot per chunk (each written by the worker that
/// computed the chunk): the XXH64 of its base bytes and its counts.
final class ChunkRecords {
    /// Per chunk, the XXH64 of the base's bytes (the tensor's content fingerprint is made of them).
    let digests: UnsafeMutableBufferPointer<UInt64>
    /// Per chunk, its counts.
    let stats: UnsafeMutableBufferPointer<ChunkStats>

    init(chunks: Int) {
        digests = .allocate(capacity: chunks)
        digests.initialize(repeating: 0)
        stats = .allocate(capacity: chunks)
        stats.initialize(repeating: ChunkStats())
    }

    deinit {
        digests.deallocate()
        stats.deallocate()
    }

    /// The tensor's content digest, from its chunks' digests in order.
    var contentDigest: UInt64 { ContentFingerprint.tensorDigest(Array(digests)) }
}

/// How a tensor divides into the scheduler's chunks: a fingerprint's chunk of its bytes each, so
/// hashing a chunk needs no second pass.
struct ChunkLayout {
    /// Elements of the tensor.
    let elements: Int
    /// Bytes of one element (1 for types of fewer bits, which are only ever copied).
    let elementSize: Int
    /// Elements in a full chunk.
    let perChunk: Int
    /// Chunks of the tensor (at least one).
    let chunks: Int

    /// The layout of `elements` elements of `dtype` held in `byteCount` bytes.
    init(elements: Int, dtype: DType, byteCount: Int) {
        self.elements = elements
        elementSize = dtype.byteSize ?? 1
        perChunk = ContentFingerprint.chunkBytes / elementSize
        chunks = max(1, (byteCount + ContentFingerprint.chunkBytes - 1) / ContentFingerprint.chunkBytes)
    }

    /// Elements in chunk `c`.
    func count(_ c: Int) -> Int { min(elements, (c + 1) * perChunk) - c * perChunk }
}

/// A write to run in order with the batches' pieces (a tensor's start or end in the output).
typealias WriteStep = () throws(SafeTensorsError) -> Void

/// The one batch scheduler of diff and merge: the chunks of one large tensor, or of several small
/// ones, computed in parallel batches that fill an output slot and a budget of input bytes; each
/// batch written in order on a background queue (with the steps that start and end its tensors)
/// while the next is computed into the other slot; the input pages a batch read released once it
/// is written.
final class BatchScheduler {
    let threads: Int
    let scratch: [Scratch]
    /// Bytes of one slot: `threads` chunks of the largest output a chunk makes.
    let slotBytes: Int
    private let output: UnsafeMutableRawPointer

    /// A scheduler of `threads` workers whose largest chunk output is `chunkOutBytes`.
    init(threads: Int, chunkOutBytes: Int) {
        self.threads = Parallel.clamped(threads)
        scratch = (0..<self.threads).map { _ in Scratch() }
        slotBytes = self.threads * chunkOutBytes
        // Two batches of output: one being written while the other is computed.
        output = .allocate(byteCount: slotBytes * 2, alignment: 64)
    }

    deinit { output.deallocate() }

    /// What a batch's write does, in order: a tensor's start or end, or a piece of its bytes.
    private enum WriteItem {
        case step(WriteStep)
        case piece(UnsafeRawBufferPointer)
    }

    /// A chunk of a tensor and where its output goes in the batch's slot.
    private struct Unit<W: ChunkWork> {
        let work: W
        let chunk: Int
        let offset: Int
    }

    /// Runs every tensor `next` gives (nil at the end), in order. `begin` gives a write step to run
    /// before a tensor's first piece; `finish`, called on this thread once a tensor's chunks are all
    /// computed (to check and record it), one to run after its last. `write` writes a piece;
    /// `progress` hears the input bytes each batch read. Waits for every write; on an error, for
    /// the writes already queued.
    func run<W: ChunkWork>(
        next: () throws(AVError) -> W?, write: @escaping (UnsafeRawBufferPointer) throws(SafeTensorsError) -> Void,
        progress: (Int) -> Void, begin: (W) throws(AVError) -> WriteStep?, finish: (W) throws(AVError) -> WriteStep?
    ) throws(AVError) {
        let pipeline = WritePipeline()
        do throws(AVError) {
            try schedule(next: next, write: write, progress: progress, begin: begin, finish: finish, pipeline: pipeline)
            do { try pipeline.drain() } catch { throw .file(error) }
        } catch {
            try? pipeline.drain()
            throw error
        }
    }

    private func schedule<W: ChunkWork>(
        next: () throws(AVError) -> W?, write: @escaping (UnsafeRawBufferPointer) throws(SafeTensorsError) -> Void,
        progress: (Int) -> Void, begin: (W) throws(AVError) -> WriteStep?, finish: (W) throws(AVError) -> WriteStep?,
        pipeline: WritePipeline
    ) throws(AVError) {
        let inputBudget = threads * ContentFingerprint.chunkBytes
        var chunk = 0
        var current = try next()
        var starts: [ObjectIdentifier: WriteStep] = [:]
        if let w = current, let step = try begin(w) { starts[ObjectIdentifier(w)] = step }
        var batchIndex = 0
        while current != nil {
            let slot = batchIndex % 2
            batchIndex += 1
            do { try pipeline.claim(slot) } catch { throw .file(error) }
            let slotBase = output + slot * slotBytes
            var units: [Unit<W>] = []
            var complete: [W] = []
            var used = (output: 0, input: 0)
            while let w = current {
                let outBytes = (w.slotBytes(chunk) + 63) / 64 * 64
                let inBytes = w.baseBytes(chunk)
                if !units.isEmpty && (used.output + outBytes > slotBytes || used.input + inBytes > inputBudget) {
                    break
                }
                units.append(Unit(work: w, chunk: chunk, offset: used.output))
                used.output += outBytes
                used.input += inBytes
                chunk += 1
                if chunk == w.chunks {
                    complete.append(w)
                    chunk = 0
                    current = try next()
                    if let w = current, let step = try begin(w) { starts[ObjectIdentifier(w)] = step }
                }
            }
            Parallel.forEachBalanced(units.count, threads: threads) { worker, j in
                units[j].work.compute(units[j].chunk, slot: slotBase + units[j].offset, scratch: scratch[worker])
            }
            var ends: [ObjectIdentifier: WriteStep] = [:]
            for w in complete {
                if let step = try finish(w) { ends[ObjectIdentifier(w)] = step }
            }
            // The batch's steps and pieces, in order, then the release of the pages they were read from.
            var items: [WriteItem] = []
            var releases: [(file: SafeTensorsFile, range: Range<Int>)] = []
            for u in units {
                let id = ObjectIdentifier(u.work)
                if u.chunk == 0, let start = starts.removeValue(forKey: id) { items.append(.step(start)) }
                if let piece = u.work.piece(u.chunk, slot: slotBase + u.offset) { items.append(.piece(piece)) }
                if u.chunk == u.work.chunks - 1, let end = ends[id] { items.append(.step(end)) }
                for r in u.work.releases(u.chunk) { Self.merge(r, into: &releases) }
            }
            pipeline.submit(slot) { () throws(SafeTensorsError) in
                for item in items {
                    switch item {
                    case .step(let step): try step()
                    case .piece(let piece): try write(piece)
                    }
                }
                for r in releases { r.file.mapping.release(r.range) }
            }
            progress(units.reduce(0) { $0 + $1.work.inputBytes($1.chunk) })
        }
    }

    /// Adds `r` to `releases`, joined with the last range when it is of the same file and adjacent
    /// (within a page), so neighbouring chunks are released together.
    private static func merge(
        _ r: (file: SafeTensorsFile, range: Range<Int>),
        into releases: inout [(file: SafeTensorsFile, range: Range<Int>)]
    ) {
        if let last = releases.last, last.file === r.file, r.range.lowerBound - last.range.upperBound < 4096,
            r.range.lowerBound >= last.range.lowerBound
        {
            releases[releases.count - 1].range = last.range.lowerBound..<max(last.range.upperBound, r.range.upperBound)
        } else {
            releases.append(r)
        }
    }
}

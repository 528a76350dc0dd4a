import Foundation
import SafeTensors
import Tensors

/// Statistics of one chunk, reduced in chunk order so the totals do not depend on threads.
struct ChunkStats {
    var changed = 0
    var sumDelta2 = 0.0
    var sumBase2 = 0.0
    var maxAbs = 0.0
    var lost = 0
    var mismatches = 0
    var maxULP = 0
    var nonFinite = 0
    var roundedAway = 0
    var residuals = 0
    var signedZeros = 0
}

/// Scratch memory of one worker, allocated once and reused for every block (first-touch page
/// faults cost ~1 GB/s on these machines, against ~13 GB/s for memory already touched).
final class Scratch {
    static let block = 8192
    let accA = UnsafeMutablePointer<Double>.allocate(capacity: block)
    let accB = UnsafeMutablePointer<Double>.allocate(capacity: block)
    let f32 = UnsafeMutablePointer<Float>.allocate(capacity: block)
    let f32b = UnsafeMutablePointer<Float>.allocate(capacity: block)
    let bytes = UnsafeMutableRawPointer.allocate(byteCount: block * 8, alignment: 64)

    deinit {
        accA.deallocate()
        accB.deallocate()
        f32.deallocate()
        f32b.deallocate()
        bytes.deallocate()
    }
}

/// Counts elements whose stored bits differ, sized loops so each compiles to a tight compare.
func countDiffering(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int, size: Int) -> Int {
    var n = 0
    switch size {
    case 1: for i in 0..<count where a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { n += 1 }
    case 2:
        for i in 0..<count where a.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self) != b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self) {
            n += 1
        }
    case 4:
        for i in 0..<count where a.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self) != b.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self) {
            n += 1
        }
    default:
        for i in 0..<count where a.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self) {
            n += 1
        }
    }
    return n
}

/// The value of `bits` stored as `dtype`.
func decodeBits(_ bits: UInt64, _ dtype: DType) -> Double {
    var b = bits
    return withUnsafeBytes(of: &b) { ElementOps.widenOne($0.baseAddress!, 0, dtype: dtype) }
}

/// Runs diff's per-tensor work: chunks in parallel batches, output written in order.
final class DiffEngine {
    let threads: Int
    let scratch: [Scratch]
    let output: UnsafeMutableRawPointer
    let chunkOutBytes: Int

    init(threads: Int, plans: [DiffPlan]) {
        self.threads = max(1, threads)
        scratch = (0..<self.threads).map { _ in Scratch() }
        var most = 8
        for p in plans where p.float {
            let elements = ContentFingerprint.chunkBytes / p.base.dtype.byteSize!
            most = max(most, elements * p.storage.byteSize!)
        }
        chunkOutBytes = most
        output = .allocate(byteCount: most * self.threads, alignment: 64)
    }

    deinit { output.deallocate() }

    func run(
        _ plan: DiffPlan, base: (bytes: UnsafeRawBufferPointer, file: SafeTensorsFile),
        aligned: (bytes: UnsafeRawBufferPointer, file: SafeTensorsFile), writer: ReservedHeaderWriter,
        progress: (Int) -> Void
    ) throws(AVError) -> (diff: TensorDiff, baseDigest: UInt64, alignedDigest: UInt64, residuals: [(Int, Double)]) {
        let bt = plan.base.dtype
        let size = bt.byteSize!
        let storage = plan.storage
        let ssize = storage.byteSize!
        let elements = plan.base.elementCount
        let perChunk = ContentFingerprint.chunkBytes / size
        let chunks = max(1, (elements + perChunk - 1) / perChunk)
        let alignedChunks = max(1, (aligned.bytes.count + ContentFingerprint.chunkBytes - 1) / ContentFingerprint.chunkBytes)
        var baseDigests = [UInt64](repeating: 0, count: chunks)
        var alignedDigests = [UInt64](repeating: 0, count: alignedChunks)
        var stats = [ChunkStats](repeating: ChunkStats(), count: chunks)
        var residuals = [[(Int, Double)]](repeating: [], count: chunks)
        let bp = base.bytes.baseAddress ?? UnsafeRawPointer(output)
        let ap = aligned.bytes.baseAddress ?? UnsafeRawPointer(output)
        let baseFileStart = base.file.fileOffset(of: base.file.info(plan.name)!)
        let alignedFileStart = aligned.file.fileOffset(of: aligned.file.info(plan.name)!)

        var batchStart = 0
        while batchStart < chunks {
            let batch = min(threads, chunks - batchStart)
            let first = batchStart
            baseDigests.withUnsafeMutableBufferPointer { bd in
                alignedDigests.withUnsafeMutableBufferPointer { ad in
                    stats.withUnsafeMutableBufferPointer { st in
                        residuals.withUnsafeMutableBufferPointer { rs in
                            Parallel.forEach(batch, threads: threads) { w, j in
                                let c = first + j
                                let lo = c * perChunk
                                let n = min(elements, lo + perChunk) - lo
                                bd[c] = XXHash64.hash(UnsafeRawBufferPointer(start: bp + lo * size, count: n * size))
                                let aLo = c * ContentFingerprint.chunkBytes
                                let aHi = min(aligned.bytes.count, aLo + ContentFingerprint.chunkBytes)
                                if c < ad.count {
                                    ad[c] = XXHash64.hash(UnsafeRawBufferPointer(start: ap + aLo, count: max(0, aHi - aLo)))
                                }
                                st[c] = Self.chunk(
                                    base: bp + lo * size, aligned: ap + lo * size, count: n, dtype: bt, storage: storage,
                                    out: output + j * chunkOutBytes, scratch: scratch[w], first: lo, residuals: &rs[c])
                            }
                        }
                    }
                }
            }
            // Write the batch's deltas in order, then let the kernel drop the input pages.
            var written = 0
            for j in 0..<batch {
                let c = first + j
                let n = min(elements, c * perChunk + perChunk) - c * perChunk
                do {
                    try writer.write(UnsafeRawBufferPointer(start: output + j * chunkOutBytes, count: n * ssize))
                } catch {
                    throw .file(error)
                }
                written += n * size
            }
            let lo = first * perChunk * size
            base.file.mapping.release((baseFileStart + lo)..<(baseFileStart + lo + written))
            aligned.file.mapping.release((alignedFileStart + lo)..<(alignedFileStart + lo + written))
            progress(2 * written)
            batchStart += batch
        }
        // Rows only the aligned model has (dropped) are still part of its fingerprint.
        for c in chunks..<alignedChunks {
            let aLo = c * ContentFingerprint.chunkBytes
            let aHi = min(aligned.bytes.count, aLo + ContentFingerprint.chunkBytes)
            alignedDigests[c] = XXHash64.hash(UnsafeRawBufferPointer(start: ap + aLo, count: aHi - aLo))
        }

        var d = TensorDiff(name: plan.name, dtype: bt, shape: plan.base.shape, elements: elements, droppedRows: plan.droppedRows)
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
        return (d, ContentFingerprint.tensorDigest(baseDigests), ContentFingerprint.tensorDigest(alignedDigests), residuals.flatMap { $0 })
    }

    /// Deltas of `count` elements into `out` (in `storage`), with the λ = 1 check and statistics.
    static func chunk(
        base: UnsafeRawPointer, aligned: UnsafeRawPointer, count: Int, dtype: DType, storage: DType,
        out: UnsafeMutableRawPointer, scratch s: Scratch, first: Int, residuals: inout [(Int, Double)]
    ) -> ChunkStats {
        var st = ChunkStats()
        let size = dtype.byteSize!
        let ssize = storage.byteSize!
        let checksLoss = dtype == .f32 || dtype == .f16 || dtype == .f64
        var off = 0
        while off < count {
            let n = min(Scratch.block, count - off)
            let b = base + off * size
            let a = aligned + off * size
            let o = out + off * ssize
            let changed = countDiffering(a, b, count: n, size: size)
            st.changed += changed
            Accumulate.widen(dtype, b, count: n, into: s.accB, scratch: s.f32)
            Accumulate.widen(dtype, a, count: n, into: s.accA, scratch: s.f32)
            var sumD = 0.0
            var sumB = 0.0
            var maxAbs = st.maxAbs
            for i in 0..<n {
                let d = s.accA[i] - s.accB[i]
                sumD += d * d
                sumB += s.accB[i] * s.accB[i]
                if d.magnitude > maxAbs { maxAbs = d.magnitude }
                s.accA[i] = d
            }
            st.sumDelta2 += sumD
            st.sumBase2 += sumB
            st.maxAbs = maxAbs
            if changed == 0 {
                // Identical bits: the stored delta is zero (the tensor is dropped if all chunks are).
                memset(o, 0, n * ssize)
                off += n
                continue
            }
            // Store the deltas. An f32 delta that is not exactly aligned − base (they differ by more
            // than a factor of two, or crossed zero) gets its exact f64 remainder kept beside it.
            Accumulate.narrow(s.accA, count: n, to: storage, into: o, scratch: s.f32)
            if checksLoss {
                for i in 0..<n {
                    let x = Float(s.accB[i])
                    if Float(s.accA[i] + s.accB[i]) != x, FloatBits.floatToBF16(Float(s.accA[i] + s.accB[i])) == FloatBits.floatToBF16(x) {
                        st.lost += 1
                    }
                }
            }
            var local: [(Int, Double)] = []
            if storage == .f32 {
                for i in 0..<n where Double(s.f32[i]) != s.accA[i] && s.accA[i].isFinite {
                    let r = s.accA[i] - Double(s.f32[i])
                    local.append((i, r))
                    residuals.append((first + off + i, r))
                }
                st.residuals += local.count
            }
            // Rebuild aligned = base + Δ (+ remainder) exactly as merge does at λ = 1, and compare.
            Accumulate.widen(storage, o, count: n, into: s.accA, scratch: s.f32)
            for i in 0..<n { s.accA[i] += s.accB[i] }
            for (i, r) in local { s.accA[i] += r }
            Accumulate.narrow(s.accA, count: n, to: dtype, into: s.bytes, scratch: s.f32b)
            if countDiffering(s.bytes, a, count: n, size: size) > 0 {
                for i in 0..<n {
                    let target = ElementOps.bits(a, i, size: size)
                    let got = ElementOps.bits(s.bytes, i, size: size)
                    guard got != target else { continue }
                    if decodeBits(got, dtype) == 0 && decodeBits(target, dtype) == 0 {
                        // +0 and −0: no addition to +0 gives −0, so this one cannot be rebuilt.
                        st.signedZeros += 1
                    } else {
                        st.mismatches += 1
                        st.maxULP = max(st.maxULP, ElementOps.ulps(got, target, size: size))
                    }
                }
            }
            off += n
        }
        return st
    }
}

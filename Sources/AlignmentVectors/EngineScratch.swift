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
    let flags = UnsafeMutablePointer<UInt8>.allocate(capacity: block)
    /// Buffers sparse and 1-bit deltas are decoded into, one per term, kept for reuse.
    private var decoded: [(pointer: UnsafeMutablePointer<Float>, capacity: Int)] = []

    /// The decode buffer of term `k`, holding at least `count` values.
    func decodeBuffer(_ k: Int, count: Int) -> UnsafeMutablePointer<Float> {
        while decoded.count <= k { decoded.append((.allocate(capacity: 1), 1)) }
        if decoded[k].capacity < count {
            decoded[k].pointer.deallocate()
            decoded[k] = (.allocate(capacity: count), count)
        }
        return decoded[k].pointer
    }

    deinit {
        for d in decoded { d.pointer.deallocate() }
        accA.deallocate()
        accB.deallocate()
        f32.deallocate()
        f32b.deallocate()
        bytes.deallocate()
        flags.deallocate()
    }
}

/// `p` as f32 values: the pointer itself when it holds aligned f32s, else `scratch` filled by conversion.
@inline(__always)
func floatView(_ dtype: DType, _ p: UnsafeRawPointer, count: Int, scratch: UnsafeMutablePointer<Float>)
    -> UnsafePointer<Float>
{
    if dtype == .f32 && Int(bitPattern: p) % 4 == 0 { return p.assumingMemoryBound(to: Float.self) }
    Convert.toFloat(dtype, from: p, count: count, into: scratch)
    return UnsafePointer(scratch)
}

import SafeTensors
import Tensors

/// The checksum of an AV's payload (`av.digests` in its metadata: tensor name → hex XXH64), so one
/// flipped bit in a vector is refused instead of merged.
///
/// A tensor's digest is XXH64 over the XXH64 of each run of `chunkElements` elements, in order.
/// Runs of 2^19 elements divide every chunk the diff and merge engines work in (4 MiB of base
/// bytes: 2^19 to 2^22 elements for 8- to 1-byte dtypes), so the engines hash the AV while they
/// stream it, with no second pass.
public enum AVDigest {
    /// Elements per hashed run.
    public static let chunkElements = 1 << 19

    /// The digest of a whole tensor in memory.
    public static func digest(_ bytes: UnsafeRawBufferPointer, elementSize: Int) -> UInt64 {
        combine(runs(of: bytes, elementSize: elementSize))
    }

    /// The run digests of a whole tensor in memory.
    static func runs(of bytes: UnsafeRawBufferPointer, elementSize: Int) -> [UInt64] {
        let elements = bytes.count / max(1, elementSize)
        var digests = [UInt64](repeating: 0, count: runs(elements))
        digests.withUnsafeMutableBufferPointer { d in
            hashRuns(
                bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 64)!, first: 0, count: elements,
                elementSize: elementSize, into: d)
        }
        return digests
    }

    /// Runs of a tensor of `elements` elements (at least one, for an empty tensor).
    static func runs(_ elements: Int) -> Int { max(1, (elements + chunkElements - 1) / chunkElements) }

    /// Hashes the runs of elements `first..<first + count` (`first` a multiple of `chunkElements`)
    /// starting at `bytes` into `digests`.
    static func hashRuns(
        _ bytes: UnsafeRawPointer, first: Int, count: Int, elementSize: Int,
        into digests: UnsafeMutableBufferPointer<UInt64>
    ) {
        assert(first % chunkElements == 0)
        var done = 0
        var run = first / chunkElements
        repeat {
            let n = min(chunkElements, count - done)
            digests[run] = XXHash64.hash(
                UnsafeRawBufferPointer(start: bytes + done * elementSize, count: n * elementSize))
            done += n
            run += 1
        } while done < count
    }

    /// The digest from its runs' digests.
    static func combine(_ runs: [UInt64]) -> UInt64 { XXHash64.hash(digests: runs) }
}

extension ReservedHeaderWriter {
    /// Writes `bytes` as the tensor `spec` in one piece, kept or cut off again, and returns the kept
    /// tensor's AV digest (hex) for `av.digests`; nil when it was cut off.
    func writeWhole(_ spec: TensorSpec, _ bytes: [UInt8], keep: Bool = true) throws(AVError) -> String? {
        do {
            try begin(spec)
            try write(bytes)
            try end(keep: keep)
        } catch {
            throw .file(error)
        }
        guard keep else { return nil }
        return XXHash64.hex(bytes.withUnsafeBytes { AVDigest.digest($0, elementSize: spec.dtype.byteSize ?? 1) })
    }
}

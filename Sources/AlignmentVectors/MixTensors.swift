import Dispatch
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Memory that holds one mixed tensor.
public final class TensorBuffer: @unchecked Sendable {
    /// The first byte, 64-byte aligned.
    public let pointer: UnsafeMutableRawPointer
    /// Bytes held.
    public let count: Int

    init(count: Int) {
        self.count = count
        pointer = .allocate(byteCount: max(count, 1), alignment: 64)
    }

    deinit { pointer.deallocate() }
}

/// `base + Σ λ·AV` for every tensor some AV changes, in memory and in the base's dtype: the bytes
/// `merge` would write, for evaluating a mix without writing it. Tensors no AV touches are left out.
///
/// `checked: true` says the caller already checked these vectors' digests and the base's content
/// against them in an earlier mix of the same loaded files (a sweep's next point): neither is
/// hashed again. Structure and compatibility are checked every time.
public func mixTensors(
    base: Checkpoint, terms: [MergeTerm], threads: Int, force: Bool = false, method: MergeMethod = .linear,
    checked: Bool = false
) throws(AVError) -> [String: TensorBuffer] {
    try method.validate()
    let terms = MergeTerm.counting(terms, layersOf: base)
    let structure = try checkCompatible(base: base, terms: terms, force: force)
    if !force, !checked, let expected = terms.first?.vector.header.base.content {
        // The same content check as merge's, over the whole base (merge gets it from its one pass).
        let content = XXHash64.hex(base.contentFingerprint(threads: threads))
        if content != expected {
            _ = try verifyBase(base, of: terms[0].vector, structure: structure, content: content)
        }
    }
    // The tensors some term changes, each computed by the merge engine into its own buffer.
    let changed = base.tensors.filter { info in
        info.byteCount > 0 && base.view(info.name) != nil
            && terms.contains { $0.coefficient(for: info.name) != 0 && $0.vector.delta(info.name) != nil }
    }
    let stream = MemoryTensorStream(changed)
    let engine = MergeEngine(threads: threads, base: base, dtype: nil)
    try engine.run(
        changed.map { MergeEngine.Job(info: $0, outDType: $0.dtype, view: base.view($0.name)!) },
        terms: { job throws(AVError) in
            var active = try MergeEngine.terms(terms, for: job.info, method: method, base: { base.values(job.info) })
            // Vectors an earlier mix checked are not hashed again.
            if checked { for k in active.indices { active[k].vector = nil } }
            return active
        }, into: stream, progress: { _ in }, finished: { _, _, _ in })
    return stream.buffers
}

/// The merge engine's output kept in memory: each tensor computed in place into its own buffer.
private final class MemoryTensorStream: TensorStream {
    let writeOrder: [TensorInfo]
    let buffers: [String: TensorBuffer]

    init(_ tensors: [TensorInfo]) {
        writeOrder = tensors
        buffers = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, TensorBuffer(count: $0.byteCount)) })
    }

    func destination(of tensor: String) -> UnsafeMutableRawPointer? { buffers[tensor]?.pointer }

    func write(_ bytes: UnsafeRawBufferPointer) throws(SafeTensorsError) {
        preconditionFailure("an in-memory mix computes every tensor in place")
    }

    func abort() {}
}

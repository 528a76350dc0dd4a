import AlignmentVectors
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Where a model's tensors come from: a checkpoint's mappings (zero-copy), or buffers a mix
/// `base + Σ λ·AV` was computed into as the weights were loaded.
struct WeightSource {
    struct Tensor {
        var dtype: DType
        var shape: [Int]
        var data: UnsafeRawPointer
    }

    private var tensors: [String: Tensor] = [:]
    var owners: [AnyObject] = []

    var names: [String] { Array(tensors.keys) }
    func tensor(_ name: String) -> Tensor? { tensors[name] }

    init(checkpoint: Checkpoint) {
        owners = [checkpoint]
        for t in checkpoint.tensors {
            guard let view = checkpoint.view(t.name) else { continue }
            tensors[t.name] = Tensor(
                dtype: t.dtype, shape: t.shape, data: view.bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!)
        }
    }

    /// The base's tensors with a PEFT adapter merged in (as `merge_and_unload()` does, each value in
    /// f64 and rounded once to the base's dtype), in memory; tensors it does not change stay mapped.
    init(base: Checkpoint, adapter: LoRAAdapter, threads: Int) throws(InferenceError) {
        self.init(checkpoint: base)
        do {
            for (name, buffer) in try adapterTensors(base: base, adapter: adapter, threads: threads) {
                tensors[name]?.data = UnsafeRawPointer(buffer.pointer)
                owners.append(buffer)
            }
        } catch {
            throw .vectors(error)
        }
    }

    /// The base's tensors with every AV term mixed in, each mixed tensor in the base's dtype (as
    /// `av merge` would write it, bit for bit), in memory; tensors no AV touches stay mapped.
    /// `checked`: the vectors' digests and the base's content were checked by an earlier mix.
    init(
        base: Checkpoint, terms: [MergeTerm], method: MergeMethod = .linear, threads: Int, force: Bool,
        checked: Bool = false
    ) throws(InferenceError) {
        self.init(checkpoint: base)
        do {
            let mixed = try mixTensors(
                base: base, terms: terms, threads: threads, force: force, method: method, checked: checked)
            for (name, buffer) in mixed {
                tensors[name]?.data = UnsafeRawPointer(buffer.pointer)
                owners.append(buffer)
            }
        } catch {
            throw .vectors(error)
        }
    }
}

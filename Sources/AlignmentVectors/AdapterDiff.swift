import Dispatch
import SafeTensors
import Tensors

/// Whether `path` is a PEFT adapter directory (it holds `adapter_config.json`).
public func isAdapterDirectory(_ path: String) -> Bool {
    Path.isDirectory(path) == true && Path.isDirectory(Path.join(path, "adapter_config.json")) == false
}

/// Writes the AV of a PEFT LoRA adapter on `base`: for every base tensor the adapter changes, the
/// delta `merge_and_unload()` adds (see `LoRAAdapter`), in `options.storage`; `av.adapter` records
/// the adapter. The base is read once, for its content fingerprint (merges check it) and for the
/// tensors a delta needs (DoRA, saved tensors); one tensor's delta is in memory at a time.
public func diff(
    base: Checkpoint, adapter: LoRAAdapter, output: String, options: DiffOptions,
    progress: ((Int, Int) -> Void)? = nil
) throws(AVError) -> DiffReport {
    let start = DispatchTime.now().uptimeNanoseconds
    do {
        try OutputGuard.checkFile(
            output,
            inputs: base.inputFiles + [base.path, adapter.path, adapter.weightsPath] + options.protectedPaths)
    } catch {
        throw .file(error)
    }
    guard [.f32, .bf16, .f16].contains(options.storage), let storage = ElementType(options.storage) else {
        throw .usage("adapter deltas are stored as f32, bf16 or f16, not \(options.storage.rawValue)")
    }
    let targets = try adapter.targets(in: base)
    let threads = Parallel.clamped(options.threads)

    let adapterDigests = adapter.file.tensors.map { hashChunks(adapter.file.bytes(of: $0)) }
    let adapterContent = ContentFingerprint.combine(
        Dictionary(uniqueKeysWithValues: zip(adapter.file.tensors.map(\.name), adapterDigests)))
    var header = AVHeader(
        domain: options.domain,
        base: ModelIdentity(
            path: base.path, dtype: base.mainDType.rawValue, structure: XXHash64.hex(base.structureFingerprint),
            content: XXHash64.hex(base.contentFingerprint(threads: threads)), tensors: base.tensors.count),
        aligned: ModelIdentity(
            path: adapter.path, dtype: adapter.file.tensors.first?.dtype.rawValue ?? "F32",
            structure: XXHash64.hex(Checkpoint.structureFingerprint(of: adapter.file.tensors)),
            content: XXHash64.hex(adapterContent), tensors: adapter.file.tensors.count),
        dtype: options.storage)
    header.adapter = adapter.provenance
    header.baseSamples = BaseSamples.of(base)

    let specs = targets.map { TensorSpec(name: $0.tensor, dtype: options.storage, shape: $0.shape) }
    let writer: ReservedHeaderWriter
    do {
        var bound = header
        for s in specs { bound.digests[s.name] = String(repeating: "0", count: 16) }
        writer = try ReservedHeaderWriter(path: output, candidates: specs, metadataBound: bound.metadata)
    } catch {
        throw .file(error)
    }
    let byName = Dictionary(uniqueKeysWithValues: targets.map { ($0.tensor, $0) })
    var results: [String: TensorDiff] = [:]
    let total = targets.reduce(0) { $0 + $1.shape.reduce(1, *) }
    var done = 0
    do throws(AVError) {
        for spec in writer.order {
            let t = byName[spec.name]!
            let info = base.info(t.tensor)!
            let delta = adapter.delta(t, base: base, threads: threads)
            var d = TensorDiff(name: t.tensor, dtype: info.dtype, shape: t.shape, elements: delta.count)
            measure(delta, base: base.view(t.tensor)!.bytes, dtype: info.dtype, into: &d)
            var bytes = [UInt8](repeating: 0, count: delta.count * storage.size)
            delta.withUnsafeBufferPointer { src in
                bytes.withUnsafeMutableBytes {
                    if let s = src.baseAddress, let p = $0.baseAddress {
                        Convert.fromFloat(options.storage, from: s, count: delta.count, into: p)
                    }
                }
            }
            if let digest = try writer.writeWhole(spec, bytes, keep: d.changed > 0) {
                header.digests[t.tensor] = digest
            }
            results[t.tensor] = d
            done += delta.count
            progress?(done, total)
        }
        do {
            try writer.finish(metadata: header.metadata)
        } catch {
            throw .file(error)
        }
    } catch {
        writer.abort()
        throw error
    }
    let tensors = base.tensors.map {
        results[$0.name] ?? TensorDiff(name: $0.name, dtype: $0.dtype, shape: $0.shape, elements: $0.elementCount)
    }
    return DiffReport(
        output: output, header: header, tensors: tensors,
        seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9,
        bytesRead: base.tensors.reduce(0) { $0 + $1.byteCount } + adapter.file.fileSize,
        bytesWritten: Path.fileSize(output) ?? 0)
}

/// Fills the norms, the changed count and the values a bf16 model loses of an adapter delta.
private func measure(_ delta: [Float], base: UnsafeRawBufferPointer, dtype: DType, into d: inout TensorDiff) {
    let w = ElementOps.widen(dtype, base, count: delta.count).map(Float.init)
    var sumD = 0.0
    var sumB = 0.0
    for i in 0..<delta.count {
        let x = Double(delta[i])
        sumD += x * x
        sumB += Double(w[i]) * Double(w[i])
        d.maxAbsDelta = max(d.maxAbsDelta, x.magnitude)
        guard x != 0 else { continue }
        d.changed += 1
        if FloatBits.floatToBF16(w[i] + delta[i]) == FloatBits.floatToBF16(w[i]) { d.lostInBF16 += 1 }
    }
    d.deltaNorm = sumD.squareRoot()
    d.baseNorm = sumB.squareRoot()
}

/// The tensors `adapter` changes, merged into `base` at strength `lambda` in memory and in the base's
/// dtype: the bytes `av merge` writes for `base + λ·AV` of the adapter's AV (each value computed in f64
/// and rounded once), without writing the AV. Tensors the adapter does not change are left out.
public func adapterTensors(base: Checkpoint, adapter: LoRAAdapter, lambda: Double = 1, threads: Int) throws(AVError)
    -> [String: TensorBuffer]
{
    var out: [String: TensorBuffer] = [:]
    for t in try adapter.targets(in: base) {
        let info = base.info(t.tensor)!
        let delta = adapter.delta(t, base: base, threads: Parallel.clamped(threads))
        // merge's arithmetic: widen the base to f64, add λ·Δ, round once to the base's dtype.
        var acc = ElementOps.widen(info.dtype, base.view(t.tensor)!.bytes, count: delta.count)
        var scratch = [Float](repeating: 0, count: delta.count)
        guard let element = ElementType(info.dtype) else {
            throw .usage("\(t.tensor) is \(info.dtype.rawValue): an adapter changes only float tensors of whole bytes")
        }
        let buffer = TensorBuffer(count: delta.count * element.size)
        out[t.tensor] = buffer
        guard !delta.isEmpty else { continue }
        acc.withUnsafeMutableBufferPointer { a in
            scratch.withUnsafeMutableBufferPointer { s in
                delta.withUnsafeBytes {
                    Accumulate.addScaled(
                        .f32, $0.baseAddress!, count: delta.count, scale: lambda, into: a.baseAddress!,
                        scratch: s.baseAddress!)
                }
                Accumulate.narrow(
                    a.baseAddress!, count: delta.count, to: info.dtype, into: buffer.pointer, scratch: s.baseAddress!)
            }
        }
    }
    return out
}

import Dispatch
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

/// What to do with tensors whose aligned version has more rows than the base's: the embedding and
/// output matrices of a model that added tokens (chat and instruct models often do).
public enum ResizedRows: String, Sendable, CaseIterable {
    /// Refuse, naming the tensors and shapes.
    case refuse
    /// Keep the base's rows: the AV holds `aligned[:rows] − base` and merges keep the base's shapes
    /// and tokenizer; the added rows are dropped and recorded in `av.dropped_rows`.
    case drop
}

/// How `diff` runs: the domain to record, the delta dtype, resized rows, threads, protected paths.
public struct DiffOptions: Sendable {
    /// The preference domain recorded in the AV (`av.domain`).
    public var domain: String
    /// The dtype of the stored deltas (f64 tensors are always stored in f64).
    public var storage: DType = .f32
    /// What to do when the aligned model has more embedding rows than the base.
    public var resizedRows: ResizedRows = .refuse
    /// Worker threads (the bytes written do not depend on it).
    public var threads: Int = Parallel.defaultThreads
    /// Other inputs of the run that the output must not be (beyond the two checkpoints).
    public var protectedPaths: [String] = []

    /// Defaults for everything but the domain: f32 deltas, resized rows refused, all cores.
    public init(domain: String) { self.domain = domain }
}

/// What diff measured on one tensor.
public struct TensorDiff: Sendable {
    /// The tensor's name in the checkpoints.
    public var name: String
    /// The base's dtype of the tensor.
    public var dtype: DType
    /// The tensor's shape.
    public var shape: [Int]
    /// Elements in the tensor.
    public var elements = 0
    /// Elements whose stored bits differ between the models.
    public var changed = 0
    /// ‖aligned − base‖₂ and ‖base‖₂ (f64).
    public var deltaNorm = 0.0
    /// ‖base‖₂ (f64), the denominator of `relativeChange`.
    public var baseNorm = 0.0
    /// The largest |aligned − base| over the tensor.
    public var maxAbsDelta = 0.0
    /// Changed elements a bf16 model could not represent: bf16(aligned) == bf16(base).
    public var lostInBF16 = 0
    /// Elements where base + stored Δ does not round back to the aligned value (λ = 1), and the
    /// largest distance in units in the last place of the checkpoint's dtype.
    public var mismatches = 0
    /// The largest of those distances, in units in the last place.
    public var maxULP = 0
    /// Elements whose f32 delta is not exactly aligned − base, whose exact f64 remainder the AV
    /// keeps beside the delta (`av.exact/NAME/index`, `av.exact/NAME/residual`).
    public var residuals = 0
    /// Elements that rebuild as +0 where the aligned model holds −0 (or the reverse): equal values,
    /// different bits, and no delta added to a zero can change its sign.
    public var signedZeros = 0
    /// Rows of the aligned tensor dropped by `--resized-rows drop`.
    public var droppedRows = 0

    /// ‖Δ‖/‖W‖ of the base.
    public var relativeChange: Double { baseNorm > 0 ? deltaNorm / baseNorm : (deltaNorm > 0 ? .infinity : 0) }
    /// Whether the AV stores this tensor (it changed).
    public var stored: Bool { changed > 0 }
}

/// What `diff` did: the AV written, every tensor's measurements, and the time and bytes it took.
public struct DiffReport: Sendable {
    /// The AV file written.
    public var output: String
    /// The header written into it.
    public var header: AVHeader
    /// Every tensor of the base, in the base's order.
    public var tensors: [TensorDiff]
    /// Wall-clock seconds the diff took.
    public var seconds: Double
    /// Bytes of the two checkpoints read.
    public var bytesRead: Int
    /// Bytes of the AV file written.
    public var bytesWritten: Int

    /// Tensors the AV stores (those that changed).
    public var changedTensors: Int { tensors.filter(\.stored).count }
    /// Elements in the base.
    public var totalElements: Int { tensors.reduce(0) { $0 + $1.elements } }
    /// Elements whose stored bits differ between the models.
    public var changedElements: Int { tensors.reduce(0) { $0 + $1.changed } }
    /// Changed elements a bf16 model could not represent (summed over tensors).
    public var lostInBF16: Int { tensors.reduce(0) { $0 + $1.lostInBF16 } }
    /// Elements where base + stored Δ does not rebuild the aligned value (summed over tensors).
    public var mismatches: Int { tensors.reduce(0) { $0 + $1.mismatches } }
    /// The largest such distance, in units in the last place, over all tensors.
    public var maxULP: Int { tensors.map(\.maxULP).max() ?? 0 }
    /// Elements whose exact f64 remainders the AV keeps (summed over tensors).
    public var residuals: Int { tensors.reduce(0) { $0 + $1.residuals } }
    /// Elements that rebuild as a zero of the other sign (summed over tensors).
    public var signedZeros: Int { tensors.reduce(0) { $0 + $1.signedZeros } }

    /// ‖Δ‖/‖W‖ over the whole model (0 when the base is all zeros: there is nothing to compare with).
    public var relativeChange: Double {
        let d = tensors.reduce(0) { $0 + $1.deltaNorm * $1.deltaNorm }
        let b = tensors.reduce(0) { $0 + $1.baseNorm * $1.baseNorm }
        return b > 0 ? (d / b).squareRoot() : 0
    }

    /// Relative change per block: `…layers.N` for transformer blocks, the tensor's module otherwise; in
    /// natural order (layer 2 before layer 10).
    public var blocks: [(name: String, relativeChange: Double, tensors: Int)] {
        var order: [String] = []
        var sums: [String: (d: Double, b: Double, n: Int)] = [:]
        for t in tensors {
            let key = Self.block(of: t.name)
            if sums[key] == nil { order.append(key) }
            let s = sums[key] ?? (0, 0, 0)
            sums[key] = (s.d + t.deltaNorm * t.deltaNorm, s.b + t.baseNorm * t.baseNorm, s.n + 1)
        }
        return order.sorted(by: Self.naturalOrder).map { k in
            let s = sums[k]!
            return (k, s.b > 0 ? (s.d / s.b).squareRoot() : (s.d > 0 ? .infinity : 0), s.n)
        }
    }

    /// Names compared part by part between dots, numbers as numbers: `model.layers.2` before
    /// `model.layers.10` (a file's order, which is by bytes, puts 10 first).
    static func naturalOrder(_ a: String, _ b: String) -> Bool {
        let x = a.split(separator: ".", omittingEmptySubsequences: false)
        let y = b.split(separator: ".", omittingEmptySubsequences: false)
        for (p, q) in zip(x, y) where p != q {
            if let m = Int(p), let n = Int(q) { return m < n }
            return p < q
        }
        return x.count < y.count
    }

    /// `model.layers.3.mlp.up_proj.weight` → `model.layers.3`; `lm_head.weight` → `lm_head`.
    public static func block(of name: String) -> String {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        for (i, p) in parts.enumerated()
        where (p == "layers" || p == "h" || p == "blocks" || p == "layer") && i + 1 < parts.count {
            if Int(parts[i + 1]) != nil { return parts[...(i + 1)].joined(separator: ".") }
        }
        if parts.count > 1, ["weight", "bias"].contains(parts.last!) { return parts.dropLast().joined(separator: ".") }
        return name
    }
}

/// Computes the alignment vector `aligned − base` and writes it to `output` as an AV file.
///
/// One pass over both checkpoints, tensor by tensor, chunk by chunk on `options.threads` threads;
/// memory stays bounded (mapped pages are released once used) and the output is written as it is
/// computed. Unchanged tensors are left out. With f32 storage the AV holds aligned − base exactly:
/// the f32 delta, plus an f64 remainder for the few elements f32 cannot hold. Every element is
/// checked to give back the aligned value through merge's own arithmetic at λ = 1; any that do
/// not (a lossy storage dtype, signed zeros) are counted in the report.
/// - Parameter progress: called from the calling thread with (bytes done, bytes total).
public func diff(
    base: Checkpoint, aligned: Checkpoint, output: String, options: DiffOptions,
    progress: ((Int, Int) -> Void)? = nil
) throws(AVError) -> DiffReport {
    let start = DispatchTime.now().uptimeNanoseconds
    do {
        try OutputGuard.checkFile(
            output, inputs: base.inputFiles + aligned.inputFiles + [base.path, aligned.path] + options.protectedPaths)
    } catch {
        throw .file(error)
    }
    guard [.f32, .bf16, .f16, .f64].contains(options.storage) else {
        throw .usage("deltas are stored as f32, bf16, f16 or f64, not \(options.storage.rawValue)")
    }

    // Match the two checkpoints tensor by tensor.
    var plans: [DiffPlan] = []
    var resized: [(String, [Int], [Int])] = []
    for b in base.tensors {
        guard let a = aligned.info(b.name) else {
            throw .tensorOnlyIn(tensor: b.name, presentIn: base.path, missingFrom: aligned.path)
        }
        guard a.dtype == b.dtype else {
            throw .dtypeMismatch(
                tensor: b.name, base: b.dtype, aligned: a.dtype, baseFile: base.path, alignedFile: aligned.path)
        }
        var dropped = 0
        if a.shape != b.shape {
            let sameTail =
                a.shape.count == b.shape.count && !a.shape.isEmpty && a.shape.dropFirst() == b.shape.dropFirst()
            guard sameTail, a.shape[0] > b.shape[0] else {
                throw .shapeMismatch(
                    tensor: b.name, base: b.shape, aligned: a.shape, baseFile: base.path, alignedFile: aligned.path)
            }
            resized.append((b.name, b.shape, a.shape))
            dropped = a.shape[0] - b.shape[0]
        }
        // A float type of whole bytes is diffed as numbers, its deltas in the storage dtype (checked above).
        let storage: DType = b.dtype == .f64 ? .f64 : options.storage
        let elements =
            Convert.supports(b.dtype) ? ElementType(b.dtype).flatMap { e in ElementType(storage).map { (e, $0) } } : nil
        plans.append(DiffPlan(name: b.name, base: b, aligned: a, elements: elements, droppedRows: dropped))
    }
    for a in aligned.tensors where base.info(a.name) == nil {
        throw .tensorOnlyIn(tensor: a.name, presentIn: aligned.path, missingFrom: base.path)
    }
    if !resized.isEmpty && options.resizedRows == .refuse {
        throw .resizedRows(tensors: resized.map(\.0), base: resized[0].1, aligned: resized[0].2)
    }

    let placeholder = String(repeating: "0", count: 16)
    func identity(_ c: Checkpoint, content: String) -> ModelIdentity {
        ModelIdentity(
            path: c.path, dtype: c.mainDType.rawValue, structure: XXHash64.hex(c.structureFingerprint),
            content: content, tensors: c.tensors.count)
    }
    var header = AVHeader(
        domain: options.domain, base: identity(base, content: placeholder),
        aligned: identity(aligned, content: placeholder),
        dtype: options.storage, droppedRows: Dictionary(uniqueKeysWithValues: resized.map { ($0.0, $0.2[0]) }))
    header.baseSamples = BaseSamples.of(base)
    let candidates = plans.filter(\.float).map { TensorSpec(name: $0.name, dtype: $0.storage, shape: $0.base.shape) }
    let writer: ReservedHeaderWriter
    do {
        let extra = candidates.flatMap { c -> [TensorSpec] in
            let n = [Shape.elementCount(c.shape) ?? 0]
            return [
                TensorSpec(name: ExactResiduals.indexName(c.name), dtype: .i64, shape: n),
                TensorSpec(name: ExactResiduals.valueName(c.name), dtype: .f64, shape: n),
            ]
        }
        // Room for a digest of every tensor that may be stored.
        var bound = header
        for t in candidates + extra { bound.digests[t.name] = placeholder }
        writer = try ReservedHeaderWriter(
            path: output, candidates: candidates, metadataBound: bound.metadata, extraBound: extra)
    } catch {
        throw .file(error)
    }
    let byName = Dictionary(uniqueKeysWithValues: plans.map { ($0.name, $0) })
    var results: [String: TensorDiff] = [:]
    var baseDigests: [String: UInt64] = [:]
    var alignedDigests: [String: UInt64] = [:]
    let totalBytes = plans.reduce(0) { $0 + $1.base.byteCount + $1.aligned.byteCount }
    var doneBytes = 0
    var pending: [(String, [(Int, Double)])] = []
    let engine = DiffEngine(threads: options.threads, plans: plans)

    do throws(AVError) {
        // Integer tensors: equal bytes or an error; hashed either way.
        for plan in plans where !plan.float {
            let (b, _) = base.view(plan.name)!
            let (a, _) = aligned.view(plan.name)!
            guard b.count == a.count, b.count == 0 || memcmp(b.baseAddress!, a.baseAddress!, b.count) == 0 else {
                throw .integerTensorDiffers(tensor: plan.name, dtype: plan.base.dtype)
            }
            baseDigests[plan.name] = hashChunks(b)
            alignedDigests[plan.name] = hashChunks(a)
            results[plan.name] = TensorDiff(
                name: plan.name, dtype: plan.base.dtype, shape: plan.base.shape, elements: plan.base.elementCount)
            doneBytes += 2 * b.count
        }
        func record(
            _ plan: DiffPlan,
            _ r: (
                diff: TensorDiff, baseDigest: UInt64, alignedDigest: UInt64, avDigest: UInt64,
                residuals: [(Int, Double)]
            )
        ) {
            results[plan.name] = r.diff
            if r.diff.stored { header.digests[plan.name] = XXHash64.hex(r.avDigest) }
            if r.diff.stored && !r.residuals.isEmpty { pending.append((plan.name, r.residuals)) }
            baseDigests[plan.name] = r.baseDigest
            alignedDigests[plan.name] = r.alignedDigest
        }
        try engine.run(
            writer.order, plans: byName, views: { (base.view($0)!, aligned.view($0)!) }, writer: writer,
            progress: { bytes in
                doneBytes += bytes
                progress?(doneBytes, totalBytes)
            }, finished: record)
        // Exact remainders go last, after every dense delta.
        for (name, list) in pending {
            let indices = list.map { Int64($0.0).littleEndian }.withUnsafeBytes { Array($0) }
            let values = list.map { $0.1.bitPattern.littleEndian }.withUnsafeBytes { Array($0) }
            for (tensor, bytes) in [
                (ExactResiduals.indexName(name), indices), (ExactResiduals.valueName(name), values),
            ] {
                let spec = TensorSpec(
                    name: tensor, dtype: tensor.hasSuffix("/index") ? .i64 : .f64, shape: [list.count])
                header.digests[tensor] = try writer.writeWhole(spec, bytes)
            }
        }
        header.base.content = XXHash64.hex(ContentFingerprint.combine(baseDigests))
        header.aligned.content = XXHash64.hex(ContentFingerprint.combine(alignedDigests))
        do {
            try writer.finish(metadata: header.metadata)
        } catch {
            throw .file(error)
        }
    } catch {
        writer.abort()
        throw error
    }
    progress?(totalBytes, totalBytes)
    let written = Path.fileSize(output) ?? 0
    return DiffReport(
        output: output, header: header, tensors: plans.map { results[$0.name]! },
        seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, bytesRead: totalBytes,
        bytesWritten: written)
}

/// XXH64 digest of a byte range in `ContentFingerprint` chunks.
func hashChunks(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var digests: [UInt64] = []
    var offset = 0
    repeat {
        let end = min(bytes.count, offset + ContentFingerprint.chunkBytes)
        digests.append(XXHash64.hash(UnsafeRawBufferPointer(rebasing: bytes[offset..<end])))
        offset = end
    } while offset < bytes.count
    return ContentFingerprint.tensorDigest(digests)
}

struct DiffPlan {
    var name: String
    var base: TensorInfo
    var aligned: TensorInfo
    /// A floating-point tensor's element type and its deltas'; nil for the others, compared as bytes.
    var elements: (base: ElementType, storage: ElementType)?
    var droppedRows: Int

    /// Whether the tensor is diffed as numbers (rather than required to be equal).
    var float: Bool { elements != nil }
    /// The dtype its deltas are stored in.
    var storage: DType { elements?.storage.dtype ?? base.dtype }
}

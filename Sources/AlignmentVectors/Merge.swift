import Dispatch
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One alignment vector with its coefficient λ.
public struct MergeTerm: Sendable {
    public var vector: AlignmentVector
    public var coefficient: Double

    public init(vector: AlignmentVector, coefficient: Double) {
        self.vector = vector
        self.coefficient = coefficient
    }
}

public struct MergeOptions: Sendable {
    /// Output dtype of the floating-point tensors; nil keeps each tensor's base dtype.
    public var dtype: DType?
    /// For directory outputs: the largest shard; nil shards like the base.
    public var maxShardSize: Int?
    /// Merge AVs whose recorded base differs from the base given, or from each other.
    public var force = false
    /// The vectors are applied to another base on purpose (the same model at another fine-tuning
    /// stage): allowed like `force`, and recorded as a transfer in the output's provenance.
    public var transfer = false
    /// Write NaN or Inf results instead of refusing.
    public var allowNonFinite = false
    public var threads = Parallel.defaultThreads
    /// Extra provenance for the output header (the recipe, for one).
    public var provenance: [String: JSONValue] = [:]
    /// Other inputs of the run that the output must not be or contain (a recipe, a vectors directory).
    public var protectedPaths: [String] = []
    /// How the deltas combine: linear (the default), TIES or DARE.
    public var method = MergeMethod.linear

    public init() {}
}

/// What merge did to one tensor.
public struct TensorMerge: Sendable {
    public var name: String
    public var dtype: DType
    public var elements: Int
    /// Terms that touched the tensor (its AVs hold it and λ ≠ 0).
    public var terms: Int
    /// Elements where base + Σλ·Δ differs from the base.
    public var changed = 0
    /// Of those, the ones the output dtype rounded back to the base value.
    public var roundedAway = 0
    public var nonFinite = 0
}

public struct MergeReport: Sendable {
    public var output: String
    public var base: ModelIdentity
    public var baseVerified: Bool
    public var terms: [(path: String, domain: String, coefficient: Double)]
    public var tensors: [TensorMerge]
    public var outputFiles: [String]
    public var seconds: Double
    public var bytesRead: Int
    public var bytesWritten: Int
    /// How the vectors were combined.
    public var method: MergeMethod?

    public var changed: Int { tensors.reduce(0) { $0 + $1.changed } }
    public var roundedAway: Int { tensors.reduce(0) { $0 + $1.roundedAway } }
    public var touchedTensors: Int { tensors.filter { $0.terms > 0 }.count }
}

/// Where merged tensors go: one safetensors file or a model directory.
protocol TensorStream: ByteSink {
    var nextTensor: TensorInfo? { get }
    func abort()
}

extension SafeTensorsWriter: TensorStream {}
extension ModelDirectoryWriter: TensorStream {}

/// Writes `base + Σ λ·AV` to `output`: a file for a file base, a model directory for a directory
/// base (sharded like it, with its config and tokenizer files copied).
///
/// Refuses, before writing anything, vectors made from another base (structure fingerprints) or
/// from different bases, and an output that is an input; refuses at the end, leaving nothing
/// written, a result with NaN or Inf and a base whose content fingerprint is not the one the
/// vectors record. Sums are in f64, per element, so the bytes do not depend on thread count.
public func merge(
    base: Checkpoint, terms: [MergeTerm], output: String, options: MergeOptions,
    progress: ((Int, Int) -> Void)? = nil
) throws(AVError) -> MergeReport {
    let start = DispatchTime.now().uptimeNanoseconds
    let inputs = base.inputFiles + [base.path] + terms.map(\.vector.path) + options.protectedPaths
    if base.isDirectory, options.dtype == .f64 {
        throw .usage(
            "--dtype f64 is for file outputs: a model directory in f64 is not a format transformers or av loads")
    }
    do {
        if !base.isDirectory { try OutputGuard.checkFile(output, inputs: inputs) }
    } catch {
        throw .file(error)
    }

    try options.method.validate()
    let structure = try checkCompatible(base: base, terms: terms, force: options.force || options.transfer)
    if let d = options.dtype, !Convert.supports(d) { throw .usage("cannot write \(d.rawValue) output") }

    // Output layout: the base's tensors in its order, in the output dtype.
    func outDType(_ t: TensorInfo) -> DType { Convert.supports(t.dtype) ? (options.dtype ?? t.dtype) : t.dtype }
    let specs = base.tensors.map { TensorSpec(name: $0.name, dtype: outDType($0), shape: $0.shape) }
    let expected = terms.first?.vector.header.base.content
    var provenance: [(key: String, value: JSONValue)] = [
        ("tool", .string(AVHeader.toolVersion)),
        (
            "base",
            .object([
                ("path", .string(base.path)), ("structure", .string(structure)),
                ("content", expected.map { .string($0) } ?? .null),
            ])
        ),
        (
            "vectors",
            .array(
                terms.map { t in
                    .object([
                        ("path", .string(t.vector.path)), ("domain", .string(t.vector.domain)),
                        ("coefficient", .double(t.coefficient)),
                        ("aligned", .string(t.vector.header.aligned.fingerprint)),
                    ])
                })
        ),
        ("dtype", options.dtype.map { .string($0.rawValue) } ?? .string("base")),
    ]
    if !options.method.isLinear { provenance.append(("method", options.method.json)) }
    if options.force && !options.transfer { provenance.append(("forced", .bool(true))) }
    if options.transfer {
        provenance.append(
            ("transfer", .object(terms.map { ($0.vector.domain, .string($0.vector.header.base.fingerprint)) })))
    }
    for (k, v) in options.provenance.sorted(by: { $0.key < $1.key }) { provenance.append((k, v)) }
    let metadata = ["format": "pt", "av.merge": JSONValue.object(provenance).rendered()]

    let writer: TensorStream
    var directoryWriter: ModelDirectoryWriter?
    var fileWriter: SafeTensorsWriter?
    do {
        if base.isDirectory {
            let shardSize =
                options.maxShardSize
                ?? (base.store.files.count > 1
                    ? base.store.files.map { $0.tensors.reduce(0) { $0 + $1.byteCount } }.max()! : Int.max)
            let extraNames = Set(base.auxiliaryFiles.map { URL(fileURLWithPath: $0).lastPathComponent })
            let w = try ModelDirectoryWriter(
                path: output, tensors: specs, maxShardSize: shardSize, metadata: metadata, protecting: inputs,
                extraNames: extraNames)
            directoryWriter = w
            writer = w
        } else {
            if options.maxShardSize != nil {
                throw AVError.usage("--max-shard-size applies to model directories; the base \(base.path) is a file")
            }
            let w = try SafeTensorsWriter(path: output, tensors: specs, metadata: metadata)
            fileWriter = w
            writer = w
        }
    } catch let e as SafeTensorsError {
        throw .file(e)
    } catch let e as AVError {
        throw e
    } catch {
        throw .usage("\(error)")
    }

    let totalBytes =
        base.tensors.reduce(0) { $0 + $1.byteCount }
        + terms.reduce(0) { $0 + $1.vector.file.tensors.reduce(0) { $0 + $1.byteCount } }
    var done = 0
    var results: [String: TensorMerge] = [:]
    var digests: [String: UInt64] = [:]
    let engine = MergeEngine(threads: options.threads, base: base, dtype: options.dtype)
    do throws(AVError) {
        while let next = writer.nextTensor {
            let info = base.info(next.name)!
            let active = try MergeEngine.terms(terms, for: info, method: options.method)
            let r = try engine.run(info, outDType: next.dtype, view: base.view(next.name)!, terms: active, into: writer)
            { bytes in
                done += bytes
                progress?(done, totalBytes)
            }
            if r.merge.nonFinite > 0 && !options.allowNonFinite {
                throw .nonFinite(tensor: next.name, count: r.merge.nonFinite, file: output)
            }
            results[next.name] = r.merge
            digests[next.name] = r.digest
        }
        // Zero-size tensors never show up as `nextTensor`; they still count in the fingerprint.
        for t in base.tensors where digests[t.name] == nil {
            digests[t.name] = hashChunks(base.view(t.name)!.bytes)
            results[t.name] = TensorMerge(name: t.name, dtype: outDType(t), elements: t.elementCount, terms: 0)
        }
        let content = XXHash64.hex(ContentFingerprint.combine(digests))
        if let expected, expected != content, !options.force && !options.transfer {
            throw .baseMismatch(
                av: terms[0].vector.path, recorded: terms[0].vector.header.base.fingerprint,
                given: "\(structure):\(content)", basePath: base.path)
        }
        let config = try configWithDType(base: base, dtype: options.dtype)
        do {
            if let w = fileWriter { try w.finish() }
            if let w = directoryWriter { try w.finish(copying: base.auxiliaryFiles, writing: config) }
        } catch {
            throw .file(error)
        }
        let identity = ModelIdentity(
            path: base.path, dtype: base.mainDType.rawValue, structure: structure, content: content,
            tensors: base.tensors.count)
        var files: [String] = [output]
        var written = Path.fileSize(output) ?? 0
        if let w = directoryWriter {
            files = w.shardNames.map { output + "/" + $0 }
            written = files.reduce(0) {
                $0 + (Path.fileSize($1) ?? 0)
            }
        }
        progress?(totalBytes, totalBytes)
        return MergeReport(
            output: output, base: identity, baseVerified: expected == nil || expected == content,
            terms: terms.map { ($0.vector.path, $0.vector.domain, $0.coefficient) },
            tensors: base.tensors.map { results[$0.name]! }, outputFiles: files,
            seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, bytesRead: totalBytes,
            bytesWritten: written, method: options.method)
    } catch {
        writer.abort()
        throw error
    }
}

/// The base's config.json with `torch_dtype` (and transformers 5's `dtype`) set to the output dtype,
/// when `--dtype` changes it; empty when the copied config is already right.
func configWithDType(base: Checkpoint, dtype: DType?) throws(AVError) -> [String: String] {
    let names: [DType: String] = [.f32: "float32", .bf16: "bfloat16", .f16: "float16"]
    guard let dtype, let name = names[dtype] else { return [:] }
    let path = (base.path.hasSuffix("/") ? base.path : base.path + "/") + "config.json"
    guard let data = FileManager.default.contents(atPath: path) else { return [:] }
    guard let json = try? JSONParser.parse(String(decoding: data, as: UTF8.self)), case .object(var members) = json
    else {
        throw .file(
            SafeTensorsError(file: path, .write(message: "not a JSON object; cannot record the output dtype in it")))
    }
    var found = false
    for i in members.indices where ["torch_dtype", "dtype"].contains(members[i].key) {
        members[i].value = .string(name)
        found = true
    }
    if !found { members.append((key: "torch_dtype", value: .string(name))) }
    return ["config.json": JSONValue.object(members).rendered(pretty: true) + "\n"]
}

/// Runs merge's per-tensor work: chunks in parallel batches, output written in order.
final class MergeEngine {
    /// One vector's part in a tensor: its deltas (mapped, decoded per chunk, or computed in memory
    /// by a merge method), coefficient and exact remainders.
    struct Term {
        /// The AV the deltas are read from in place (digests checked as they stream); nil when they
        /// were decoded or combined, and checked, before.
        var vector: AlignmentVector?
        var bytes: UnsafeRawBufferPointer
        var file: SafeTensorsFile?
        /// The dtype the engine adds: the stored dtype, or f32 for decoded sparse and 1-bit deltas.
        var dtype: DType
        var scale: Double
        var residuals: (indices: [Int], values: [Double])?
        var decoder: DeltaDecoder?
        /// Keeps memory computed for the term alive.
        var owner: AnyObject?
    }

    let threads: Int
    let scratch: [Scratch]
    let output: UnsafeMutableRawPointer
    let chunkOutBytes: Int

    /// The terms that change `tensor`: vectors that hold it, with a coefficient other than 0.
    static func terms(_ terms: [MergeTerm], for tensor: String) throws(AVError) -> [Term] {
        var active: [Term] = []
        for t in terms where t.coefficient != 0 {
            guard let delta = t.vector.delta(tensor) else { continue }
            guard case .dense(let v) = delta.storage else {
                active.append(
                    Term(
                        bytes: UnsafeRawBufferPointer(start: nil, count: 0), dtype: .f32, scale: t.coefficient,
                        decoder: try DeltaDecoder(vector: t.vector, tensor: delta)))
                continue
            }
            active.append(
                Term(
                    vector: t.vector, bytes: t.vector.file.bytes(of: v), file: t.vector.file, dtype: v.dtype,
                    scale: t.coefficient, residuals: try t.vector.residuals(of: tensor)))
        }
        return active
    }

    /// The terms of `tensor` under `method`: as they are for linear; for TIES and DARE one term,
    /// the combined delta in f64 (every term's delta read whole, digests checked; a vector without
    /// the tensor counts as a zero delta, as a model without a change does in mergekit).
    static func terms(_ terms: [MergeTerm], for tensor: TensorInfo, method: MergeMethod) throws(AVError) -> [Term] {
        let linear = try self.terms(terms, for: tensor.name)
        guard !method.isLinear, !linear.isEmpty else { return linear }
        let used = terms.filter { $0.coefficient != 0 }
        var deltas: [[Double]] = []
        for t in used {
            deltas.append(
                try t.vector.delta(tensor.name).map { d throws(AVError) in try t.vector.deltaValues(d) }
                    ?? [Double](repeating: 0, count: tensor.elementCount))
        }
        let combined = method.combine(
            tensor: tensor.name, deltas: deltas, weights: used.map(\.coefficient), domains: used.map(\.vector.domain))
        let buffer = TensorBuffer(count: combined.count * 8)
        combined.withUnsafeBytes { buffer.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return [
            Term(
                bytes: UnsafeRawBufferPointer(start: buffer.pointer, count: buffer.count), dtype: .f64, scale: 1,
                owner: buffer)
        ]
    }

    /// The pointer to term `k`'s deltas for elements `lo..<lo + n`: in place, or decoded into the
    /// worker's buffer.
    static func pointer(
        _ terms: [Term], _ k: Int, base: UnsafeRawPointer, first lo: Int, count n: Int, scratch: Scratch
    ) -> UnsafeRawPointer {
        guard let decoder = terms[k].decoder else { return base + lo * terms[k].dtype.byteSize! }
        let out = scratch.decodeBuffer(k, count: n)
        decoder.decode(from: lo, count: n, into: out)
        return UnsafeRawPointer(out)
    }

    init(threads: Int, base: Checkpoint, dtype: DType?) {
        self.threads = Parallel.clamped(threads)
        scratch = (0..<self.threads).map { _ in Scratch() }
        var most = 8
        for t in base.tensors {
            let size = t.dtype.byteSize ?? 1
            let outSize = Convert.supports(t.dtype) ? (dtype ?? t.dtype).byteSize! : size
            most = max(most, ContentFingerprint.chunkBytes / size * outSize)
        }
        chunkOutBytes = most
        // Two batches of output: one being written while the other is computed.
        output = .allocate(byteCount: most * self.threads * 2, alignment: 64)
    }

    deinit { output.deallocate() }

    func run(
        _ info: TensorInfo, outDType: DType, view: (bytes: UnsafeRawBufferPointer, file: SafeTensorsFile),
        terms: [Term], into writer: TensorStream,
        progress: (Int) -> Void
    ) throws(AVError) -> (merge: TensorMerge, digest: UInt64) {
        let dtype = info.dtype
        let size = dtype.byteSize ?? 1
        let outSize = outDType.byteSize ?? 1
        let elements = info.elementCount
        let copy = terms.isEmpty && outDType == dtype
        // Bytes per chunk of the base: the fingerprint's chunk, so hashing needs no second pass.
        let perChunk = ContentFingerprint.chunkBytes / size
        let chunks = max(1, (view.bytes.count + ContentFingerprint.chunkBytes - 1) / ContentFingerprint.chunkBytes)
        var digests = [UInt64](repeating: 0, count: chunks)
        var stats = [ChunkStats](repeating: ChunkStats(), count: chunks)
        let bp = view.bytes.baseAddress ?? UnsafeRawPointer(output)
        let fileStart = view.file.fileOffset(of: view.file.info(info.name)!)
        let termPointers = terms.map {
            (p: $0.bytes.baseAddress ?? UnsafeRawPointer(output), dtype: $0.dtype, scale: $0.scale)
        }
        let residuals = terms.map(\.residuals)
        // Each term's AV digest runs, hashed as the deltas stream by (term-major).
        let runCount = AVDigest.runs(elements)
        var termRuns = [UInt64](repeating: 0, count: runCount * terms.count)

        let pipeline = WritePipeline()
        try forEachBatch(
            chunks: chunks, threads: threads, output: output, slotBytes: threads * chunkOutBytes, pipeline: pipeline
        ) {
            (first, batch, slot, slotBase) throws(AVError) in
            digests.withUnsafeMutableBufferPointer { dg in
                termRuns.withUnsafeMutableBufferPointer { tr in
                    stats.withUnsafeMutableBufferPointer { st in
                        Parallel.forEach(batch, threads: threads) { w, j in
                            let c = first + j
                            let lo = c * perChunk
                            let n = min(elements, lo + perChunk) - lo
                            dg[c] = XXHash64.hash(UnsafeRawBufferPointer(start: bp + lo * size, count: n * size))
                            for (k, t) in termPointers.enumerated() where terms[k].vector != nil {
                                let runs = UnsafeMutableBufferPointer(
                                    rebasing: tr[(k * runCount)..<((k + 1) * runCount)])
                                let s = t.dtype.byteSize!
                                AVDigest.hashRuns(t.p + lo * s, first: lo, count: n, elementSize: s, into: runs)
                            }
                            if !copy {
                                let chunkTerms = termPointers.indices.map { k in
                                    (
                                        Self.pointer(
                                            terms, k, base: termPointers[k].p, first: lo, count: n, scratch: scratch[w]),
                                        termPointers[k].dtype, termPointers[k].scale
                                    )
                                }
                                st[c] = Self.chunk(
                                    base: bp + lo * size, dtype: dtype, count: n,
                                    terms: chunkTerms,
                                    outDType: outDType, out: slotBase + j * chunkOutBytes, scratch: scratch[w],
                                    first: lo, residuals: residuals)
                            }
                        }
                    }
                }
            }
            // Write in the background (untouched tensors straight from the base's mapping), then let
            // the kernel drop the input pages.
            var pieces: [UnsafeRawBufferPointer] = []
            var done = 0
            for j in 0..<batch {
                let c = first + j
                let lo = c * perChunk
                let n = min(elements, lo + perChunk) - lo
                pieces.append(
                    copy
                        ? UnsafeRawBufferPointer(start: bp + lo * size, count: n * size)
                        : UnsafeRawBufferPointer(start: slotBase + j * chunkOutBytes, count: n * outSize))
                done += n
            }
            let lo = first * perChunk
            var releases = [(view.file, (fileStart + lo * size)..<(fileStart + (lo + done) * size))]
            for t in terms {
                guard let file = t.file, let stored = file.info(info.name) else { continue }
                let s = t.dtype.byteSize!
                let start = file.fileOffset(of: stored)
                releases.append((file, (start + lo * s)..<(start + (lo + done) * s)))
            }
            pipeline.submit(slot) { () throws(SafeTensorsError) in
                for p in pieces { try writer.write(p) }
                for (file, range) in releases { file.mapping.release(range) }
            }
            progress(done * size + terms.reduce(0) { $0 + ($1.decoder == nil ? done * $1.dtype.byteSize! : 0) })
        }
        for (k, t) in terms.enumerated() {
            try t.vector?.verify(info.name, runs: Array(termRuns[(k * runCount)..<((k + 1) * runCount)]))
        }
        var m = TensorMerge(name: info.name, dtype: outDType, elements: elements, terms: terms.count)
        for s in stats {
            m.changed += s.changed
            m.roundedAway += s.roundedAway
            m.nonFinite += s.nonFinite
        }
        return (m, ContentFingerprint.tensorDigest(digests))
    }

    /// The common case in loops that vectorize: bf16, f16 or f32 base, f32 deltas, bf16 or f32
    /// output. The same arithmetic, in the same order, as the general path.
    static func fastBlock(
        base b: UnsafeRawPointer, dtype: DType, count n: Int, terms: [(UnsafeRawPointer, Double)], outDType: DType,
        out o: UnsafeMutableRawPointer, scratch s: Scratch, first: Int,
        residuals: [(indices: [Int], values: [Double])?],
        stats st: inout ChunkStats
    ) {
        let fb = floatView(dtype, b, count: n, scratch: s.f32)
        let acc = s.accA
        for i in 0..<n { acc[i] = Double(fb[i]) }
        for (p, scale) in terms {
            let d = floatView(.f32, p, count: n, scratch: s.f32b)
            if scale == 1 {
                for i in 0..<n { acc[i] += Double(d[i]) }
            } else {
                for i in 0..<n { acc[i] += scale * Double(d[i]) }
            }
        }
        for (k, r) in residuals.enumerated() {
            guard let r else { continue }
            var j = lowerBound(r.indices, first)
            while j < r.indices.count, r.indices[j] < first + n {
                acc[r.indices[j] - first] += terms[k].1 * r.values[j]
                j += 1
            }
        }
        // Round, store and count four lanes at a time; tests are integer bit arithmetic
        // (nonZero(x) = (x | −x) >> 31) because SIMD comparison masks compile to scalar code here.
        @inline(__always) func nonZero(_ x: SIMD4<UInt32>) -> SIMD4<UInt32> { (x | (SIMD4<UInt32>() &- x)) &>> 31 }
        var changedV = SIMD4<UInt32>()
        var nonFiniteV = SIMD4<UInt32>()
        var sameV = SIMD4<UInt32>()  // changed in f64 but stored as the base's own bits: rounded away
        let rawAcc = UnsafeRawPointer(acc)
        let rawB = UnsafeRawPointer(fb)
        let bf16Base = dtype == .bf16
        var i = 0
        while i + 4 <= n {
            let a = rawAcc.loadUnaligned(fromByteOffset: 8 * i, as: SIMD4<Double>.self)
            let bv = rawB.loadUnaligned(fromByteOffset: 4 * i, as: SIMD4<Float>.self)
            var f = SIMD4<Float>(Float(a[0]), Float(a[1]), Float(a[2]), Float(a[3]))
            if outDType == .bf16 {
                // Round to odd in f32 (toward zero, last bit set when inexact) so that the bf16
                // rounding below is the only one: integer arithmetic, as SIMD masks are scalar here.
                let back = SIMD4<Double>(Double(f[0]), Double(f[1]), Double(f[2]), Double(f[3]))
                let magA = unsafeBitCast(a, to: SIMD4<UInt64>.self) & 0x7FFF_FFFF_FFFF_FFFF
                let magB = unsafeBitCast(back, to: SIMD4<UInt64>.self) & 0x7FFF_FFFF_FFFF_FFFF
                let diff = magA ^ magB
                let inexact = SIMD4<UInt32>(truncatingIfNeeded: (diff | (SIMD4<UInt64>() &- diff)) &>> 63)
                let away = SIMD4<UInt32>(truncatingIfNeeded: (magA &- magB) &>> 63)  // |f| > |a|
                let isNaN = SIMD4<UInt32>(truncatingIfNeeded: (0x7FF0_0000_0000_0000 &- magA) &>> 63)
                let fix = inexact & (1 &- isNaN)
                let fb32 = unsafeBitCast(f, to: SIMD4<UInt32>.self)
                f = unsafeBitCast(((fb32 &- (away & fix)) | fix), to: SIMD4<Float>.self)
            }
            let bd = SIMD4<Double>(Double(bv[0]), Double(bv[1]), Double(bv[2]), Double(bv[3]))
            let x = unsafeBitCast(a, to: SIMD4<UInt64>.self) ^ unsafeBitCast(bd, to: SIMD4<UInt64>.self)
            let changed = SIMD4<UInt32>(truncatingIfNeeded: (x | (SIMD4<UInt64>() &- x)) &>> 63)
            let bits = unsafeBitCast(f, to: SIMD4<UInt32>.self)
            let baseBits = unsafeBitCast(bv, to: SIMD4<UInt32>.self)
            let baseInf = 1 &- nonZero((baseBits & 0x7F80_0000) ^ 0x7F80_0000)
            if outDType == .bf16 {
                let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
                let nan = SIMD4<UInt32>() &- ((0x7F80_0000 &- (bits & 0x7FFF_FFFF)) &>> 31)
                let ob = (rounded & ~nan) | (((bits &>> 16) | 0x40) & nan)
                o.storeBytes(of: SIMD4<UInt16>(truncatingIfNeeded: ob), toByteOffset: 2 * i, as: SIMD4<UInt16>.self)
                let outInf = 1 &- nonZero((ob & 0x7F80) ^ 0x7F80)
                nonFiniteV &+= outInf & (1 &- baseInf)
                if bf16Base { sameV &+= changed & (1 &- nonZero(ob ^ (baseBits &>> 16))) }
            } else {
                o.storeBytes(of: f, toByteOffset: 4 * i, as: SIMD4<Float>.self)
                let outInf = 1 &- nonZero((bits & 0x7F80_0000) ^ 0x7F80_0000)
                nonFiniteV &+= outInf & (1 &- baseInf)
                sameV &+= changed & (1 &- nonZero(bits ^ baseBits))
            }
            changedV &+= changed
            i += 4
        }
        var changed = Int(changedV.wrappedSum())
        var nonFinite = Int(nonFiniteV.wrappedSum())
        var same = Int(sameV.wrappedSum())
        while i < n {
            let v = outDType == .bf16 ? FloatBits.roundToOdd(acc[i]) : Float(acc[i])
            let isChanged = acc[i].bitPattern != Double(fb[i]).bitPattern
            let baseInf = fb[i].bitPattern & 0x7F80_0000 == 0x7F80_0000
            changed += isChanged ? 1 : 0
            if outDType == .bf16 {
                let ob = FloatBits.floatToBF16(v)
                o.storeBytes(of: ob, toByteOffset: 2 * i, as: UInt16.self)
                nonFinite += (ob & 0x7F80 == 0x7F80 && !baseInf) ? 1 : 0
                if bf16Base { same += (isChanged && ob == UInt16(fb[i].bitPattern >> 16)) ? 1 : 0 }
            } else {
                o.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self)
                nonFinite += (v.bitPattern & 0x7F80_0000 == 0x7F80_0000 && !baseInf) ? 1 : 0
                same += (isChanged && v.bitPattern == fb[i].bitPattern) ? 1 : 0
            }
            i += 1
        }
        st.changed += changed
        st.nonFinite += nonFinite
        if outDType == dtype { st.roundedAway += same }
    }

    /// `out = narrow(base + Σ λ·Δ)` for `count` elements, counting changes, changes rounded away
    /// by the output dtype, and non-finite results.
    static func chunk(
        base: UnsafeRawPointer, dtype: DType, count: Int, terms: [(UnsafeRawPointer, DType, Double)],
        outDType: DType, out: UnsafeMutableRawPointer, scratch s: Scratch, first: Int,
        residuals: [(indices: [Int], values: [Double])?]
    ) -> ChunkStats {
        var st = ChunkStats()
        let size = dtype.byteSize!
        let outSize = outDType.byteSize!
        let fast =
            [.bf16, .f16, .f32].contains(dtype) && (outDType == .bf16 || outDType == .f32)
            && terms.allSatisfy { $0.1 == .f32 }
        var off = 0
        while off < count {
            let n = min(Scratch.block, count - off)
            let b = base + off * size
            let o = out + off * outSize
            if fast {
                fastBlock(
                    base: b, dtype: dtype, count: n, terms: terms.map { ($0.0 + off * 4, $0.2) }, outDType: outDType,
                    out: o,
                    scratch: s, first: first + off, residuals: residuals, stats: &st)
                off += n
                continue
            }
            Accumulate.widen(dtype, b, count: n, into: s.accB, scratch: s.f32)
            s.accA.update(from: s.accB, count: n)
            for t in terms {
                Accumulate.addScaled(t.1, t.0 + off * t.1.byteSize!, count: n, scale: t.2, into: s.accA, scratch: s.f32)
            }
            // Exact remainders come after all dense deltas, term by term, as diff checked them.
            for (k, r) in residuals.enumerated() {
                guard let r else { continue }
                let lo = first + off
                var j = lowerBound(r.indices, lo)
                while j < r.indices.count, r.indices[j] < lo + n {
                    s.accA[r.indices[j] - lo] += terms[k].2 * r.values[j]
                    j += 1
                }
            }
            Accumulate.narrow(s.accA, count: n, to: outDType, into: o, scratch: s.f32b)
            var changed = 0
            var nonFinite = 0
            for i in 0..<n where s.accA[i] != s.accB[i] { changed += 1 }
            // Finite sums can still overflow the output dtype (f16 above 65504): check what was stored.
            if outDType == .f64 {
                for i in 0..<n where !s.accA[i].isFinite && s.accB[i].isFinite { nonFinite += 1 }
            } else {
                Convert.toFloat(outDType, from: o, count: n, into: s.f32)
                for i in 0..<n where !s.f32[i].isFinite && s.accB[i].isFinite { nonFinite += 1 }
            }
            st.changed += changed
            st.nonFinite += nonFinite
            if changed > 0 && outDType == dtype {
                // A change the output dtype cannot hold comes back as the base's own bits.
                for i in 0..<n
                where s.accA[i] != s.accB[i] && ElementOps.bits(o, i, size: size) == ElementOps.bits(b, i, size: size) {
                    st.roundedAway += 1
                }
            }
            off += n
        }
        return st
    }
}

/// The first position in sorted `a` whose value is at least `x`.
func lowerBound(_ a: [Int], _ x: Int) -> Int {
    var lo = 0
    var hi = a.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if a[mid] < x { lo = mid + 1 } else { hi = mid }
    }
    return lo
}

/// Checks that every AV fits `base`: made from a base of the same structure (unless `force`), all
/// from the same base (unless `force`), each delta on a base tensor of its shape and a dtype merge
/// can add. Returns the base's structure fingerprint.
func checkCompatible(base: Checkpoint, terms: [MergeTerm], force: Bool) throws(AVError) -> String {
    let structure = XXHash64.hex(base.structureFingerprint)
    if !force {
        for t in terms where t.vector.header.base.structure != structure {
            throw .baseMismatch(
                av: t.vector.path, recorded: t.vector.header.base.fingerprint, given: "\(structure):…",
                basePath: base.path)
        }
        for (i, t) in terms.enumerated() {
            for u in terms[(i + 1)...] where u.vector.header.base.fingerprint != t.vector.header.base.fingerprint {
                throw .differentBases(
                    first: t.vector.path, firstBase: t.vector.header.base.fingerprint, second: u.vector.path,
                    secondBase: u.vector.header.base.fingerprint)
            }
        }
    }
    // Every delta must land on a base tensor of its shape.
    for t in terms {
        for v in t.vector.deltas {
            guard let b = base.info(v.name) else { throw .vectorTensorNotInBase(av: t.vector.path, tensor: v.name) }
            guard b.shape == v.shape else {
                throw .vectorShape(av: t.vector.path, tensor: v.name, vector: v.shape, base: b.shape)
            }
            guard Convert.supports(v.valueDType), Convert.supports(b.dtype) else {
                throw .unsupportedDType(
                    tensor: v.name, dtype: Convert.supports(v.valueDType) ? b.dtype : v.valueDType, file: t.vector.path)
            }
        }
    }
    return structure
}

/// Memory that holds one mixed tensor.
public final class TensorBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let count: Int

    init(count: Int) {
        self.count = count
        pointer = .allocate(byteCount: max(count, 1), alignment: 64)
    }

    deinit { pointer.deallocate() }
}

/// `base + Σ λ·AV` for every tensor some AV changes, in memory and in the base's dtype: the bytes
/// `merge` would write, for evaluating a mix without writing it. Tensors no AV touches are left out.
public func mixTensors(
    base: Checkpoint, terms: [MergeTerm], threads: Int, force: Bool = false, method: MergeMethod = .linear
) throws(AVError) -> [String: TensorBuffer] {
    try method.validate()
    let structure = try checkCompatible(base: base, terms: terms, force: force)
    if !force, let expected = terms.first?.vector.header.base.content {
        // The same content check as merge's, over the whole base (merge gets it from its one pass).
        let content = XXHash64.hex(base.contentFingerprint(threads: threads))
        if content != expected {
            throw .baseMismatch(
                av: terms[0].vector.path, recorded: terms[0].vector.header.base.fingerprint,
                given: "\(structure):\(content)", basePath: base.path)
        }
    }
    let engine = MergeEngine(threads: threads, base: base, dtype: nil)
    var out: [String: TensorBuffer] = [:]
    for info in base.tensors {
        let active = try MergeEngine.terms(terms, for: info, method: method)
        guard !active.isEmpty, let view = base.view(info.name) else { continue }
        let buffer = TensorBuffer(count: info.byteCount)
        let size = info.dtype.byteSize!
        let perChunk = ContentFingerprint.chunkBytes / size
        let chunks = (info.elementCount + perChunk - 1) / perChunk
        let bp = view.bytes.baseAddress!
        let residuals = active.map(\.residuals)
        let runCount = AVDigest.runs(info.elementCount)
        var termRuns = [UInt64](repeating: 0, count: runCount * active.count)
        termRuns.withUnsafeMutableBufferPointer { runs in
            Parallel.forEach(chunks, threads: threads) { w, c in
                let lo = c * perChunk
                let n = min(info.elementCount, lo + perChunk) - lo
                for (k, t) in active.enumerated() where t.vector != nil {
                    let s = t.dtype.byteSize!
                    AVDigest.hashRuns(
                        t.bytes.baseAddress! + lo * s, first: lo, count: n, elementSize: s,
                        into: UnsafeMutableBufferPointer(rebasing: runs[(k * runCount)..<((k + 1) * runCount)]))
                }
                _ = MergeEngine.chunk(
                    base: bp + lo * size, dtype: info.dtype, count: n,
                    terms: active.indices.map { k in
                        (
                            MergeEngine.pointer(
                                active, k, base: active[k].bytes.baseAddress ?? bp, first: lo, count: n,
                                scratch: engine.scratch[w]),
                            active[k].dtype, active[k].scale
                        )
                    },
                    outDType: info.dtype, out: buffer.pointer + lo * size, scratch: engine.scratch[w], first: lo,
                    residuals: residuals)
            }
        }
        for (k, t) in active.enumerated() {
            try t.vector?.verify(info.name, runs: Array(termRuns[(k * runCount)..<((k + 1) * runCount)]))
        }
        out[info.name] = buffer
    }
    return out
}

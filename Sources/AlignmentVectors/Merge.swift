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
    /// The opened AV file.
    public var vector: AlignmentVector
    /// λ: 0 leaves the base, 1 adds the vector as it is, other values interpolate or extrapolate.
    public var coefficient: Double
    /// λ per layer and module, when the coefficient is not the same for every tensor.
    public var rule: CoefficientRule?
    /// The layers of the model the term is mixed into (for a rule's gradient); set by merge and mix.
    public var layerCount = 0

    /// A term from a vector, its coefficient and, optionally, how the coefficient varies by tensor.
    public init(vector: AlignmentVector, coefficient: Double, rule: CoefficientRule? = nil) {
        self.vector = vector
        self.coefficient = coefficient
        self.rule = rule.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// λ for `tensor`: the coefficient, or what the rule gives it.
    public func coefficient(for tensor: String) -> Double {
        rule?.coefficient(coefficient, tensor: tensor, layerCount: layerCount) ?? coefficient
    }

    /// The terms with `layerCount` set to the layers of `base` (the largest `layers.N` plus one).
    public static func counting(_ terms: [MergeTerm], layersOf base: Checkpoint) -> [MergeTerm] {
        guard terms.contains(where: { $0.rule != nil }) else { return terms }
        let count = (base.tensors.compactMap { VectorAnalysis.layer(of: $0.name) }.max() ?? -1) + 1
        return terms.map {
            var t = $0
            t.layerCount = count
            return t
        }
    }
}

/// How `merge` runs: output dtype and sharding, the checks it may skip, threads, provenance and method.
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
    /// Worker threads (the bytes written do not depend on it).
    public var threads = Parallel.defaultThreads
    /// Extra provenance for the output header (the recipe, for one).
    public var provenance: [String: JSONValue] = [:]
    /// The base's path as the user named it, for the provenance (a `.gguf` rather than the temporary
    /// directory it was converted to); nil: the checkpoint's path.
    public var basePath: String?
    /// Other inputs of the run that the output must not be or contain (a recipe, a vectors directory).
    public var protectedPaths: [String] = []
    /// How the deltas combine: linear (the default), TIES or DARE.
    public var method = MergeMethod.linear
    /// The kernel level the sums run at: the machine's (`KernelLevel.current`) unless a test asks
    /// for another; every level writes the same bytes.
    public var kernels = KernelLevel.current

    /// Defaults: base dtypes, shards like the base, every check on, all cores, linear.
    public init() {}
}

/// What merge did to one tensor.
public struct TensorMerge: Sendable {
    /// The tensor's name.
    public var name: String
    /// Its dtype in the output.
    public var dtype: DType
    /// Elements in the tensor.
    public var elements: Int
    /// Terms that touched the tensor (its AVs hold it and λ ≠ 0).
    public var terms: Int
    /// Elements where base + Σλ·Δ differs from the base.
    public var changed = 0
    /// Of those, the ones the output dtype rounded back to the base value.
    public var roundedAway = 0
    /// Elements whose result is NaN or ±Inf (refused unless `allowNonFinite`).
    public var nonFinite = 0
}

/// What `merge` did: the output written, the base and terms, every tensor's counts, time and bytes.
public struct MergeReport: Sendable {
    /// The output file or directory.
    public var output: String
    /// The base, with the fingerprint the merge computed.
    public var base: ModelIdentity
    /// Whether the base's content fingerprint is the one the vectors record.
    public var baseVerified: Bool
    /// For a base that is a quantized copy of the vectors' base, how its values compared with the
    /// samples the vectors record (`BaseSamples`); nil otherwise.
    public var quantizedBase: QuantizedBaseCheck?
    /// The vectors and coefficients, in the order given.
    public var terms: [(path: String, domain: String, coefficient: Double)]
    /// Every tensor of the base, in the base's order.
    public var tensors: [TensorMerge]
    /// The safetensors files written (the shards of a directory output).
    public var outputFiles: [String]
    /// Wall-clock seconds the merge took.
    public var seconds: Double
    /// Bytes of the base and the vectors read.
    public var bytesRead: Int
    /// Bytes of safetensors written.
    public var bytesWritten: Int
    /// How the vectors were combined.
    public var method: MergeMethod?

    /// Elements changed by the mix, over all tensors.
    public var changed: Int { tensors.reduce(0) { $0 + $1.changed } }
    /// Elements the output dtype rounded back to the base's value, over all tensors.
    public var roundedAway: Int { tensors.reduce(0) { $0 + $1.roundedAway } }
    /// Tensors at least one term touched.
    public var touchedTensors: Int { tensors.filter { $0.terms > 0 }.count }
}

/// Where merged tensors go: one safetensors file or a model directory.
protocol TensorStream: ByteSink {
    /// Every tensor with bytes, in the order they must be written.
    var writeOrder: [TensorInfo] { get }
    func abort()
    /// Where `tensor`'s output bytes live in memory, when they are computed in place rather than
    /// written (an in-memory mix); nil for a stream that writes.
    func destination(of tensor: String) -> UnsafeMutableRawPointer?
}

extension TensorStream {
    func destination(of tensor: String) -> UnsafeMutableRawPointer? { nil }
}

extension SafeTensorsWriter: TensorStream {
    var writeOrder: [TensorInfo] { layout.tensors.filter { $0.byteCount > 0 } }
}

extension ModelDirectoryWriter: TensorStream {
    var writeOrder: [TensorInfo] { layouts.flatMap(\.tensors).filter { $0.byteCount > 0 } }
}

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
    let terms = MergeTerm.counting(terms, layersOf: base)
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
                ("path", .string(options.basePath ?? base.path)), ("structure", .string(structure)),
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
                        ("rule", t.rule.map { $0.json(value: nil) } ?? .null),
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
    let engine = MergeEngine(threads: options.threads, base: base, dtype: options.dtype, kernels: options.kernels)
    do throws(AVError) {
        let jobs = writer.writeOrder.map {
            MergeEngine.Job(info: base.info($0.name)!, outDType: $0.dtype, view: base.view($0.name)!)
        }
        try engine.run(
            jobs,
            terms: { job throws(AVError) in
                try MergeEngine.terms(terms, for: job.info, method: options.method, base: { base.values(job.info) })
            },
            into: writer,
            progress: { bytes in
                done += bytes
                progress?(done, totalBytes)
            }
        ) { job, merge, digest throws(AVError) in
            if merge.nonFinite > 0 && !options.allowNonFinite {
                throw .nonFinite(tensor: job.info.name, count: merge.nonFinite, file: output)
            }
            results[job.info.name] = merge
            digests[job.info.name] = digest
        }
        // Zero-size tensors are not in `writeOrder`; they still count in the fingerprint.
        for t in base.tensors where digests[t.name] == nil {
            digests[t.name] = hashChunks(base.view(t.name)!.bytes)
            results[t.name] = TensorMerge(name: t.name, dtype: outDType(t), elements: t.elementCount, terms: 0)
        }
        let content = XXHash64.hex(ContentFingerprint.combine(digests))
        var quantizedBase: QuantizedBaseCheck?
        if let expected, expected != content, !options.force && !options.transfer {
            quantizedBase = try verifyBase(base, of: terms[0].vector, structure: structure, content: content)
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
            quantizedBase: quantizedBase,
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

import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Who a model is, as an AV records it: the path as given, the main dtype, and fingerprints.
public struct ModelIdentity: Equatable, Sendable {
    /// The model's path as it was given on the command line.
    public var path: String
    /// The dtype most of the model's floating-point parameters have (`F32`, `BF16`, …).
    public var dtype: String
    /// Names, dtypes and shapes (hex XXH64).
    public var structure: String
    /// The bytes of every tensor (hex XXH64, see `ContentFingerprint`).
    public var content: String
    /// How many tensors the model holds.
    public var tensors: Int

    /// An identity from its parts, as `diff` records them.
    public init(path: String, dtype: String, structure: String, content: String, tensors: Int) {
        self.path = path
        self.dtype = dtype
        self.structure = structure
        self.content = content
        self.tensors = tensors
    }

    /// `structure:content`, the form errors and reports print.
    public var fingerprint: String { "\(structure):\(content)" }

    /// The identity as the JSON object stored in `av.base` and `av.aligned`.
    public var json: JSONValue {
        .object([
            ("path", .string(path)), ("dtype", .string(dtype)), ("structure", .string(structure)),
            ("content", .string(content)), ("tensors", .int(tensors)),
        ])
    }

    init?(json: JSONValue) {
        guard let path = json["path"]?.stringValue, let dtype = json["dtype"]?.stringValue,
            let structure = json["structure"]?.stringValue, let content = json["content"]?.stringValue,
            let tensors = json["tensors"]?.doubleValue
        else { return nil }
        self.init(path: path, dtype: dtype, structure: structure, content: content, tensors: Int(tensors))
    }
}

/// The `__metadata__` of an AV file (DESIGN.md, "The AV file").
public struct AVHeader: Equatable, Sendable {
    /// The AV format version this build writes and reads (`av.version`).
    public static let formatVersion = "1"
    /// The tool and version recorded in `av.tool` of every file av writes.
    public static let toolVersion = "av 0.1.0"

    /// The preference domain the vector moves (`av.domain`): medical, legal, ….
    public var domain: String
    /// The model the deltas were taken from.
    public var base: ModelIdentity
    /// The model the deltas lead to at λ = 1.
    public var aligned: ModelIdentity
    /// How the deltas are stored: dense, sparse or 1-bit (`av.encoding`).
    public var encoding = DeltaEncoding.dense
    /// `av.encoding_params`: the encoder's settings (density, value dtype, rescale, scale per row or
    /// matrix), as `diff`/`compress` recorded them.
    public var encodingParameters: JSONValue?
    /// `av.shapes`: the model shape of every encoded (sparse or 1-bit) tensor.
    public var shapes: [String: [Int]] = [:]
    /// `av.retained`: per tensor, ‖Δ‖² of the exact delta, the share of it the encoding kept and the
    /// relative squared reconstruction error (what `av inspect` reports without reading the data).
    public var retained: [String: RetainedEnergy] = [:]

    /// Over the whole vector, from `retained`: the share of ‖Δ‖² kept and ‖Δ − Δ̂‖/‖Δ‖; nil when the
    /// AV records no energy.
    public var retainedTotal: (kept: Double, relativeError: Double)? {
        let all = retained.keys.sorted().map { retained[$0]! }
        guard all.contains(where: { $0.energy > 0 }) else { return nil }
        return (
            energyWeighted(all, energy: \.energy, value: \.kept, empty: 1),
            energyWeighted(all, energy: \.energy, value: \.error, empty: 0).squareRoot()
        )
    }
    /// The dtype of the dense deltas (`av.dtype`).
    public var dtype: DType
    /// The format version the file was written with.
    public var version = AVHeader.formatVersion
    /// The hex XXH64 of a metadata string's UTF-8 bytes.
    static func digest(of text: String) -> String {
        Array(text.utf8).withUnsafeBytes { XXHash64.hex(XXHash64.hash($0)) }
    }

    /// The tool that wrote the file.
    public var tool = AVHeader.toolVersion
    /// Tensors whose rows beyond the base's were dropped (`--resized-rows drop`): name → aligned rows.
    public var droppedRows: [String: Int] = [:]
    /// `av.digests`: every tensor the file holds → its ``AVDigest`` (hex). Required: a file without
    /// them is refused.
    public var digests: [String: String] = [:]

    /// `av.base_samples`: a few of the base's values, to recognize a quantized copy of it; nil in
    /// vectors made before av recorded them.
    public var baseSamples: BaseSamples?

    /// `av.adapter`: the PEFT adapter the vector was made from (path, config digest, r, alpha,
    /// target modules), when it was made from one.
    public var adapter: JSONValue?

    /// A header for a dense vector; encodings, digests and adapter fields are set afterwards.
    public init(
        domain: String, base: ModelIdentity, aligned: ModelIdentity, dtype: DType, droppedRows: [String: Int] = [:]
    ) {
        self.domain = domain
        self.base = base
        self.aligned = aligned
        self.dtype = dtype
        self.droppedRows = droppedRows
    }

    /// The header as safetensors `__metadata__` (every value a string; JSON values rendered compactly).
    public var metadata: [String: String] {
        var m = [
            "format": "av", "av.version": version, "av.domain": domain, "av.base": base.json.rendered(),
            "av.aligned": aligned.json.rendered(), "av.encoding": encoding.rawValue, "av.dtype": dtype.rawValue,
            "av.tool": tool,
        ]
        if !droppedRows.isEmpty {
            m["av.dropped_rows"] = JSONValue.object(droppedRows.keys.sorted().map { ($0, .int(droppedRows[$0]!)) })
                .rendered()
        }
        if let adapter { m["av.adapter"] = adapter.rendered() }
        if let baseSamples { m["av.base_samples"] = baseSamples.metadataText }
        if let encodingParameters { m["av.encoding_params"] = encodingParameters.rendered() }
        if !shapes.isEmpty {
            let text = JSONValue.object(shapes.keys.sorted().map { ($0, .array(shapes[$0]!.map { .int($0) })) })
                .rendered()
            m["av.shapes"] = text
            m["av.shapes_digest"] = Self.digest(of: text)
        }
        if !retained.isEmpty {
            m["av.retained"] = JSONValue.object(
                retained.keys.sorted().map { k in
                    let r = retained[k]!
                    return (k, .array([.double(r.energy), .double(r.kept), .double(r.error)]))
                }
            ).rendered()
        }
        if !digests.isEmpty {
            m["av.digests"] = JSONValue.object(digests.keys.sorted().map { ($0, .string(digests[$0]!)) }).rendered()
        }
        return m
    }

    /// Reads and checks the metadata of an AV file.
    public init(metadata: [String: String]?, file: String) throws(AVError) {
        guard let m = metadata, m["format"] == "av" else {
            throw .notAnAV(file: file, reason: "its metadata has no \"format\": \"av\" (made by av diff?)")
        }
        guard let version = m["av.version"], version == AVHeader.formatVersion else {
            throw .notAnAV(
                file: file,
                reason:
                    "AV format version \(m["av.version"] ?? "missing"); this av reads version \(AVHeader.formatVersion)"
            )
        }
        func identity(_ key: String) throws(AVError) -> ModelIdentity {
            guard let text = m[key], let json = try? JSONParser.parse(text), let id = ModelIdentity(json: json) else {
                throw .notAnAV(file: file, reason: "metadata \"\(key)\" is missing or malformed")
            }
            return id
        }
        guard let encoding = m["av.encoding"].flatMap(DeltaEncoding.init(rawValue:)) else {
            throw .notAnAV(
                file: file,
                reason: "encoding \(m["av.encoding"] ?? "missing") is not one this av reads (dense, sparse, 1bit)")
        }
        guard let dtypeText = m["av.dtype"], let dtype = DType(rawValue: dtypeText) else {
            throw .notAnAV(file: file, reason: "metadata \"av.dtype\" is missing or unknown")
        }
        guard let domain = m["av.domain"], !domain.isEmpty else {
            throw .notAnAV(file: file, reason: "metadata \"av.domain\" is missing or empty")
        }
        self.init(domain: domain, base: try identity("av.base"), aligned: try identity("av.aligned"), dtype: dtype)
        self.version = version
        self.encoding = encoding
        self.tool = m["av.tool"] ?? ""
        if let text = m["av.dropped_rows"], case .object(let pairs)? = try? JSONParser.parse(text) {
            for (k, v) in pairs { droppedRows[k] = v.doubleValue.flatMap { $0.magnitude < 1e15 ? Int($0) : nil } }
        }
        if let text = m["av.adapter"] {
            guard let json = try? JSONParser.parse(text), case .object = json else {
                throw .notAnAV(file: file, reason: "metadata \"av.adapter\" is malformed")
            }
            adapter = json
        }
        if let text = m["av.base_samples"] {
            guard let samples = BaseSamples(metadataText: text) else {
                throw .notAnAV(file: file, reason: "metadata \"av.base_samples\" is malformed")
            }
            baseSamples = samples
        }
        if let text = m["av.encoding_params"] {
            guard let json = try? JSONParser.parse(text), case .object = json else {
                throw .notAnAV(file: file, reason: "metadata \"av.encoding_params\" is malformed")
            }
            encodingParameters = json
        }
        if let text = m["av.shapes"] {
            // The shapes size what decoding allocates: the tensor digests do not cover them, this one does.
            guard m["av.shapes_digest"] == Self.digest(of: text) else {
                throw .notAnAV(
                    file: file,
                    reason: "metadata \"av.shapes\" does not match \"av.shapes_digest\" (the file is damaged or edited)"
                )
            }
            guard case .object(let pairs)? = try? JSONParser.parse(text) else {
                throw .notAnAV(file: file, reason: "metadata \"av.shapes\" is malformed")
            }
            for (k, v) in pairs {
                let dims = v.arrayValue?.compactMap { $0.doubleValue } ?? []
                guard dims.count == v.arrayValue?.count,
                    dims.allSatisfy({ $0 >= 0 && $0 < 1e15 && $0 == $0.rounded() }),
                    Shape.elementCount(dims.map { Int($0) }) != nil
                else {
                    throw .notAnAV(file: file, reason: "metadata \"av.shapes\" has a malformed shape for \(k)")
                }
                shapes[k] = dims.map { Int($0) }
            }
        }
        if let text = m["av.retained"], case .object(let pairs)? = try? JSONParser.parse(text) {
            for (k, v) in pairs {
                if let a = v.arrayValue, a.count == 3, let e = a[0].doubleValue, let r = a[1].doubleValue,
                    let x = a[2].doubleValue
                {
                    retained[k] = RetainedEnergy(energy: e, kept: r, error: x)
                }
            }
        }
        if let text = m["av.digests"] {
            guard case .object(let pairs)? = try? JSONParser.parse(text) else {
                throw .notAnAV(file: file, reason: "metadata \"av.digests\" is malformed")
            }
            for (k, v) in pairs {
                guard let hex = v.stringValue, hex.count == 16, UInt64(hex, radix: 16) != nil else {
                    throw .notAnAV(
                        file: file, reason: "metadata \"av.digests\" has a malformed digest for \(JSONWriter.quoted(k))"
                    )
                }
                digests[k] = hex
            }
        }
    }
}

/// What an encoding kept of an exact delta Δ: its ‖Δ‖², the share of it in what was stored (the
/// kept entries of a sparse tensor, before any rescale; ‖Δ̂‖²/‖Δ‖² of a 1-bit one), and the
/// reconstruction error ‖Δ − Δ̂‖²/‖Δ‖².
public struct RetainedEnergy: Equatable, Sendable {
    /// ‖Δ‖² of the exact delta.
    public var energy: Double
    /// The share of ‖Δ‖² the encoding stored, from 0 to 1.
    public var kept: Double
    /// The relative squared reconstruction error ‖Δ − Δ̂‖²/‖Δ‖².
    public var error: Double

    /// A record from its three measurements.
    public init(energy: Double, kept: Double, error: Double) {
        self.energy = energy
        self.kept = kept
        self.error = error
    }
}

/// An opened AV file.
public final class AlignmentVector: @unchecked Sendable {
    /// The file's path as given.
    public let path: String
    /// The mapped safetensors file the deltas are read from in place.
    public let file: SafeTensorsFile
    /// The validated `__metadata__`.
    public let header: AVHeader
    /// The delta tensors under the model's names, dense or encoded, in file order.
    public let deltas: [DeltaTensor]
    private let deltaIndex: [String: Int]

    /// Opens and validates `path`: a safetensors file whose metadata is an AV header, whose exact
    /// remainders come in pairs owned by a delta, and whose digests cover exactly its tensors.
    /// - Throws: `AVError.file` for a file safetensors refuses, `.notAnAV` or `.corrupt` naming the rule.
    public init(path: String) throws(AVError) {
        self.path = path
        do {
            file = try SafeTensorsFile(path: path)
        } catch {
            throw .file(error)
        }
        header = try AVHeader(metadata: file.metadata, file: path)
        deltas = try Self.layout(file: file, header: header, path: path)
        deltaIndex = Dictionary(deltas.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        // Exact remainders come in pairs and belong to a delta the file holds.
        for t in file.tensors where ExactResiduals.isResidual(t.name) {
            let rest = t.name.dropFirst(ExactResiduals.prefix.count)
            guard let slash = rest.lastIndex(of: "/"), ["/index", "/residual"].contains(String(rest[slash...])) else {
                throw .notAnAV(
                    file: path, reason: "tensor \(JSONWriter.quoted(t.name)) is not an exact remainder av knows")
            }
            let owner = String(rest[..<slash])
            guard file.info(owner) != nil, file.info(ExactResiduals.indexName(owner)) != nil,
                file.info(ExactResiduals.valueName(owner)) != nil
            else {
                throw .notAnAV(
                    file: path,
                    reason:
                        "the exact remainders \(JSONWriter.quoted(t.name)) belong to no delta tensor, or are missing"
                        + " their pair"
                )
            }
        }
        // Every AV av writes has digests: a file without them is damaged or edited, not old.
        if header.digests.isEmpty, !file.tensors.isEmpty {
            throw .notAnAV(
                file: path, reason: "metadata \"av.digests\" is missing, so its tensors cannot be checked")
        }
        for t in file.tensors where header.digests[t.name] == nil {
            throw .corrupt(av: path, tensor: t.name, reason: "it has no digest in \"av.digests\"")
        }
        for name in header.digests.keys where file.info(name) == nil {
            throw .corrupt(av: path, tensor: name, reason: "\"av.digests\" lists it, but the file does not hold it")
        }
    }

    /// Refuses `tensor` when its digest, computed from `runs`, differs from the recorded one.
    func verify(_ tensor: String, runs: [UInt64]) throws(AVError) {
        guard let recorded = header.digests[tensor] else { return }
        let computed = XXHash64.hex(AVDigest.combine(runs))
        if computed != recorded {
            throw .corrupt(
                av: path, tensor: tensor, reason: "its bytes have digest \(computed), but the file records \(recorded)")
        }
    }

    /// The preference domain of the vector.
    public var domain: String { header.domain }
}

/// The exact remainders an AV keeps for the few elements no f32 delta can rebuild: for tensor
/// NAME, `av.exact/NAME/index` (I64, element indices, increasing) and `av.exact/NAME/residual`
/// (F64). Merge adds λ·residual after λ·delta, so base + AV is the aligned value exactly at λ = 1.
public enum ExactResiduals {
    /// The name prefix of every exact-remainder tensor.
    public static let prefix = "av.exact/"
    /// The name of `tensor`'s remainder indices.
    public static func indexName(_ tensor: String) -> String { prefix + tensor + "/index" }
    /// The name of `tensor`'s remainder values.
    public static func valueName(_ tensor: String) -> String { prefix + tensor + "/residual" }
    /// Whether `name` is an exact-remainder tensor rather than a delta.
    public static func isResidual(_ name: String) -> Bool { name.hasPrefix(prefix) }
}

extension AlignmentVector {
    /// The delta tensor named `name` (a model tensor name), dense or encoded.
    public func delta(_ name: String) -> DeltaTensor? { deltaIndex[name].map { deltas[$0] } }

    /// The exact remainders of `tensor`, or nil when it has none.
    public func residuals(of tensor: String) throws(AVError) -> (indices: [Int], values: [Double])? {
        guard let ii = file.info(ExactResiduals.indexName(tensor)), let vi = file.info(ExactResiduals.valueName(tensor))
        else { return nil }
        guard ii.dtype == .i64, vi.dtype == .f64, ii.elementCount == vi.elementCount, let delta = file.info(tensor)
        else {
            throw .notAnAV(file: path, reason: "the exact remainders of \(JSONWriter.quoted(tensor)) are malformed")
        }
        let ib = file.bytes(of: ii)
        let vb = file.bytes(of: vi)
        for (info, bytes) in [(ii, ib), (vi, vb)] {
            try verify(info.name, runs: AVDigest.runs(of: bytes, elementSize: 8))
        }
        var indices: [Int] = []
        var values: [Double] = []
        var previous = -1
        for k in 0..<ii.elementCount {
            let idx = Int(Int64(littleEndian: ib.loadUnaligned(fromByteOffset: 8 * k, as: Int64.self)))
            guard idx > previous, idx < delta.elementCount else {
                throw .notAnAV(
                    file: path,
                    reason:
                        "the exact remainders of \(JSONWriter.quoted(tensor)) have index \(idx) out of order or range")
            }
            previous = idx
            indices.append(idx)
            values.append(
                Double(bitPattern: UInt64(littleEndian: vb.loadUnaligned(fromByteOffset: 8 * k, as: UInt64.self))))
        }
        return (indices, values)
    }
}

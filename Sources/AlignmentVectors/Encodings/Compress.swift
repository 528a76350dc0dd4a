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

/// What an encoding did to one delta tensor.
public struct CompressedTensor: Sendable {
    /// The tensor's model name and shape.
    public var name: String
    /// The tensor's shape.
    public var shape: [Int]
    /// How the output stores it (1-D tensors of a 1-bit AV stay dense).
    public var encoding: DeltaEncoding
    /// Bytes in the input (with its exact remainders) and in the output.
    public var inputBytes: Int
    /// Bytes the output stores for it.
    public var storedBytes: Int
    /// ‖Δ‖², the share of it kept, and ‖Δ − Δ̂‖²/‖Δ‖² (see ``RetainedEnergy``).
    public var energy: Double
    /// The share of ‖Δ‖² kept, from 0 to 1.
    public var kept: Double
    /// ‖Δ − Δ̂‖²/‖Δ‖².
    public var squaredError: Double

    /// ‖Δ − Δ̂‖/‖Δ‖, the reconstruction error.
    public var relativeError: Double { squaredError.squareRoot() }
}

/// What `compress` wrote: the output's header, each tensor's encoding and what it kept, sizes, time.
public struct CompressReport: Sendable {
    /// The AV written, and its metadata.
    public var output: String
    /// The header written into it.
    public var header: AVHeader
    /// Every delta tensor, in the input's order.
    public var tensors: [CompressedTensor]
    /// The input file's size and the output's, in bytes.
    public var inputBytes: Int
    /// The output's size in bytes.
    public var bytesWritten: Int
    /// Wall time of the whole run.
    public var seconds: Double

    /// The share of the whole vector's ‖Δ‖² the output keeps.
    public var kept: Double { energyWeighted(tensors, energy: \.energy, value: \.kept, empty: 1) }

    /// ‖Δ − Δ̂‖/‖Δ‖ over the whole vector.
    public var relativeError: Double {
        energyWeighted(tensors, energy: \.energy, value: \.squaredError, empty: 0).squareRoot()
    }
}

/// The mean of `value` over `items` weighted by their ‖Δ‖² (`energy`); `empty` when there is none.
func energyWeighted<T>(_ items: [T], energy: (T) -> Double, value: (T) -> Double, empty: Double) -> Double {
    let total = items.reduce(0) { $0 + energy($1) }
    return total > 0 ? items.reduce(0) { $0 + energy($1) * value($1) } / total : empty
}

/// Writes `vector` again with `options.encoding` (sparse, 1-bit or dense): one tensor in memory at
/// a time, parts and digests recorded as `diff` records them, the provenance (domain, base, aligned,
/// adapter, dropped rows) kept. The output appears whole or not at all.
public func compress(
    vector: AlignmentVector, output: String, options: EncodingOptions, protecting: [String] = [],
    progress: ((Int, Int) -> Void)? = nil
) throws(AVError) -> CompressReport {
    let start = DispatchTime.now().uptimeNanoseconds
    if options.encoding == .sparse {
        guard options.density > 0, options.density <= 1 else { throw .usage("--density must be in (0, 1]") }
        guard options.valueDType == .f32 || options.valueDType == .bf16 else {
            throw .usage("sparse values are f32 or bf16, not \(options.valueDType.rawValue)")
        }
    }
    do {
        try OutputGuard.checkFile(output, inputs: [vector.path] + protecting)
    } catch {
        throw .file(error)
    }
    for d in vector.deltas where !Convert.supports(d.valueDType) || d.valueDType == .f64 {
        throw .unsupportedDType(tensor: d.name, dtype: d.valueDType, file: vector.path)
    }
    var header = vector.header
    header.encoding = options.encoding
    header.encodingParameters = options.encoding == .dense ? nil : options.json
    header.dtype = options.encoding == .sparse ? options.valueDType : .f32
    header.digests = [:]
    header.shapes = [:]
    header.retained = [:]

    // Room for the largest header: every part at its largest, every number at its longest.
    var candidates: [TensorSpec] = []
    var bound = header
    let placeholder = String(repeating: "0", count: 16)
    for d in vector.deltas {
        let n = d.elementCount
        let (rows, columns) = DeltaTensor.rowsAndColumns(d.shape)
        var specs = [TensorSpec(name: d.name, dtype: .f32, shape: d.shape)]
        switch options.encoding {
        case .sparse:
            specs = [
                TensorSpec(name: EncodedParts.sparseIndex(d.name), dtype: .i64, shape: [n]),
                TensorSpec(name: EncodedParts.sparseValue(d.name), dtype: .f32, shape: [n]),
            ]
        case .oneBit where d.shape.count >= 2:
            specs = [
                TensorSpec(name: EncodedParts.sign(d.name), dtype: .u8, shape: [rows, (columns + 7) / 8]),
                TensorSpec(name: EncodedParts.scale(d.name), dtype: .f32, shape: [rows]),
            ]
        default: break
        }
        candidates += specs
        for s in specs { bound.digests[s.name] = placeholder }
        bound.shapes[d.name] = d.shape
        bound.retained[d.name] = RetainedEnergy(
            energy: -1.2345678901234567e-300, kept: -1.2345678901234567e-300, error: -1.2345678901234567e-300)
    }
    let writer: ReservedHeaderWriter
    do {
        writer = try ReservedHeaderWriter(path: output, candidates: candidates, metadataBound: bound.metadata)
    } catch {
        throw .file(error)
    }
    var reports: [CompressedTensor] = []
    let total = vector.deltas.reduce(0) { $0 + $1.storedBytes }
    var done = 0
    do throws(AVError) {
        for d in vector.deltas {
            let values = try vector.deltaFloats(d)
            let encoded = DeltaEncoder.encode(d.name, shape: d.shape, values: values, options: options)
            for (spec, bytes) in encoded.parts { header.digests[spec.name] = try writer.writeWhole(spec, bytes) }
            if encoded.encoding != .dense { header.shapes[d.name] = d.shape }
            header.retained[d.name] = encoded.retained
            reports.append(
                CompressedTensor(
                    name: d.name, shape: d.shape, encoding: encoded.encoding,
                    inputBytes: d.storedBytes
                        + (vector.file.info(ExactResiduals.indexName(d.name))?.byteCount ?? 0)
                        + (vector.file.info(ExactResiduals.valueName(d.name))?.byteCount ?? 0),
                    storedBytes: encoded.parts.reduce(0) { $0 + $1.bytes.count }, energy: encoded.retained.energy,
                    kept: encoded.retained.kept, squaredError: encoded.retained.error))
            // Let the kernel drop the input's pages: one tensor resident at a time.
            for part in d.parts {
                let start = vector.file.fileOffset(of: part)
                vector.file.mapping.release(start..<(start + part.byteCount))
            }
            done += d.storedBytes
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
    return CompressReport(
        output: output, header: header, tensors: reports, inputBytes: vector.file.fileSize,
        bytesWritten: Path.fileSize(output) ?? 0, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
}

/// Makes an encoded AV at `output` the way `diff --encoding` does: `makeDense` writes the exact
/// dense AV to a hidden temporary beside `output` (removed afterwards, and on SIGINT/SIGTERM), which
/// is then re-encoded into `output`. `inputs` are checked against `output` before any work.
public func encodeThroughDense(
    output: String, options: EncodingOptions, inputs: [String],
    makeDense: (String) throws(AVError) -> Void, progress: ((Int, Int) -> Void)? = nil
) throws(AVError) -> CompressReport {
    do {
        try OutputGuard.checkFile(output, inputs: inputs)
    } catch {
        throw .file(error)
    }
    let temporary = Path.join(Path.parent(output), ".\(Path.lastComponent(output)).dense-\(getpid()).av")
    TemporaryFiles.register(temporary, directory: false)
    defer {
        unlink(temporary)
        TemporaryFiles.unregister(temporary)
    }
    try makeDense(temporary)
    return try compress(
        vector: try AlignmentVector(path: temporary), output: output, options: options, protecting: inputs,
        progress: progress)
}

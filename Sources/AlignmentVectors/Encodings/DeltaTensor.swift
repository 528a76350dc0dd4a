import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// How an AV stores its deltas (`av.encoding`).
public enum DeltaEncoding: String, Sendable, CaseIterable {
    /// Every element, in f32 (or lossy bf16/f16), under the model's tensor name.
    case dense
    /// The largest entries by |Δ|: `av.sparse/NAME/index` (I32 or I64, strictly increasing
    /// element indices) and `av.sparse/NAME/value` (F32 or BF16, one per index).
    case sparse
    /// Signs and one scale per row (BitDelta): `av.1bit/NAME/sign` (U8, rows × ⌈cols/8⌉, bit j of
    /// byte b is element 8b+j of the row, 1 when Δ ≥ 0) and `av.1bit/NAME/scale` (F32, one per row,
    /// or one for the whole matrix). Tensors of fewer than two dimensions stay dense.
    case oneBit = "1bit"
}

/// One delta tensor of an AV under the model's name and shape, however the file stores it.
public struct DeltaTensor: Sendable {
    /// How the file holds it.
    public enum Storage: Sendable {
        case dense(TensorInfo)
        case sparse(index: TensorInfo, value: TensorInfo)
        case oneBit(sign: TensorInfo, scale: TensorInfo)
    }

    /// The model's tensor name and shape (what the delta applies to).
    public var name: String
    /// The model tensor's shape.
    public var shape: [Int]
    /// The file's tensors that hold it.
    public var storage: Storage

    /// Elements of the model tensor.
    public var elementCount: Int { Shape.elementCount(shape) ?? 0 }

    /// The encoding of this tensor (a 1-bit AV keeps its 1-D tensors dense).
    public var encoding: DeltaEncoding {
        switch storage {
        case .dense: .dense
        case .sparse: .sparse
        case .oneBit: .oneBit
        }
    }

    /// The file's tensors that hold it.
    public var parts: [TensorInfo] {
        switch storage {
        case .dense(let t): [t]
        case .sparse(let i, let v): [i, v]
        case .oneBit(let s, let c): [s, c]
        }
    }

    /// Bytes the file spends on it.
    public var storedBytes: Int { parts.reduce(0) { $0 + $1.byteCount } }

    /// The dtype a reader gets its values in: the stored dtype of dense and sparse values, f32 for
    /// 1-bit (scale × ±1).
    public var valueDType: DType {
        switch storage {
        case .dense(let t): t.dtype
        case .sparse(_, let v): v.dtype
        case .oneBit: .f32
        }
    }

    /// Rows and columns of a 1-bit tensor: the first dimension, and the product of the others.
    static func rowsAndColumns(_ shape: [Int]) -> (rows: Int, columns: Int) {
        let rows = shape.first ?? 1
        return (rows, rows > 0 ? (Shape.elementCount(shape) ?? 0) / rows : 0)
    }
}

/// The names of the parts of encoded tensors.
enum EncodedParts {
    static let sparsePrefix = "av.sparse/"
    static let oneBitPrefix = "av.1bit/"

    static func sparseIndex(_ name: String) -> String { sparsePrefix + name + "/index" }
    static func sparseValue(_ name: String) -> String { sparsePrefix + name + "/value" }
    static func sign(_ name: String) -> String { oneBitPrefix + name + "/sign" }
    static func scale(_ name: String) -> String { oneBitPrefix + name + "/scale" }

    static func isPart(_ name: String) -> Bool { name.hasPrefix(sparsePrefix) || name.hasPrefix(oneBitPrefix) }

    /// The delta tensor a part belongs to and the part's role, or nil for another name.
    static func owner(of part: String) -> (name: String, role: String)? {
        for prefix in [sparsePrefix, oneBitPrefix] where part.hasPrefix(prefix) {
            let rest = part.dropFirst(prefix.count)
            guard let slash = rest.lastIndex(of: "/") else { return nil }
            return (String(rest[..<slash]), String(rest[rest.index(after: slash)...]))
        }
        return nil
    }
}

extension AlignmentVector {
    /// Finds the delta tensors of `file` and checks every structural rule of their encodings (part
    /// names, dtypes, counts, packed lengths, recorded shapes). Index order and range are checked
    /// when a tensor is read (``DeltaDecoder``), so opening a large AV stays cheap.
    static func layout(file: SafeTensorsFile, header: AVHeader, path: String) throws(AVError) -> [DeltaTensor] {
        func corrupt(_ tensor: String, _ reason: String) -> AVError {
            .corrupt(av: path, tensor: tensor, reason: reason)
        }
        var deltas: [DeltaTensor] = []
        var encoded: Set<String> = []
        for t in file.tensors where !ExactResiduals.isResidual(t.name) {
            guard EncodedParts.isPart(t.name) else {
                if header.shapes[t.name] != nil {
                    throw corrupt(t.name, "it is stored dense but \"av.shapes\" lists it as encoded")
                }
                deltas.append(DeltaTensor(name: t.name, shape: t.shape, storage: .dense(t)))
                continue
            }
            guard let (name, role) = EncodedParts.owner(of: t.name) else {
                throw corrupt(t.name, "not a part of an encoded tensor av knows")
            }
            guard encoded.insert(name).inserted else { continue }
            guard let shape = header.shapes[name] else {
                throw corrupt(name, "it is encoded but \"av.shapes\" records no shape for it")
            }
            guard file.info(name) == nil else {
                throw corrupt(name, "it is stored both dense and encoded")
            }
            let n = Shape.elementCount(shape) ?? 0
            // Decoding makes the dense tensor: a declared shape past the memory in force is refused here,
            // before anything is allocated for it.
            guard UInt64(n) <= MemoryLimit.bytes / 4 else {
                throw corrupt(
                    name,
                    "\"av.shapes\" declares \(Shape.describe(shape)), \(n) elements: more than this machine's"
                        + " memory holds as f32")
            }
            if t.name.hasPrefix(EncodedParts.sparsePrefix) {
                guard ["index", "value"].contains(role), let index = file.info(EncodedParts.sparseIndex(name)),
                    let value = file.info(EncodedParts.sparseValue(name))
                else { throw corrupt(name, "a sparse tensor needs both its index and value parts") }
                guard index.dtype == .i32 || index.dtype == .i64, index.shape.count == 1 else {
                    throw corrupt(name, "sparse indices must be a 1-D I32 or I64 tensor, not \(index.dtype.rawValue)")
                }
                guard value.dtype == .f32 || value.dtype == .bf16, value.shape == index.shape else {
                    throw corrupt(
                        name,
                        "sparse values must be F32 or BF16 with one value per index (\(index.elementCount) indices,"
                            + " \(value.elementCount) \(value.dtype.rawValue) values)")
                }
                guard index.elementCount <= n else {
                    throw corrupt(name, "\(index.elementCount) sparse entries for a tensor of \(n) elements")
                }
                deltas.append(DeltaTensor(name: name, shape: shape, storage: .sparse(index: index, value: value)))
            } else {
                guard ["sign", "scale"].contains(role), let sign = file.info(EncodedParts.sign(name)),
                    let scale = file.info(EncodedParts.scale(name))
                else { throw corrupt(name, "a 1-bit tensor needs both its sign and scale parts") }
                guard shape.count >= 2 else { throw corrupt(name, "1-bit tensors have at least two dimensions") }
                let (rows, columns) = DeltaTensor.rowsAndColumns(shape)
                let packed = (columns + 7) / 8
                guard sign.dtype == .u8, sign.shape == [rows, packed] else {
                    throw corrupt(
                        name,
                        "packed signs must be U8 of shape [\(rows), \(packed)] (8 per byte), not"
                            + " \(sign.dtype.rawValue) \(Shape.describe(sign.shape))")
                }
                guard scale.dtype == .f32, scale.shape == [rows] || scale.shape == [1] else {
                    throw corrupt(
                        name,
                        "1-bit scales must be F32, one per row ([\(rows)]) or one for the matrix ([1]), not"
                            + " \(scale.dtype.rawValue) \(Shape.describe(scale.shape))")
                }
                deltas.append(DeltaTensor(name: name, shape: shape, storage: .oneBit(sign: sign, scale: scale)))
            }
        }
        for name in header.shapes.keys where !encoded.contains(name) {
            throw corrupt(name, "\"av.shapes\" lists it, but the file holds no encoded parts for it")
        }
        return deltas
    }
}

import SafeTensors
import Tensors

/// Reads one sparse or 1-bit delta tensor: checks its parts' digests and its index rules once,
/// then decodes any range of elements into f32. Every reader of AVs (merge, in-memory mixes,
/// export, compress) decodes through this type, so none of them special-cases an encoding.
final class DeltaDecoder: @unchecked Sendable {
    let tensor: DeltaTensor
    private let indices: [Int]
    private let values: UnsafeRawPointer?
    private let valueDType: DType
    /// Bytes of one sparse value (f32 or bf16, checked when the vector was opened).
    private let valueSize: Int
    private let signs: UnsafeRawPointer?
    private let scales: [Float]
    private let columns: Int

    /// Refuses parts whose digests differ from the recorded ones, sparse indices out of order or
    /// range, and non-finite 1-bit scales, naming the tensor and the rule.
    init(vector: AlignmentVector, tensor: DeltaTensor) throws(AVError) {
        self.tensor = tensor
        let file = vector.file
        for part in tensor.parts {
            guard let element = ElementType(part.dtype) else {
                throw .corrupt(av: vector.path, tensor: tensor.name, reason: "\(part.name) is \(part.dtype.rawValue)")
            }
            try vector.verify(part.name, runs: AVDigest.runs(of: file.bytes(of: part), elementSize: element.size))
        }
        let n = tensor.elementCount
        switch tensor.storage {
        case .dense:
            preconditionFailure("dense tensors are read in place")
        case .sparse(let index, let value):
            let bytes = file.bytes(of: index)
            let wide = index.dtype == .i64
            var list = [Int](repeating: 0, count: index.elementCount)
            var previous = -1
            for k in 0..<index.elementCount {
                let i =
                    wide
                    ? Int(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * k, as: Int64.self)))
                    : Int(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * k, as: Int32.self)))
                guard i > previous, i < n else {
                    throw .corrupt(
                        av: vector.path, tensor: tensor.name,
                        reason: "sparse index \(i) at entry \(k) is "
                            + (i >= n ? "past the tensor's \(n) elements" : "not above the one before (\(previous))")
                            + "; indices must increase strictly")
                }
                list[k] = i
                previous = i
            }
            indices = list
            values = file.bytes(of: value).baseAddress
            valueDType = value.dtype
            guard let element = ElementType(value.dtype) else {
                throw .corrupt(
                    av: vector.path, tensor: tensor.name,
                    reason: "sparse values in \(value.dtype.rawValue) cannot be read")
            }
            valueSize = element.size
            signs = nil
            scales = []
            columns = 0
        case .oneBit(let sign, let scale):
            let bytes = file.bytes(of: scale)
            var list = [Float](repeating: 0, count: scale.elementCount)
            for k in list.indices {
                list[k] = Float(
                    bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self)))
                guard list[k].isFinite, list[k] >= 0 else {
                    throw .corrupt(
                        av: vector.path, tensor: tensor.name,
                        reason: "1-bit scale \(list[k]) of row \(k) is not a finite number ≥ 0")
                }
            }
            indices = []
            values = nil
            valueDType = .f32
            valueSize = 4
            signs = file.bytes(of: sign).baseAddress
            scales = list
            columns = DeltaTensor.rowsAndColumns(tensor.shape).columns
        }
    }

    /// Writes elements `lo..<lo + count` of the delta, as f32, to `out`.
    func decode(from lo: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        if let values {
            out.update(repeating: 0, count: count)
            var j = lowerBound(indices, lo)
            let size = valueSize
            while j < indices.count, indices[j] < lo + count {
                let p = values + j * size
                out[indices[j] - lo] =
                    valueDType == .f32
                    ? Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
                    : Float(bitPattern: UInt32(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self))) << 16)
                j += 1
            }
            return
        }
        guard let signs, columns > 0 else { return }
        let packed = (columns + 7) / 8
        var e = lo
        while e < lo + count {
            let row = e / columns
            let first = e - row * columns
            let last = min(columns, first + (lo + count - e))
            let alpha = scales.count == 1 ? scales[0] : scales[row]
            let rowBits = signs + row * packed
            let o = out + (e - lo)
            for c in first..<last {
                let bit = (rowBits.load(fromByteOffset: c >> 3, as: UInt8.self) >> UInt8(c & 7)) & 1
                o[c - first] = bit == 1 ? alpha : -alpha
            }
            e += last - first
        }
    }
}

extension AlignmentVector {
    /// A delta tensor as f64, whatever its encoding: digests checked, exact remainders added.
    public func deltaValues(_ tensor: DeltaTensor) throws(AVError) -> [Double] {
        // Encoded values are f32 already: nothing is lost going through the f32 reader.
        guard case .dense(let info) = tensor.storage else { return try deltaFloats(tensor).map(Double.init) }
        let bytes = file.bytes(of: info)
        try verify(info.name, runs: AVDigest.runs(of: bytes, elementSize: info.dtype.byteSize ?? 1))
        var values = ElementOps.widen(info.dtype, bytes, count: info.elementCount)
        if let (indices, residuals) = try residuals(of: info.name) {
            for (i, r) in zip(indices, residuals) where i < values.count { values[i] += r }
        }
        return values
    }
}

extension AlignmentVector {
    /// A delta tensor as f32, whatever its encoding (exact remainders added, then rounded): half the
    /// memory of ``deltaValues(_:)``, for the lossy encoders.
    func deltaFloats(_ tensor: DeltaTensor) throws(AVError) -> [Float] {
        var floats = [Float](repeating: 0, count: tensor.elementCount)
        guard case .dense(let info) = tensor.storage else {
            let decoder = try DeltaDecoder(vector: self, tensor: tensor)
            floats.withUnsafeMutableBufferPointer { decoder.decode(from: 0, count: $0.count, into: $0.baseAddress!) }
            return floats
        }
        let bytes = file.bytes(of: info)
        try verify(info.name, runs: AVDigest.runs(of: bytes, elementSize: info.dtype.byteSize ?? 1))
        if info.dtype == .f64 {
            return ElementOps.widen(info.dtype, bytes, count: info.elementCount).map { Float($0) }
        }
        floats.withUnsafeMutableBufferPointer {
            Convert.toFloat(info.dtype, from: bytes.baseAddress!, count: info.elementCount, into: $0.baseAddress!)
        }
        if let (indices, residuals) = try residuals(of: info.name) {
            for (i, r) in zip(indices, residuals) where i < floats.count { floats[i] = Float(Double(floats[i]) + r) }
        }
        return floats
    }
}

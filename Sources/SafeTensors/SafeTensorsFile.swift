import Tensors

/// A safetensors file opened for reading: memory-mapped, header validated, tensors as zero-copy views.
///
/// Opening reads only the header's pages; tensor bytes are read when a view is touched.
public final class SafeTensorsFile: @unchecked Sendable {
    /// The path as given.
    public let path: String
    /// The validated header: tensors in file order and the `__metadata__` strings.
    public let header: SafeTensorsHeader
    /// The file's read-only memory map.
    public let mapping: MappedFile
    private let byName: [String: Int]

    /// Maps `path` and validates its header against every rule of the format.
    /// - Throws: `SafeTensorsError` naming the file and the rule broken; nothing else is read.
    public init(path: String) throws(SafeTensorsError) {
        self.path = path
        mapping = try MappedFile(path: path)
        header = try SafeTensorsHeader.parse(prefix: mapping.bytes, fileSize: mapping.size, file: path)
        var index: [String: Int] = [:]
        for (i, t) in header.tensors.enumerated() { index[t.name] = i }
        byName = index
    }

    /// Every tensor, in the header's order.
    public var tensors: [TensorInfo] { header.tensors }
    /// The `__metadata__` strings, nil when the header has none.
    public var metadata: [String: String]? { header.metadata }
    /// The file's size in bytes.
    public var fileSize: Int { mapping.size }

    /// The entry of tensor `name`, or nil.
    public func info(_ name: String) -> TensorInfo? { byName[name].map { header.tensors[$0] } }

    /// The tensor's bytes, straight from the mapping. Valid while this file is alive; any alignment.
    public func bytes(of tensor: TensorInfo) -> UnsafeRawBufferPointer {
        guard let base = mapping.bytes.baseAddress else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + header.dataStart + tensor.dataRange.lowerBound, count: tensor.byteCount)
    }

    /// The bytes of the tensor called `name`.
    public func bytes(named name: String) throws(SafeTensorsError) -> UnsafeRawBufferPointer {
        guard let t = info(name) else { throw SafeTensorsError(file: path, .tensorNotFound(name)) }
        return bytes(of: t)
    }

    /// The tensor's values converted to f32 (a copy), for floating-point dtypes.
    public func floats(named name: String) throws(SafeTensorsError) -> [Float] {
        guard let t = info(name) else { throw SafeTensorsError(file: path, .tensorNotFound(name)) }
        guard Convert.supports(t.dtype) else {
            throw SafeTensorsError(file: path, .invalidSchema(tensor: name, message: "\(t.dtype.rawValue) does not convert to f32"))
        }
        let raw = bytes(of: t)
        return [Float](unsafeUninitializedCapacity: t.elementCount) { buffer, count in
            if let src = raw.baseAddress, let dst = buffer.baseAddress {
                Convert.toFloat(t.dtype, from: src, count: t.elementCount, into: dst)
            }
            count = t.elementCount
        }
    }

    /// The file offset of a tensor's first byte.
    public func fileOffset(of tensor: TensorInfo) -> Int { header.dataStart + tensor.dataRange.lowerBound }
}

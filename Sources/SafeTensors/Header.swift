import Tensors

/// One tensor's entry in a safetensors header.
public struct TensorInfo: Equatable, Sendable {
    /// The tensor's name.
    public var name: String
    /// The dtype its bytes are stored in.
    public var dtype: DType
    /// The shape, outermost first.
    public var shape: [Int]
    /// Byte range relative to the start of the data buffer.
    public var dataRange: Range<Int>

    /// Elements in the tensor (0 for a shape that overflows, which the parser refuses).
    public var elementCount: Int { Shape.elementCount(shape) ?? 0 }
    /// Bytes of the tensor's data.
    public var byteCount: Int { dataRange.count }

    /// An entry from its parts.
    public init(name: String, dtype: DType, shape: [Int], dataRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataRange = dataRange
    }
}

/// A parsed and fully validated safetensors header.
public struct SafeTensorsHeader: Equatable, Sendable {
    /// The reference reader's cap on the header length (`MAX_HEADER_SIZE`).
    public static let maxHeaderLength = 100_000_000

    /// `__metadata__`, or nil when the header has none.
    public var metadata: [String: String]?
    /// The tensors in data order (by offset), which is also the file's layout.
    public var tensors: [TensorInfo]
    /// N, the length of the JSON header (padding included).
    public var headerLength: Int
    /// The file offset of the data buffer: 8 + N.
    public var dataStart: Int { 8 + headerLength }

    /// Parses and validates the header of a file whose first bytes are `prefix` and whose size is
    /// `fileSize`, applying every check of the reference reader, in its order, and a few more
    /// (unknown dtypes, duplicate names and fields, data past the end) with their own errors.
    public static func parse(prefix: UnsafeRawBufferPointer, fileSize: Int, file: String) throws(SafeTensorsError)
        -> SafeTensorsHeader
    {
        func fail(_ p: SafeTensorsError.Problem) -> SafeTensorsError { SafeTensorsError(file: file, p) }
        guard fileSize >= 8, prefix.count >= 8 else { throw fail(.headerTooSmall(fileSize: fileSize)) }
        let n = prefix.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        guard n <= UInt64(maxHeaderLength) else { throw fail(.headerTooLarge(length: n, limit: maxHeaderLength)) }
        let length = Int(n)
        guard 8 + length <= fileSize, 8 + length <= prefix.count else {
            throw fail(.invalidHeaderLength(length: n, fileSize: fileSize))
        }
        let json = UnsafeRawBufferPointer(rebasing: prefix[8..<(8 + length)])
        guard String(validating: json, as: UTF8.self) != nil else { throw fail(.headerNotUTF8) }
        let root: JSONValue
        do {
            // Arrays in a header are shapes and offset pairs: 4096 elements bounds a crafted one.
            root = try JSONParser.parse(json, maxArrayLength: 4096)
        } catch {
            throw fail(.invalidJSON(error))
        }
        guard case .object(let members) = root else {
            throw fail(.invalidSchema(tensor: nil, message: "expected an object, found \(root.kind)"))
        }

        var metadata: [String: String]?
        var sawMetadata = false
        var raw: [(name: String, dtype: DType, shape: [UInt64], begin: UInt64, end: UInt64)] = []
        var seen = Set<String>()
        for (name, value) in members {
            if name == "__metadata__" {
                if sawMetadata { throw fail(.duplicateField(tensor: "__metadata__", field: "__metadata__")) }
                sawMetadata = true
                metadata = try parseMetadata(value, file: file)
                continue
            }
            guard seen.insert(name).inserted else { throw fail(.duplicateTensor(name)) }
            raw.append(try parseEntry(name: name, value, file: file))
        }

        // The reference sorts by offsets and requires each tensor to start where the previous ended.
        raw.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        let dataSize = fileSize - 8 - length
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(raw.count)
        var runningEnd: UInt64 = 0
        for entry in raw {
            guard entry.begin == runningEnd, entry.end >= entry.begin else {
                throw fail(
                    .invalidOffset(tensor: entry.name, begin: entry.begin, end: entry.end, expectedBegin: runningEnd))
            }
            var count = 1
            for dim in entry.shape {
                guard dim <= UInt64(Int.max) else { throw fail(.shapeOverflow(tensor: entry.name, shape: entry.shape)) }
                let (p, o) = count.multipliedReportingOverflow(by: Int(dim))
                guard !o else { throw fail(.shapeOverflow(tensor: entry.name, shape: entry.shape)) }
                count = p
            }
            let (bits, o) = count.multipliedReportingOverflow(by: entry.dtype.bits)
            guard !o else { throw fail(.shapeOverflow(tensor: entry.name, shape: entry.shape)) }
            guard bits % 8 == 0 else {
                throw fail(.misalignedSlice(tensor: entry.name, dtype: entry.dtype, elements: count))
            }
            let shape = entry.shape.map { Int($0) }
            guard entry.end - entry.begin == UInt64(bits / 8) else {
                throw fail(
                    .sizeMismatch(
                        tensor: entry.name, dtype: entry.dtype, shape: shape, expected: bits / 8,
                        found: entry.end - entry.begin))
            }
            guard entry.end <= UInt64(dataSize) else {
                throw fail(.dataPastEnd(tensor: entry.name, end: entry.end, dataSize: dataSize))
            }
            tensors.append(
                TensorInfo(
                    name: entry.name, dtype: entry.dtype, shape: shape, dataRange: Int(entry.begin)..<Int(entry.end)))
            runningEnd = entry.end
        }
        guard runningEnd == UInt64(dataSize) else {
            throw fail(.incompleteBuffer(dataEnd: 8 + length + Int(runningEnd), fileSize: fileSize))
        }
        return SafeTensorsHeader(metadata: metadata, tensors: tensors, headerLength: length)
    }

    private static func parseMetadata(_ value: JSONValue, file: String) throws(SafeTensorsError) -> [String: String]? {
        switch value {
        case .null:
            return nil
        case .object(let pairs):
            var out: [String: String] = [:]
            for (key, v) in pairs {
                guard case .string(let s) = v else {
                    throw SafeTensorsError(file: file, .metadataNotString(key: key, found: v.kind))
                }
                guard out.updateValue(s, forKey: key) == nil else {
                    throw SafeTensorsError(file: file, .duplicateField(tensor: "__metadata__", field: key))
                }
            }
            return out
        default:
            throw SafeTensorsError(
                file: file,
                .invalidSchema(tensor: "__metadata__", message: "expected an object of strings, found \(value.kind)"))
        }
    }

    private static func parseEntry(name: String, _ value: JSONValue, file: String) throws(SafeTensorsError)
        -> (name: String, dtype: DType, shape: [UInt64], begin: UInt64, end: UInt64)
    {
        func schema(_ message: String) -> SafeTensorsError {
            SafeTensorsError(file: file, .invalidSchema(tensor: name, message: message))
        }
        guard case .object(let fields) = value else { throw schema("expected an object, found \(value.kind)") }
        var dtypeText: String?
        var shape: [UInt64]?
        var offsets: [UInt64]?
        func unsignedArray(_ v: JSONValue, _ field: String) throws(SafeTensorsError) -> [UInt64] {
            guard case .array(let items) = v else {
                throw schema("\(field) must be an array of non-negative integers, found \(v.kind)")
            }
            var out: [UInt64] = []
            for item in items {
                guard case .number(_, let u?) = item else {
                    throw schema("\(field) must hold non-negative integers, found \(describe(item))")
                }
                out.append(u)
            }
            return out
        }
        var seenFields = Set<String>()
        for (key, v) in fields {
            guard seenFields.insert(key).inserted else {
                throw SafeTensorsError(file: file, .duplicateField(tensor: name, field: key))
            }
            switch key {
            case "dtype":
                guard case .string(let s) = v else { throw schema("dtype must be a string, found \(v.kind)") }
                dtypeText = s
            case "shape":
                shape = try unsignedArray(v, "shape")
            case "data_offsets":
                offsets = try unsignedArray(v, "data_offsets")
            default:
                break  // unknown fields are ignored, as the reference does
            }
        }
        guard let dtypeText else { throw schema("missing field \"dtype\"") }
        guard let shape else { throw schema("missing field \"shape\"") }
        guard let offsets else { throw schema("missing field \"data_offsets\"") }
        guard offsets.count == 2 else { throw schema("data_offsets must hold 2 integers, found \(offsets.count)") }
        guard let dtype = DType(rawValue: dtypeText) else {
            throw SafeTensorsError(file: file, .unknownDType(tensor: name, dtype: dtypeText))
        }
        return (name, dtype, shape, offsets[0], offsets[1])
    }

    /// A number as written (so `-1` or `2.5` shows as such), any other value by its kind.
    private static func describe(_ v: JSONValue) -> String {
        if case .number(let text, _) = v { return text }
        return v.kind
    }
}

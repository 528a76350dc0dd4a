import SafeTensors

/// One tensor of a GGUF file being written: its name, its dimensions in ggml's order (`ne[0]`, the
/// fastest-running one, first: a Hugging Face `[rows, cols]` matrix is `[cols, rows]`) and its type.
public struct GGUFTensorSpec: Equatable, Sendable {
    /// The tensor's name (unique, shorter than 64 bytes).
    public var name: String
    /// Dimensions, fastest first.
    public var dims: [Int]
    /// How the elements are stored.
    public var type: GGMLType

    /// A tensor named `name` of `dims` (fastest first) stored as `type`.
    public init(name: String, dims: [Int], type: GGMLType) {
        self.name = name
        self.dims = dims
        self.type = type
    }

    /// Bytes of the tensor's data: whole blocks of `type` along `dims[0]`.
    public var byteCount: Int { dims.reduce(1, *) / type.block.elements * type.block.bytes }
}

/// Writes a GGUF file (version 3) the way ggml reads it: the metadata in the order given, the tensor
/// infos with offsets that are the running sum of each tensor's size padded to the alignment, zero
/// padding to the data section, then each tensor's bytes in the order of the infos, each padded.
///
/// The file is written under a temporary name beside `path` and renamed into place by ``finish()``;
/// until then (and after ``abort()``, a thrown error or a crash) `path` is untouched.
public final class GGUFWriter {
    /// The destination.
    public let path: String
    /// The tensors, in the order their bytes must be given.
    public let tensors: [GGUFTensorSpec]
    private let file: AtomicFile
    private let alignment: Int
    private var next = 0
    private var written = 0

    /// Checks the tensors, creates the temporary file and writes the header.
    /// - Parameters:
    ///   - metadata: keys and values in file order; `general.alignment` (a u32 power of two) sets the
    ///     alignment, 32 otherwise.
    ///   - protecting: inputs the destination must not be.
    /// - Throws: a `GGUFError` naming the file and the tensor or key for a duplicate or over-long name,
    ///   a dimension that is not whole blocks, or a destination that is an input or not a regular file.
    public init(
        path: String, metadata: [(key: String, value: GGUFValue)], tensors: [GGUFTensorSpec],
        protecting inputs: [String] = []
    ) throws(GGUFError) {
        self.path = path
        self.tensors = tensors
        func fail(_ m: String) -> GGUFError { GGUFError(file: path, message: m) }
        var alignment = 32
        var keys = Set<String>()
        for (key, value) in metadata {
            guard !key.isEmpty, keys.insert(key).inserted else {
                throw fail("metadata key \(JSONWriter.quoted(key)) is empty or given twice")
            }
            if key == "general.alignment" {
                guard case .uint32(let a) = value, a > 0, a & (a - 1) == 0 else {
                    throw fail("general.alignment must be a u32 power of two")
                }
                alignment = Int(a)
            }
        }
        self.alignment = alignment
        var names = Set<String>()
        for t in tensors {
            guard t.name.utf8.count < 64, names.insert(t.name).inserted else {
                throw fail("tensor \(JSONWriter.quoted(t.name)): names must be unique and shorter than 64 bytes")
            }
            guard (1...4).contains(t.dims.count), t.dims.allSatisfy({ $0 > 0 }),
                t.dims[0] % t.type.block.elements == 0
            else {
                throw fail(
                    "tensor \(JSONWriter.quoted(t.name)): dimensions \(t.dims) are not whole \(t.type.name) blocks"
                        + " of \(t.type.block.elements) along the first")
            }
        }
        do {
            try OutputGuard.checkFile(path, inputs: inputs)
            file = try AtomicFile(destination: path)
        } catch {
            throw fail(error.description)
        }
        var header: [UInt8] = []
        Self.append(UInt32(0x4655_4747), to: &header)
        Self.append(UInt32(3), to: &header)
        Self.append(UInt64(tensors.count), to: &header)
        Self.append(UInt64(metadata.count), to: &header)
        for (key, value) in metadata {
            Self.append(key, to: &header)
            Self.append(value, to: &header, withType: true)
        }
        var offset = 0
        for t in tensors {
            Self.append(t.name, to: &header)
            Self.append(UInt32(t.dims.count), to: &header)
            for d in t.dims { Self.append(UInt64(d), to: &header) }
            Self.append(t.type.rawValue, to: &header)
            Self.append(UInt64(offset), to: &header)
            offset += Self.padded(t.byteCount, alignment)
        }
        header += [UInt8](repeating: 0, count: Self.padded(header.count, alignment) - header.count)
        do { try file.write(header) } catch { throw fail(error.description) }
    }

    /// The tensor whose bytes ``write(_:)`` expects next, or nil when all were written.
    public var nextTensor: GGUFTensorSpec? { next < tensors.count ? tensors[next] : nil }

    /// Appends the next piece of the current tensor's data; once its ``GGUFTensorSpec/byteCount`` bytes
    /// are in, its padding follows and the next tensor begins. A piece never spans two tensors.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(GGUFError) {
        guard let t = nextTensor else { preconditionFailure("more tensor bytes written than declared") }
        precondition(written + bytes.count <= t.byteCount, "tensor \(t.name): more than its \(t.byteCount) bytes")
        do {
            try file.write(bytes)
            written += bytes.count
            if written == t.byteCount {
                let pad = Self.padded(t.byteCount, alignment) - t.byteCount
                if pad > 0 { try file.write([UInt8](repeating: 0, count: pad)) }
                written = 0
                next += 1
            }
        } catch {
            throw GGUFError(file: path, message: error.description)
        }
    }

    /// Syncs the file and renames it into place; every declared tensor must have been written.
    public func finish() throws(GGUFError) {
        precondition(next == tensors.count, "finish before every tensor was written")
        do { try file.commit() } catch { throw GGUFError(file: path, message: error.description) }
    }

    /// Removes the temporary file; the destination stays as it was.
    public func abort() { file.abort() }

    static func padded(_ n: Int, _ alignment: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    static func append<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    static func append(_ s: String, to out: inout [UInt8]) {
        append(UInt64(s.utf8.count), to: &out)
        out.append(contentsOf: s.utf8)
    }

    /// GGUF's value type id of `value`.
    static func typeID(_ value: GGUFValue) -> UInt32 {
        switch value {
        case .uint8: 0
        case .int8: 1
        case .uint16: 2
        case .int16: 3
        case .uint32: 4
        case .int32: 5
        case .float32: 6
        case .bool: 7
        case .string: 8
        case .array: 9
        case .uint64: 10
        case .int64: 11
        case .float64: 12
        }
    }

    static func append(_ value: GGUFValue, to out: inout [UInt8], withType: Bool) {
        if withType { append(typeID(value), to: &out) }
        switch value {
        case .uint8(let v): append(v, to: &out)
        case .int8(let v): append(v, to: &out)
        case .uint16(let v): append(v, to: &out)
        case .int16(let v): append(v, to: &out)
        case .uint32(let v): append(v, to: &out)
        case .int32(let v): append(v, to: &out)
        case .float32(let v): append(v.bitPattern, to: &out)
        case .bool(let v): out.append(v ? 1 : 0)
        case .string(let s): append(s, to: &out)
        case .uint64(let v): append(v, to: &out)
        case .int64(let v): append(v, to: &out)
        case .float64(let v): append(v.bitPattern, to: &out)
        case .array(let items):
            // Arrays hold one element type; an empty one is written as an array of u8.
            append(items.first.map(typeID) ?? 0, to: &out)
            append(UInt64(items.count), to: &out)
            for item in items {
                precondition(typeID(item) == typeID(items[0]), "a GGUF array holds one element type")
                append(item, to: &out, withType: false)
            }
        }
    }
}

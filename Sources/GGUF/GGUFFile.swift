import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Why a GGUF file was refused: the file, the rule, and the values found.
public struct GGUFError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file refused.
    public var file: String
    /// The rule it breaks and the values found.
    public var message: String
    /// The byte offset where the problem was found, when there is one.
    public var offset: Int?
    /// The file could not be opened at all (missing, unreadable): an I/O problem, not a malformed file.
    public var isMissingFile = false

    /// An error for `file`; `offset` where the problem lies, `isMissingFile` for an I/O failure.
    public init(file: String, message: String, offset: Int? = nil, isMissingFile: Bool = false) {
        self.file = file
        self.message = message
        self.offset = offset
        self.isMissingFile = isMissingFile
    }

    /// `FILE: message (at byte N)`, the form the CLI prints.
    public var description: String { "\(file): \(message)\(offset.map { " (at byte \($0))" } ?? "")" }
}

/// A metadata value (every GGUF value type).
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), array([GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    /// The value as an Int when it is any integer type that fits, else nil.
    public var intValue: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): v <= UInt64(Int.max) ? Int(v) : nil
        case .int64(let v): Int(v)
        default: nil
        }
    }
    /// The value as a Double when it is a float or an integer, else nil.
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        default: intValue.map(Double.init)
        }
    }
    /// The string, when the value is one.
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    /// The bool, when the value is one.
    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
    /// The elements, when the value is an array.
    public var arrayValue: [GGUFValue]? { if case .array(let a) = self { a } else { nil } }
}

/// ggml tensor types with their block layout (gguf-py `GGML_QUANT_SIZES`).
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, bf16 = 30

    /// (elements, bytes) of one block.
    public var block: (elements: Int, bytes: Int) {
        switch self {
        case .f32: (1, 4)
        case .f16, .bf16: (1, 2)
        case .q4_0: (32, 18)
        case .q4_1: (32, 20)
        case .q5_0: (32, 22)
        case .q5_1: (32, 24)
        case .q8_0: (32, 34)
        case .q8_1: (32, 36)
        case .q2_K: (256, 84)
        case .q3_K: (256, 110)
        case .q4_K: (256, 144)
        case .q5_K: (256, 176)
        case .q6_K: (256, 210)
        case .q8_K: (256, 292)
        case .i8: (1, 1)
        case .i16: (1, 2)
        case .i32: (1, 4)
        case .i64, .f64: (1, 8)
        }
    }

    /// Bits per weight of a quantized type's codes (the levels a block's range is cut into are
    /// 2^bits − 1); nil for float and integer types.
    public var quantizedBits: Int? {
        switch self {
        case .q2_K: 2
        case .q3_K: 3
        case .q4_0, .q4_1, .q4_K: 4
        case .q5_0, .q5_1, .q5_K: 5
        case .q6_K: 6
        case .q8_0, .q8_1, .q8_K: 8
        default: nil
        }
    }

    /// The type's name as ggml prints it (`F32`, `Q4_K`).
    public var name: String { "\(self)".uppercased() }
}

/// One tensor's entry: `dims` in ggml order (ne[0] fastest), so the Hugging Face shape is reversed.
public struct GGUFTensorInfo: Equatable, Sendable {
    /// The tensor's name in the GGUF file (llama.cpp's names, `blk.N.…`).
    public var name: String
    /// The dimensions in ggml order: `dims[0]` varies fastest.
    public var dims: [Int]
    /// How the tensor's elements are stored.
    public var type: GGMLType
    /// Offset in the data section.
    public var offset: Int
    /// Elements in the tensor.
    public var elementCount: Int
    /// Bytes of the tensor's data.
    public var byteCount: Int
    /// The shape as Hugging Face writes it (dims reversed).
    public var shape: [Int] { dims.reversed() }
}

/// A GGUF file (versions 2 and 3), memory-mapped, its header fully validated.
public final class GGUFFile: @unchecked Sendable {
    /// The file's path as given.
    public let path: String
    /// The GGUF version (2 or 3).
    public let version: Int
    /// Every metadata key → value, as the file stores them.
    public let metadata: [String: GGUFValue]
    /// The tensors in file order, each checked to lie inside the data section.
    public let tensors: [GGUFTensorInfo]
    /// The data section's alignment (`general.alignment`, 32 by default).
    public let alignment: Int
    /// The file offset where the data section starts.
    public let dataStart: Int
    let mapping: MappedFile
    private let byName: [String: Int]

    /// Opens, maps and validates `path`.
    /// - Throws: `GGUFError` naming the file, the rule and the byte offset of the first problem.
    public init(path: String) throws(GGUFError) {
        self.path = path
        do {
            mapping = try MappedFile(path: path)
        } catch {
            throw GGUFError(file: path, message: error.message, isMissingFile: error.exitsAsIO)
        }
        var r = Reader(bytes: mapping.bytes, file: path)
        guard mapping.size >= 8 else { throw r.fail("file is \(mapping.size) bytes, too small for a GGUF header") }
        let magic = try r.u32()
        guard magic == 0x4655_4747 else {
            throw r.fail(String(cFormat: "bad magic 0x%08X (a GGUF file starts with \"GGUF\")", magic), at: 0)
        }
        let version = Int(try r.u32())
        guard version == 2 || version == 3 else {
            throw r.fail("GGUF version \(version) is not supported (2 or 3)", at: 4)
        }
        self.version = version
        let tensorCount = try r.u64()
        let kvCount = try r.u64()
        // Each entry takes at least 8 bytes (a key or name length): a count past that is a lie.
        guard tensorCount <= UInt64(mapping.size / 8), kvCount <= UInt64(mapping.size / 8) else {
            throw r.fail("tensor count \(tensorCount) or key count \(kvCount) is larger than the file can hold")
        }
        var metadata: [String: GGUFValue] = [:]
        for _ in 0..<kvCount {
            let at = r.offset
            let key = try r.string()
            guard !key.isEmpty else { throw r.fail("empty metadata key", at: at) }
            guard metadata[key] == nil else { throw r.fail("duplicate metadata key \(JSONWriter.quoted(key))", at: at) }
            let type = try r.u32()
            metadata[key] = try r.value(type: type, depth: 0)
        }
        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard case .uint32(let v) = a, v > 0, v & (v - 1) == 0 else {
                throw r.fail("general.alignment must be a u32 power of two, found \(a)")
            }
            alignment = Int(v)
        }
        self.alignment = alignment
        var infos: [GGUFTensorInfo] = []
        var names = Set<String>()
        for _ in 0..<tensorCount {
            let at = r.offset
            let name = try r.string()
            guard name.utf8.count < 64 else {
                throw r.fail(
                    "tensor name \(JSONWriter.quoted(name)) is \(name.utf8.count) bytes (ggml's limit is 63)", at: at)
            }
            guard names.insert(name).inserted else {
                throw r.fail("duplicate tensor name \(JSONWriter.quoted(name))", at: at)
            }
            let nDims = Int(try r.u32())
            guard (1...4).contains(nDims) else {
                throw r.fail("tensor \(JSONWriter.quoted(name)): \(nDims) dimensions (1 to 4)", at: at)
            }
            var dims: [Int] = []
            var count = 1
            for _ in 0..<nDims {
                let d = try r.u64()
                guard d <= UInt64(Int32.max) else {
                    throw r.fail("tensor \(JSONWriter.quoted(name)): dimension \(d) is too large", at: at)
                }
                let (p, o) = count.multipliedReportingOverflow(by: Int(d))
                guard !o, p <= Int(Int64.max / 8) else {
                    throw r.fail("tensor \(JSONWriter.quoted(name)): the element count overflows", at: at)
                }
                count = p
                dims.append(Int(d))
            }
            let rawType = try r.u32()
            guard let type = GGMLType(rawValue: rawType) else {
                throw r.fail("tensor \(JSONWriter.quoted(name)): unknown ggml type \(rawType)", at: at)
            }
            guard dims[0] % type.block.elements == 0 else {
                throw r.fail(
                    "tensor \(JSONWriter.quoted(name)): \(dims[0]) elements per row is not a multiple of"
                        + " \(type.name)'s block of \(type.block.elements)",
                    at: at
                )
            }
            let offset = try r.u64()
            guard offset <= UInt64(mapping.size) else {
                throw r.fail("tensor \(JSONWriter.quoted(name)): offset \(offset) is past the end", at: at)
            }
            let bytes = count / type.block.elements * type.block.bytes
            infos.append(
                GGUFTensorInfo(
                    name: name, dims: dims, type: type, offset: Int(offset), elementCount: count, byteCount: bytes))
        }
        let dataStart = (r.offset + alignment - 1) / alignment * alignment
        self.dataStart = dataStart
        // ggml requires each tensor at the running sum of the padded sizes, and all inside the file.
        var expected = 0
        for t in infos {
            guard t.offset == expected else {
                throw r.fail("tensor \(JSONWriter.quoted(t.name)) has offset \(t.offset), expected \(expected)")
            }
            expected = t.offset + (t.byteCount + alignment - 1) / alignment * alignment
        }
        for t in infos {
            guard dataStart + t.offset + t.byteCount <= mapping.size else {
                throw r.fail(
                    "tensor \(JSONWriter.quoted(t.name)): its \(t.byteCount) bytes at data offset \(t.offset) run"
                        + " past the end of the \(mapping.size)-byte file"
                )
            }
        }
        self.metadata = metadata
        tensors = infos
        byName = Dictionary(uniqueKeysWithValues: infos.enumerated().map { ($1.name, $0) })
    }

    /// The entry of tensor `name`, or nil.
    public func info(_ name: String) -> GGUFTensorInfo? { byName[name].map { tensors[$0] } }

    /// The raw bytes of a tensor, from the mapping.
    public func bytes(of t: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: mapping.bytes.baseAddress! + dataStart + t.offset, count: t.byteCount)
    }

    /// The tensor's values as f32.
    public func floats(_ t: GGUFTensorInfo) throws(GGUFError) -> [Float] {
        guard Dequantize.supports(t.type) else {
            throw GGUFError(
                file: path, message: "tensor \(JSONWriter.quoted(t.name)): dequantizing \(t.type.name) is not supported"
            )
        }
        let raw = bytes(of: t)
        return [Float](unsafeUninitializedCapacity: t.elementCount) { buf, n in
            Dequantize.run(t.type, raw.baseAddress!, count: t.elementCount, into: buf.baseAddress!)
            n = t.elementCount
        }
    }
}

/// A bounds-checked little-endian cursor over the file.
struct Reader {
    let bytes: UnsafeRawBufferPointer
    let file: String
    var offset = 0
    /// Elements of every metadata array read so far.
    var arrayElements = 0
    /// The most array elements a file may hold in all.
    static let arrayElementLimit = 1 << 23

    func fail(_ message: String, at: Int? = nil) -> GGUFError {
        GGUFError(file: file, message: message, offset: at ?? offset)
    }

    mutating func need(_ n: Int) throws(GGUFError) {
        guard n >= 0, offset + n <= bytes.count else { throw fail("unexpected end of file: \(n) more bytes needed") }
    }
    mutating func u8() throws(GGUFError) -> UInt8 {
        try need(1)
        defer { offset += 1 }
        return bytes[offset]
    }
    mutating func u16() throws(GGUFError) -> UInt16 {
        try need(2)
        defer { offset += 2 }
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    mutating func u32() throws(GGUFError) -> UInt32 {
        try need(4)
        defer { offset += 4 }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    mutating func u64() throws(GGUFError) -> UInt64 {
        try need(8)
        defer { offset += 8 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
    mutating func string() throws(GGUFError) -> String {
        let at = offset
        let n = try u64()
        guard n <= UInt64(1 << 30), n <= UInt64(bytes.count - offset) else {
            throw fail("string length \(n) runs past the end of the file", at: at)
        }
        let s = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + Int(n))])
        offset += Int(n)
        guard let text = String(validating: s, as: UTF8.self) else { throw fail("string is not valid UTF-8", at: at) }
        return text
    }

    mutating func value(type: UInt32, depth: Int) throws(GGUFError) -> GGUFValue {
        switch type {
        case 0: return .uint8(try u8())
        case 1: return .int8(Int8(bitPattern: try u8()))
        case 2: return .uint16(try u16())
        case 3: return .int16(Int16(bitPattern: try u16()))
        case 4: return .uint32(try u32())
        case 5: return .int32(Int32(bitPattern: try u32()))
        case 6: return .float32(Float(bitPattern: try u32()))
        case 7:
            let b = try u8()
            guard b <= 1 else { throw fail("bool value \(b) (0 or 1)", at: offset - 1) }
            return .bool(b == 1)
        case 8: return .string(try string())
        case 9:
            let at = offset
            let elementType = try u32()
            let count = try u64()
            guard depth == 0, elementType != 9 else { throw fail("nested arrays are not supported", at: at) }
            guard count <= UInt64(1 << 30), count <= UInt64(bytes.count - offset) else {
                throw fail("array of \(count) elements runs past the end of the file", at: at)
            }
            // Memory is bounded by elements, not bytes: a value takes ~25 bytes of RAM for 1 in the
            // file, and a sparse file is large and cheap. The largest real vocabularies need ~1.5M
            // elements in all (tokens, scores, types and merges of 262k tokens).
            arrayElements += Int(count)
            guard arrayElements <= Self.arrayElementLimit else {
                throw fail(
                    "metadata arrays hold more than \(Self.arrayElementLimit) elements in all (this one \(count));"
                        + " the largest vocabularies need about 1.5 million", at: at)
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<count { items.append(try value(type: elementType, depth: depth + 1)) }
            return .array(items)
        case 10: return .uint64(try u64())
        case 11: return .int64(Int64(bitPattern: try u64()))
        case 12: return .float64(Double(bitPattern: try u64()))
        default: throw fail("unknown metadata value type \(type)", at: offset - 4)
        }
    }
}

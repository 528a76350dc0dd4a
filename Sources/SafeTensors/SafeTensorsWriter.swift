import Tensors

/// A tensor to be written: its name, dtype and shape; the bytes come later.
public struct TensorSpec: Equatable, Sendable {
    /// The tensor's name in the file.
    public var name: String
    /// The dtype its bytes are stored in.
    public var dtype: DType
    /// The shape, outermost first.
    public var shape: [Int]

    /// A spec from its parts.
    public init(name: String, dtype: DType, shape: [Int]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }

    /// Bytes of the tensor's data, or nil when the shape overflows or does not fill whole bytes.
    public var byteCount: Int? { Shape.elementCount(shape).flatMap { Shape.byteCount(elements: $0, dtype: dtype) } }
}

/// Where every tensor goes in a file about to be written, and the header bytes: all known before
/// the first data byte, so the header is written once, first, and data streams after it.
///
/// The order, header JSON and padding are those of Python `safetensors` (`prepare` and
/// `serialize`): tensors by dtype, widest first, then by name; compact JSON with `__metadata__`
/// first; spaces to a multiple of 8. The same tensors and metadata give the same bytes.
public struct SafeTensorsLayout: Sendable {
    /// The tensors in file order with their byte ranges in the data buffer.
    public let tensors: [TensorInfo]
    /// The 8-byte length followed by the padded JSON header.
    public let headerBytes: [UInt8]
    /// Bytes of the data buffer after the header.
    public var dataSize: Int { tensors.last?.dataRange.upperBound ?? 0 }
    /// Bytes of the whole file: header and data.
    public var fileSize: Int { headerBytes.count + dataSize }

    /// Lays out `specs` with optional `metadata` (its keys written in sorted order), in Python's
    /// order, or in the order given when `keepingOrder` (the format allows any order).
    /// - Throws: `.write` for a duplicate name, a shape that overflows or does not fill whole bytes,
    ///   or a header over the reference's 100,000,000-byte cap.
    public init(_ specs: [TensorSpec], metadata: [String: String]? = nil, file: String = "", keepingOrder: Bool = false) throws(SafeTensorsError) {
        var names = Set<String>()
        for s in specs where !names.insert(s.name).inserted {
            throw SafeTensorsError(file: file, .write(message: "tensor \(JSONWriter.quoted(s.name)) is given twice"))
        }
        if names.contains("__metadata__") {
            throw SafeTensorsError(file: file, .write(message: "\"__metadata__\" cannot be a tensor name"))
        }
        let ordered =
            keepingOrder
            ? specs
            : specs.sorted { a, b in
                a.dtype.order != b.dtype.order ? a.dtype.order > b.dtype.order : a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
            }
        var infos: [TensorInfo] = []
        infos.reserveCapacity(ordered.count)
        var offset = 0
        for s in ordered {
            guard let size = s.byteCount else {
                throw SafeTensorsError(
                    file: file,
                    .write(
                        message: "tensor \(JSONWriter.quoted(s.name)): \(s.dtype.rawValue) \(Shape.describe(s.shape)) does not fill whole bytes or overflows"))
            }
            infos.append(TensorInfo(name: s.name, dtype: s.dtype, shape: s.shape, dataRange: offset..<(offset + size)))
            offset += size
        }
        var json: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        if let metadata {
            json += Array("\"__metadata__\":{".utf8)
            for (i, key) in metadata.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
                if i > 0 { json.append(UInt8(ascii: ",")) }
                JSONWriter.quoted(key, into: &json)
                json.append(UInt8(ascii: ":"))
                JSONWriter.quoted(metadata[key]!, into: &json)
            }
            json.append(UInt8(ascii: "}"))
            first = false
        }
        for t in infos {
            if !first { json.append(UInt8(ascii: ",")) }
            first = false
            JSONWriter.quoted(t.name, into: &json)
            json += Array(":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[".utf8)
            json += Array(t.shape.map(String.init).joined(separator: ",").utf8)
            json += Array("],\"data_offsets\":[\(t.dataRange.lowerBound),\(t.dataRange.upperBound)]}".utf8)
        }
        json.append(UInt8(ascii: "}"))
        while json.count % 8 != 0 { json.append(0x20) }
        guard json.count <= SafeTensorsHeader.maxHeaderLength else {
            throw SafeTensorsError(file: file, .headerTooLarge(length: UInt64(json.count), limit: SafeTensorsHeader.maxHeaderLength))
        }
        var header = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) }
        header += json
        tensors = infos
        headerBytes = header
    }
}

/// Writes a safetensors file tensor by tensor, chunk by chunk, atomically.
///
/// The header goes out first; then the caller appends each tensor's bytes in `layout.tensors`
/// order (`nextTensor` says which comes next), in as many chunks as it likes. `finish` checks that
/// every byte came, syncs and renames the file into place. Any error, or releasing the writer
/// unfinished, removes the temporary and leaves the destination untouched.
public final class SafeTensorsWriter: ByteSink {
    /// Where each tensor goes, and the header bytes, decided before the first byte is written.
    public let layout: SafeTensorsLayout
    /// The destination path (written under a temporary name until `finish`).
    public let path: String
    private let file: AtomicFile
    private var tensorIndex = 0
    private var writtenInTensor = 0

    /// Creates the temporary file beside `path` and writes the header of `layout`.
    /// - Throws: `.refusedOutput` for a destination that is not a regular file, `.io` when the file cannot be created.
    public init(path: String, layout: SafeTensorsLayout) throws(SafeTensorsError) {
        self.path = path
        self.layout = layout
        file = try AtomicFile(destination: path)
        try file.write(layout.headerBytes)
        skipEmptyTensors()
    }

    /// Lays out `tensors` (Python's order) with `metadata`, then opens the file as `init(path:layout:)` does.
    public convenience init(path: String, tensors: [TensorSpec], metadata: [String: String]? = nil) throws(SafeTensorsError) {
        try self.init(path: path, layout: SafeTensorsLayout(tensors, metadata: metadata, file: path))
    }

    /// The tensor whose bytes come next, or nil when all have been written.
    public var nextTensor: TensorInfo? { tensorIndex < layout.tensors.count ? layout.tensors[tensorIndex] : nil }

    /// Appends bytes of the current tensor. A chunk may not run past the end of the tensor.
    public func write(_ chunk: UnsafeRawBufferPointer) throws(SafeTensorsError) {
        guard let current = nextTensor else {
            throw SafeTensorsError(file: path, .write(message: "\(chunk.count) bytes written after the last tensor"))
        }
        guard writtenInTensor + chunk.count <= current.byteCount else {
            file.abort()
            throw SafeTensorsError(
                file: path,
                .write(message: "tensor \(JSONWriter.quoted(current.name)): \(writtenInTensor + chunk.count) bytes written, but it holds \(current.byteCount)"))
        }
        try file.write(chunk)
        writtenInTensor += chunk.count
        if writtenInTensor == current.byteCount {
            tensorIndex += 1
            writtenInTensor = 0
            skipEmptyTensors()
        }
    }

    private func skipEmptyTensors() {
        while let t = nextTensor, t.byteCount == 0 { tensorIndex += 1 }
    }

    /// Checks that every tensor is complete, then syncs and renames the file into place.
    public func finish() throws(SafeTensorsError) {
        if let missing = nextTensor {
            file.abort()
            throw SafeTensorsError(
                file: path, .write(message: "tensor \(JSONWriter.quoted(missing.name)) got \(writtenInTensor) of its \(missing.byteCount) bytes"))
        }
        try file.commit()
    }

    /// Gives up: the temporary is removed and the destination left as it was.
    public func abort() { file.abort() }

    /// Writes whole tensors held in memory: a convenience for small files and tests.
    public static func write(path: String, tensors: [(TensorSpec, [UInt8])], metadata: [String: String]? = nil) throws(SafeTensorsError) {
        let byName = Dictionary(tensors.map { ($0.0.name, $0.1) }, uniquingKeysWith: { a, _ in a })
        let writer = try SafeTensorsWriter(path: path, tensors: tensors.map(\.0), metadata: metadata)
        for t in writer.layout.tensors {
            try writer.write(byName[t.name] ?? [])
        }
        try writer.finish()
    }
}

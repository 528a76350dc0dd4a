import Tensors

/// Writes a safetensors file whose tensors are decided while their data is written: a tensor can
/// be dropped after its bytes went out (an all-zero delta), so offsets are not known up front.
///
/// Room for the largest possible header (every candidate, metadata values at their longest) is
/// reserved first; data streams after it in the final layout order, a dropped tensor's bytes are
/// cut off again, and `finish` writes the real header into the reserved room, padded with spaces,
/// which the format allows. One pass over the data, no copy; atomic like every output.
public final class ReservedHeaderWriter: ByteSink {
    /// The destination path.
    public let path: String
    /// The candidates in file order (dtype, widest first, then name: the layout order).
    public let order: [TensorSpec]
    private let file: AtomicFile
    private let reserved: Int
    private var kept: [TensorSpec] = []
    private var current: (spec: TensorSpec, start: Int, size: Int, written: Int)?

    /// - Parameters:
    ///   - metadataBound: metadata with every value at least as long as the final one.
    ///   - extraBound: tensors that may be appended after the candidates, at their largest.
    public init(path: String, candidates: [TensorSpec], metadataBound: [String: String], extraBound: [TensorSpec] = []) throws(SafeTensorsError) {
        self.path = path
        order = try SafeTensorsLayout(candidates, file: path).tensors.map { TensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape) }
        let bound = try SafeTensorsLayout(order + extraBound, metadata: metadataBound, file: path, keepingOrder: true)
        reserved = bound.headerBytes.count + 64
        file = try AtomicFile(destination: path)
        try file.write([UInt8](repeating: 0x20, count: reserved))
    }

    /// Starts the next tensor. Tensors come in `order`, any may be skipped, and any not among the
    /// candidates may follow at the end as long as the header still fits the reserved room.
    public func begin(_ spec: TensorSpec) throws(SafeTensorsError) {
        precondition(current == nil, "begin before end")
        guard let size = spec.byteCount else {
            throw SafeTensorsError(file: path, .write(message: "tensor \(JSONWriter.quoted(spec.name)) has no byte size"))
        }
        current = (spec, file.bytesWritten, size, 0)
    }

    /// Appends bytes of the current tensor; refuses bytes outside a tensor or past its end.
    public func write(_ chunk: UnsafeRawBufferPointer) throws(SafeTensorsError) {
        guard let c = current, c.written + chunk.count <= c.size else {
            file.abort()
            throw SafeTensorsError(file: path, .write(message: "bytes written outside a tensor or past its end"))
        }
        try file.write(chunk)
        current!.written += chunk.count
    }

    /// Ends the current tensor: kept in the file, or cut off again.
    public func end(keep: Bool) throws(SafeTensorsError) {
        guard let c = current else { preconditionFailure("end without begin") }
        current = nil
        if keep {
            guard c.written == c.size else {
                file.abort()
                throw SafeTensorsError(file: path, .write(message: "tensor \(JSONWriter.quoted(c.spec.name)) got \(c.written) of its \(c.size) bytes"))
            }
            kept.append(c.spec)
        } else {
            try file.rewind(to: c.start)
        }
    }

    /// The names of the tensors kept so far.
    public var keptNames: [String] { kept.map(\.name) }

    /// Writes the header for the kept tensors into the reserved room and renames the file into place.
    public func finish(metadata: [String: String]) throws(SafeTensorsError) {
        // The header lists the tensors in the order their bytes were written.
        let layout = try SafeTensorsLayout(kept, metadata: metadata, file: path, keepingOrder: true)
        let json = layout.headerBytes.count - 8
        guard layout.headerBytes.count <= reserved else {
            file.abort()
            throw SafeTensorsError(file: path, .write(message: "header of \(json) bytes does not fit the \(reserved - 8) reserved"))
        }
        var header = withUnsafeBytes(of: UInt64(reserved - 8).littleEndian) { Array($0) }
        header += layout.headerBytes[8...]
        header += [UInt8](repeating: 0x20, count: reserved - header.count)
        do throws(SafeTensorsError) {
            try file.overwrite(header, at: 0)
            try file.commit()
        } catch {
            file.abort()
            throw error
        }
    }

    /// Gives up: the temporary file is removed and the destination left as it was.
    public func abort() { file.abort() }
}

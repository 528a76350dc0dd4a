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

/// Writes a Hugging Face model directory: weight shards of at most `maxShardSize` bytes named as
/// the Hub names them, the index when there is more than one shard, and any extra files (config,
/// tokenizer), all into a temporary directory renamed into place by `finish`.
///
/// Tensors are given in state-dict order, which decides the shards; bytes are then written shard by
/// shard in each shard's file order (`nextTensor`), in chunks, as with `SafeTensorsWriter`.
public final class ModelDirectoryWriter: ByteSink {
    /// The destination directory (without a trailing slash).
    public let path: String
    /// The weight files' names, in shard order.
    public let shardNames: [String]
    /// Each shard's layout: its tensors, offsets and header.
    public let layouts: [SafeTensorsLayout]
    private let temporary: String
    private var shard = 0
    private var writer: SafeTensorsWriter?
    private var finished = false
    private let inputs: [String]
    private let extraNames: Set<String>

    /// Plans the shards and creates the temporary directory beside `path`.
    ///
    /// Refuses (``OutputGuard/checkModelDirectory(_:willWrite:inputs:)``) a destination that is not a
    /// directory, holds anything but model files and `extraNames` (the names `finish` will copy or
    /// write), or is or contains one of `inputs`; the check runs again just before the swap. One shard
    /// is named `singleFileName` (`adapter_model.safetensors` for a PEFT adapter).
    public init(
        path: String, tensors: [TensorSpec], maxShardSize: Int = 5_000_000_000,
        metadata: [String: String]? = ["format": "pt"],
        protecting inputs: [String] = [], extraNames: Set<String> = [], singleFileName: String = HFNames.singleFile
    ) throws(SafeTensorsError) {
        self.path = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        self.inputs = inputs
        self.extraNames = extraNames
        var sizes: [Int] = []
        for t in tensors {
            guard let size = t.byteCount else {
                throw SafeTensorsError(
                    file: path,
                    .write(
                        message:
                            "tensor \(JSONWriter.quoted(t.name)): \(t.dtype.rawValue) \(Shape.describe(t.shape)) does"
                            + " not fill whole bytes or overflows"
                    ))
            }
            sizes.append(size)
        }
        let groups = ShardPlanner.split(sizes: sizes, maxShardSize: maxShardSize)
        let names =
            groups.count <= 1 ? [singleFileName] : groups.indices.map { HFNames.shardName($0, of: groups.count) }
        var layouts: [SafeTensorsLayout] = []
        for (g, name) in zip(groups.isEmpty ? [[]] : groups, names) {
            layouts.append(try SafeTensorsLayout(g.map { tensors[$0] }, metadata: metadata, file: name))
        }
        shardNames = names
        self.layouts = layouts
        try OutputGuard.checkModelDirectory(self.path, willWrite: extraNames.union(names), inputs: inputs)
        let (dir, name) = splitPath(self.path)
        temporary = dir + "." + name + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let made = TemporaryFiles.creating(temporary, directory: true) { mkdir(temporary, 0o755) }
        guard made == 0 else {
            let message = errnoText()
            TemporaryFiles.unregister(temporary)
            throw SafeTensorsError(file: path, .io(operation: "create a temporary directory", message: message))
        }
        try openShard()
    }

    private func openShard() throws(SafeTensorsError) {
        writer = nil
        while shard < layouts.count {
            let w = try SafeTensorsWriter(path: temporary + "/" + shardNames[shard], layout: layouts[shard])
            if w.nextTensor != nil {
                writer = w
                return
            }
            try w.finish()
            shard += 1
        }
    }

    /// The tensor whose bytes come next, or nil when all are written.
    public var nextTensor: TensorInfo? { writer?.nextTensor }

    /// Appends bytes of the current tensor.
    public func write(_ chunk: UnsafeRawBufferPointer) throws(SafeTensorsError) {
        guard let w = writer else {
            throw SafeTensorsError(file: path, .write(message: "\(chunk.count) bytes written after the last tensor"))
        }
        do {
            try w.write(chunk)
            if w.nextTensor == nil {
                try w.finish()
                shard += 1
                try openShard()
            }
        } catch {
            abort()
            throw error
        }
    }

    /// Writes the index (for several shards), copies `extraFiles` (paths; each keeps its name), writes
    /// `texts` (name → contents, e.g. an edited config.json), and swaps the finished directory into place.
    public func finish(copying extraFiles: [String] = [], writing texts: [String: String] = [:])
        throws(SafeTensorsError)
    {
        if let t = nextTensor {
            abort()
            throw SafeTensorsError(file: path, .write(message: "tensor \(JSONWriter.quoted(t.name)) was not written"))
        }
        do throws(SafeTensorsError) {
            if shardNames.count > 1 {
                var map: [String: String] = [:]
                var total = 0
                for (layout, name) in zip(layouts, shardNames) {
                    for t in layout.tensors {
                        map[t.name] = name
                        total += t.byteCount
                    }
                }
                try AtomicFile.write(
                    ShardPlanner.indexJSON(totalSize: total, weightMap: map), to: temporary + "/" + HFNames.indexFile)
            }
            for source in extraFiles where texts[splitPath(source).name] == nil {
                let name = splitPath(source).name
                do {
                    try FileManager.default.copyItem(atPath: source, toPath: temporary + "/" + name)
                } catch {
                    throw SafeTensorsError(
                        file: source, .io(operation: "copy into \(path)", message: describe(error)))
                }
            }
            for (name, text) in texts.sorted(by: { $0.key < $1.key }) {
                try AtomicFile.write(text, to: temporary + "/" + name)
            }
            try OutputGuard.checkModelDirectory(path, willWrite: extraNames.union(shardNames), inputs: inputs)
            try replaceDirectory(path, with: temporary)
            finished = true
        } catch {
            abort()
            throw error
        }
    }

    /// Removes the temporary directory; the destination is left as it was.
    public func abort() {
        guard !finished else { return }
        finished = true
        writer?.abort()
        writer = nil
        try? FileManager.default.removeItem(atPath: temporary)
        TemporaryFiles.unregister(temporary)
    }

    deinit { abort() }
}

extension AtomicFile {
    /// Writes `text` to `path` atomically, in one go (indexes, and reports through `ReportFile`).
    public static func write(_ text: String, to path: String) throws(SafeTensorsError) {
        let file = try AtomicFile(destination: path)
        try file.write(Array(text.utf8))
        try file.commit()
    }
}

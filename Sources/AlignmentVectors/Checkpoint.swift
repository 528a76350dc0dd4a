import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A model's weights: one safetensors file, or a Hugging Face model directory (sharded or not),
/// uniform by tensor name. Memory-mapped; nothing is read until used.
public final class Checkpoint: @unchecked Sendable {
    /// The path as given: a file or a directory.
    public let path: String
    /// The files behind it, mapped.
    public let store: SafeTensorsModel

    /// Opens `path` (a safetensors file, or a directory of one or many shards with their index).
    /// - Throws: `AVError.file` naming the file and the rule it breaks.
    public init(path: String) throws(AVError) {
        self.path = path
        do {
            store = try SafeTensorsModel(path: path)
        } catch {
            throw .file(error)
        }
    }

    /// Whether the checkpoint is a model directory.
    public var isDirectory: Bool { store.isDirectory }
    /// Every tensor, in shard order then data order.
    public var tensors: [TensorInfo] { store.entries.map(\.info) }
    /// The entry of tensor `name`, or nil.
    public func info(_ name: String) -> TensorInfo? { store.info(name) }

    /// Prepares the checkpoint's pages for inference, which reads every weight at every pass: they
    /// are asked for in 2 MiB pages; when the files fit in half the memory this process may fill
    /// (`MemoryLimit`) they are all mapped now (one call costs far less than a page fault per few pages
    /// in the first forward pass); when they fit in 90% of it they are read ahead in the background,
    /// sequentially (the first pass faults fewer pages from disk, and the reads make large pages);
    /// larger checkpoints stay lazily mapped, read as each pass reaches them. Returns whether the
    /// pages were mapped now.
    @discardableResult
    public func populateIfSmall() -> Bool {
        let bytes = UInt64(store.files.reduce(0) { $0 + $1.fileSize })
        for file in store.files { file.mapping.adviseHugePages() }
        let memory = MemoryLimit.bytes
        if bytes <= memory / 2 { return store.files.allSatisfy { $0.mapping.populate() } }
        if bytes <= memory / 10 * 9 {
            for file in store.files { file.mapping.willNeed(0..<file.fileSize) }
        }
        return false
    }

    /// The bytes of `name` (zero-copy) and the mapping they live in (to release pages once used).
    public func view(_ name: String) -> (bytes: UnsafeRawBufferPointer, file: SafeTensorsFile)? {
        guard let file = store.file(holding: name), let info = file.info(name) else { return nil }
        return (file.bytes(of: info), file)
    }

    /// The dtype holding most parameters.
    public var mainDType: DType {
        var counts: [DType: Int] = [:]
        for t in tensors { counts[t.dtype, default: 0] += t.elementCount }
        return counts.max { $0.value != $1.value ? $0.value < $1.value : $0.key.order < $1.key.order }?.key ?? .f32
    }

    /// XXH64 of every tensor's name, dtype and shape, in name order: equal for checkpoints of the
    /// same architecture and dtype, whatever their values.
    public var structureFingerprint: UInt64 { Self.structureFingerprint(of: tensors) }

    /// XXH64 of the names, dtypes and shapes of `tensors`, in name order.
    static func structureFingerprint(of tensors: [TensorInfo]) -> UInt64 {
        var text = ""
        for t in tensors.sorted(by: { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }) {
            text += "\(t.name)\u{0}\(t.dtype.rawValue)\u{0}\(t.shape.map(String.init).joined(separator: ","))\n"
        }
        return text.utf8CString.withUnsafeBytes { XXHash64.hash(UnsafeRawBufferPointer(rebasing: $0.dropLast())) }
    }

    /// The content fingerprint of every tensor (`ContentFingerprint`), hashed on `threads` threads:
    /// what diff records and merge checks, for the callers that do not stream the whole base anyway.
    func contentFingerprint(threads: Int) -> UInt64 {
        let infos = tensors
        var digests = [UInt64](repeating: 0, count: infos.count)
        digests.withUnsafeMutableBufferPointer { d in
            let out = UncheckedSendable(d)
            Parallel.forEach(infos.count, threads: threads) { _, i in
                out.value[i] = hashChunks(view(infos[i].name)?.bytes ?? UnsafeRawBufferPointer(start: nil, count: 0))
            }
        }
        return ContentFingerprint.combine(Dictionary(uniqueKeysWithValues: zip(infos.map(\.name), digests)))
    }

    /// The values of `info`'s tensor in f64 (empty when the checkpoint has no such tensor).
    func values(_ info: TensorInfo) -> [Double] {
        guard let v = view(info.name) else { return [] }
        return ElementOps.widen(info.dtype, v.bytes, count: info.elementCount)
    }

    /// For a directory: the files to copy beside merged weights (config, tokenizer, generation config,
    /// chat template, …): every regular, non-hidden file that is not a weight file or the index.
    public var auxiliaryFiles: [String] {
        guard isDirectory else { return [] }
        let dir = path.hasSuffix("/") ? path : path + "/"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.sorted().filter { name in
            guard !name.hasPrefix("."), !name.hasSuffix(".safetensors"), name != HFNames.indexFile,
                Path.isDirectory(dir + name) == false
            else { return false }
            return true
        }.map { dir + $0 }
    }

    /// Every file this checkpoint reads, resolved, for the output-is-an-input check.
    public var inputFiles: [String] { store.files.map { resolved($0.path) } }
}

/// `path` with symlinks and `..` resolved, for comparing paths.
func resolved(_ path: String) -> String {
    URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path
}

/// Content fingerprints: XXH64 of each fixed-size chunk of a tensor's bytes, combined per tensor,
/// then over tensors in name order. The chunking is fixed, so the value does not depend on threads.
public enum ContentFingerprint {
    /// Bytes per hashed chunk.
    public static let chunkBytes = 4 << 20

    /// The digest of one tensor from its chunk digests, in order.
    public static func tensorDigest(_ chunks: [UInt64]) -> UInt64 { XXHash64.hash(digests: chunks) }

    /// The fingerprint of a checkpoint from its tensors' digests.
    public static func combine(_ digests: [String: UInt64]) -> UInt64 {
        var all: [UInt64] = []
        for name in digests.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let nameHash = Array(name.utf8).withUnsafeBytes { XXHash64.hash($0) }
            all += [nameHash, digests[name]!]
        }
        return XXHash64.hash(digests: all)
    }
}

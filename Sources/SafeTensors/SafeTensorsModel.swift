import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Hugging Face's names for a model's weight files (huggingface_hub constants.py).
public enum HFNames {
    /// The file name of an unsharded model.
    public static let singleFile = "model.safetensors"
    /// The file name of a sharded model's index.
    public static let indexFile = "model.safetensors.index.json"

    /// `model-00001-of-00003.safetensors`: 1-based, five digits.
    public static func shardName(_ index: Int, of count: Int) -> String {
        func five(_ n: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, 5 - s.count)) + s
        }
        return "model-\(five(index + 1))-of-\(five(count)).safetensors"
    }
}

/// One safetensors file, or a model directory of one or many shards, seen as one set of tensors
/// by name. Every file is memory-mapped; nothing is read until a tensor is touched.
public final class SafeTensorsModel: @unchecked Sendable {
    /// The path as given: a file or a directory.
    public let path: String
    /// Whether `path` is a model directory.
    public let isDirectory: Bool
    /// The weight files, in shard order.
    public let files: [SafeTensorsFile]
    /// Every tensor with the index of the file holding it, in shard order then data order.
    public let entries: [(file: Int, info: TensorInfo)]
    private let byName: [String: Int]

    /// Opens a `.safetensors` file, or a directory holding `model.safetensors`, or shards listed by
    /// `model.safetensors.index.json`, or exactly one other `*.safetensors` file.
    /// - Throws: an error naming the missing shard, the tensor the index names but no shard holds,
    ///   a tensor held by a shard the index does not list it in, or any header problem.
    public init(path: String) throws(SafeTensorsError) {
        self.path = path
        guard let isDir = Path.isDirectory(path) else {
            throw SafeTensorsError(file: path, .io(operation: "open", message: "No such file or directory"))
        }
        isDirectory = isDir
        var files: [SafeTensorsFile] = []
        var entries: [(file: Int, info: TensorInfo)] = []
        var byName: [String: Int] = [:]
        func add(_ info: TensorInfo, file: Int) throws(SafeTensorsError) {
            guard byName[info.name] == nil else {
                throw SafeTensorsError(
                    file: files[file].path,
                    .index(
                        message:
                            "tensor \(JSONWriter.quoted(info.name)) is also in"
                            + " \(files[entries[byName[info.name]!].file].path)"
                    )
                )
            }
            byName[info.name] = entries.count
            entries.append((file, info))
        }
        if !isDirectory {
            files = [try SafeTensorsFile(path: path)]
            for t in files[0].tensors { try add(t, file: 0) }
        } else {
            let dir = path.hasSuffix("/") ? path : path + "/"
            let indexPath = dir + HFNames.indexFile
            if FileManager.default.fileExists(atPath: indexPath) {
                let map = try Self.readIndex(indexPath)
                let shardNames = Set(map.values).sorted()
                // transformers loads model.safetensors when both are there; av would load the
                // shards: one of them is stale, and which model gets checked must not depend on the tool.
                if shardNames != [HFNames.singleFile], FileManager.default.fileExists(atPath: dir + HFNames.singleFile)
                {
                    throw SafeTensorsError(
                        file: indexPath,
                        .index(
                            message:
                                "\(HFNames.singleFile) is here too: transformers would load it and av the shards"
                                + " this index lists; remove the one that is stale"))
                }
                for shard in shardNames {
                    guard !shard.hasPrefix("/"), !shard.split(separator: "/").contains("..") else {
                        throw SafeTensorsError(
                            file: indexPath,
                            .index(message: "shard name \(JSONWriter.quoted(shard)) leaves the model directory"))
                    }
                    guard FileManager.default.fileExists(atPath: dir + shard) else {
                        throw SafeTensorsError(
                            file: indexPath,
                            .index(
                                message: "the weight_map names shard \(JSONWriter.quoted(shard)), which does not exist")
                        )
                    }
                    files.append(try SafeTensorsFile(path: dir + shard))
                }
                for (i, f) in files.enumerated() {
                    for t in f.tensors {
                        guard let listed = map[t.name] else {
                            throw SafeTensorsError(
                                file: indexPath,
                                .index(
                                    message:
                                        "shard \(shardNames[i]) holds tensor \(JSONWriter.quoted(t.name)), which the"
                                        + " weight_map does not list"
                                ))
                        }
                        guard listed == shardNames[i] else {
                            throw SafeTensorsError(
                                file: indexPath,
                                .index(
                                    message:
                                        "the weight_map puts tensor \(JSONWriter.quoted(t.name)) in \(listed), but it"
                                        + " is in \(shardNames[i])"
                                ))
                        }
                        try add(t, file: i)
                    }
                }
                for (name, shard) in map.sorted(by: { $0.key < $1.key }) where byName[name] == nil {
                    throw SafeTensorsError(
                        file: indexPath,
                        .index(
                            message:
                                "the weight_map puts tensor \(JSONWriter.quoted(name)) in \(shard), which does not"
                                + " hold it"
                        ))
                }
            } else {
                let contents = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                let candidates = contents.filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") }.sorted()
                let chosen: String
                if candidates.contains(HFNames.singleFile) {
                    chosen = HFNames.singleFile
                } else if candidates.count == 1 {
                    chosen = candidates[0]
                } else if candidates.isEmpty {
                    throw SafeTensorsError(file: path, .index(message: "no .safetensors file in this directory"))
                } else {
                    throw SafeTensorsError(
                        file: path,
                        .index(
                            message:
                                "\(candidates.count) .safetensors files (\(candidates.joined(separator: ", "))) but"
                                + " no \(HFNames.indexFile) to say how they form one model"
                        ))
                }
                files = [try SafeTensorsFile(path: dir + chosen)]
                for t in files[0].tensors { try add(t, file: 0) }
            }
        }
        self.files = files
        self.entries = entries
        self.byName = byName
    }

    /// Reads `weight_map` from an index file.
    public static func readIndex(_ indexPath: String) throws(SafeTensorsError) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: indexPath) else {
            throw SafeTensorsError(file: indexPath, .io(operation: "read", message: "cannot read the file"))
        }
        let root: JSONValue
        do {
            root = try JSONParser.parse(String(decoding: data, as: UTF8.self))
        } catch {
            throw SafeTensorsError(
                file: indexPath, .index(message: "not valid JSON: \(error.message) at byte \(error.offset)"))
        }
        guard case .object(let top) = root,
            let mapValue = top.first(where: { $0.key == "weight_map" })?.value,
            case .object(let pairs) = mapValue
        else {
            throw SafeTensorsError(file: indexPath, .index(message: "no \"weight_map\" object"))
        }
        var map: [String: String] = [:]
        for (name, value) in pairs {
            guard case .string(let shard) = value else {
                throw SafeTensorsError(
                    file: indexPath,
                    .index(
                        message: "weight_map entry \(JSONWriter.quoted(name)) is \(value.kind), expected a file name"))
            }
            guard map.updateValue(shard, forKey: name) == nil else {
                throw SafeTensorsError(
                    file: indexPath, .index(message: "weight_map lists tensor \(JSONWriter.quoted(name)) twice"))
            }
        }
        return map
    }

    /// Every tensor name, in shard order then data order.
    public var tensorNames: [String] { entries.map(\.info.name) }
    /// How many tensors the model holds.
    public var count: Int { entries.count }

    /// The entry of tensor `name`, or nil.
    public func info(_ name: String) -> TensorInfo? { byName[name].map { entries[$0].info } }

    /// The file holding `name`.
    public func file(holding name: String) -> SafeTensorsFile? { byName[name].map { files[entries[$0].file] } }

    /// The bytes of `name`, zero-copy from its shard's mapping.
    public func bytes(named name: String) throws(SafeTensorsError) -> UnsafeRawBufferPointer {
        guard let i = byName[name] else { throw SafeTensorsError(file: path, .tensorNotFound(name)) }
        return files[entries[i].file].bytes(of: entries[i].info)
    }

    /// `__metadata__` of the first file.
    public var metadata: [String: String]? { files.first?.metadata }

    /// Sum of the tensors' data bytes (the index's `total_size`).
    public var totalDataSize: Int { entries.reduce(0) { $0 + $1.info.byteCount } }
}

extension SafeTensorsModel {
    /// Elements over every tensor of every file.
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.info.elementCount } }

    /// Per dtype present, its tensors and their elements.
    public var countsByDType: [DType: (tensors: Int, params: Int)] {
        var out: [DType: (tensors: Int, params: Int)] = [:]
        for e in entries {
            out[e.info.dtype, default: (0, 0)].tensors += 1
            out[e.info.dtype, default: (0, 0)].params += e.info.elementCount
        }
        return out
    }
}

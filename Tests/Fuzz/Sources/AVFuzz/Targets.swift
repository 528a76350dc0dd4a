import AlignmentVectors
import Evaluation
import GGUF
import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// One fuzz target per parser of outside input, chosen by `AV_FUZZ_TARGET`. Each writes the input
/// where the parser reads it and runs the parser and what a command does next with its result; an
/// error thrown is a refusal (fine), a crash or a sanitizer report is a finding.
enum Targets {
    /// A scratch directory of this process, made once.
    static let scratch: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("av-fuzz-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    /// Writes the input in place (no temporary and rename: a rename stalled by a busy file system
    /// once counted as a one-second "timeout" of the parser).
    static func write(_ data: [UInt8], _ name: String) -> String {
        let path = scratch + "/" + name
        if let f = fopen(path, "wb") {
            _ = data.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
            fclose(f)
        }
        return path
    }

    static func text(_ data: [UInt8]) -> String { String(decoding: data, as: UTF8.self) }

    /// A fixture file of the repository, by its path from the repository's root.
    static func fixture(_ path: String) -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(path).path
    }

    static func run(_ target: String, _ data: [UInt8]) {
        switch target {
        case "safetensors":
            let path = write(data, "x.safetensors")
            if let f = try? SafeTensorsFile(path: path) {
                for t in f.tensors where Convert.supports(t.dtype) { _ = try? f.floats(named: t.name) }
            }
        case "index":
            let dir = scratch + "/model"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            if !FileManager.default.fileExists(atPath: dir + "/model-00001-of-00001.safetensors") {
                try? FileManager.default.copyItem(
                    atPath: fixture("Tests/AlignmentVectorsTests/Fixtures/base_F32.safetensors"),
                    toPath: dir + "/model-00001-of-00001.safetensors")
            }
            _ = write(data, "model/model.safetensors.index.json")
            if let m = try? SafeTensorsModel(path: dir) { for e in m.entries { _ = try? m.bytes(named: e.info.name) } }
        case "av":
            let path = write(data, "x.av")
            if let v = try? AlignmentVector(path: path) { for d in v.deltas { _ = try? v.deltaValues(d) } }
        case "gguf":
            let path = write(data, "x.gguf")
            if let g = try? GGUFFile(path: path) {
                for t in g.tensors.prefix(4) where t.elementCount < 1 << 20 { _ = try? g.floats(t) }
                let out = scratch + "/converted"
                try? GGUFConverter.convert(g, to: out)
                try? FileManager.default.removeItem(atPath: out)
            }
        case "tokenizer":
            let path = write(data, "tokenizer.json")
            if let t = try? Tokenizer(path: path) {
                let ids = t.encode("Hello wörld, 12345 <|im_start|>  tabs\tand\nnewlines 🙂")
                _ = t.decode(ids)
            }
        case "template":
            let dir = scratch + "/tpl"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            _ = write(data, "tpl/tokenizer_config.json")
            _ = ChatTemplate.detect(directory: dir)?.render(user: "Hi", system: "Be brief.")
        case "config":
            if let json = try? JSONParser.parse(text(data)) { _ = try? LlamaConfig(json: json, file: "config.json") }
        case "adapter":
            let dir = scratch + "/adapter"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            if !FileManager.default.fileExists(atPath: dir + "/adapter_model.safetensors") {
                try? FileManager.default.copyItem(
                    atPath: fixture(
                        "Tests/AlignmentVectorsTests/Fixtures/adapters/lora/adapter/adapter_model.safetensors"),
                    toPath: dir + "/adapter_model.safetensors")
            }
            _ = write(data, "adapter/adapter_config.json")
            if let a = try? LoRAAdapter(path: dir),
                let base = try? Checkpoint(path: fixture("Tests/AlignmentVectorsTests/Fixtures/adapters/lora/base"))
            {
                _ = try? diff(
                    base: base, adapter: a, output: scratch + "/adapter.av", options: DiffOptions(domain: "x"))
            }
        case "recipe":
            let path = write(data, "recipe.json")
            if let r = try? MixRecipe.load(path), let checks = r.checks?.arrayValue {
                _ = try? ReleaseCheck.parse(checks, recipe: path, place: { scratch + "/" + $0 })
            }
            _ = try? GridShard.load(path, command: "search")
        case "jsonl":
            let path = write(data, "lines.jsonl")
            _ = try? LevelsFile.load(path)
            _ = try? PreferencePair.load(path)
            _ = try? TextInput.lines(path)
        default:
            print("AV_FUZZ_TARGET must be one of \(all.joined(separator: ", "))")
            exit(2)
        }
    }

    static let all = [
        "safetensors", "index", "av", "gguf", "tokenizer", "template", "config", "adapter", "recipe", "jsonl",
    ]
}

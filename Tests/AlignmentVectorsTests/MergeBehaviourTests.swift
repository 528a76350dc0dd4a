import AVTestSupport
import Foundation
import Testing

@testable import AlignmentVectors
@testable import SafeTensors
@testable import Tensors

/// Writes a model: tensors given as f32 values, stored as `dtype`.
func writeModel(_ path: String, _ tensors: [(String, [Int], [Float])], dtype: DType = .bf16, directory: Bool = false, maxShardSize: Int = 1 << 40) throws {
    let specs = tensors.map { TensorSpec(name: $0.0, dtype: dtype, shape: $0.1) }
    let data = Dictionary(
        uniqueKeysWithValues: tensors.map { t -> (String, [UInt8]) in
            var bytes = [UInt8](repeating: 0, count: t.2.count * dtype.byteSize!)
            bytes.withUnsafeMutableBytes { b in
                t.2.withUnsafeBufferPointer { Convert.fromFloat(dtype, from: $0.baseAddress!, count: t.2.count, into: b.baseAddress!) }
            }
            return (t.0, bytes)
        })
    if directory {
        let w = try ModelDirectoryWriter(path: path, tensors: specs, maxShardSize: maxShardSize)
        while let t = w.nextTensor { try w.write(data[t.name]!) }
        try w.finish()
        try Data(#"{"model_type": "llama", "vocab_size": 8}"#.utf8).write(to: URL(fileURLWithPath: path + "/config.json"))
        try Data(#"{"model": {"type": "BPE"}}"#.utf8).write(to: URL(fileURLWithPath: path + "/tokenizer.json"))
    } else {
        try SafeTensorsWriter.write(path: path, tensors: specs.map { ($0, data[$0.name]!) })
    }
}

func values(_ n: Int, seed: Int, scale: Float = 0.05) -> [Float] {
    var x = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<n).map { _ in
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        return (Float(x % 20001) / 10000 - 1) * scale
    }
}

@Suite("Merge and diff behaviour")
struct MergeBehaviourTests {
    @Test("tensors larger than a chunk: bytes identical with 1 and 3 threads; λ=1 exact")
    func multiChunk() throws {
        let dir = TemporaryDirectory()
        let n = 2_500_000  // bf16: 5 MB, two 4 MiB chunks
        let b = values(n, seed: 1)
        let a = zip(b, values(n, seed: 2, scale: 0.001)).map { $0 + $1 }
        try writeModel(dir.file("base.safetensors"), [("w", [n / 500, 500], b), ("v", [3], [1, 2, 3])])
        try writeModel(dir.file("aligned.safetensors"), [("w", [n / 500, 500], a), ("v", [3], [1, 2, 3])])
        var outputs: [[UInt8]] = []
        for threads in [1, 3] {
            try FileManager.default.createDirectory(atPath: dir.file("\(threads)"), withIntermediateDirectories: true)
            let av = dir.file("\(threads)/d.av")
            let report = try makeAV(dir.file("base.safetensors"), dir.file("aligned.safetensors"), av, threads: threads)
            #expect(report.changedTensors == 1 && report.mismatches == 0)
            #expect(try AlignmentVector(path: av).deltas.map(\.name) == ["w"])  // "v" did not change: left out
            let out = dir.file("\(threads)/m.safetensors")
            _ = try mix(dir.file("base.safetensors"), [(av, 0.7)], out, threads: threads)
            outputs.append(readFile(av) + (try tensorBytes(out)["w"]!))
            let one = dir.file("\(threads)/one.safetensors")
            _ = try mix(dir.file("base.safetensors"), [(av, 1)], one, threads: threads)
            #expect(try tensorBytes(one) == tensorBytes(dir.file("aligned.safetensors")))
        }
        #expect(outputs[0] == outputs[1])
    }

    /// One-chunk tensors diffed several at a time: an unchanged one left out, exact remainders kept,
    /// a multi-chunk tensor between the groups; λ = 1 rebuilds the aligned model.
    @Test("one-chunk tensors diffed in groups: the same AV bytes with 1, 2 and 5 threads; λ=1 exact")
    func oneChunkGroups() throws {
        let dir = TemporaryDirectory()
        // f32, so some deltas need exact remainders; "m" is two chunks, between two groups.
        var base: [(String, [Int], [Float])] = []
        var aligned: [(String, [Int], [Float])] = []
        for (k, name) in ["a0", "a1", "a2", "a3", "a4", "m", "z0", "z1", "z2"].enumerated() {
            let n = name == "m" ? 1_100_000 : [300, 70_000, 4096, 1_000_000, 17, 50_000, 9, 260_000, 3][k]
            let b = values(n, seed: 10 + k, scale: 3)
            base.append((name, [n], b))
            // "a2" does not change; the others by amounts whose f32 differences are often inexact.
            let changed = zip(b, values(n, seed: 50 + k, scale: 2)).map { $0 * 1.3 + $1 }
            aligned.append((name, [n], name == "a2" ? b : changed))
        }
        try writeModel(dir.file("base.safetensors"), base, dtype: .f32)
        try writeModel(dir.file("aligned.safetensors"), aligned, dtype: .f32)
        var outputs: [[UInt8]] = []
        for threads in [1, 2, 5] {
            try FileManager.default.createDirectory(atPath: dir.file("\(threads)"), withIntermediateDirectories: true)
            let av = dir.file("\(threads)/d.av")
            let report = try makeAV(dir.file("base.safetensors"), dir.file("aligned.safetensors"), av, threads: threads)
            #expect(report.changedTensors == 8 && report.mismatches == 0 && report.residuals > 0)
            let vector = try AlignmentVector(path: av)
            #expect(!vector.deltas.map(\.name).contains("a2"))
            let one = dir.file("\(threads)/one.safetensors")
            _ = try mix(dir.file("base.safetensors"), [(av, 1)], one, threads: threads)
            #expect(try tensorBytes(one) == tensorBytes(dir.file("aligned.safetensors")))
            outputs.append(readFile(av))
        }
        #expect(outputs[0] == outputs[1] && outputs[1] == outputs[2])
    }

    @Test("a model directory merges into a directory: shards, index, config and tokenizer copied")
    func directories() throws {
        let dir = TemporaryDirectory()
        let tensors = (0..<4).map { ("model.layers.\($0).weight", [16, 8], values(128, seed: $0)) }
        let aligned = tensors.map { ($0.0, $0.1, $0.2.map { $0 * 1.01 }) }
        try writeModel(dir.file("base"), tensors, directory: true, maxShardSize: 600)
        try writeModel(dir.file("aligned"), aligned, directory: true, maxShardSize: 600)
        #expect(try SafeTensorsModel(path: dir.file("base")).files.count == 2)
        let av = dir.file("medical.av")
        _ = try makeAV(dir.file("base"), dir.file("aligned"), av)
        let out = dir.file("merged")
        let report = try mix(dir.file("base"), [(av, 1)], out)
        let files = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        #expect(files == ["config.json", HFNames.shardName(0, of: 2), HFNames.shardName(1, of: 2), HFNames.indexFile, "tokenizer.json"].sorted())
        #expect(report.outputFiles.count == 2)
        #expect(try tensorBytes(out) == tensorBytes(dir.file("aligned")))
        let merged = try SafeTensorsModel(path: out)
        #expect(merged.metadata?["format"] == "pt")
        let provenance = try JSONParser.parse(merged.metadata?["av.merge"] ?? "")
        #expect(provenance["vectors"]?.arrayValue?.first?["domain"]?.stringValue == "medical")
        #expect(provenance["base"]?["content"]?.stringValue == report.base.content)
    }

    @Test("tied embeddings (no lm_head) diff and merge like any tensor set")
    func tiedEmbeddings() throws {
        let dir = TemporaryDirectory()
        try writeModel(dir.file("b.safetensors"), [("model.embed_tokens.weight", [8, 4], values(32, seed: 3)), ("model.norm.weight", [4], [1, 1, 1, 1])])
        try writeModel(dir.file("a.safetensors"), [("model.embed_tokens.weight", [8, 4], values(32, seed: 4)), ("model.norm.weight", [4], [1, 1, 1, 1.5])])
        let r = try makeAV(dir.file("b.safetensors"), dir.file("a.safetensors"), dir.file("x.av"))
        #expect(r.changedTensors == 2)
        _ = try mix(dir.file("b.safetensors"), [(dir.file("x.av"), 1)], dir.file("m.safetensors"))
        #expect(try tensorBytes(dir.file("m.safetensors")) == tensorBytes(dir.file("a.safetensors")))
    }

    @Test("added token rows: refused by default; --resized-rows drop keeps the base's rows")
    func resizedRows() throws {
        let dir = TemporaryDirectory()
        let base = values(8 * 4, seed: 5)
        let aligned = base.map { $0 + 0.01 } + values(2 * 4, seed: 6)  // two added tokens
        try writeModel(dir.file("b.safetensors"), [("model.embed_tokens.weight", [8, 4], base), ("lm_head.weight", [8, 4], base)])
        try writeModel(dir.file("a.safetensors"), [("model.embed_tokens.weight", [10, 4], aligned), ("lm_head.weight", [10, 4], aligned)])
        do {
            _ = try makeAV(dir.file("b.safetensors"), dir.file("a.safetensors"), dir.file("x.av"))
            Issue.record("resized rows accepted by default")
        } catch {
            #expect("\(error)".contains("\"lm_head.weight\", \"model.embed_tokens.weight\""))
            #expect("\(error)".contains("[10, 4] against the base's [8, 4]") && "\(error)".contains("--resized-rows drop"))
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("x.av")))
        var options = DiffOptions(domain: "x")
        options.resizedRows = .drop
        let r = try diff(
            base: Checkpoint(path: dir.file("b.safetensors")), aligned: Checkpoint(path: dir.file("a.safetensors")), output: dir.file("x.av"), options: options)
        #expect(r.header.droppedRows == ["model.embed_tokens.weight": 10, "lm_head.weight": 10])
        let av = try AlignmentVector(path: dir.file("x.av"))
        #expect(av.header.droppedRows["lm_head.weight"] == 10)
        #expect(av.file.info("lm_head.weight")?.shape == [8, 4])
        _ = try mix(dir.file("b.safetensors"), [(dir.file("x.av"), 1)], dir.file("m.safetensors"))
        let merged = try SafeTensorsFile(path: dir.file("m.safetensors"))
        let alignedFile = try SafeTensorsFile(path: dir.file("a.safetensors"))
        #expect(merged.info("lm_head.weight")?.shape == [8, 4])
        #expect([UInt8](try merged.bytes(named: "lm_head.weight")) == [UInt8](try alignedFile.bytes(named: "lm_head.weight").prefix(8 * 4 * 2)))
    }

    @Test("refusals name the tensors and files, and write nothing")
    func refusals() throws {
        let dir = TemporaryDirectory()
        let w = values(12, seed: 7)
        try writeModel(dir.file("b.safetensors"), [("a", [3, 4], w), ("b", [2], [1, 2])])
        func expectRefused(_ aligned: [(String, [Int], [Float])], dtype: DType = .bf16, _ words: [String]) throws {
            try writeModel(dir.file("x.safetensors"), aligned, dtype: dtype)
            do {
                _ = try makeAV(dir.file("b.safetensors"), dir.file("x.safetensors"), dir.file("out.av"))
                Issue.record("accepted \(aligned.map(\.0))")
            } catch {
                for word in words { #expect("\(error)".contains(word), "\(error)") }
            }
            #expect(!FileManager.default.fileExists(atPath: dir.file("out.av")))
        }
        try expectRefused([("a", [3, 4], w)], ["\"b\"", "is in", "but not in"])
        try expectRefused([("a", [3, 4], w), ("b", [2], [1, 2]), ("c", [1], [0])], ["\"c\""])
        try expectRefused([("a", [4, 3], w), ("b", [2], [1, 2])], ["\"a\"", "[3, 4]", "[4, 3]"])
        try expectRefused([("a", [3, 4], w), ("b", [2], [1, 2])], dtype: .f32, ["dtype BF16", "but F32"])
        // The output may not be an input.
        do {
            _ = try makeAV(dir.file("b.safetensors"), dir.file("b.safetensors"), dir.file("b.safetensors"))
            Issue.record("wrote over an input")
        } catch {
            #expect("\(error)".contains("is also an input"))
        }
    }

    @Test("merge refuses another base, different bases and non-finite results; --force merges anyway")
    func mergeRefusals() throws {
        let dir = TemporaryDirectory()
        try writeModel(dir.file("b.safetensors"), [("w", [4], [1, 2, 3, 4])])
        try writeModel(dir.file("a.safetensors"), [("w", [4], [1, 2, 3, 5])])
        try writeModel(dir.file("c.safetensors"), [("w", [4], [1, 2, 3, 6])])
        _ = try makeAV(dir.file("b.safetensors"), dir.file("a.safetensors"), dir.file("one.av"))
        _ = try makeAV(dir.file("c.safetensors"), dir.file("a.safetensors"), dir.file("other.av"))
        let out = dir.file("m.safetensors")
        do {
            _ = try mix(dir.file("b.safetensors"), [(dir.file("one.av"), 1), (dir.file("other.av"), 1)], out)
            Issue.record("mixed AVs of different bases")
        } catch {
            #expect("\(error)".contains("were made from different bases"))
        }
        do {
            _ = try mix(dir.file("b.safetensors"), [(dir.file("other.av"), 1)], out)
            Issue.record("merged an AV of another base")
        } catch {
            #expect("\(error)".contains("other.av was made from a different base"))
            #expect("\(error)".contains("b.safetensors has"))
        }
        #expect(!FileManager.default.fileExists(atPath: out))
        let forced = try mix(dir.file("b.safetensors"), [(dir.file("other.av"), 1)], out, force: true)
        #expect(!forced.baseVerified)
        // 1e39 is past the f32 (and bf16) range: Inf.
        do {
            _ = try mix(dir.file("b.safetensors"), [(dir.file("one.av"), 1e39)], dir.file("inf.safetensors"))
            Issue.record("wrote Inf")
        } catch {
            #expect("\(error)".contains("tensor \"w\" would hold 1 non-finite value"))
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("inf.safetensors")))
    }

    @Test("rounding reports: a small λ in bf16 is mostly rounded away, and f32 keeps it")
    func roundedAway() throws {
        let dir = TemporaryDirectory()
        let b = values(4096, seed: 8, scale: 1)
        try writeModel(dir.file("b.safetensors"), [("w", [4096], b)])
        try writeModel(dir.file("a.safetensors"), [("w", [4096], b.map { $0 * 1.004 })])
        _ = try makeAV(dir.file("b.safetensors"), dir.file("a.safetensors"), dir.file("d.av"))
        let r = try mix(dir.file("b.safetensors"), [(dir.file("d.av"), 0.3)], dir.file("m.safetensors"))
        #expect(r.changed > 3000)
        #expect(Double(r.roundedAway) / Double(r.changed) > 0.5)
        let f = try mix(dir.file("b.safetensors"), [(dir.file("d.av"), 0.3)], dir.file("f.safetensors"), dtype: .f32)
        #expect(f.roundedAway == 0)
    }

    @Test("recipes: paths relative to the file, unknown keys refused")
    func recipes() throws {
        let dir = TemporaryDirectory()
        try Data(
            #"{"base": "b", "mix": {"medical": 0.5, "legal": -1}, "vectors": [{"path": "x/y.av", "coefficient": 2}], "output": "out", "dtype": "bf16", "max_shard_size": "2GB"}"#
                .utf8
        )
        .write(to: URL(fileURLWithPath: dir.file("r.json")))
        let r = try MixRecipe.load(dir.file("r.json"))
        #expect(r.base == dir.file("b") && r.output == dir.file("out") && r.vectors.first?.path == dir.file("x/y.av"))
        #expect(r.mix.map(\.domain) == ["medical", "legal"] && r.mix.map(\.coefficient) == [0.5, -1])
        #expect(r.dtype == .bf16 && r.maxShardSize == 2_000_000_000)
        try Data(#"{"bsae": "b"}"#.utf8).write(to: URL(fileURLWithPath: dir.file("bad.json")))
        #expect(throws: AVError.self) { try MixRecipe.load(dir.file("bad.json")) }
        #expect(parseSize("5GB") == 5_000_000_000 && parseSize("1GiB") == 1 << 30 && parseSize("x") == nil)
    }
}

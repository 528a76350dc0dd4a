import AVTestSupport
import Foundation
import Testing

@testable import GGUF
@testable import SafeTensors
@testable import Tensors

/// `av convert DIR -o X.gguf` against what llama.cpp's own converter writes for the same model
/// (Fixtures/export/make_export_reference.py): the same keys with the same value types and values,
/// the same tensors with the same names, types, dimensions and bytes.
@Suite("Model directories written as GGUF")
struct GGUFExportTests {
    static let base = checkpointsDirectory + "/base"

    /// GGUF's value type names (gguf-py's, lowercased) of `v`: the type, then an array's element type.
    static func typeNames(_ v: GGUFValue) -> [String] {
        let names = [
            "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64",
            "int64", "float64",
        ]
        let own = names[Int(GGUFWriter.typeID(v))]
        if case .array(let items) = v { return [own] + (items.first.map(typeNames) ?? []) }
        return [own]
    }

    /// Whether av's value equals the JSON of gguf-py's `contents()`.
    static func same(_ v: GGUFValue, _ j: Any) -> Bool {
        switch v {
        case .string(let s): return s == j as? String
        case .bool(let b): return b == j as? Bool
        case .float32(let f): return (j as? NSNumber).map { Float($0.doubleValue) == f } ?? false
        case .float64(let d): return (j as? NSNumber)?.doubleValue == d
        case .array(let items):
            guard let list = j as? [Any], list.count == items.count else { return false }
            return zip(items, list).allSatisfy { same($0, $1) }
        default: return (j as? NSNumber).map { v.intValue == $0.intValue } ?? false
        }
    }

    @Test(
        "keys, values, tensor names, types, dimensions and bytes equal llama.cpp's converter's",
        arguments: ["f32", "f16", "bf16", "q8_0", "q4_0"])
    func matchesLlamaCpp(type: String) throws {
        let dir = try TemporaryDirectory()
        let out = dir.file("base.gguf")
        try GGUFExport.write(directory: Self.base, to: out, type: GGUFExport.outputTypes[type]!)
        try Self.compare(out, reference: "export/reference_\(type).json")
    }

    @Test("a Qwen2 model: the qwen2 architecture's keys, its biases, no Q/K permutation")
    func qwen2() throws {
        let dir = try TemporaryDirectory()
        let out = dir.file("qwen2.gguf")
        let summary = try GGUFExport.write(directory: ggufFixture("export/qwen2"), to: out, type: .f32)
        #expect(summary.architecture == "qwen2")
        try Self.compare(out, reference: "export/reference_qwen2.json")
    }

    @Test("Llama 3.1's RoPE scaling becomes the converter's rope_freqs.weight")
    func llama3Rope() throws {
        let dir = try TemporaryDirectory()
        let model = dir.file("llama3")
        try FileManager.default.copyItem(atPath: Self.base, toPath: model)
        let rope = try String(contentsOfFile: ggufFixture("export/llama3_rope_parameters.json"), encoding: .utf8)
        var config = try String(contentsOfFile: model + "/config.json", encoding: .utf8)
        let start = config.range(of: "\"rope_parameters\": {")!
        let end = config[start.upperBound...].range(of: "}")!
        config.replaceSubrange(start.lowerBound..<end.upperBound, with: "\"rope_parameters\": " + rope)
        try config.write(toFile: model + "/config.json", atomically: true, encoding: .utf8)
        let out = dir.file("llama3.gguf")
        try GGUFExport.write(directory: model, to: out, type: .f32)
        try Self.compare(out, reference: "export/reference_llama3.json")
    }

    @Test("a PEFT adapter written for llama.cpp equals convert_lora_to_gguf.py's file")
    func adapterMatchesLlamaCpp() throws {
        let dir = try TemporaryDirectory()
        let out = dir.file("lora.gguf")
        let summary = try GGUFAdapterExport.write(
            adapter: ggufFixture("export/lora"), baseDirectory: Self.base, to: out)
        #expect(summary.modules == 28 && summary.alpha == 8)
        try Self.compare(out, reference: "export/reference_lora.json")
    }

    @Test("modules whose scales one alpha cannot give get them folded into lora_b, with alpha 0")
    func foldedScales() throws {
        let dir = try TemporaryDirectory()
        let lora = dir.file("lora")
        try FileManager.default.createDirectory(atPath: lora, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            atPath: ggufFixture("export/lora/adapter_model.safetensors"), toPath: lora + "/adapter_model.safetensors")
        var config = try String(contentsOfFile: ggufFixture("export/lora/adapter_config.json"), encoding: .utf8)
        // layer 0's q_proj at alpha 4 (scale 1), every other module at 8 / 4 = 2.
        config = config.replacingOccurrences(
            of: "\"alpha_pattern\": {}",
            with: "\"alpha_pattern\": {\"model\\\\.layers\\\\.0\\\\.self_attn\\\\.q_proj\": 4}")
        #expect(config.contains("q_proj\": 4"))
        try config.write(toFile: lora + "/adapter_config.json", atomically: true, encoding: .utf8)
        let uniform = try GGUFFile(
            path: {
                let p = dir.file("uniform.gguf")
                try GGUFAdapterExport.write(adapter: ggufFixture("export/lora"), baseDirectory: Self.base, to: p)
                return p
            }())
        let out = dir.file("folded.gguf")
        let summary = try GGUFAdapterExport.write(adapter: lora, baseDirectory: Self.base, to: out)
        #expect(summary.alpha == 0)
        let folded = try GGUFFile(path: out)
        #expect(folded.metadata["adapter.lora.alpha"] == .float32(0))
        for t in folded.tensors {
            let a = try folded.floats(t)
            let b = try uniform.floats(uniform.info(t.name)!)
            let factor: Float = t.name.hasSuffix(".lora_b") ? (t.name == "blk.0.attn_q.weight.lora_b" ? 1 : 2) : 1
            #expect(a == b.map { $0 * factor }, "\(t.name)")
        }
    }

    @Test("Python's gguf (gguf-py, llama.cpp's reader) reads every kind of file av writes")
    func ggufPyReads() throws {
        let required = ProcessInfo.processInfo.environment["AV_REQUIRE_PYTHON"] != nil
        guard let python = pythonCommand(modules: ["gguf", "numpy"]) else {
            #expect(!required, "CI requires Python with gguf")
            return
        }
        let dir = try TemporaryDirectory()
        var files: [(String, Int)] = []
        for type in ["f32", "f16", "bf16", "q8_0", "q4_0"] {
            let out = dir.file("\(type).gguf")
            try GGUFExport.write(directory: Self.base, to: out, type: GGUFExport.outputTypes[type]!)
            files.append((out, try GGUFFile(path: out).tensors.count))
        }
        let lora = dir.file("lora.gguf")
        try GGUFAdapterExport.write(adapter: ggufFixture("export/lora"), baseDirectory: Self.base, to: lora)
        files.append((lora, 56))
        let spm = dir.file("spm")
        try GGUFConverter.convert(try GGUFFile(path: ggufFixture("spm/llama2.gguf")), to: spm)
        try GGUFExport.write(directory: spm, to: dir.file("spm.gguf"), type: .f32)
        files.append((dir.file("spm.gguf"), 21))
        let code = """
            import sys, gguf
            for path in sys.argv[1:]:
                r = gguf.GGUFReader(path)
                for t in r.tensors:
                    assert t.data.nbytes == t.n_bytes, t.name
                print(len(r.tensors), r.fields["general.architecture"].contents())
            """
        let r = try runPython(python, code: code, arguments: files.map(\.0))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").map(String.init) == files.map { "\($0.1) llama" })
    }

    /// The GGUF at `path` against a reference of make_export_reference.py: keys (but general.* provenance),
    /// their value types and values, tensor names in order, types, dimensions and bytes.
    static func compare(_ path: String, reference name: String) throws {
        let file = try GGUFFile(path: path)
        let data = try Data(contentsOf: URL(fileURLWithPath: ggufFixture(name)))
        let reference = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let keys = reference["keys"] as! [[String: Any]]
        let kept: Set<String> = [
            "general.architecture", "general.type", "general.file_type", "general.quantization_version",
        ]
        let ours = Set(file.metadata.keys.filter { !$0.hasPrefix("general.") || kept.contains($0) })
        #expect(ours == Set(keys.map { $0["key"] as! String }))
        for k in keys {
            let key = k["key"] as! String
            guard let value = file.metadata[key] else { continue }
            #expect(Self.typeNames(value) == k["types"] as! [String], "\(key)")
            #expect(Self.same(value, k["value"]!), "\(key)")
        }
        let tensors = reference["tensors"] as! [[String: Any]]
        #expect(file.tensors.map(\.name) == tensors.map { $0["name"] as! String })
        for (t, r) in zip(file.tensors, tensors) {
            #expect(t.type.name == r["type"] as! String, "\(t.name)")
            #expect(t.dims == r["dims"] as! [Int], "\(t.name)")
            let digest = String(XXHash64.hash(file.bytes(of: t)), radix: 16)
            #expect(String(repeating: "0", count: 16 - digest.count) + digest == r["xxh64"] as! String, "\(t.name)")
        }
    }

    @Test("av reads its own GGUF back: f32, f16 and bf16 exactly, q8_0 as its dequantized blocks")
    func roundTrip() throws {
        let dir = try TemporaryDirectory()
        let model = try SafeTensorsModel(path: Self.base)
        for type in ["f32", "bf16", "q8_0"] {
            let out = dir.file("\(type).gguf")
            try GGUFExport.write(directory: Self.base, to: out, type: GGUFExport.outputTypes[type]!)
            let file = try GGUFFile(path: out)
            let back = dir.file("\(type)-hf")
            try GGUFConverter.convert(file, to: back, dtype: type == "bf16" ? .bf16 : .f32)
            let again = try SafeTensorsModel(path: back)
            for name in model.tensorNames {
                let a = try model.bytes(named: name)
                let b = try again.bytes(named: name)
                let info = model.info(name)!
                var x = [Float](repeating: 0, count: info.elementCount)
                var y = x
                Convert.toFloat(info.dtype, from: a.baseAddress!, count: x.count, into: &x)
                Convert.toFloat(again.info(name)!.dtype, from: b.baseAddress!, count: y.count, into: &y)
                if type == "q8_0" && info.shape.count == 2 {
                    // Each value within half a step (max |x| / 127) plus the scale's rounding to f16
                    // (relative 2^-11, times a code of at most 127).
                    for start in stride(from: 0, to: x.count, by: 32) {
                        let block = x[start..<(start + 32)]
                        let step = block.map(abs).max()! / 127
                        for i in block.indices {
                            #expect(abs(x[i] - y[i]) <= step * (0.5 + 127.0 / 2048) + 1e-12, "\(name) \(i)")
                        }
                    }
                } else {
                    #expect(x == y, "\(type) \(name)")
                }
            }
        }
    }

    @Test("q8_0 and q4_0 blocks follow ggml's reference rounding")
    func quantizerRounding() {
        // Half steps round away from zero in q8_0; the largest magnitude sets q4_0's scale and sign.
        var x = [Float](repeating: 0, count: 32)
        x[0] = 127
        x[1] = 2.5
        x[2] = -2.5
        x[3] = 0.49
        var out = [UInt8](repeating: 0, count: 34)
        Quantize.run(.q8_0, x, count: 32, into: &out)
        #expect(FloatBits.f16ToFloat(UInt16(out[0]) | UInt16(out[1]) << 8) == 1)
        #expect(Int8(bitPattern: out[2]) == 127 && Int8(bitPattern: out[3]) == 3 && Int8(bitPattern: out[4]) == -3)
        #expect(out[5] == 0)
        x = [Float](repeating: 1, count: 32)
        x[7] = -16
        var q4 = [UInt8](repeating: 0, count: 18)
        Quantize.run(.q4_0, x, count: 32, into: &q4)
        // d = −16 / −8 = 2; x = 1 → trunc(1/2 + 8.5) = 9; x = −16 → trunc(−8 + 8.5) = 0.
        #expect(FloatBits.f16ToFloat(UInt16(q4[0]) | UInt16(q4[1]) << 8) == 2)
        #expect(q4[2 + 7] & 15 == 0 && q4[2] == 9 | 9 << 4)
    }

    @Test("a directory av cannot write to GGUF is refused by name, and nothing is written")
    func refusals() throws {
        let dir = try TemporaryDirectory()
        let copy = dir.file("model")
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        for name in ["model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: Self.base + "/" + name, toPath: copy + "/" + name)
        }
        var config = try String(contentsOfFile: Self.base + "/config.json", encoding: .utf8)
        config = config.replacingOccurrences(of: "LlamaForCausalLM", with: "GPT2LMHeadModel")
        try config.write(toFile: copy + "/config.json", atomically: true, encoding: .utf8)
        let out = dir.file("out.gguf")
        #expect(throws: GGUFError.self) { try GGUFExport.write(directory: copy, to: out, type: .f32) }
        #expect(!FileManager.default.fileExists(atPath: out))
        let error = #expect(throws: GGUFError.self) {
            try GGUFExport.write(directory: copy, to: copy + "/model.safetensors", type: .f32)
        }
        #expect(error?.file.hasSuffix("config.json") == true && error?.message.contains("GPT2LMHeadModel") == true)
        // A quantized type cannot hold a non-finite weight: the tensor is named, nothing is written.
        try (try String(contentsOfFile: Self.base + "/config.json", encoding: .utf8))
            .write(toFile: copy + "/config.json", atomically: true, encoding: .utf8)
        let f = try SafeTensorsModel(path: copy)
        let info = f.info("model.layers.0.mlp.up_proj.weight")!
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: copy + "/model.safetensors"))
        let start = f.files[0].header.dataStart + info.dataRange.lowerBound
        try handle.seek(toOffset: UInt64(start))
        try handle.write(contentsOf: Data(info.dtype == .bf16 ? [0x80, 0x7F] : [0, 0, 0x80, 0x7F]))
        try handle.close()
        let bad = #expect(throws: GGUFError.self) { try GGUFExport.write(directory: copy, to: out, type: .q8_0) }
        #expect(bad?.message.contains("model.layers.0.mlp.up_proj.weight") == true)
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url.path).sorted() == ["model"])
    }
}

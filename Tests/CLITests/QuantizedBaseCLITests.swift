import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors
@testable import Tensors

/// A quantized GGUF of the vectors' base is recognized by the base's values the vectors record
/// (`av.base_samples`), and another model's quantized GGUF is still refused (issue 23).
@Suite("A quantized copy of the vectors' base")
struct QuantizedBaseCLITests {
    static let checkpoints = AnalyzeCLITests.checkpoints

    @Test("Q8_0 and Q4_0 copies of the base are taken for it; another model's copies are refused, naming the counts")
    func recognized() throws {
        let dir = TemporaryDirectory()
        let vectors = Path.parent(try AnalyzeCLITests.vectors(in: dir).0)
        func run(_ arguments: [String]) throws -> ProcessResult {
            let r = try runAV(arguments)
            #expect(r.status == 0, "\(arguments.prefix(3)): \(r.stderr)")
            return r
        }
        for (model, type) in [("base", "q8_0"), ("base", "q4_0"), ("base-stage2", "q8_0"), ("medical-aligned", "q4_0")]
        {
            _ = try run([
                "convert", Self.checkpoints + "/" + model, "-o", dir.file("\(model).\(type).gguf"), "--dtype", type,
            ])
        }
        // The conversion records which tensors were quantized, and to how many bits: the matrices, not the norms.
        _ = try run(["convert", dir.file("base.q8_0.gguf"), "-o", dir.file("dequantized")])
        let metadata = try SafeTensorsFile(path: dir.file("dequantized/model.safetensors")).metadata ?? [:]
        let bits = try JSONParser.parse(metadata["av.dequantized"] ?? "{}")
        #expect(bits["model.layers.0.self_attn.q_proj.weight"]?.doubleValue == 8)
        #expect(bits["model.layers.0.input_layernorm.weight"] == nil && bits["model.norm.weight"] == nil)

        let mix = ["--vectors", vectors, "--medical", "1"]
        for (type, width) in [("q8_0", "8-bit"), ("q4_0", "4-bit")] {
            let gguf = dir.file("base.\(type).gguf")
            let merged = try run(["merge", "--base", gguf] + mix + ["-o", dir.file("m-\(type)")])
            #expect(merged.stdout.contains("a quantized copy (\(width)) of the vectors' base: 2432 of 2432 sampled"))
            // Accepting the copy changes nothing in the arithmetic: the bytes --force writes.
            _ = try run(["merge", "--base", gguf] + mix + ["-o", dir.file("f-\(type)"), "--force", "-q"])
            let accepted = try GGUFEveryCommandCLITests.tensors(dir.file("m-\(type)"))
            let forced = try GGUFEveryCommandCLITests.tensors(dir.file("f-\(type)"))
            #expect(!accepted.isEmpty && accepted == forced)
            // The provenance names the .gguf, not the temporary it was converted to.
            let record = try SafeTensorsFile(path: dir.file("m-\(type)/model.safetensors")).metadata?["av.merge"] ?? ""
            #expect(record.contains("\"path\":\"\(gguf)\""), "\(record.prefix(200))")
            // The other commands that mix into a base take it too.
            _ = try run(["eval", "--base", gguf] + mix + ["--text", Self.checkpoints + "/eval/heldout.txt", "-q"])
            _ = try run([
                "export-lora", vectors + "/medical.av", "--base", gguf, "--rank", "2", "-o", dir.file("lora-\(type)"),
            ])
        }
        for name in ["base-stage2.q8_0", "medical-aligned.q4_0"] {
            let refused = try runAV(
                ["merge", "--base", dir.file(name + ".gguf")] + mix + ["-o", dir.file("x-" + name)])
            #expect(refused.status == 3, "\(name): \(refused.stdout)")
            #expect(
                refused.stderr.contains("\(name).gguf (converted) is not a quantized copy of the base")
                    && refused.stderr.contains("sampled values lie within the quantization step (99% must)"),
                "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.file("x-" + name)))
        }
    }

    @Test("a vector without base samples (an earlier av's) cannot check a quantized base and says what to do")
    func withoutSamples() throws {
        let dir = TemporaryDirectory()
        let medical = try AnalyzeCLITests.vectors(in: dir).0
        // The same vector with its header's av.base_samples removed (the digests cover tensors, not this key).
        let file = try SafeTensorsFile(path: medical)
        var metadata = file.metadata ?? [:]
        #expect(metadata.removeValue(forKey: "av.base_samples") != nil)
        try FileManager.default.createDirectory(atPath: dir.file("old"), withIntermediateDirectories: true)
        try SafeTensorsWriter.write(
            path: dir.file("old/medical.av"),
            tensors: file.tensors.map {
                (TensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape), [UInt8](file.bytes(of: $0)))
            },
            metadata: metadata)
        let convert = try runAV(["convert", Self.checkpoints + "/base", "-o", dir.file("b.gguf"), "--dtype", "q8_0"])
        #expect(convert.status == 0)
        let r = try runAV([
            "merge", "--base", dir.file("b.gguf"), "--vectors", dir.file("old"), "--medical", "1", "-o", dir.file("m"),
        ])
        #expect(r.status == 3 && r.stderr.contains("records no samples of its base"), "\(r.stderr)")
        // On the base itself the old vector works as before.
        let plain = try runAV([
            "merge", "--base", Self.checkpoints + "/base", "--vectors", dir.file("old"), "--medical", "1", "-o",
            dir.file("p"), "-q",
        ])
        #expect(plain.status == 0, "\(plain.stderr)")
    }
}

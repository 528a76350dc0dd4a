import AVTestSupport
import Foundation
import Testing

@testable import AlignmentVectors
@testable import SafeTensors
@testable import Tensors

/// `exportLoRA` and the SVD under it, against numpy and PEFT (fixtures from make_export_reference.py).
@Suite("Vectors exported as LoRA adapters")
struct ExportLoRATests {
    func doubles(_ path: String, _ name: String) throws -> [Double] {
        let file = try SafeTensorsFile(path: path)
        let info = try #require(file.info(name))
        let bytes = file.bytes(of: info)
        if info.dtype == .f64 {
            return (0..<info.elementCount).map { bytes.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) }
        }
        var f = [Float](repeating: 0, count: info.elementCount)
        f.withUnsafeMutableBufferPointer {
            Convert.toFloat(info.dtype, from: bytes.baseAddress!, count: info.elementCount, into: $0.baseAddress!)
        }
        return f.map(Double.init)
    }

    @Test("singular values within 1e-4 of numpy's, the same on 1 and 3 threads")
    func singularValues() throws {
        let path = fixture("adapters/svd.safetensors")
        let matrix = try doubles(path, "matrix")
        let reference = try doubles(path, "singular_values")
        let one = LowRank.svd(matrix, rows: 96, cols: 64, rank: 20, threads: 1)
        let three = LowRank.svd(matrix, rows: 96, cols: 64, rank: 20, threads: 3)
        #expect(one.singularValues == three.singularValues)
        #expect(one.u == three.u && one.v == three.v)
        for k in 0..<20 {
            let got = one.singularValues[k]
            #expect(abs(got - reference[k]) <= 1e-4 * reference[k], "σ\(k): \(got) against \(reference[k])")
        }
        // The triplets rebuild the matrix as far as the dropped singular values allow.
        var err = 0.0
        for i in 0..<96 {
            for j in 0..<64 {
                var s = 0.0
                for k in 0..<20 { s += one.u[i * one.count + k] * one.singularValues[k] * one.v[j * one.count + k] }
                err += (s - matrix[i * 64 + j]) * (s - matrix[i * 64 + j])
            }
        }
        let tail = reference[20...].reduce(0) { $0 + $1 * $1 }
        #expect(abs(err - tail) <= 1e-6 * reference[0] * reference[0])
    }

    @Test("av writes the adapter PEFT loaded, byte for byte; PEFT's merge of it is av's, within one rounding")
    func matchesPEFT() throws {
        let dir = TemporaryDirectory()
        let chat = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("InferenceTests/Fixtures/chat").path
        let base = try Checkpoint(path: chat)
        _ = try diff(
            base: base, adapter: try LoRAAdapter(path: fixture("adapters/chat/adapter")),
            output: dir.file("style.av"), options: DiffOptions(domain: "style"))
        var options = LoRAExportOptions()
        options.rank = 4
        options.skip = true
        options.threads = 3
        let report = try exportLoRA(
            vector: try AlignmentVector(path: dir.file("style.av")), output: dir.file("exported"), options: options)
        #expect(report.tensors.filter { $0.kind == .lora }.count == 6)
        #expect(report.retainedEnergy > 0.999_999)  // the adapter had rank 4: nothing is lost
        for name in ["adapter_model.safetensors", "adapter_config.json"] {
            #expect(
                readFile(dir.file("exported/\(name)")) == readFile(fixture("adapters/chat/exported/\(name)")), "\(name)"
            )
        }
        // av reads its own adapter back; merged, it is PEFT's merge of the same adapter.
        _ = try diff(
            base: base, adapter: try LoRAAdapter(path: dir.file("exported")), output: dir.file("back.av"),
            options: DiffOptions(domain: "back"))
        _ = try mix(chat, [(dir.file("back.av"), 1)], dir.file("merged"))
        let reference = fixture("adapters/chat/exported-merged-f64.safetensors")
        let original = try SafeTensorsModel(path: dir.file("merged"))
        for entry in original.entries {
            let name = entry.info.name
            let got = try doubles(dir.file("merged/model.safetensors"), name)
            let want = try doubles(reference, name)
            let b = try doubles(chat + "/model.safetensors", name)
            for i in want.indices {
                let bound = Double(Float(want[i]).ulp) / 2 + Double(Float(want[i] - b[i]).ulp) / 2
                #expect(abs(got[i] - want[i]) <= bound, "\(name)[\(i)]")
            }
        }
    }

    @Test("ranks by energy and by cap; 1-D tensors saved whole with a base, or skipped, or refused")
    func ranksAndTensorKinds() throws {
        let dir = TemporaryDirectory()
        let matrix = try doubles(fixture("adapters/svd.safetensors"), "matrix").map(Float.init)
        let zeros = [Float](repeating: 0, count: matrix.count)
        let norm: [Float] = [1, 1, 1, 1]
        try writeModel(
            dir.file("base.safetensors"),
            [("model.layers.0.mlp.up_proj.weight", [96, 64], zeros), ("model.norm.weight", [4], norm)], dtype: .f32)
        try writeModel(
            dir.file("aligned.safetensors"),
            [("model.layers.0.mlp.up_proj.weight", [96, 64], matrix), ("model.norm.weight", [4], [1, 1.5, 1, 0.5])],
            dtype: .f32)
        _ = try makeAV(dir.file("base.safetensors"), dir.file("aligned.safetensors"), dir.file("d.av"))
        let vector = try AlignmentVector(path: dir.file("d.av"))
        func rank(energy: Double, cap: Int = 256) throws -> Int {
            var o = LoRAExportOptions()
            o.energy = energy
            o.maxRank = cap
            o.skip = true
            let out = dir.file("e\(energy)-\(cap)")
            let r = try exportLoRA(vector: vector, output: out, options: o)
            #expect(r.tensors.first { $0.name == "model.norm.weight" }?.kind == .skipped)
            return r.tensors.first { $0.kind == .lora }!.rank
        }
        // σₖ = 3·0.8ᵏ: the first k keep 1 − 0.64ᵏ of ‖Δ‖².
        #expect(try rank(energy: 0.5) == 2)
        #expect(try rank(energy: 0.9) == 6)
        #expect(try rank(energy: 0.9, cap: 3) == 3)
        #expect(throws: AVError.self) {
            try exportLoRA(vector: vector, output: dir.file("x"), options: LoRAExportOptions())
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("x")))
        var withBase = LoRAExportOptions()
        withBase.base = try Checkpoint(path: dir.file("base.safetensors"))
        withBase.rank = 8
        let r = try exportLoRA(vector: vector, output: dir.file("saved"), options: withBase)
        #expect(r.tensors.first { $0.name == "model.norm.weight" }?.kind == .saved)
        let adapter = try LoRAAdapter(path: dir.file("saved"))
        #expect(adapter.modules["model.norm"]?.saved["model.norm.weight"] != nil)
        _ = try diff(
            base: Checkpoint(path: dir.file("base.safetensors")), adapter: adapter, output: dir.file("saved.av"),
            options: DiffOptions(domain: "saved"))
        let back = try doubles(dir.file("saved.av"), "model.norm.weight")
        #expect(back == [0, 0.5, 0, -0.5])
    }

    @Test("a tied embedding is saved with its output-layer copy and ensure_weight_tying, and read back once")
    func tiedEmbedding() throws {
        let dir = TemporaryDirectory()
        let embed = values(32, seed: 3)
        let up = values(24, seed: 4)
        try writeModel(
            dir.file("base.safetensors"),
            [("model.embed_tokens.weight", [8, 4], embed), ("model.layers.0.mlp.up_proj.weight", [6, 4], up)],
            dtype: .f32)
        try writeModel(
            dir.file("aligned.safetensors"),
            [
                ("model.embed_tokens.weight", [8, 4], embed.map { $0 + 0.25 }),
                ("model.layers.0.mlp.up_proj.weight", [6, 4], up.map { $0 * 1.5 }),
            ], dtype: .f32)
        _ = try makeAV(dir.file("base.safetensors"), dir.file("aligned.safetensors"), dir.file("t.av"))
        var options = LoRAExportOptions()
        options.base = try Checkpoint(path: dir.file("base.safetensors"))
        options.rank = 4
        let vector = try AlignmentVector(path: dir.file("t.av"))
        _ = try exportLoRA(vector: vector, output: dir.file("tied"), options: options)
        let config = try String(contentsOfFile: dir.file("tied/adapter_config.json"), encoding: .utf8)
        #expect(config.contains("\"ensure_weight_tying\": true"))
        let file = try SafeTensorsFile(path: dir.file("tied/adapter_model.safetensors"))
        let head = try #require(file.info("base_model.model.lm_head.weight"))
        let embedding = try #require(file.info("base_model.model.model.embed_tokens.weight"))
        #expect(file.bytes(of: head).elementsEqual(file.bytes(of: embedding)))
        _ = try diff(
            base: Checkpoint(path: dir.file("base.safetensors")), adapter: try LoRAAdapter(path: dir.file("tied")),
            output: dir.file("back.av"), options: DiffOptions(domain: "back"))
        let back = try doubles(dir.file("back.av"), "model.embed_tokens.weight")
        for (got, (b, a)) in zip(back, zip(embed, embed.map { $0 + 0.25 })) {
            #expect(abs(got - (Double(a) - Double(b))) <= 1e-7)
        }
        #expect(try SafeTensorsFile(path: dir.file("back.av")).info("lm_head.weight") == nil)
    }
}

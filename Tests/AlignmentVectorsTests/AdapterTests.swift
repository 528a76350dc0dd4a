import AVTestSupport
import Foundation
import Testing

@testable import AlignmentVectors
@testable import SafeTensors
@testable import Tensors

/// PEFT adapters as aligned models, against PEFT's own merge_and_unload() (Fixtures/adapters,
/// made by make_adapters.py: PEFT's merge in f32 and, as the reference, in f64).
@Suite("PEFT LoRA and DoRA adapters")
struct AdapterTests {
    static let cases = ["lora", "patterns", "dora", "fan_in_fan_out", "bias"]

    func floats(_ path: String) throws -> [String: [Double]] {
        let model = try SafeTensorsModel(path: path)
        var out: [String: [Double]] = [:]
        for e in model.entries {
            let info = e.info
            let bytes = try model.bytes(named: info.name)
            if info.dtype == .f64 {
                out[info.name] = (0..<info.elementCount).map {
                    bytes.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)
                }
            } else {
                var f = [Float](repeating: 0, count: info.elementCount)
                f.withUnsafeMutableBufferPointer {
                    Convert.toFloat(
                        info.dtype, from: bytes.baseAddress!, count: info.elementCount, into: $0.baseAddress!)
                }
                out[info.name] = f.map(Double.init)
            }
        }
        return out
    }

    func diffAndMerge(_ name: String, base: String, in dir: TemporaryDirectory) throws -> (DiffReport, String) {
        let root = fixture("adapters/\(name)")
        var options = DiffOptions(domain: name)
        options.threads = 3
        let adapter = try LoRAAdapter(path: root + "/adapter")
        let report = try diff(
            base: Checkpoint(path: root + "/" + base), adapter: adapter, output: dir.file("\(name).av"),
            options: options)
        _ = try mix(root + "/" + base, [(dir.file("\(name).av"), 1)], dir.file("\(name)-\(base)"))
        return (report, dir.file("\(name)-\(base)"))
    }

    @Test(
        "av merge at λ = 1 gives PEFT's merge: within one rounding of its f64 value for an f32 base", arguments: cases)
    func f32Base(name: String) throws {
        let dir = TemporaryDirectory()
        let (report, merged) = try diffAndMerge(name, base: "base", in: dir)
        let root = fixture("adapters/\(name)")
        let got = try floats(merged)
        let reference = try floats(root + "/merged-f64.safetensors")
        let peft32 = try floats(root + "/merged.safetensors")
        let base = try floats(root + "/base")
        var changed = 0
        for (tensor, ref) in reference {
            let g = try #require(got[tensor], "\(tensor)")
            let b = try #require(base[tensor])
            for i in ref.indices {
                // av rounds the delta to f32 once and the sum once: at most half an ulp each.
                let delta = ref[i] - b[i]
                let bound = Double(Float(ref[i]).ulp) / 2 + Double(Float(delta).ulp) / 2
                #expect(abs(g[i] - ref[i]) <= bound, "\(name) \(tensor)[\(i)]: \(g[i]) against \(ref[i])")
                if g[i] != b[i] { changed += 1 }
                // PEFT's own f32 merge is no closer to the f64 value than a few f32 roundings of its terms.
                #expect(abs(peft32[tensor]![i] - g[i]) <= 1e-6 * max(1, abs(ref[i])) * 4)
            }
        }
        #expect(changed > 100)
        #expect(report.changedTensors > 0)
        #expect(report.header.adapter?["r"]?.doubleValue == 4 || name == "bias")
        #expect(report.header.adapter?["config_digest"]?.stringValue?.count == 16)
    }

    @Test(
        "PEFT's semantics: fan_in_fan_out on nn.Linear is ignored, DoRA without magnitudes takes them from the base",
        arguments: ["linear_fan_in_fan_out", "dora_no_magnitude"])
    func peftSemantics(name: String) throws {
        let dir = TemporaryDirectory()
        let (_, merged) = try diffAndMerge(name, base: "base", in: dir)
        let got = try floats(merged)
        let reference = try floats(fixture("adapters/\(name)") + "/merged-f64.safetensors")
        let base = try floats(fixture("adapters/\(name)") + "/base")
        var changed = 0
        for (tensor, ref) in reference {
            let g = try #require(got[tensor], "\(tensor)")
            let b = try #require(base[tensor])
            var worst = 0.0
            for i in ref.indices {
                let bound = Double(Float(ref[i]).ulp) / 2 + Double(Float(ref[i] - b[i]).ulp) / 2
                worst = max(worst, abs(g[i] - ref[i]) / bound)
                if ref[i] != b[i] { changed += 1 }
            }
            #expect(worst <= 1, "\(name) \(tensor): off by \(worst) of the rounding bound")
        }
        #expect(changed > 1000)
    }

    @Test(
        "for a bf16 base, the merge is PEFT's f64 value rounded to bf16 (one rounding)",
        arguments: ["lora", "patterns"])
    func bf16Base(name: String) throws {
        let dir = TemporaryDirectory()
        let (_, merged) = try diffAndMerge(name, base: "base-bf16", in: dir)
        let got = try floats(merged)
        let base32 = try floats(fixture("adapters/\(name)/base"))
        let reference = try floats(fixture("adapters/\(name)/merged-f64.safetensors"))
        let bf16 = try floats(fixture("adapters/\(name)/base-bf16"))
        let adapter = try LoRAAdapter(path: fixture("adapters/\(name)/adapter"))
        let replaced = Set(adapter.modules.values.flatMap { $0.saved.keys })
        for (tensor, ref) in reference {
            let g = try #require(got[tensor])
            for i in ref.indices {
                // The f64 reference starts from the f32 base; the bf16 base differs by its own rounding,
                // except where the adapter saves the tensor whole (then the base's values do not matter).
                let expected = replaced.contains(tensor) ? ref[i] : ref[i] - base32[tensor]![i] + bf16[tensor]![i]
                let r = roundOnce(expected, significandBits: 8)
                let ulp = Double(Float(r).ulp) * Double(1 << 16)
                #expect(abs(g[i] - r) <= ulp, "\(tensor)[\(i)]")
            }
        }
    }

    @Test("rank and alpha patterns resolve as PEFT resolves them: first key matching (.*\\.)?(KEY)$")
    func patterns() throws {
        let a = try LoRAAdapter(path: fixture("adapters/patterns/adapter"))
        #expect(a.rankAndScale(of: "model.layers.0.self_attn.v_proj") == (2, 16 / 2.0.squareRoot()))
        #expect(a.rankAndScale(of: "model.layers.1.mlp.down_proj").rank == 6)
        #expect(a.rankAndScale(of: "model.layers.0.mlp.down_proj").rank == 4)
        #expect(a.rankAndScale(of: "model.layers.1.self_attn.o_proj").scale == 1.5)
        #expect(a.rankAndScale(of: "model.layers.1.self_attn.q_proj").scale == 8.0)
        // A key must match a whole trailing path: "proj" is not a module's last component.
        #expect(LoRAAdapter.patternKey([("proj", 1)], "model.layers.0.q_proj") == nil)
        #expect(LoRAAdapter.patternKey([("q_proj", 1), ("proj", 2)], "q_proj") == 1)
    }

    @Test("bad adapters are refused naming the file and the rule, and nothing is written")
    func refusals() throws {
        let dir = TemporaryDirectory()
        let source = fixture("adapters/lora/adapter")
        func adapter(_ name: String, config edit: (inout String) -> Void) throws -> String {
            let path = dir.file(name)
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try FileManager.default.copyItem(
                atPath: source + "/adapter_model.safetensors", toPath: path + "/adapter_model.safetensors")
            var config = try String(contentsOfFile: source + "/adapter_config.json", encoding: .utf8)
            edit(&config)
            try config.write(toFile: path + "/adapter_config.json", atomically: true, encoding: .utf8)
            return path
        }
        let cases: [(String, (inout String) -> Void, String)] = [
            (
                "ia3", { $0 = $0.replacingOccurrences(of: "\"peft_type\": \"LORA\"", with: "\"peft_type\": \"IA3\"") },
                "peft_type IA3 is not supported"
            ),
            (
                "bias-all", { $0 = $0.replacingOccurrences(of: "\"bias\": \"none\"", with: "\"bias\": \"all\"") },
                "bias \"all\" is not supported"
            ),
            (
                "rank", { $0 = $0.replacingOccurrences(of: "\"r\": 4", with: "\"r\": 8") },
                "rank 4 in its tensors but 8 by the config"
            ),
            (
                "replication",
                {
                    $0 = $0.replacingOccurrences(
                        of: "\"layer_replication\": null", with: "\"layer_replication\": [[0, 1]]")
                }, "\"layer_replication\" is set"
            ),
        ]
        let base = try Checkpoint(path: fixture("adapters/lora/base"))
        for (name, edit, message) in cases {
            let path = try adapter(name, config: edit)
            let out = dir.file("\(name).av")
            #expect {
                _ = try diff(
                    base: base, adapter: try LoRAAdapter(path: path), output: out, options: DiffOptions(domain: "x"))
            } throws: { error in
                let text = "\(error)"
                return text.contains(message) && text.contains(path)
            }
            #expect(!FileManager.default.fileExists(atPath: out))
        }
        // An adapter for another model: its modules are not in this base.
        let other = try Checkpoint(path: fixture("adapters/fan_in_fan_out/base"))
        #expect {
            _ = try diff(
                base: other, adapter: try LoRAAdapter(path: source), output: dir.file("other.av"),
                options: DiffOptions(domain: "x"))
        } throws: { error in "\(error)".contains("does not have") && "\(error)".contains("q_proj") }
        // lora_bias on a base without biases (Llama): refused, naming the tensor.
        #expect {
            _ = try diff(
                base: base, adapter: try LoRAAdapter(path: fixture("adapters/bias/adapter")),
                output: dir.file("bias.av"), options: DiffOptions(domain: "x"))
        } throws: { error in "\(error)".contains("does not have") }
    }
}

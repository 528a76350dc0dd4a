import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors

/// `av merge -o X.gguf` and `av convert DIR -o X.gguf`: the GGUF holds the mix a directory merge holds,
/// carries its provenance, reports what a quantized type kept, and refuses what it cannot write.
@Suite("GGUF outputs")
struct GGUFOutputCLITests {
    static let checkpoints = checkpointsDirectory

    static func vector(in dir: TemporaryDirectory) throws -> String {
        let out = dir.file("medical.av")
        let r = try runAV([
            "diff", checkpoints + "/base", checkpoints + "/medical-aligned", "-o", out, "-q",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        return out
    }

    @Test("a merged GGUF generates what the same merge as a directory generates, and records its recipe")
    func mergedGGUF() throws {
        let dir = TemporaryDirectory()
        let av = try Self.vector(in: dir)
        let base = Self.checkpoints + "/base"
        let gguf = try runAV(["merge", "--base", base, "--vector", "\(av)=0.5", "-o", dir.file("mixed.gguf")])
        #expect(gguf.status == 0, "\(gguf.stderr)")
        #expect(gguf.stdout.contains("matrices as BF16"), "\(gguf.stdout)")
        let plain = try runAV(["merge", "--base", base, "--vector", "\(av)=0.5", "-o", dir.file("mixed")])
        #expect(plain.status == 0, "\(plain.stderr)")
        // Only the outputs remain: the staging directory is gone.
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: dir.url.path).sorted()
                == ["medical.av", "mixed", "mixed.gguf"])
        let prompt = "<|im_start|>user\nWhat should I do about a headache?<|im_end|>\n<|im_start|>assistant\n"
        let args = ["--prompt", prompt, "--max-tokens", "16", "--temperature", "0", "-q"]
        let fromGGUF = try runAV(["generate", "--model", dir.file("mixed.gguf")] + args)
        let fromDirectory = try runAV(["generate", "--model", dir.file("mixed")] + args)
        #expect(fromGGUF.status == 0 && fromDirectory.status == 0, "\(fromGGUF.stderr)")
        #expect(!fromGGUF.stdout.isEmpty && fromGGUF.stdout == fromDirectory.stdout)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir.file("mixed.gguf")))
        #expect(bytes.range(of: Data("av.merge".utf8)) != nil && bytes.range(of: Data("\"coefficient\"".utf8)) != nil)
    }

    @Test("check --model X.gguf checks the GGUF itself: its recorded mix against the recipe, then every check")
    func checkGGUF() throws {
        let dir = TemporaryDirectory()
        _ = try Self.vector(in: dir)
        let base = Self.checkpoints + "/base"
        let merged = try runAV([
            "merge", "--base", base, "--vectors", dir.path, "--medical", "0.5", "-o", dir.file("m.gguf"),
        ])
        #expect(merged.status == 0, "\(merged.stderr)")
        func recipe(_ lambda: String) throws -> String {
            let text =
                #"{"base": "\#(base)", "vectors_dir": "\#(dir.path)", "mix": {"medical": \#(lambda)}, "#
                + #""checks": [{"type": "loads"}, {"type": "finite"}]}"#
            try Data(text.utf8).write(to: URL(fileURLWithPath: dir.file("r\(lambda).json")))
            return dir.file("r\(lambda).json")
        }
        let same = try runAV(["check", "--recipe", try recipe("0.5"), "--model", dir.file("m.gguf"), "--report",
            dir.file("report.json"), "-q"])
        #expect(same.status == 0 && same.stdout.contains("all 2 checks passed"), "\(same.stdout)\(same.stderr)")
        let report = try JSONParser.parse(try String(contentsOfFile: dir.file("report.json"), encoding: .utf8))
        #expect(report["provenance"]?.stringValue == "matches the recipe")
        #expect(report["model"]?.stringValue == dir.file("m.gguf"))
        let other = try runAV(["check", "--recipe", try recipe("0.7"), "--model", dir.file("m.gguf"), "-q"])
        #expect(other.status == 3 && other.stderr.contains("not the recipe's mix"), "\(other.stderr)")
    }

    @Test("a quantized GGUF reports the share of the change it kept; bad types and file bases are refused")
    func quantizedAndRefused() throws {
        let dir = TemporaryDirectory()
        let av = try Self.vector(in: dir)
        let base = Self.checkpoints + "/base"
        let q8 = try runAV([
            "merge", "--base", base, "--vector", "\(av)=1", "-o", dir.file("q8.gguf"), "--dtype", "q8_0", "--json",
        ])
        #expect(q8.status == 0, "\(q8.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(q8.stdout.utf8)) as? [String: Any]
        let kept = (report?["gguf"] as? [String: Any])?["kept"] as? Double
        #expect(kept.map { $0 > 0.9 && $0 < 1.1 } == true, "\(q8.stdout)")
        #expect(report?["dtype"] as? String == "gguf:Q8_0")

        let badType = try runAV([
            "merge", "--base", base, "--vector", "\(av)=1", "-o", dir.file("x.gguf"), "--dtype", "q5_k",
        ])
        #expect(badType.status == 2 && badType.stderr.contains("q8_0"), "\(badType.stderr)")
        let fileBase = try runAV([
            "merge", "--base", base + "/model.safetensors", "--vector", "\(av)=1", "-o", dir.file("x.gguf"),
        ])
        #expect(fileBase.status != 0 && fileBase.stderr.contains("model directory"), "\(fileBase.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("x.gguf")))

        let converted = try runAV(["convert", base, "-o", dir.file("base.gguf"), "--dtype", "q4_0"])
        #expect(converted.status == 0 && converted.stdout.contains("Q4_0"), "\(converted.stderr)")
        let notGGUF = try runAV(["convert", base, "-o", dir.file("base-copy")])
        #expect(notGGUF.status == 2 && notGGUF.stderr.contains(".gguf"), "\(notGGUF.stderr)")
    }

    @Test("export-lora -o X.gguf: needs --base, skips what llama.cpp cannot carry, folds mixed ranks' scales")
    func adapterGGUF() throws {
        let dir = TemporaryDirectory()
        let av = try Self.vector(in: dir)
        let base = Self.checkpoints + "/base"
        let noBase = try runAV(["export-lora", av, "-o", dir.file("medical.gguf")])
        #expect(noBase.status == 2 && noBase.stderr.contains("--base"), "\(noBase.stderr)")
        let uniform = try runAV(["export-lora", av, "--base", base, "--rank", "4", "-o", dir.file("medical.gguf")])
        #expect(uniform.status == 0, "\(uniform.stderr)")
        #expect(
            uniform.stdout.contains("adapter.lora.alpha 4:") && uniform.stdout.contains("skipped"), "\(uniform.stdout)")
        let mixed = try runAV(["export-lora", av, "--base", base, "--energy", "0.5", "-o", dir.file("mixed.gguf")])
        #expect(mixed.status == 0, "\(mixed.stderr)")
        #expect(mixed.stdout.contains("adapter.lora.alpha 0 (scales folded into lora_b)"), "\(mixed.stdout)")
        let magic = try Data(contentsOf: URL(fileURLWithPath: dir.file("mixed.gguf"))).prefix(4)
        #expect(magic == Data("GGUF".utf8))
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: dir.url.path).sorted()
                == ["medical.av", "medical.gguf", "mixed.gguf"])
    }

    @Test(
        "a GGUF of the vectors' base is their base; lossless ones merge as it does, quantized ones are recognized"
    )
    func ggufBase() throws {
        let dir = TemporaryDirectory()
        let av = try Self.vector(in: dir)
        let base = Self.checkpoints + "/base"
        for t in ["bf16", "f32", "q8_0"] {
            let c = try runAV(["convert", base, "-o", dir.file("base.\(t).gguf"), "--dtype", t])
            #expect(c.status == 0, "\(c.stderr)")
        }
        let reference = try runAV(["merge", "--base", base, "--vector", "\(av)=0.5", "-o", dir.file("ref.gguf")])
        #expect(reference.status == 0, "\(reference.stderr)")
        for t in ["bf16", "f32"] {
            let m = try runAV([
                "merge", "--base", dir.file("base.\(t).gguf"), "--vector", "\(av)=0.5", "-o", dir.file("m.\(t).gguf"),
            ])
            #expect(m.status == 0, "\(m.stderr)")
            #expect(m.stdout.contains("matches the vectors") && m.stdout.contains("base.\(t).gguf (converted)"))
            // The same weights: the files' tensor data (their last 1.5 MB; the metadata before it records
            // the base's path) are equal.
            let ours = try Data(contentsOf: URL(fileURLWithPath: dir.file("m.\(t).gguf")))
            let theirs = try Data(contentsOf: URL(fileURLWithPath: dir.file("ref.gguf")))
            #expect(ours.count > 1_500_000 && ours.suffix(1_500_000) == theirs.suffix(1_500_000))
        }
        let q8 = try runAV([
            "merge", "--base", dir.file("base.q8_0.gguf"), "--vector", "\(av)=0.5", "-o", dir.file("q.gguf"),
        ])
        // A quantized copy is recognized by the base's values the vector records (QuantizedBaseCLITests).
        #expect(q8.status == 0 && q8.stdout.contains("a quantized copy (8-bit) of the vectors' base"), "\(q8.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir.file("q.gguf")))
    }
}

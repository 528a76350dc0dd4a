import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors

/// A fixture of the AlignmentVectors tests, by path in the source tree.
func avFixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("AlignmentVectorsTests/Fixtures/\(name)").path
}

@Suite("av diff and av merge")
struct DiffMergeCLITests {
    @Test("diff prints the summary, blocks and largest changes; merge mixes two domains by name")
    func endToEnd() throws {
        let dir = TemporaryDirectory()
        let base = avFixture("base_BF16.safetensors")
        let d = try runAV([
            "diff", base, avFixture("medical_BF16.safetensors"), "-o", dir.file("medical.av"), "--top", "2",
        ])
        #expect(d.status == 0, "\(d.stderr)")
        #expect(d.stdout.hasPrefix("av diff: medical = "))
        #expect(d.stdout.contains("  tensors  3 of 3 changed"))
        #expect(d.stdout.contains("  exact    base + AV rebuilds the aligned model bit for bit at λ=1"))
        #expect(d.stdout.contains("relative change by block"))
        #expect(d.stdout.contains("largest changes:"))
        #expect(d.stderr.isEmpty)  // no progress bar when stderr is not a terminal
        let l = try runAV(["diff", base, avFixture("legal_BF16.safetensors"), "-o", dir.file("legal.av"), "--json"])
        let report = try JSONParser.parse(l.stdout)
        #expect(report["domain"]?.stringValue == "legal" && report["mismatchesAtLambda1"]?.doubleValue == 0)
        #expect(report["tensors"]?.arrayValue?.count == 3)

        let m = try runAV(
            ["merge", "--base", base, "--medical", "0.5", "--legal", "-1.2", "-o", dir.file("m.safetensors")],
            currentDirectory: dir.path)
        #expect(m.status == 0, "\(m.stderr)")
        #expect(m.stdout.hasPrefix("av merge: base + 0.5·medical - 1.2·legal → "))
        #expect(m.stdout.contains("matches the vectors"))
        let inspect = try runAV(["inspect", dir.file("m.safetensors")])
        #expect(inspect.stdout.contains("av.merge = {\"tool\":\"av 0.1.0\""))
        let av = try runAV(["inspect", dir.file("medical.av")])
        #expect(av.stdout.contains("(alignment vector, 1 file)") && av.stdout.contains("  domain      medical"))
    }

    @Test(
        "merge writes the same tensor bytes at every kernel level (AV_KERNELS), into f32 and bf16",
        arguments: ["BF16", "F32"])
    func kernelLevelsAgree(dtype: String) throws {
        let dir = TemporaryDirectory()
        let base = avFixture("base_\(dtype).safetensors")
        for domain in ["medical", "legal"] {
            let d = try runAV([
                "diff", base, avFixture("\(domain)_\(dtype).safetensors"), "-o", dir.file("\(domain).av"),
            ])
            #expect(d.status == 0, "\(d.stderr)")
        }
        for outDType in ["bf16", "f32"] {
            var outputs: [String: [UInt8]] = [:]
            for level in ["portable", "avx2", "avx512"] {
                let out = dir.file("\(level)-\(outDType).safetensors")
                let m = try runAV(
                    [
                        "merge", "--base", base, "--vectors", dir.path, "--medical", "0.5", "--legal", "-1.2",
                        "--dtype", outDType, "-o", out,
                    ], environment: ["AV_KERNELS": level])
                #expect(m.status == 0, "\(m.stderr)")
                let file = try SafeTensorsFile(path: out)
                outputs[level] = file.tensors.flatMap { Array(file.bytes(of: $0)) }
            }
            #expect(outputs["portable"]!.count > 64)
            #expect(outputs["avx2"] == outputs["portable"] && outputs["avx512"] == outputs["portable"], "\(outDType)")
        }
    }

    @Test("a recipe pins the mix; flags override it; the base comes from the AV when not given")
    func recipe() throws {
        let dir = TemporaryDirectory()
        let base = avFixture("base_F16.safetensors")
        try FileManager.default.createDirectory(atPath: dir.file("vectors"), withIntermediateDirectories: true)
        _ = try runAV(["diff", base, avFixture("medical_F16.safetensors"), "-o", dir.file("vectors/medical.av")])
        try Data(
            #"{"vectors_dir": "vectors", "mix": {"medical": 0.25}, "output": "out.safetensors", "dtype": "f32"}"#.utf8
        )
        .write(to: URL(fileURLWithPath: dir.file("release.json")))
        let r = try runAV(["merge", "--recipe", dir.file("release.json"), "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONParser.parse(r.stdout)
        #expect(j["vectors"]?.arrayValue?.first?["coefficient"]?.doubleValue == 0.25)
        #expect(j["dtype"]?.stringValue == "F32")
        #expect(try SafeTensorsFile(path: dir.file("out.safetensors")).tensors.allSatisfy { $0.dtype == .f32 })
        let o = try runAV([
            "merge", "--recipe", dir.file("release.json"), "--medical", "2", "-o", dir.file("o2.safetensors"), "--json",
        ])
        #expect(try JSONParser.parse(o.stdout)["vectors"]?.arrayValue?.first?["coefficient"]?.doubleValue == 2)
    }

    @Test("merge errors: unknown domain lists what is there; usage errors exit 2; bad input exits 3; nothing written")
    func errors() throws {
        let dir = TemporaryDirectory()
        let base = avFixture("base_BF16.safetensors")
        _ = try runAV(["diff", base, avFixture("medical_BF16.safetensors"), "-o", dir.file("medical.av")])
        let unknown = try runAV(
            ["merge", "--base", base, "--medcal", "0.5", "-o", dir.file("m.safetensors")], currentDirectory: dir.path)
        #expect(unknown.status == 4)
        #expect(
            unknown.stderr
                == "av merge: error: no alignment vector for domain \"medcal\": ./medcal.av does not exist (found: medical)\n"
        )
        let noCoef = try runAV(["merge", "--base", base, "--medical", "lots", "-o", "x"], currentDirectory: dir.path)
        #expect(noCoef.status == 2 && noCoef.stderr.contains("--medical needs a finite number"))
        let none = try runAV(["merge", "--base", base, "-o", "x"])
        #expect(none.status == 2 && none.stderr.contains("no vectors to mix"))
        let other = try runAV(
            ["merge", "--base", avFixture("base_F16.safetensors"), "--medical", "1", "-o", dir.file("m.safetensors")],
            currentDirectory: dir.path)
        #expect(other.status == 3 && other.stderr.contains("was made from a different base"))
        let notAV = try runAV(["merge", "--base", base, "--vector", "\(base)=1", "-o", dir.file("m.safetensors")])
        #expect(notAV.status == 3 && notAV.stderr.contains("not an alignment vector"))
        let same = try runAV(["diff", base, base, "-o", base])
        #expect(same.status == 3 && same.stderr.contains("is also an input"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("m.safetensors")))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["medical.av"])
    }

    /// Python `safetensors` opens AV files (their header is padded with spaces) and merged models.
    @Test("Python safetensors reads AVs and merged models", .enabled(if: pythonInteropEnabled))
    func pythonReads() throws {
        let python = try #require(
            pythonCommand(modules: ["safetensors", "numpy"]), "python3 with safetensors and numpy is required")
        let dir = TemporaryDirectory()
        let base = avFixture("base_F32.safetensors")
        _ = try runAV(["diff", base, avFixture("medical_F32.safetensors"), "-o", dir.file("medical.av")])
        _ = try runAV(
            ["merge", "--base", base, "--medical", "1", "-o", dir.file("m.safetensors")], currentDirectory: dir.path)
        let script = """
            import sys, numpy as np
            from safetensors.numpy import load_file
            from safetensors import safe_open
            av = load_file(sys.argv[1]); m = load_file(sys.argv[2]); a = load_file(sys.argv[3])
            with safe_open(sys.argv[1], framework="np") as f: meta = f.metadata()
            assert meta["format"] == "av" and meta["av.domain"] == "medical", meta
            for k in a: assert np.array_equal(m[k].view(np.uint32), a[k].view(np.uint32)), k
            print(len([k for k in av if not k.startswith("av.exact/")]), "deltas")
            """
        let r = try runPython(
            python, code: script,
            arguments: [dir.file("medical.av"), dir.file("m.safetensors"), avFixture("medical_F32.safetensors")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "3 deltas\n")
    }
}

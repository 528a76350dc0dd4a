import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors

/// `av compress`, `diff --encoding`, `merge --method` and recipes with a method, from the command line.
@Suite("av compress, diff --encoding, merge --method")
struct EncodingMethodCLITests {
    @Test("diff --encoding and compress write the same AV; inspect shows the encoding and the share kept")
    func encodings() throws {
        let dir = TemporaryDirectory()
        let base = avFixture("base_BF16.safetensors")
        let aligned = avFixture("medical_BF16.safetensors")
        let dense = try runAV(["diff", base, aligned, "-o", dir.file("medical.av")])
        #expect(dense.status == 0, "\(dense.stderr)")
        let direct = try runAV([
            "diff", base, aligned, "-o", dir.file("direct.av"), "--domain", "medical", "--encoding", "sparse",
            "--density", "0.2",
        ])
        #expect(direct.status == 0, "\(direct.stderr)")
        #expect(direct.stdout.contains("  encoded  sparse: lossy by design"))
        #expect(direct.stdout.contains("av compress: medical → "))
        // Nothing is left beside the output but the output.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["direct.av", "medical.av"])
        let c = try runAV([
            "compress", dir.file("medical.av"), "-o", dir.file("c.av"), "--encoding", "sparse", "--density", "0.2",
            "--json",
        ])
        #expect(c.status == 0, "\(c.stderr)")
        let report = try JSONParser.parse(c.stdout)
        let kept = try #require(report["kept"]?.doubleValue)
        #expect(kept > 0.2 && kept < 1)
        // Same tensors, same bytes: the provenance differs only in the path the vector came from.
        let a = try SafeTensorsFile(path: dir.file("direct.av"))
        let b = try SafeTensorsFile(path: dir.file("c.av"))
        #expect(a.tensors.map(\.name) == b.tensors.map(\.name))
        for t in a.tensors { #expect([UInt8](a.bytes(of: t)) == [UInt8](b.bytes(of: b.info(t.name)!))) }
        let inspect = try runAV(["inspect", dir.file("c.av")])
        #expect(inspect.stdout.contains("  encoding    sparse, deltas in F32"))
        #expect(inspect.stdout.contains("tensors encoded;"))
        #expect(inspect.stdout.contains(String(format: "keeps %.2f%% of ‖Δ‖²", 100 * kept)))

        let bits = try runAV(["compress", dir.file("medical.av"), "-o", dir.file("b.av"), "--encoding", "1bit"])
        #expect(bits.status == 0, "\(bits.stderr)")
        #expect(bits.stdout.contains("(1bit {\"scale\":\"row\"})"))
        let m = try runAV([
            "merge", "--base", base, "--vector", dir.file("b.av") + "=0.5", "-o", dir.file("m.safetensors"),
        ])
        #expect(m.status == 0, "\(m.stderr)")
    }

    @Test("encoding usage errors exit 2 and write nothing")
    func encodingErrors() throws {
        let dir = TemporaryDirectory()
        let base = avFixture("base_BF16.safetensors")
        _ = try runAV(["diff", base, avFixture("medical_BF16.safetensors"), "-o", dir.file("medical.av")])
        for (args, message) in [
            (["--encoding", "2bit"], "--encoding must be dense, sparse or 1bit"),
            (["--encoding", "sparse", "--density", "0"], "--density is a share in (0, 1]"),
            (["--encoding", "1bit", "--density", "0.1"], "--density applies to --encoding sparse"),
            (["--encoding", "sparse", "--scale", "row"], "--scale applies to --encoding 1bit"),
            (["--encoding", "1bit", "--dtype", "bf16"], "--dtype with --encoding 1bit must be f32"),
            ([], "missing --encoding"),
        ] {
            let r = try runAV(["compress", dir.file("medical.av"), "-o", dir.file("x.av")] + args)
            #expect(r.status == 2, "\(args)")
            #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
        // The output may not be the input.
        let same = try runAV(["compress", dir.file("medical.av"), "-o", dir.file("medical.av"), "--encoding", "1bit"])
        #expect(same.status != 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["medical.av"])
    }

    @Test("merge --method and a recipe's method: recorded in the output, flags override, bad settings refused")
    func methods() throws {
        let dir = TemporaryDirectory()
        let base = avFixture("base_BF16.safetensors")
        for d in ["medical", "legal"] {
            _ = try runAV(["diff", base, avFixture("\(d)_BF16.safetensors"), "-o", dir.file("\(d).av")])
        }
        let t = try runAV([
            "merge", "--base", base, "--vectors", dir.path, "--medical", "1", "--legal", "0.5", "--method", "ties",
            "--density", "0.3", "-o", dir.file("ties.safetensors"),
        ])
        #expect(t.status == 0, "\(t.stderr)")
        #expect(t.stdout.contains(#"  method   {"method":"ties","density":0.3,"normalize":true,"rescale":false"#))
        let linear = try runAV([
            "merge", "--base", base, "--vectors", dir.path, "--medical", "1", "--legal", "0.5",
            "-o", dir.file("linear.safetensors"),
        ])
        #expect(linear.status == 0)
        #expect(readBytes(dir.file("ties.safetensors")) != readBytes(dir.file("linear.safetensors")))

        let recipe =
            #"{"base": "\#(base)", "vectors_dir": ".", "mix": {"medical": 1, "legal": 0.5}, "#
            + #""output": "r.safetensors", "method": {"name": "dare_ties", "density": 0.5, "seed": 3}}"#
        try Data(recipe.utf8).write(to: URL(fileURLWithPath: dir.file("recipe.json")))
        let r = try runAV(["merge", "--recipe", dir.file("recipe.json")])
        #expect(r.status == 0, "\(r.stderr)")
        let provenance = try SafeTensorsFile(path: dir.file("r.safetensors")).metadata?["av.merge"] ?? ""
        #expect(provenance.contains(#""method":{"method":"dare-ties","density":0.5,"normalize":false,"rescale":true"#))
        #expect(provenance.contains(#""seed":3"#))
        // The flag overrides the recipe's seed: other bytes.
        let s = try runAV([
            "merge", "--recipe", dir.file("recipe.json"), "--seed", "4", "-o", dir.file("s.safetensors"),
        ])
        #expect(s.status == 0, "\(s.stderr)")
        #expect(readBytes(dir.file("r.safetensors")) != readBytes(dir.file("s.safetensors")))

        for (args, message) in [
            (
                ["--method", "karcher"],
                "--method must be linear, ties, dare-linear, dare-ties, breadcrumbs, breadcrumbs-ties"
            ),
            (["--method", "ties", "--gamma", "0.1"], "--gamma applies to --method breadcrumbs"),
            (["--method", "model-stock"], "model-stock needs at least two vectors"),
            (["--method", "nuslerp"], "nuslerp interpolates exactly two vectors"),
            (["--method", "slerp", "--legal", "1"], "slerp interpolates between the base and one vector"),
            (["--method", "ties", "--epsilon", "0.1"], "--epsilon applies to --method della"),
            (["--method", "della", "--density", "0.1", "--epsilon", "0.2"], "density ± epsilon"),
            (["--method", "breadcrumbs", "--gamma", "1"], "--gamma is a share in [0, 1)"),
            (["--density", "0.5"], "--density applies to --method ties"),
            (["--method", "ties", "--density", "1.5"], "--density is a share in (0, 1]"),
            (["--method", "ties", "--consensus", "most"], "--consensus must be sum or count"),
        ] {
            let e = try runAV(
                ["merge", "--base", base, "--vectors", dir.path, "--medical", "1", "-o", dir.file("e.safetensors")]
                    + args)
            #expect(e.status == 2, "\(args)")
            #expect(e.stderr.contains(message), "\(args): \(e.stderr)")
        }
        try Data(#"{"base": "\#(base)", "mix": {"medical": 1}, "method": {"name": "ties", "dense": 1}}"#.utf8)
            .write(to: URL(fileURLWithPath: dir.file("bad.json")))
        let bad = try runAV([
            "merge", "--recipe", dir.file("bad.json"), "--vectors", dir.path, "-o", dir.file("e.safetensors"),
        ])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains(#""method": unknown key "dense""#), "\(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("e.safetensors")))
    }

    func readBytes(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path) ?? Data()) }
}

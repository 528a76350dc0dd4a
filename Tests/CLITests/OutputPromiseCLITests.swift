import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors
@testable import Tensors

/// What docs/outputs.md, merge.md and diff.md promise of outputs and no test checked (issue 26,
/// section 2): reports through `/dev/stdout`, a directory merge's `--dtype` in `config.json`, f64
/// only for files, and `--resized-rows drop` from the command line.
@Suite("README promises: reports to standard output, output dtypes, resized rows")
struct OutputPromiseCLITests {
    static let checkpoints = AnalyzeCLITests.checkpoints

    /// A recipe of medical at λ = 1 with one `finite` check.
    static func recipe(_ dir: TemporaryDirectory) throws -> String {
        let vectors = Path.parent(try AnalyzeCLITests.vectors(in: dir).0)
        let text = """
            {"base": "\(checkpoints)/base", "vectors_dir": "\(vectors)", "mix": {"medical": 1},
             "checks": [{"type": "finite", "name": "no NaN"}]}
            """
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir.file("recipe.json")))
        return dir.file("recipe.json")
    }

    @Test("--report /dev/stdout and --junit /dev/stderr write through the descriptors, after what av printed")
    func standardStreams() throws {
        let dir = TemporaryDirectory()
        let recipe = try Self.recipe(dir)
        // A pipe: the table, then the report.
        let piped = try runAV(["check", "--recipe", recipe, "--report", "/dev/stdout", "--junit", "/dev/stderr"])
        #expect(piped.status == 0, "\(piped.stderr)")
        let table = piped.stdout.range(of: "pass    no NaN")
        let report = piped.stdout.range(of: "\"passed\" : true") ?? piped.stdout.range(of: "\"passed\": true")
        #expect(table != nil && report != nil, "\(piped.stdout)")
        if let table, let report { #expect(table.lowerBound < report.lowerBound) }
        #expect(piped.stderr.contains("<testsuites") && piped.stderr.contains("no NaN"))

        // A file the shell opened: appended to (>>) or written from the start (>), never replaced by
        // the report alone. /dev/stdout is a link to the file there; renaming over it lost the log.
        let log = dir.file("log.txt")
        try Data("earlier lines\n".utf8).write(to: URL(fileURLWithPath: log))
        let av = avBinaryPath()
        for (redirect, keepsEarlier) in [(">>", true), (">", false)] {
            let shell = try runProcess(
                "/bin/sh",
                ["-c", "\"$0\" check --recipe \"$1\" --report /dev/stdout \(redirect) \"$2\"", av, recipe, log])
            #expect(shell.status == 0, "\(shell.stderr)")
            let text = String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: log))) ?? Data(), as: UTF8.self)
            #expect(text.hasPrefix("earlier lines\n") == keepsEarlier, "\(redirect): \(text)")
            #expect(text.contains("pass    no NaN") && text.contains("\"recipe\""), "\(redirect): \(text)")
        }
        #expect(FileKind(of: log) == .regular)
    }

    @Test("a directory merge with --dtype writes that dtype and says so in config.json; f64 is for files only")
    func directoryDType() throws {
        let dir = TemporaryDirectory()
        let vectors = Path.parent(try AnalyzeCLITests.vectors(in: dir).0)
        let fm = FileManager.default
        // Two copies of the base: one whose config names the dtype both ways, one that names none.
        let config = try String(contentsOfFile: Self.checkpoints + "/base/config.json", encoding: .utf8)
        #expect(config.contains("\"dtype\": \"bfloat16\""))
        for (name, text) in [
            (
                "both",
                config.replacingOccurrences(
                    of: "\"dtype\": \"bfloat16\",", with: "\"dtype\": \"bfloat16\", \"torch_dtype\": \"bfloat16\",")
            ),
            ("none", config.replacingOccurrences(of: "\"dtype\": \"bfloat16\",", with: "")),
        ] {
            try fm.copyItem(atPath: Self.checkpoints + "/base", toPath: dir.file(name))
            try fm.removeItem(atPath: dir.file(name + "/config.json"))
            try Data(text.utf8).write(to: URL(fileURLWithPath: dir.file(name + "/config.json")))
            let out = dir.file(name + "-f16")
            let r = try runAV([
                "merge", "--base", dir.file(name), "--vectors", vectors, "--medical", "1", "--dtype", "f16", "-o", out,
                "-q",
            ])
            #expect(r.status == 0, "\(r.stderr)")
            let written =
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json")))
                as? [String: Any] ?? [:]
            let original = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
            #expect(written["torch_dtype"] as? String == "float16")
            #expect(name == "none" ? written["dtype"] == nil : written["dtype"] as? String == "float16")
            // Every other key as it was; every tensor in f16; the tokenizer copied byte for byte.
            let others = { (c: [String: Any]) in NSDictionary(dictionary: c.filter { !$0.key.hasSuffix("dtype") }) }
            #expect(others(written).isEqual(to: others(original) as! [AnyHashable: Any]))
            let tensors = try SafeTensorsFile(path: out + "/model.safetensors").tensors
            #expect(!tensors.isEmpty && tensors.allSatisfy { $0.dtype == .f16 })
            #expect(
                fm.contents(atPath: out + "/tokenizer.json") == fm.contents(atPath: dir.file(name + "/tokenizer.json")))
            #expect(fm.contents(atPath: dir.file(name + "/config.json")) == Data(text.utf8))  // the input untouched
        }
        // f64: refused for a directory, nothing written; written for a file base.
        let f64 = try runAV([
            "merge", "--base", Self.checkpoints + "/base", "--vectors", vectors, "--medical", "1", "--dtype", "f64",
            "-o", dir.file("f64"),
        ])
        #expect(f64.status == 2 && f64.stderr.contains("--dtype f64 is for file outputs"), "\(f64.stderr)")
        #expect(!fm.fileExists(atPath: dir.file("f64")))
        let file = try runAV([
            "merge", "--base", Self.checkpoints + "/base/model.safetensors", "--vectors", vectors, "--medical", "1",
            "--dtype", "f64", "-o", dir.file("f64.safetensors"), "-q",
        ])
        #expect(file.status == 0, "\(file.stderr)")
        let tensors = try SafeTensorsFile(path: dir.file("f64.safetensors")).tensors
        #expect(!tensors.isEmpty && tensors.allSatisfy { $0.dtype == .f64 })
    }

    @Test("diff --resized-rows drop from the command line: the vector keeps the base's rows; without it, refused")
    func resizedRows() throws {
        let dir = TemporaryDirectory()
        func write(_ path: String, rows: Int, shift: Float) throws {
            let names = ["model.embed_tokens.weight", "lm_head.weight"]
            let specs = names.map { TensorSpec(name: $0, dtype: .f32, shape: [rows, 4]) }
            let values = (0..<(rows * 4)).map { Float($0) * 0.25 + (($0 < 32) ? shift : 7) }
            let bytes = values.withUnsafeBytes { [UInt8]($0) }
            try SafeTensorsWriter.write(path: path, tensors: specs.map { ($0, bytes) })
        }
        try write(dir.file("b.safetensors"), rows: 8, shift: 0)
        try write(dir.file("a.safetensors"), rows: 10, shift: 0.5)  // two added tokens
        let refused = try runAV(["diff", dir.file("b.safetensors"), dir.file("a.safetensors"), "-o", dir.file("x.av")])
        #expect(refused.status == 3, "\(refused.stderr)")
        #expect(
            refused.stderr.contains("[10, 4] against the base's [8, 4]") && refused.stderr.contains("--resized-rows"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("x.av")))
        let dropped = try runAV([
            "diff", dir.file("b.safetensors"), dir.file("a.safetensors"), "-o", dir.file("x.av"), "--resized-rows",
            "drop", "-q",
        ])
        #expect(dropped.status == 0, "\(dropped.stderr)")
        let merged = try runAV([
            "merge", "--base", dir.file("b.safetensors"), "--vector", dir.file("x.av") + "=1", "-o",
            dir.file("m.safetensors"), "-q",
        ])
        #expect(merged.status == 0, "\(merged.stderr)")
        let m = try SafeTensorsFile(path: dir.file("m.safetensors"))
        let a = try SafeTensorsFile(path: dir.file("a.safetensors"))
        for name in ["model.embed_tokens.weight", "lm_head.weight"] {
            #expect(m.info(name)?.shape == [8, 4])
            #expect([UInt8](try m.bytes(named: name)) == [UInt8](try a.bytes(named: name).prefix(8 * 4 * 4)), "\(name)")
        }
        let inspect = try runAV(["inspect", dir.file("x.av")])
        #expect(inspect.stdout.contains("10"), "\(inspect.stdout)")
        let bad = try runAV([
            "diff", dir.file("b.safetensors"), dir.file("a.safetensors"), "-o", dir.file("y.av"), "--resized-rows",
            "keep",
        ])
        #expect(bad.status == 2 && bad.stderr.contains("--resized-rows"), "\(bad.stderr)")
    }
}

import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors
@testable import Tensors

/// Promises of the README that had no test.
@Suite("README promises: sampling, non-finite merges, the perplexity check")
struct CoverageCLITests {
    @Test("--top-p that keeps only the most likely token is greedy; sampling is seeded")
    func topP() throws {
        let chat = inferenceFixture("chat")
        let base = ["generate", "--model", chat, "--prompt", "The court", "--max-tokens", "12", "-q"]
        let greedy = try runAV(base)
        let nucleus = try runAV(base + ["--temperature", "1.5", "--top-p", "0.000001", "--seed", "3"])
        #expect(greedy.status == 0 && nucleus.status == 0)
        #expect(nucleus.stdout == greedy.stdout)
        let a = try runAV(base + ["--temperature", "1.5", "--top-p", "0.9", "--seed", "3"])
        let b = try runAV(base + ["--temperature", "1.5", "--top-p", "0.9", "--seed", "3"])
        #expect(a.status == 0 && b.status == 0 && !a.stdout.isEmpty)
        #expect(a.stdout == b.stdout)
        // A wide nucleus at a high temperature samples: some seed leaves the greedy text.
        let sampled = try (1...8).map { try runAV(base + ["--temperature", "1.5", "--top-p", "0.9", "--seed", "\($0)"]) }
        #expect(sampled.contains { $0.status == 0 && $0.stdout != greedy.stdout })
        let bad = try runAV(base + ["--top-p", "1.5"])
        #expect(bad.status == 2)
    }

    @Test("a merge whose result overflows is refused (exit 3, nothing written); --allow-nonfinite writes it")
    func allowNonFinite() throws {
        let dir = TemporaryDirectory()
        let spec = TensorSpec(name: "w", dtype: .f16, shape: [4])
        func write(_ path: String, _ values: [Float]) throws {
            var bytes = [UInt8](repeating: 0, count: 8)
            var v = values
            bytes.withUnsafeMutableBytes { Convert.fromFloat(.f16, from: &v, count: 4, into: $0.baseAddress!) }
            try SafeTensorsWriter.write(path: path, tensors: [(spec, bytes)])
        }
        try write(dir.file("base.safetensors"), [1, 2, 60000, 4])
        try write(dir.file("aligned.safetensors"), [1, 2, 65000, 4])
        #expect(
            try runAV([
                "diff", dir.file("base.safetensors"), dir.file("aligned.safetensors"), "-o", dir.file("up.av"), "-q",
            ]).status == 0)
        let refused = try runAV([
            "merge", "--base", dir.file("base.safetensors"), "--vectors", dir.path, "--up", "3", "-o",
            dir.file("m.safetensors"),
        ])
        #expect(
            refused.status == 3 && refused.stderr.contains("non-finite") && refused.stderr.contains("--allow-nonfinite")
        )
        #expect(!FileManager.default.fileExists(atPath: dir.file("m.safetensors")))
        let allowed = try runAV([
            "merge", "--base", dir.file("base.safetensors"), "--vectors", dir.path, "--up", "3", "-o",
            dir.file("m.safetensors"), "--allow-nonfinite", "-q",
        ])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        let values = try SafeTensorsFile(path: dir.file("m.safetensors")).floats(named: "w")
        #expect(values[2] == .infinity && values[0] == 1)
    }

    @Test("the perplexity check measures what av eval --text measures, and its threshold decides")
    func perplexityCheck() throws {
        let dir = TemporaryDirectory()
        let chat = inferenceFixture("chat")
        try Data("The court ruled for the plaintiff. Interest rates rose again.\n".utf8).write(
            to: URL(fileURLWithPath: dir.file("t.txt")))
        let eval = try runAV(["eval", "--model", chat, "--text", dir.file("t.txt"), "--json"])
        let measured = try #require(try JSONParser.parse(eval.stdout)["text"]?["perplexity"]?.doubleValue)
        #expect(measured > 1)
        for (maximum, status) in [(measured * 1.01, Int32(0)), (measured * 0.99, Int32(1))] {
            let recipe = #"{"checks": [{"type": "perplexity", "file": "t.txt", "max": \#(maximum)}]}"#
            try Data(recipe.utf8).write(to: URL(fileURLWithPath: dir.file("r.json")))
            let r = try runAV([
                "check", "--recipe", dir.file("r.json"), "--model", chat, "--report", dir.file("report.json"),
            ])
            #expect(r.status == status, "\(r.stdout)\(r.stderr)")
            let report = try JSONParser.parse(
                String(decoding: FileManager.default.contents(atPath: dir.file("report.json")) ?? Data(), as: UTF8.self)
            )
            let shown = report["checks"]?.arrayValue?.first?["measured"]?.stringValue ?? ""
            #expect(abs((Double(shown) ?? 0) - measured) < 0.001 * measured, "\(shown) vs \(measured)")
        }
    }
}

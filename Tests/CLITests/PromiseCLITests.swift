import AVTestSupport
import Foundation
import Testing

@testable import Tensors

/// README promises that no other test checked (issue 26, section 2): vectors of another base are refused by
/// every command that mixes, unless --force; `--max-shard-size` from the command line shards the output.
@Suite("README promises: other bases, shards")
struct PromiseCLITests {
    static let checkpoints = AnalyzeCLITests.checkpoints

    @Test("eval, generate and sweep refuse vectors made from another base unless --force, as merge does")
    func otherBaseRefused() throws {
        let dir = TemporaryDirectory()
        let av = try AnalyzeCLITests.vectors(in: dir).0
        // base-stage2 has the base's structure and other weights: the vectors' content check refuses it.
        let other = Self.checkpoints + "/base-stage2"
        let mix = ["--base", other, "--vectors", Path.parent(av), "--medical", "1"]
        let commands: [[String]] = [
            ["eval"] + mix + ["--text", Self.checkpoints + "/eval/heldout.txt", "-q"],
            ["generate"] + mix + ["--prompt", "Hello", "--max-tokens", "2", "-q"],
            [
                "sweep", "--base", other, "--vectors", Path.parent(av), "--medical", "0:1:2", "--levels",
                Self.checkpoints + "/eval/medical_levels.jsonl", "-q",
            ],
            ["merge"] + mix + ["-o", dir.file("merged")],
        ]
        for command in commands {
            let refused = try runAV(command)
            #expect(refused.status != 0, "\(command[0]) accepted another base")
            #expect(refused.stderr.contains("different base"), "\(command[0]): \(refused.stderr)")
            let forced = try runAV(command + ["--force"])
            #expect(forced.status == 0, "\(command[0]) --force: \(forced.stderr)")
        }
    }

    @Test("merge --max-shard-size from the command line writes shards and an index that load as one model")
    func shardsFromFlag() throws {
        let dir = TemporaryDirectory()
        let av = try AnalyzeCLITests.vectors(in: dir).0
        let r = try runAV([
            "merge", "--base", Self.checkpoints + "/base", "--vectors", Path.parent(av), "--medical", "1",
            "--max-shard-size", "500KB", "-o", dir.file("sharded"),
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.file("sharded")).sorted()
        let shards = names.filter { $0.hasSuffix(".safetensors") }
        #expect(shards.count > 1 && names.contains("model.safetensors.index.json"), "\(names)")
        let whole = try runAV([
            "merge", "--base", Self.checkpoints + "/base", "--vectors", Path.parent(av), "--medical", "1",
            "-o", dir.file("whole"),
        ])
        #expect(whole.status == 0)
        let text = Self.checkpoints + "/eval/heldout.txt"
        let a = try runAV(["eval", "--model", dir.file("sharded"), "--text", text, "-q"])
        let b = try runAV(["eval", "--model", dir.file("whole"), "--text", text, "-q"])
        #expect(a.status == 0 && !a.stdout.isEmpty && a.stdout == b.stdout, "\(a.stderr)")
        let bad = try runAV([
            "merge", "--base", Self.checkpoints + "/base", "--vectors", Path.parent(av), "--medical", "1",
            "--max-shard-size", "lots", "-o", dir.file("bad"),
        ])
        #expect(bad.status == 2 && bad.stderr.contains("--max-shard-size"))
    }
}

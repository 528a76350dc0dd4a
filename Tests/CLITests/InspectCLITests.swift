import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors

/// A fixture of the SafeTensors tests, by path in the source tree.
func sharedFixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("SafeTensorsTests/Fixtures/\(name)").path
}

@Suite("av: help, usage errors, exit codes")
struct GeneralCLITests {
    @Test("--help, help SUBCOMMAND, SUBCOMMAND --help and --version exit 0")
    func help() throws {
        let top = try runAV(["--help"])
        #expect(top.status == 0 && top.stdout.contains("Subcommands:") && top.stdout.contains("inspect"))
        #expect(top.stdout.contains("Exit codes: 0 success, 1 a check failed, 2 usage error"))
        let sub = try runAV(["help", "inspect"])
        #expect(sub.status == 0 && sub.stdout.contains("Usage: av inspect PATH [--tensors REGEX] [--json]"))
        #expect(try runAV(["inspect", "--help"]).stdout == sub.stdout)
        let version = try runAV(["--version"])
        #expect(version.status == 0 && version.stdout.hasPrefix("av "))
    }

    @Test("usage errors: one line, then the usage, exit 2")
    func usageErrors() throws {
        let unknownFlag = try runAV(["inspect", "--bogus", "x"])
        #expect(unknownFlag.status == 2)
        #expect(
            unknownFlag.stderr
                == "av inspect: error: unknown option '--bogus'\nUsage: av inspect PATH [--tensors REGEX] [--json]\nRun 'av inspect --help' for more.\n")
        let missing = try runAV(["inspect"])
        #expect(missing.status == 2 && missing.stderr.hasPrefix("av inspect: error: missing PATH\nUsage: av inspect"))
        let noValue = try runAV(["inspect", "x", "--tensors"])
        #expect(noValue.status == 2 && noValue.stderr.hasPrefix("av inspect: error: option '--tensors' needs a value (REGEX)\n"))
        let badRegex = try runAV(["inspect", sharedFixture("shapes.safetensors"), "--tensors", "(("])
        #expect(badRegex.status == 2 && badRegex.stderr.contains("invalid regular expression"))
        let sub = try runAV(["frobnicate"])
        #expect(sub.status == 2 && sub.stderr.hasPrefix("av: error: unknown subcommand 'frobnicate'\n"))
        let none = try runAV([])
        #expect(none.status == 2 && none.stderr.contains("Subcommands:"))
    }
}

@Suite("av inspect")
struct InspectCLITests {
    @Test("summary and tensor table of a file Python wrote")
    func table() throws {
        let path = sharedFixture("shapes.safetensors")
        let r = try runAV(["inspect", path])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == "\(path)  (safetensors file, 1 file)")
        #expect(lines[1] == "  tensors     5")
        #expect(lines[2] == "  parameters  107 (107)")  // 1 + 0 + 0 + 105 + 1
        #expect(r.stdout.contains("name       dtype  shape      bytes  offset"))
        #expect(r.stdout.contains("odd        BF16   [3, 5, 7]    210"))
        #expect(r.stdout.contains("scalar     F32    []             4"))
        #expect(r.stdout.contains("zero_rows  F16    [2, 0]         0"))
    }

    @Test("--json carries the same numbers; --tensors filters")
    func json() throws {
        let r = try runAV(["inspect", sharedFixture("all_dtypes.safetensors"), "--json", "--tensors", "^matrix"])
        #expect(r.status == 0, "\(r.stderr)")
        let v = try JSONParser.parse(r.stdout)
        #expect(v["tensorCount"]?.doubleValue == 22)
        #expect(v["metadata"]?["framework"]?.stringValue == "av-test")
        let tensors = try #require(v["tensors"]?.arrayValue)
        #expect(tensors.compactMap { $0["name"]?.stringValue } == ["matrix.f32", "matrix.bf16"])
        #expect(tensors[0]["shape"]?.arrayValue?.compactMap(\.doubleValue) == [5, 3])
        #expect(tensors[1]["bytes"]?.doubleValue == 30)
        #expect(v["dtypes"]?["BF16"]?["tensors"]?.doubleValue == 2)
    }

    @Test("a sharded directory shows the file of each tensor")
    func directory() throws {
        let tmp = TemporaryDirectory()
        let dir = tmp.file("model")
        let specs = (0..<4).map { TensorSpec(name: "layer.\($0)", dtype: .f32, shape: [8]) }
        let writer = try ModelDirectoryWriter(path: dir, tensors: specs, maxShardSize: 64)
        while writer.nextTensor != nil { try writer.write([UInt8](repeating: 0, count: 32)) }
        try writer.finish()
        let r = try runAV(["inspect", dir])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("(model directory, 2 files)"))
        #expect(r.stdout.contains("layer.3  F32    [8]       32      32  model-00002-of-00002.safetensors"))
    }

    @Test("malformed input exits 3 and names the file and the rule; a missing file exits 4")
    func errors() throws {
        let tmp = TemporaryDirectory()
        let bad = tmp.file("bad.safetensors")
        let header = Array(#"{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,4]}}"#.utf8)
        let bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header
        FileManager.default.createFile(atPath: bad, contents: Data(bytes))
        let r = try runAV(["inspect", bad])
        #expect(r.status == 3)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr == "av inspect: error: \(bad): tensor \"test\": data_offsets span 4 bytes, but I32 [2, 2] needs 16 [TensorInvalidInfo]\n")
        let missing = try runAV(["inspect", tmp.file("nope.safetensors")])
        #expect(missing.status == 4 && missing.stderr.contains("nope.safetensors: open: No such file or directory"))
        let truncated = tmp.file("truncated.safetensors")
        FileManager.default.createFile(atPath: truncated, contents: Data([1, 2, 3]))
        let t = try runAV(["inspect", truncated])
        #expect(t.status == 3 && t.stderr.contains("truncated.safetensors: file is 3 bytes, too small") && t.stderr.contains("[HeaderTooSmall]"))
    }
}

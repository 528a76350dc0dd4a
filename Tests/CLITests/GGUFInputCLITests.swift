import AVTestSupport
import Foundation
import Testing

/// A fixture of the GGUF tests, by path in the source tree.
func ggufTestFixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("GGUFTests/Fixtures/\(name)").path
}

/// A `.gguf` given to a command: converted on the fly to bf16, in memory when it fits, else in
/// $TMPDIR with a note; nothing left behind.
@Suite("a .gguf given to a command")
struct GGUFInputCLITests {
    @Test("bf16 by default, as av convert --dtype bf16; f32 on request; memory or $TMPDIR; removed after")
    func onTheFly() throws {
        let dir = TemporaryDirectory()
        let gguf = ggufTestFixture("spm/llama2.gguf")
        let args = ["--prompt", "The patient should take", "--max-tokens", "12", "-q"]
        for dtype in ["bf16", "f32"] {
            let c = try runAV(["convert", gguf, "-o", dir.file(dtype), "--dtype", dtype])
            #expect(c.status == 0, "\(c.stderr)")
        }
        let reference = try runAV(["generate", "--model", dir.file("bf16")] + args)
        let f32 = try runAV(["generate", "--model", dir.file("f32")] + args)
        #expect(reference.status == 0 && f32.status == 0)

        // Default: bf16, in memory (no note on stderr when /dev/shm has room).
        let inMemory = try runAV(["generate", "--model", gguf] + args)
        #expect(inMemory.status == 0, "\(inMemory.stderr)")
        #expect(inMemory.stdout == reference.stdout)
        #expect(inMemory.stderr.isEmpty == FileManager.default.isWritableFile(atPath: "/dev/shm"))

        // Forced to disk: $TMPDIR, said on stderr, removed afterwards; AV_GGUF_DTYPE=f32 as convert's f32.
        let tmp = dir.file("tmp")
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        var env = ProcessInfo.processInfo.environment
        env["TMPDIR"] = tmp
        env["AV_GGUF_NO_MEMORY"] = "1"
        env["AV_GGUF_DTYPE"] = "f32"
        let onDisk = try runAV(["generate", "--model", gguf] + args, environment: env)
        #expect(onDisk.status == 0, "\(onDisk.stderr)")
        #expect(onDisk.stdout == f32.stdout)
        #expect(onDisk.stderr.contains("to a F32 temporary of ") && onDisk.stderr.contains(" in \(tmp)/av-gguf-"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp).isEmpty)

        env["AV_GGUF_DTYPE"] = "q4"
        let bad = try runAV(["generate", "--model", gguf] + args, environment: env)
        #expect(bad.status == 2 && bad.stderr.contains("AV_GGUF_DTYPE must be f32, bf16 or f16"))
    }
}

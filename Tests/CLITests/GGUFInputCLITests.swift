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

@Suite("A crash or a signal during a command that converted a .gguf")
struct CrashCleanupCLITests {
    @Test(
        "a crash (SIGSEGV, SIGILL, SIGABRT, SIGBUS) or a stop (SIGINT, SIGTERM, SIGHUP) removes the conversion",
        arguments: [SIGSEGV, SIGILL, SIGABRT, SIGBUS, SIGINT, SIGTERM, SIGHUP])
    func crash(signal: Int32) throws {
        let dir = TemporaryDirectory()
        let tmp = dir.file("tmp")
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        // A long text keeps eval busy for seconds after the conversion.
        let text = dir.file("text.txt")
        try Data(String(repeating: "The patient should take the tablets twice a day. ", count: 40_000).utf8).write(
            to: URL(fileURLWithPath: text))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: avBinaryPath())
        process.arguments = [
            "eval", "--model", ggufTestFixture("spm/llama2.gguf"), "--text", text, "--window", "64", "-q",
        ]
        var env = ProcessInfo.processInfo.environment
        env["TMPDIR"] = tmp
        env["AV_GGUF_NO_MEMORY"] = "1"
        env["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = env
        process.standardError = FileHandle.nullDevice
        try process.run()
        var converted = false
        for _ in 0..<3000 where process.isRunning {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []
            // The conversion is done when its directory holds the tokenizer (written last, by rename).
            if let name = names.first(where: { $0.hasPrefix("av-gguf-\(process.processIdentifier)-") }),
                FileManager.default.fileExists(atPath: tmp + "/" + name + "/tokenizer.json")
            {
                converted = true
                break
            }
            usleep(10_000)
        }
        #expect(converted, "no conversion appeared in \(tmp)")
        usleep(100_000)
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == signal)
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp).isEmpty)
    }

    @Test("a dead process's conversion is swept by the next run; a live one's and other names are kept")
    func staleSweep() throws {
        let dir = TemporaryDirectory()
        let tmp = dir.file("tmp")
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let kept = ["av-gguf-\(getpid())-live", "av-gguf-legacy", "other"]
        for name in ["av-gguf-\(dead.processIdentifier)-stale"] + kept {
            try FileManager.default.createDirectory(atPath: tmp + "/" + name, withIntermediateDirectories: true)
        }
        var env = ProcessInfo.processInfo.environment
        env["TMPDIR"] = tmp
        env["AV_GGUF_NO_MEMORY"] = "1"
        let r = try runAV(
            ["generate", "--model", ggufTestFixture("spm/llama2.gguf"), "--prompt", "Hi", "--max-tokens", "1", "-q"],
            environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp).sorted() == kept.sorted())
    }
}

@Suite("Errors about a converted .gguf")
struct GGUFErrorCLITests {
    @Test("an error in the converted model names the .gguf, not its deleted temporary; -o \"\" is a usage error")
    func namesTheGGUF() throws {
        let dir = TemporaryDirectory()
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        func str(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }
        let ints: [(String, Int32)] = [
            ("llama.attention.head_count", 4), ("llama.embedding_length", 32), ("llama.block_count", 1),
        ]
        var bytes: [UInt8] = Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(0)) + le(UInt64(1 + ints.count))
        bytes += str("general.architecture") + le(UInt32(8)) + str("llama")
        for (k, v) in ints { bytes += str(k) + le(UInt32(5)) + le(UInt32(bitPattern: v)) }
        let gguf = dir.file("empty.gguf")
        try Data(bytes).write(to: URL(fileURLWithPath: gguf))
        // It converts (metadata only) but holds no weights: the load fails.
        let r = try runAV(["generate", "--model", gguf, "--prompt", "Hi", "--max-tokens", "1"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("\(gguf) (converted)") && !r.stderr.contains("av-gguf-"), "\(r.stderr)")
        let empty = try runAV(["convert", gguf, "-o", ""])
        #expect(empty.status == 2 && empty.stderr.contains("not an empty string"))
    }
}

import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors

#if canImport(Glibc)
    import Glibc
#endif

/// Files and directories that must come through a run untouched.
private func contents(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

/// A diff of the BF16 fixtures into `dir/medical.av`, and the base's path.
private func medicalVector(in dir: TemporaryDirectory) throws -> String {
    let base = avFixture("base_BF16.safetensors")
    let r = try runAV(["diff", base, avFixture("medical_BF16.safetensors"), "-o", dir.file("medical.av"), "-q"])
    #expect(r.status == 0, "\(r.stderr)")
    return base
}

/// A model directory (the chat fixture) and a vector for it, in `dir`.
private func directoryModel(in dir: TemporaryDirectory) throws -> String {
    let aligned = try makeAlignedChat(dir)
    let r = try runAV(["diff", inferenceFixture("chat"), aligned, "-o", dir.file("style.av"), "-q"])
    #expect(r.status == 0, "\(r.stderr)")
    return inferenceFixture("chat")
}

private func temporaries(in dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter {
        $0.contains(".tmp-") || $0.contains(".old-")
    }
}

@Suite("Adversarial: outputs never destroy what av did not write; inputs never crash av")
struct AdversarialCLITests {
    @Test("a directory output holding other files, the inputs, the vectors or the recipe is refused and left as it was")
    func directoryOutputs() throws {
        let dir = TemporaryDirectory()
        let base = try directoryModel(in: dir)
        let important = dir.file("important")
        try FileManager.default.createDirectory(atPath: important, withIntermediateDirectories: true)
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: important + "/notes.txt"))
        let r = try runAV(["merge", "--base", base, "--vectors", dir.path, "--style", "0.5", "-o", important])
        #expect(
            r.status == 3 && r.stderr.contains("\"notes.txt\"") && r.stderr.contains("not part of a model directory"))
        #expect(contents(important + "/notes.txt") == Data("keep me".utf8))
        // The output is the current directory, which holds the vector: refused.
        let cwd = try runAV(["merge", "--base", base, "--style", "0.5", "-o", dir.path], currentDirectory: dir.path)
        #expect(cwd.status == 3 && cwd.stderr.contains("contains an input"))
        #expect(FileManager.default.fileExists(atPath: dir.file("style.av")))
        // The output is the vectors directory.
        let vecs = try runAV(["merge", "--base", base, "--vectors", dir.path, "--style", "0.5", "-o", dir.path])
        #expect(vecs.status == 3 && FileManager.default.fileExists(atPath: dir.file("style.av")))
        // A recipe whose output is its own directory.
        try Data(#"{"base": "\#(base)", "vectors_dir": ".", "mix": {"style": 0.5}, "output": "."}"#.utf8)
            .write(to: URL(fileURLWithPath: dir.file("recipe.json")))
        let recipe = try runAV(["merge", "--recipe", dir.file("recipe.json")])
        #expect(recipe.status == 3 && FileManager.default.fileExists(atPath: dir.file("recipe.json")))
        // The base's own directory.
        let own = try runAV(["merge", "--base", base, "--vectors", dir.path, "--style", "0.5", "-o", base])
        #expect(own.status == 3 && own.stderr.contains("input"))
        // A directory that holds only a model is replaced: re-merging works.
        for _ in 0..<2 {
            let ok = try runAV([
                "merge", "--base", base, "--vectors", dir.path, "--style", "0.5", "-o", dir.file("merged"), "-q",
            ])
            #expect(ok.status == 0, "\(ok.stderr)")
        }
        #expect(temporaries(in: dir.path).isEmpty)
    }

    @Test("special files: devices and links are refused as model outputs; reports write through FIFOs and devices")
    func specialFiles() throws {
        let dir = TemporaryDirectory()
        let base = try medicalVector(in: dir)
        // A character device is never replaced by a file.
        let full = try runAV(["diff", base, avFixture("medical_BF16.safetensors"), "-o", "/dev/full", "-q"])
        #expect(full.status == 3 && full.stderr.contains("character device"))
        var st = stat()
        #expect(stat("/dev/full", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR)
        // A symbolic link to a file, as an AV output: refused, the link and its target kept.
        try Data("target".utf8).write(to: URL(fileURLWithPath: dir.file("target.av")))
        try FileManager.default.createSymbolicLink(
            atPath: dir.file("link.av"), withDestinationPath: dir.file("target.av"))
        let link = try runAV(["diff", base, avFixture("medical_BF16.safetensors"), "-o", dir.file("link.av"), "-q"])
        #expect(link.status == 3 && link.stderr.contains("symbolic link"))
        #expect(contents(dir.file("target.av")) == Data("target".utf8))
        // A symbolic link to a directory, as a merge output.
        try FileManager.default.createDirectory(atPath: dir.file("realdir"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: dir.file("dirlink"), withDestinationPath: dir.file("realdir"))
        let m = try runAV([
            "merge", "--base", base, "--vectors", dir.path, "--medical", "0.5", "-o", dir.file("dirlink"), "-q",
        ])
        #expect(m.status == 3)
        #expect(FileKind(of: dir.file("dirlink")) == .symbolicLink)
        // A FIFO as a report target: written through (a reader gets the whole plot).
        let fifo = dir.file("plot.fifo")
        #expect(mkfifo(fifo, 0o644) == 0)
        nonisolated(unsafe) var received = Data()
        let reader = Thread {
            // Plain POSIX reads: Foundation's file reading does not open FIFOs.
            let fd = open(fifo, O_RDONLY)
            var buffer = [UInt8](repeating: 0, count: 65536)
            while fd >= 0 {
                let n = read(fd, &buffer, buffer.count)
                if n <= 0 { break }
                received.append(contentsOf: buffer[0..<n])
            }
            if fd >= 0 { close(fd) }
        }
        reader.start()
        try Data(#"{"prompt": "a", "chosen": " b", "rejected": " c"}"#.utf8).write(
            to: URL(fileURLWithPath: dir.file("pairs.jsonl")))
        let chatDir = TemporaryDirectory()
        _ = try directoryModel(in: chatDir)
        let sweep = try runAV([
            "sweep", "--base", inferenceFixture("chat"), "--vectors", chatDir.path, "--style", "0:1:2", "--pairs",
            dir.file("pairs.jsonl"),
            "--plot", fifo,
        ])
        #expect(sweep.status == 0, "\(sweep.stderr)")
        while !reader.isFinished { usleep(10_000) }
        #expect(String(decoding: received, as: UTF8.self).hasPrefix("<svg"))
        #expect(FileKind(of: fifo) == .fifo)
        // A report to /dev/full: written through, the failure is an I/O error.
        let devFull = try runAV([
            "sweep", "--base", inferenceFixture("chat"), "--vectors", chatDir.path, "--style", "0:1:2", "--pairs",
            dir.file("pairs.jsonl"),
            "--plot", "/dev/full",
        ])
        #expect(devFull.status == 4 && devFull.stderr.contains("No space left"))
        // A report through a symbolic link to a file: the target is replaced, the link kept.
        try FileManager.default.createSymbolicLink(
            atPath: dir.file("plot-link.svg"), withDestinationPath: dir.file("target.av"))
        let viaLink = try runAV([
            "sweep", "--base", inferenceFixture("chat"), "--vectors", chatDir.path, "--style", "0:1:2", "--pairs",
            dir.file("pairs.jsonl"),
            "--plot", dir.file("plot-link.svg"),
        ])
        #expect(viaLink.status == 0 && FileKind(of: dir.file("plot-link.svg")) == .symbolicLink)
        #expect(String(decoding: contents(dir.file("target.av")) ?? Data(), as: UTF8.self).hasPrefix("<svg"))
        // A report path that is a directory: refused before any work.
        let toDir = try runAV([
            "sweep", "--base", inferenceFixture("chat"), "--vectors", chatDir.path, "--style", "0:1:2", "--pairs",
            dir.file("pairs.jsonl"),
            "--plot", dir.path,
        ])
        #expect(toDir.status == 3 && toDir.stderr.contains("a directory"))
    }

    @Test("standard output that cannot be written is exit 4, never a crash or a silent success")
    func fullStdout() throws {
        for args in [
            ["generate", "--model", inferenceFixture("chat"), "--prompt", "Hi", "--max-tokens", "4", "-q"],
            ["inspect", avFixture("base_BF16.safetensors")],
        ] {
            let r = try runProcess("/bin/sh", ["-c", "exec \"$0\" \"$@\" > /dev/full", avBinaryPath()] + args)
            #expect(r.status == 4, "\(args[0]): \(r.stderr)")
            #expect(r.stderr.contains("cannot write to standard output"))
        }
    }

    @Test("a full disk (file size limit) fails with exit 4, leaves no temporary, and keeps the existing output")
    func fullDisk() throws {
        let dir = TemporaryDirectory()
        let base = try medicalVector(in: dir)
        let first = try runAV([
            "merge", "--base", base, "--vectors", dir.path, "--medical", "0.5", "-o", dir.file("m.safetensors"), "-q",
        ])
        #expect(first.status == 0)
        let before = contents(dir.file("m.safetensors"))
        // SIGXFSZ ignored across exec: writes past the limit fail with EFBIG instead of killing av.
        let script = "trap '' XFSZ; ulimit -f 1; exec \"$0\" \"$@\""
        let r = try runProcess(
            "/bin/sh",
            [
                "-c", script, avBinaryPath(), "merge", "--base", base, "--vectors", dir.path, "--medical", "0.9", "-o",
                dir.file("m.safetensors"), "-q",
            ])
        #expect(r.status == 4, "\(r.stderr)")
        #expect(contents(dir.file("m.safetensors")) == before)
        #expect(temporaries(in: dir.path).isEmpty)
        let d = try runProcess(
            "/bin/sh",
            [
                "-c", script, avBinaryPath(), "diff", base, avFixture("legal_BF16.safetensors"), "-o",
                dir.file("legal.av"), "-q",
            ])
        #expect(d.status == 4 && !FileManager.default.fileExists(atPath: dir.file("legal.av")))
        #expect(temporaries(in: dir.path).isEmpty)
    }

    @Test(
        "SIGINT, SIGTERM and SIGHUP during a merge or a diff --encoding remove its temporaries; av dies of the signal"
    )
    func signals() throws {
        let dir = TemporaryDirectory()
        // A base large enough that the merge is still writing when the signal comes.
        let n = 12_000_000
        let specs = [TensorSpec(name: "w", dtype: .f32, shape: [n])]
        var values = [Float](repeating: 0, count: n)
        for i in 0..<n { values[i] = Float(i % 1000) * 0.001 }
        let bytes = values.withUnsafeBytes { Array($0) }
        try SafeTensorsWriter.write(path: dir.file("base.safetensors"), tensors: [(specs[0], bytes)])
        for i in stride(from: 0, to: n, by: 7) { values[i] += 0.5 }
        try SafeTensorsWriter.write(
            path: dir.file("aligned.safetensors"), tensors: [(specs[0], values.withUnsafeBytes { Array($0) })])
        let d = try runAV([
            "diff", dir.file("base.safetensors"), dir.file("aligned.safetensors"), "-o", dir.file("v.av"), "-q",
        ])
        #expect(d.status == 0)
        let inputs = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        // diff --encoding writes the dense vector to a hidden temporary beside the output first.
        // The signal comes when a temporary exists: for the encoding, once the dense vector is whole.
        var ready: (String) -> Bool = { _ in true }
        func hidden() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter {
                $0.hasPrefix(".") && ready($0)
            }
        }
        let merge = [
            "merge", "--base", dir.file("base.safetensors"), "--vectors", dir.path, "--v", "0.3", "-o",
            dir.file("out.safetensors"), "-q",
        ]
        let encode = [
            "diff", dir.file("base.safetensors"), dir.file("aligned.safetensors"), "-o", dir.file("out.safetensors"),
            "--encoding", "sparse", "--density", "0.1", "-q",
        ]
        for (arguments, signal) in [merge, encode].flatMap({ a in [SIGINT, SIGTERM, SIGHUP].map { (a, $0) } }) {
            // The command is stopped (SIGSTOP) once a temporary exists, so the signal surely comes
            // mid-run; a run that ended before it could be stopped is run again.
            ready = arguments[0] == "diff" ? { $0.hasSuffix(".av") } : { _ in true }
            var interrupted = false
            for _ in 0..<5 where !interrupted {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: avBinaryPath())
                process.arguments = arguments
                process.environment = ProcessInfo.processInfo.environment.merging(["AV_THREADS": "1"]) { _, new in new }
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                while process.isRunning && hidden().isEmpty { usleep(100) }
                kill(process.processIdentifier, SIGSTOP)
                guard process.isRunning, !hidden().isEmpty else {
                    kill(process.processIdentifier, SIGCONT)
                    process.waitUntilExit()
                    try? FileManager.default.removeItem(atPath: dir.file("out.safetensors"))
                    continue
                }
                kill(process.processIdentifier, signal)
                kill(process.processIdentifier, SIGCONT)
                process.waitUntilExit()
                interrupted = true
                #expect(
                    process.terminationReason == .uncaughtSignal && process.terminationStatus == signal,
                    "\(arguments[0]), signal \(signal)")
                #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == inputs)
            }
            #expect(interrupted, "\(arguments[0]) finished before it could be stopped, five times")
        }
    }

    /// End to end; that the exchange (not the two-rename fallback) ran is DirectoryExchangeTests'.
    @Test("a reader never sees a re-merged model directory missing or partial (atomic exchange)")
    func atomicExchange() throws {
        let dir = TemporaryDirectory()
        let base = try directoryModel(in: dir)
        let out = dir.file("merged")
        #expect(
            try runAV(["merge", "--base", base, "--vectors", dir.path, "--style", "0.1", "-o", out, "-q"]).status == 0)
        nonisolated(unsafe) var missing = 0
        nonisolated(unsafe) var looks = 0
        nonisolated(unsafe) var stop = false
        let watcher = Thread {
            while !stop {
                looks += 1
                if FileKind(of: out + "/model.safetensors") != .regular
                    || FileKind(of: out + "/config.json") != .regular
                {
                    missing += 1
                }
                usleep(100)  // a look every ~0.1 ms: the merges keep a core
            }
        }
        watcher.start()
        for i in 0..<10 {
            let r = try runAV(["merge", "--base", base, "--vectors", dir.path, "--style", "0.\(i)", "-o", out, "-q"])
            #expect(r.status == 0, "\(r.stderr)")
        }
        stop = true
        while !watcher.isFinished { usleep(1000) }
        #expect(looks > 100)
        #expect(missing == 0)
        #expect(temporaries(in: dir.path).isEmpty)
    }

    @Test("concurrent merges to one output: each run succeeds or fails cleanly; the result is one whole model")
    func concurrentWriters() throws {
        let dir = TemporaryDirectory()
        let base = try medicalVector(in: dir)
        let out = dir.file("m.safetensors")
        nonisolated(unsafe) var statuses: [Int32] = []
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let r = try? runAV([
                "merge", "--base", base, "--vectors", dir.path, "--medical", "0.\(i + 1)", "-o", out, "-q",
            ])
            lock.lock()
            statuses.append(r?.status ?? -1)
            lock.unlock()
        }
        #expect(statuses.allSatisfy { $0 == 0 })
        let inspect = try runAV(["inspect", out])
        #expect(inspect.status == 0 && inspect.stdout.contains("av.merge"))
        #expect(temporaries(in: dir.path).isEmpty)
    }

    @Test("inputs that used to crash or pass in silence are refused with exit 2 or 3")
    func badInputs() throws {
        let dir = TemporaryDirectory()
        let chat = inferenceFixture("chat")
        _ = try directoryModel(in: dir)
        func file(_ name: String, _ text: String) throws -> String {
            try Data(text.utf8).write(to: URL(fileURLWithPath: dir.file(name)))
            return dir.file(name)
        }
        let emptyPrompt = try file("empty.jsonl", #"{"prompt": "", "chosen": " b", "rejected": " c"}"# + "\n")
        let eval = try runAV(["eval", "--model", chat, "--pairs", emptyPrompt])
        #expect(
            eval.status == 3 && eval.stderr.contains("empty.jsonl line 1") && eval.stderr.contains("prompt is empty"))
        let sweep = try runAV([
            "sweep", "--base", chat, "--vectors", dir.path, "--style", "0:1:2", "--pairs", emptyPrompt,
        ])
        #expect(sweep.status == 3)
        let gen = try runAV(["generate", "--model", chat, "--prompt", ""])
        #expect(gen.status == 2 && gen.stderr.contains("--prompt is empty"))
        let threads = try runAV([
            "generate", "--model", chat, "--prompt", "Hi", "--max-tokens", "2", "--threads", "100000", "-q",
        ])
        #expect(threads.status == 0 && threads.stderr.contains("more than this machine can use"))
        for lambda in ["nan", "1e309", "-inf"] {
            let r = try runAV([
                "eval", "--base", chat, "--vectors", dir.path, "--style", lambda, "--pairs", emptyPrompt,
            ])
            #expect(r.status == 2 && r.stderr.contains("finite"), "\(lambda)")
        }
        let range = try runAV([
            "sweep", "--base", chat, "--vectors", dir.path, "--style", "nan:1:3", "--pairs", emptyPrompt,
        ])
        #expect(range.status == 2)
        let twice = try runAV([
            "eval", "--base", chat, "--vectors", dir.path, "--style", "0.5", "--style", "0.5", "--pairs", emptyPrompt,
        ])
        #expect(twice.status == 2 && twice.stderr.contains("domain 'style' is given twice"))
        let byFile = try runAV([
            "eval", "--base", chat, "--vectors", dir.path, "--style", "0.5", "--vector", dir.file("style.av") + "=0.5",
            "--text", emptyPrompt,
        ])
        #expect(byFile.status == 2 && byFile.stderr.contains("given twice"))
        let dupRecipe = try file(
            "dup.json", #"{"base": "\#(chat)", "vectors_dir": ".", "mix": {"style": 0.5, "style": 0.5}}"#)
        let dup = try runAV(["eval", "--recipe", dupRecipe, "--text", emptyPrompt])
        #expect(dup.status == 3 && dup.stderr.contains("appears twice"))
        // A config with rope_theta 0.
        let broken = dir.file("broken")
        try FileManager.default.copyItem(atPath: chat, toPath: broken)
        var config = String(decoding: contents(broken + "/config.json")!, as: UTF8.self)
        config = config.replacingOccurrences(of: "\"rope_theta\": 10000.0", with: "\"rope_theta\": 0")
        try Data(config.utf8).write(to: URL(fileURLWithPath: broken + "/config.json"))
        if config.contains("\"rope_theta\": 0") {
            let r = try runAV(["generate", "--model", broken, "--prompt", "Hi"])
            #expect(r.status == 3 && r.stderr.contains("rope_theta"))
        }
        // Missing inputs are exit 4 everywhere.
        let missingPairs = try runAV(["eval", "--model", chat, "--pairs", dir.file("nope.jsonl")])
        #expect(missingPairs.status == 4 && missingPairs.stderr.contains("no such file"))
        let missingDomain = try runAV([
            "eval", "--base", chat, "--vectors", dir.path, "--nope", "1", "--text", emptyPrompt,
        ])
        #expect(missingDomain.status == 4 && missingDomain.stderr.contains("nope.av does not exist"))
        let missingParent = try runAV([
            "diff", avFixture("base_BF16.safetensors"), avFixture("medical_BF16.safetensors"), "-o",
            dir.file("no/such/dir/x.av"),
        ])
        #expect(missingParent.status == 4 && missingParent.stderr.contains("does not exist"))
        // Invalid UTF-8 and CRLF/BOM lines.
        try Data([0x7B, 0x22, 0xFF, 0xFE, 0x0A]).write(to: URL(fileURLWithPath: dir.file("bad.jsonl")))
        let utf8 = try runAV(["eval", "--model", chat, "--pairs", dir.file("bad.jsonl")])
        #expect(utf8.status == 3 && utf8.stderr.contains("not valid UTF-8 (at byte 2)"))
        let crlf = try file("crlf.jsonl", "\u{FEFF}" + #"{"prompt": "a", "chosen": " b", "rejected": " c"}"# + "\r\n")
        #expect(try runAV(["eval", "--model", chat, "--pairs", crlf]).status == 0)
    }

    @Test("check validates every check before merging: thresholds, keys, files and empty data")
    func checkValidation() throws {
        let dir = TemporaryDirectory()
        let chat = try directoryModel(in: dir)
        try Data(#"{"prompt": "a", "chosen": " b", "rejected": " c"}"#.utf8).write(
            to: URL(fileURLWithPath: dir.file("pairs.jsonl")))
        try Data().write(to: URL(fileURLWithPath: dir.file("empty.txt")))
        let cases: [(String, Int32, String)] = [
            (#"{"type": "pairs", "file": "pairs.jsonl", "min_accuracy": 80}"#, 3, "a share from 0 to 1"),
            (#"{"type": "pairs", "file": "pairs.jsonl", "min_acuracy": 0.8}"#, 3, "unknown key \"min_acuracy\""),
            (#"{"type": "perplexity", "file": "missing.txt", "max": 10}"#, 4, "no such file"),
            (#"{"type": "kl", "prompts": "empty.txt", "max": 1}"#, 3, "a check with no data proves nothing"),
            (#"{"type": "tokenizer", "sample": ""}"#, 3, "a check with no data proves nothing"),
            (#"{"type": "levitate"}"#, 3, "unknown or missing \"type\""),
        ]
        for (check, status, message) in cases {
            let recipe =
                #"{"base": "\#(chat)", "vectors_dir": ".", "mix": {"style": 0.5}, "output": "out", "checks": [\#(check)]}"#
            try Data(recipe.utf8).write(to: URL(fileURLWithPath: dir.file("r.json")))
            let r = try runAV(["check", "--recipe", dir.file("r.json")])
            #expect(r.status == status && r.stderr.contains(message), "\(check): \(r.status) \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.file("out")), "nothing merged for \(check)")
        }
        // GitHub annotations escape %, CR and LF.
        try Data("a prompt\n".utf8).write(to: URL(fileURLWithPath: dir.file("prompts.txt")))
        let failing =
            #"{"base": "\#(chat)", "vectors_dir": ".", "mix": {"style": 0.5}, "checks": [{"name": "50% KL\nx", "type": "kl", "prompts": "prompts.txt", "max": 0}]}"#
        try Data(failing.utf8).write(to: URL(fileURLWithPath: dir.file("r.json")))
        let r = try runAV(["check", "--recipe", dir.file("r.json")], environment: ["GITHUB_ACTIONS": "true"])
        #expect(r.status == 1 && r.stdout.contains("::error title=av check::50%25 KL%0Ax: measured"), "\(r.stdout)")
    }
}

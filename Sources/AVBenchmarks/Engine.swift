import Foundation
import SafeTensors
import Tensors

#if canImport(Glibc)
    import Glibc
#endif

/// A Llama-shaped model's tensors: (name, shape) in state-dict order.
func llamaShapes(hidden: Int, intermediate: Int, layers: Int, vocab: Int, kvDim: Int, tied: Bool) -> [(String, [Int])] {
    var out: [(String, [Int])] = [("model.embed_tokens.weight", [vocab, hidden])]
    for l in 0..<layers {
        let p = "model.layers.\(l)."
        out += [
            (p + "input_layernorm.weight", [hidden]), (p + "self_attn.q_proj.weight", [hidden, hidden]),
            (p + "self_attn.k_proj.weight", [kvDim, hidden]), (p + "self_attn.v_proj.weight", [kvDim, hidden]),
            (p + "self_attn.o_proj.weight", [hidden, hidden]), (p + "post_attention_layernorm.weight", [hidden]),
            (p + "mlp.gate_proj.weight", [intermediate, hidden]), (p + "mlp.up_proj.weight", [intermediate, hidden]),
            (p + "mlp.down_proj.weight", [hidden, intermediate]),
        ]
    }
    out.append(("model.norm.weight", [hidden]))
    if !tied { out.append(("lm_head.weight", [vocab, hidden])) }
    return out
}

/// Writes a synthetic model: values from a seeded generator, the aligned variants the same base
/// stream plus small noise (`noiseSeed` 0 = the base itself). Chunks are generated on all cores.
func writeSynthetic(_ path: String, shapes: [(String, [Int])], dtype: DType, noiseSeed: UInt64, maxShardSize: Int) throws {
    guard let element = ElementType(dtype) else {
        throw SyntheticError(message: "\(dtype.rawValue) has no whole-byte elements")
    }
    let specs = shapes.map { TensorSpec(name: $0.0, dtype: dtype, shape: $0.1) }
    let writer = try ModelDirectoryWriter(path: path, tensors: specs, maxShardSize: maxShardSize)
    let chunk = 1 << 22
    let threads = Parallel.defaultThreads
    let floats = (0..<threads).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: chunk) }
    let bytes = UnsafeMutableRawPointer.allocate(byteCount: chunk * 8 * threads, alignment: 64)
    defer {
        floats.forEach { $0.deallocate() }
        bytes.deallocate()
    }
    let size = element.size
    while let t = writer.nextTensor {
        let n = t.elementCount
        let tensorSeed = UInt64(truncatingIfNeeded: t.name.hashValueStable)
        var start = 0
        while start < n {
            let batch = min(threads, (n - start + chunk - 1) / chunk)
            let first = start
            Parallel.forEach(batch, threads: threads) { w, j in
                let lo = first + j * chunk
                let m = min(chunk, n - lo)
                var s = tensorSeed &+ UInt64(lo) &* 0x9E37_79B9_7F4A_7C15 | 1
                var r = (tensorSeed ^ noiseSeed) &+ UInt64(lo) &* 0xBF58_476D_1CE4_E5B9 | 1
                let f = floats[w]
                for i in 0..<m {
                    s ^= s << 13
                    s ^= s >> 7
                    s ^= s << 17
                    var v = Float(Int32(truncatingIfNeeded: s >> 32)) * (0.02 / 2_147_483_648)
                    if noiseSeed != 0 {
                        r ^= r << 13
                        r ^= r >> 7
                        r ^= r << 17
                        v += Float(Int32(truncatingIfNeeded: r >> 32)) * (0.0002 / 2_147_483_648)
                    }
                    f[i] = v
                }
                Convert.fromFloat(dtype, from: f, count: m, into: bytes + j * chunk * size)
            }
            let count = min(n - start, batch * chunk)
            try writer.write(UnsafeRawBufferPointer(start: bytes, count: count * size))
            start += count
        }
    }
    try writer.finish()
}

extension String {
    /// A hash that is the same in every run (Swift's `hashValue` is seeded per process).
    var hashValueStable: UInt64 { Array(utf8).withUnsafeBytes { XXHash64.hash($0) } }
}

/// Wall time and peak resident memory of a child process.
struct ChildRun {
    var seconds: Double
    var maxRSS: Int
    var status: Int32
    var output: String
}

func runChild(_ executable: String, _ args: [String]) -> ChildRun {
    // posix_spawn and wait4 by hand: Foundation's Process reaps the child itself, and its rusage
    // (the peak RSS) would be lost.
    let outPath = "/tmp/av-bench-child-\(getpid()).out"
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let argv = ([executable] + args).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let start = Date()
    guard posix_spawn(&pid, executable, &actions, nil, argv, environ) == 0 else {
        return ChildRun(seconds: 0, maxRSS: 0, status: -1, output: "spawn failed")
    }
    posix_spawn_file_actions_destroy(&actions)
    // Peak RSS from /proc/PID/status (VmHWM, per address space), polled until the child exits:
    // the rusage maximum survives exec, so a child of a large parent would report the parent's.
    var status: Int32 = 0
    var usage = rusage()
    var peak = 0
    while wait4(pid, &status, WNOHANG, &usage) == 0 {
        if let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kb = Int(line.split(separator: " ").dropFirst().first ?? "")
        {
            peak = max(peak, kb * 1024)
        }
        usleep(20_000)
    }
    let seconds = Date().timeIntervalSince(start)
    let output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    unlink(outPath)
    return ChildRun(seconds: seconds, maxRSS: peak, status: (status >> 8) & 0xFF, output: output)
}

/// Empties the page cache (root only), so that a run reads its inputs from disk. False when not allowed.
@discardableResult
func dropCaches() -> Bool {
    sync()
    guard let f = fopen("/proc/sys/vm/drop_caches", "w") else { return false }
    defer { fclose(f) }
    return fputs("3\n", f) >= 0
}

/// The floor: read `inputs` sequentially with read(2) into one reused buffer, and write `outputBytes`
/// to a new file with write(2), then fsync it, as av does.
func ioFloor(inputs: [String], outputBytes: Int, scratchDir: String) -> Double {
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: 8 << 20, alignment: 4096)
    defer { buffer.deallocate() }
    memset(buffer, 1, 8 << 20)
    let start = Date()
    for path in inputs {
        let fd = open(path, O_RDONLY)
        while read(fd, buffer, 8 << 20) > 0 {}
        close(fd)
    }
    let out = scratchDir + "/floor.tmp"
    let fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var left = outputBytes
    while left > 0 {
        let n = write(fd, buffer, min(left, 8 << 20))
        if n <= 0 { break }
        left -= n
    }
    fsync(fd)
    close(fd)
    let t = Date().timeIntervalSince(start)
    unlink(out)
    return t
}

func weightFiles(_ dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted().map { dir + "/" + $0 }
}

func fileSize(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }

func totalSize(_ path: String) -> Int {
    var isDir: ObjCBool = false
    FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
    return isDir.boolValue ? weightFiles(path).reduce(0) { $0 + fileSize($1) } : fileSize(path)
}

/// Runs diff and a two-domain merge on a synthetic model against the I/O floor and a numpy script.
func benchEngine(
    name: String, shapes: [(String, [Int])], dtype: DType, maxShardSize: Int, workDir: String, repeats: Int, numpyScript: String?, cold: Bool
) throws {
    let av = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("av").path
    let dir = workDir + "/" + name
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let params = shapes.reduce(0) { $0 + $1.1.reduce(1, *) }
    print("\n== \(name): \(Format2.millions(params)) parameters, \(dtype.rawValue), shards of at most \(maxShardSize / 1_000_000) MB ==")
    for (model, seed) in [("base", UInt64(0)), ("medical", 1), ("legal", 2)] where !FileManager.default.fileExists(atPath: dir + "/" + model) {
        let t = Date()
        try writeSynthetic(dir + "/" + model, shapes: shapes, dtype: dtype, noiseSeed: seed, maxShardSize: maxShardSize)
        print(
            "generated \(model): \(weightFiles(dir + "/" + model).count) shards, \(Format2.gb(totalSize(dir + "/" + model))) in \(String(format: "%.1f", Date().timeIntervalSince(t))) s"
        )
    }
    func best(_ label: String, inputs: [String], output: String, expectedOutput: Int, command: [String]) -> (av: ChildRun, floor: Double) {
        var runs: [ChildRun] = []
        var floors: [Double] = []
        // Alternate floor and av runs; cold: empty the page cache before each, so both read from disk.
        for _ in 0..<repeats {
            if cold { dropCaches() }
            floors.append(ioFloor(inputs: inputs, outputBytes: max(totalSize(output), expectedOutput), scratchDir: dir))
            // Like the floor, av writes a new output: freeing the previous run's pages (85 ms for
            // 540 MB on tmpfs, in the rename that replaces it) is not part of the work measured.
            try? FileManager.default.removeItem(atPath: output)
            if cold { dropCaches() }
            let r = runChild(av, command + ["--quiet"])
            if r.status != 0 { print("\(label) failed: \(r.output)") }
            runs.append(r)
        }
        let b = runs.min { $0.seconds < $1.seconds }!
        let f = floors.min()!
        let inBytes = inputs.reduce(0) { $0 + fileSize($1) }
        print(
            String(
                format: "%@%@: av %.2f s, floor %.2f s -> %.0f%% of the floor (read %@, wrote %@); peak RSS %@ (max over runs %@)",
                label, cold ? " (cold cache)" : " (warm cache)", b.seconds, f, 100 * f / b.seconds, Format2.gb(inBytes), Format2.gb(totalSize(output)),
                Format2.mib(b.maxRSS), Format2.mib(runs.map(\.maxRSS).max()!)))
        return (b, f)
    }
    let base = dir + "/base"
    let baseBytes = totalSize(base)
    let avBytes = baseBytes / (ElementType(dtype)?.size ?? 4) * 4  // f32 deltas
    _ = best(
        "diff medical", inputs: weightFiles(base) + weightFiles(dir + "/medical"), output: dir + "/medical.av", expectedOutput: avBytes,
        command: ["diff", base, dir + "/medical", "-o", dir + "/medical.av"])
    if !FileManager.default.fileExists(atPath: dir + "/legal.av") {
        _ = runChild(av, ["diff", base, dir + "/legal", "-o", dir + "/legal.av", "--quiet"])
    }
    let merged = dir + "/merged"
    let m = best(
        "merge medical 0.5 + legal 1.2", inputs: weightFiles(base) + [dir + "/medical.av", dir + "/legal.av"], output: merged,
        expectedOutput: baseBytes, command: ["merge", "--base", base, "--vectors", dir, "--medical", "0.5", "--legal", "1.2", "-o", merged])
    if let numpyScript {
        let python = ProcessInfo.processInfo.environment["AV_PYTHON"] ?? "/usr/bin/python3"
        var times: [Double] = []
        for _ in 0..<max(1, repeats - 1) {
            try? FileManager.default.removeItem(atPath: dir + "/numpy-merged")
            if cold { dropCaches() }
            let r = runChild(python, [numpyScript, base, dir + "/medical.av", "0.5", dir + "/legal.av", "1.2", dir + "/numpy-merged"])
            if r.status != 0 { print("numpy script failed: \(r.output)") } else { times.append(r.seconds) }
        }
        if let t = times.min() {
            print(String(format: "numpy memmap merge: %.2f s -> av is %.1fx faster", t, t / m.av.seconds))
        }
        try? FileManager.default.removeItem(atPath: dir + "/numpy-merged")
    }
}

enum Format2 {
    static func gb(_ n: Int) -> String { String(format: "%.2f GB", Double(n) / 1e9) }
    static func mib(_ n: Int) -> String { String(format: "%.0f MiB", Double(n) / 1_048_576) }
    static func millions(_ n: Int) -> String { String(format: "%.0fM", Double(n) / 1e6) }
}

/// A synthetic model that cannot be written as asked.
struct SyntheticError: Error {
    var message: String
}

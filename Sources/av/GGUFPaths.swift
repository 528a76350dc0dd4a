import GGUF
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// Models given as `.gguf` files are converted, so every command that takes a model directory takes
/// a GGUF file too: weights in bf16 (`AV_GGUF_DTYPE` = f32, f16 or bf16), in memory (a directory on
/// the tmpfs /dev/shm) when it fits in half the available memory, else in `$TMPDIR` with a note
/// saying where and how large. Registered as temporaries: removed at exit and on signals.
enum GGUFPaths {
    nonisolated(unsafe) static var temporary: [String] = []
    /// Each conversion's directory → the `.gguf` it came from, for error messages.
    nonisolated(unsafe) static var sources: [String: String] = [:]

    /// `message` with each conversion's temporary directory replaced by the `.gguf` it was made
    /// from: the temporary is gone by the time the user reads the error.
    static func originals(in message: String) -> String {
        var out = message
        for (dir, gguf) in sources.sorted(by: { $0.key.count > $1.key.count }) {
            out = out.replacingAll(dir, with: "\(gguf) (converted)")
        }
        return out
    }
    /// Where the last conversion went: "memory" or "disk", for tests and reports.
    nonisolated(unsafe) static var lastPlace = ""

    static func resolve(_ path: String) throws -> String {
        guard path.hasSuffix(".gguf") else { return path }
        let file = try GGUFFile(path: path)
        let dtype = try dtypeFromEnvironment()
        let bytes = GGUFConverter.convertedBytes(file, dtype: dtype)
        sweepStale()
        // The PID in the name lets a later run tell a dead process's leftover from a live one's.
        let name = "av-gguf-\(getpid())-\(UUID().uuidString)"
        let dir: String
        if let shm = memoryDirectory(fitting: bytes) {
            dir = Path.join(shm, name)
            lastPlace = "memory"
        } else {
            dir = Path.join(temporaryDirectory(), name)
            lastPlace = "disk"
            let why =
                ProcessInfo.processInfo.environment["AV_GGUF_NO_MEMORY"] == nil
                ? "more than half the available memory" : "AV_GGUF_NO_MEMORY is set"
            printError(
                "av: converting \(path) to a \(dtype.rawValue) temporary of \(Format.bytes(bytes)) in \(dir)"
                    + " (not in memory: \(why); removed when av exits)")
        }
        TemporaryFiles.register(dir, directory: true)
        sources[dir] = path
        try GGUFConverter.convert(file, to: dir, dtype: dtype)
        temporary.append(dir)
        return dir
    }

    static func cleanUp() {
        for dir in temporary {
            try? FileManager.default.removeItem(atPath: dir)
            TemporaryFiles.unregister(dir)
        }
    }

    /// The dtype of on-the-fly conversions: `AV_GGUF_DTYPE`, bf16 by default.
    static func dtypeFromEnvironment() throws -> DType {
        guard let text = ProcessInfo.processInfo.environment["AV_GGUF_DTYPE"], !text.isEmpty else { return .bf16 }
        guard let d = DType(userSpelling: text), [.f32, .bf16, .f16].contains(d) else {
            throw UsageError(message: "AV_GGUF_DTYPE must be f32, bf16 or f16, not '\(text)'")
        }
        return d
    }

    /// Removes `av-gguf-PID-…` conversions whose process is gone (it was killed with SIGKILL, or
    /// crashed inside the allocator, where the crash cleanup cannot run), from /dev/shm and `$TMPDIR`.
    static func sweepStale() {
        for place in ["/dev/shm", temporaryDirectory()] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: place)) ?? []
            for name in names where name.hasPrefix("av-gguf-") {
                let fields = name.dropFirst("av-gguf-".count).split(separator: "-", maxSplits: 1)
                guard fields.count == 2, let pid = Int32(fields[0]), pid > 0, pid != getpid() else { continue }
                // ESRCH: no such process. EPERM means it lives under another user: left alone.
                guard kill(pid, 0) == -1, errno == ESRCH else { continue }
                try? FileManager.default.removeItem(atPath: Path.join(place, name))
            }
        }
    }

    /// `$TMPDIR`, or /tmp.
    static func temporaryDirectory() -> String {
        let env = ProcessInfo.processInfo.environment["TMPDIR"] ?? ""
        return env.isEmpty ? "/tmp" : env
    }

    /// /dev/shm when it is a writable directory with room for `bytes`, and `bytes` is at most half
    /// of the memory available (MemAvailable); nil otherwise.
    static func memoryDirectory(fitting bytes: Int) -> String? {
        let shm = "/dev/shm"
        guard ProcessInfo.processInfo.environment["AV_GGUF_NO_MEMORY"] == nil, access(shm, W_OK) == 0 else {
            return nil
        }
        var fs = statvfs()
        guard statvfs(shm, &fs) == 0 else { return nil }
        let free = Int(fs.f_bavail) * Int(fs.f_frsize)
        guard let available = availableMemory(), bytes <= available / 2, bytes <= free else { return nil }
        return shm
    }

    /// MemAvailable from /proc/meminfo, in bytes.
    static func availableMemory() -> Int? {
        guard let data = FileManager.default.contents(atPath: "/proc/meminfo") else { return nil }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let kib = Int(fields[1]) { return kib * 1024 }
        }
        return nil
    }
}

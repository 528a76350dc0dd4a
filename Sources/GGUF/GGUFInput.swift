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

/// The policy for models given as `.gguf` files: each is converted, so every command that takes a
/// model directory takes a GGUF file too: weights in bf16 (`AV_GGUF_DTYPE` = f32, f16 or bf16), in
/// memory (a directory on the tmpfs /dev/shm) when it fits in half the available memory, else in
/// `$TMPDIR` with a note on standard error saying where and how large. Registered as temporaries:
/// removed by `cleanUp()`, and on signals and crashes.
public enum GGUFInput {
    /// A setting in the environment that av cannot use (a usage error: nothing was read).
    public struct SettingError: Error, CustomStringConvertible {
        /// What is wrong, naming the variable.
        public var description: String
    }

    nonisolated(unsafe) static var temporary: [String] = []
    /// Each conversion's directory → the `.gguf` it came from, for error messages.
    nonisolated(unsafe) public private(set) static var sources: [String: String] = [:]

    /// `message` with each conversion's temporary directory replaced by the `.gguf` it was made
    /// from: the temporary is gone by the time the user reads the error.
    public static func originals(in message: String) -> String {
        var out = message
        for (dir, gguf) in sources.sorted(by: { $0.key.count > $1.key.count }) {
            out = out.replacingAll(dir, with: "\(gguf) (converted)")
        }
        return out
    }
    /// Where the last conversion went: "memory" or "disk", for tests and reports.
    nonisolated(unsafe) public private(set) static var lastPlace = ""

    /// The model directory for `path`: itself, or for a `.gguf` its conversion. `like`, the dtype the
    /// vectors to be mixed into it record for their base, is used for the weights (unless
    /// `AV_GGUF_DTYPE` says otherwise) and for 1-D tensors that hold it exactly, so a GGUF made from
    /// the vectors' base without loss is recognized as that base.
    /// - Throws: `GGUFError` for a malformed file; `SettingError` for an `AV_GGUF_DTYPE` that is not
    ///   f32, bf16 or f16.
    public static func resolve(_ path: String, like: String? = nil) throws -> String {
        guard path.hasSuffix(".gguf") else { return path }
        let file = try GGUFFile(path: path)
        let recorded = like.flatMap { DType(userSpelling: $0) }.flatMap { [.f32, .bf16, .f16].contains($0) ? $0 : nil }
        let explicit = ProcessInfo.processInfo.environment["AV_GGUF_DTYPE"].map { !$0.isEmpty } ?? false
        let dtype = explicit ? try dtypeFromEnvironment() : recorded ?? .bf16
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
            let size = ByteCount.describe(bytes)
            note(
                "av: converting \(path) to a \(dtype.rawValue) temporary of \(size) in \(dir)"
                    + " (not in memory: \(why); removed when av exits)")
        }
        TemporaryFiles.register(dir, directory: true)
        sources[dir] = path
        try GGUFConverter.convert(file, to: dir, dtype: dtype, vectors: recorded)
        temporary.append(dir)
        return dir
    }

    /// Removes every conversion this process made (at exit).
    public static func cleanUp() {
        for dir in temporary {
            try? FileManager.default.removeItem(atPath: dir)
            TemporaryFiles.unregister(dir)
        }
    }

    /// The dtype of on-the-fly conversions: `AV_GGUF_DTYPE`, bf16 by default.
    static func dtypeFromEnvironment() throws -> DType {
        guard let text = ProcessInfo.processInfo.environment["AV_GGUF_DTYPE"], !text.isEmpty else { return .bf16 }
        guard let d = DType(userSpelling: text), [.f32, .bf16, .f16].contains(d) else {
            throw SettingError(description: "AV_GGUF_DTYPE must be f32, bf16 or f16, not '\(text)'")
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

    /// Writes `text` to standard error (file descriptor 2), unbuffered.
    private static func note(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.append(0x0A)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
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

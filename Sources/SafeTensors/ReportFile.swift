#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

import Tensors

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a report, a plot or a recipe (`--report`, `--junit`, `--plot`, `--write-recipe`) where the
/// user asked, by what the path is (following links):
///
/// - missing, or a regular file: a temporary beside it renamed over it (atomic); through a symbolic
///   link, the link stays and its target is replaced;
/// - one of av's own descriptors (`/dev/stdout`, `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N`):
///   written through that descriptor, whatever it is open on, after what av printed before; a file
///   the shell opened with `>` or `>>` keeps it;
/// - a FIFO or a character device (a pipe, a terminal): written through; a failed write
///   (`/dev/full`) is an I/O error, exit 4;
/// - a directory, a block device, a socket, a dangling link: refused, naming it.
///
/// An input of the same run is never a report target.
public enum ReportFile {
    /// Refuses, before any work is done, a path `write` would refuse.
    public static func check(_ path: String, inputs: [String] = []) throws(SafeTensorsError) {
        let target = FileKind(of: path, followingLinks: true)
        switch target {
        case .missing:
            if FileKind(of: path) == .symbolicLink {
                throw SafeTensorsError(file: path, .refusedOutput(message: "is a symbolic link to a missing file"))
            }
            try OutputGuard.checkParent(of: path)
        case .regular:
            if let input = inputs.first(where: { OutputGuard.sameFile($0, path) }) {
                throw SafeTensorsError(
                    file: path, .refusedOutput(message: "is also an input (\(input)); inputs are never written"))
            }
        case .fifo, .characterDevice:
            break
        default:
            throw SafeTensorsError(
                file: path,
                .refusedOutput(message: "is \(target.phrase); a report goes to a regular file, a FIFO or a terminal"))
        }
    }

    /// Writes `text` to `path` by the rules above.
    public static func write(_ text: String, to path: String, inputs: [String] = []) throws(SafeTensorsError) {
        try check(path, inputs: inputs)
        if let descriptor = ownDescriptor(path) {
            try writeThrough(text, to: path, descriptor: descriptor)
            return
        }
        switch FileKind(of: path, followingLinks: true) {
        case .fifo, .characterDevice:
            try writeThrough(text, to: path)
        default:
            try AtomicFile.write(text, to: FileKind(of: path) == .symbolicLink ? OutputGuard.canonical(path) : path)
        }
    }

    /// The descriptor of this process that `path` names, following symbolic links: `/dev/stdout` is
    /// `/proc/self/fd/1` on Linux. Such a path is not a file to replace: renaming over its target
    /// would drop what av already wrote to it (`av check --report /dev/stdout >> log` would empty
    /// the log).
    static func ownDescriptor(_ path: String) -> Int32? {
        var current = path
        for _ in 0..<16 {
            for prefix in ["/dev/fd/", "/proc/self/fd/", "/proc/\(getpid())/fd/"] where current.hasPrefix(prefix) {
                if let n = Int32(current.dropFirst(prefix.count)), n >= 0 { return n }
            }
            if current == "/dev/stdout" { return 1 }
            if current == "/dev/stderr" { return 2 }
            guard FileKind(of: current) == .symbolicLink, let target = linkTarget(current) else { return nil }
            current = target.hasPrefix("/") ? target : Path.join(Path.parent(current), target)
        }
        return nil
    }

    /// What the symbolic link at `path` points to, as written in the link.
    private static func linkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Opens an existing FIFO or character device (or duplicates `descriptor`) and writes all of
    /// `text` to it, after what av printed to its standard streams.
    private static func writeThrough(_ text: String, to path: String, descriptor: Int32? = nil)
        throws(SafeTensorsError)
    {
        fflush(nil)
        let fd = descriptor.map { dup($0) } ?? open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else {
            throw SafeTensorsError(file: path, .io(operation: "open for writing", message: errnoText()))
        }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                #if canImport(Glibc)
                    Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                #else
                    Darwin.write(fd, raw.baseAddress! + offset, raw.count - offset)
                #endif
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError(file: path, .io(operation: "write", message: errnoText()))
            }
            offset += n
        }
    }
}

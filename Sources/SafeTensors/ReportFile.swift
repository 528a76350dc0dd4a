#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a report, a plot or a recipe (`--report`, `--junit`, `--plot`, `--write-recipe`) where the
/// user asked, by what the path is:
///
/// | the path is (following links) | av |
/// |---|---|
/// | missing, or a regular file | writes a temporary beside it and renames it over (atomic); through a symbolic link, the link stays and its target is replaced |
/// | a FIFO or a character device (`/dev/stdout`, a pipe, a terminal) | writes through it; a failed write (`/dev/full`) is an I/O error, exit 4 |
/// | a directory, a block device, a socket, a dangling link | refuses, naming it |
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
        switch FileKind(of: path, followingLinks: true) {
        case .fifo, .characterDevice:
            try writeThrough(text, to: path)
        default:
            try AtomicFile.write(text, to: FileKind(of: path) == .symbolicLink ? OutputGuard.canonical(path) : path)
        }
    }

    /// Opens an existing FIFO or character device and writes all of `text` to it.
    private static func writeThrough(_ text: String, to path: String) throws(SafeTensorsError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY)
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

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

/// Path arithmetic and file questions on plain strings, the few that `NSString` and full Foundation
/// used to answer (av imports only FoundationEssentials, to stay a small self-contained binary).
public enum Path {
    /// `directory` and `name` joined by one `/` (`name` alone when `directory` is empty).
    public static func join(_ directory: String, _ name: String) -> String {
        if directory.isEmpty { return name }
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// The path without its last component: `"a/b/c"` → `"a/b"`, `"c"` → `""`, `"/c"` → `"/"`.
    /// Trailing slashes are ignored, as `NSString.deletingLastPathComponent` ignores them.
    public static func parent(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "" }
        if slash == p.startIndex { return "/" }
        var head = p[..<slash]
        while head.count > 1 && head.hasSuffix("/") { head = head.dropLast() }
        return String(head)
    }

    /// The last component of `path`, trailing slashes ignored: `"a/b/"` → `"b"`.
    public static func lastComponent(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return String(p) }
        return p.count == 1 ? String(p) : String(p[p.index(after: slash)...])
    }

    /// The size in bytes of what `path` names (following links), or nil when nothing is there.
    public static func fileSize(_ path: String) -> Int? {
        var s = stat()
        guard stat(path, &s) == 0 else { return nil }
        return Int(s.st_size)
    }

    /// Whether `path` (following links) is a directory; `nil` when nothing is there.
    public static func isDirectory(_ path: String) -> Bool? {
        var s = stat()
        guard stat(path, &s) == 0 else { return nil }
        return s.st_mode & S_IFMT == S_IFDIR
    }
}

/// A one-line human description of `error`, for messages: the system's words for a file error
/// (`strerror` of the POSIX code under a Foundation file error), else the error's own description.
public func describe(_ error: any Error) -> String {
    if let posix = error as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
    if let cocoa = error as? CocoaError {
        if let posix = cocoa.userInfo["NSUnderlyingError"] as? POSIXError {
            return String(cString: strerror(posix.code.rawValue))
        }
        switch cocoa.code {
        case .fileNoSuchFile, .fileReadNoSuchFile: return "No such file or directory"
        case .fileReadNoPermission, .fileWriteNoPermission: return "Permission denied"
        case .fileWriteFileExists: return "File exists"
        case .fileWriteOutOfSpace: return "No space left on device"
        case .fileReadCorruptFile: return "The data is not in the expected format"
        default: return "file error \(cocoa.code.rawValue)"
        }
    }
    if let described = error as? CustomStringConvertible { return described.description }
    return "\(error)"
}

import Tensors

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

/// What a path is on disk, looked at without following a final symbolic link.
public enum FileKind: Equatable, Sendable {
    case missing, regular, directory, symbolicLink, characterDevice, blockDevice, fifo, socket

    /// The kind of `path` itself (`lstat`), or of what it points to with `followingLinks`.
    public init(of path: String, followingLinks: Bool = false) {
        var s = stat()
        let rc = followingLinks ? stat(path, &s) : lstat(path, &s)
        guard rc == 0 else {
            self = .missing
            return
        }
        switch s.st_mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFLNK: self = .symbolicLink
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        case S_IFIFO: self = .fifo
        default: self = .socket
        }
    }

    /// "a character device", for messages.
    public var phrase: String {
        switch self {
        case .missing: "missing"
        case .regular: "a regular file"
        case .directory: "a directory"
        case .symbolicLink: "a symbolic link"
        case .characterDevice: "a character device"
        case .blockDevice: "a block device"
        case .fifo: "a FIFO"
        case .socket: "a socket"
        }
    }
}

/// The checks every output goes through before av writes a byte: av replaces only what it could
/// have written itself, and never an input.
///
/// - A file output (an AV, a merged `.safetensors`) may be missing or a regular file. A symbolic
///   link, a directory, a device, a FIFO or a socket is refused: replacing it would turn `/dev/full`
///   into a file or cut a link.
/// - A model-directory output may be missing or a directory that holds only what a model directory
///   holds (weights, index, config, tokenizer and generation files, and the files the new output will
///   hold); anything else in it is named and refused, since replacing the directory would delete it.
/// - No output may be an input, or contain one (a file, a vectors directory, a recipe).
public enum OutputGuard {
    /// Names a model directory holds besides `*.safetensors` shards.
    public static let modelDirectoryFiles: Set<String> = [
        HFNames.indexFile, "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
        "chat_template.jinja", "chat_template.json", "preprocessor_config.json",
    ]

    /// Refuses `path` as a file destination unless it is missing or a regular file that is no input,
    /// and unless its directory exists.
    public static func checkFile(_ path: String, inputs: [String]) throws(SafeTensorsError) {
        try checkParent(of: path)
        let kind = FileKind(of: path)
        switch kind {
        case .missing: break
        case .regular:
            if let input = inputs.first(where: { sameFile($0, path) }) {
                throw SafeTensorsError(
                    file: path, .refusedOutput(message: "is also an input (\(input)); inputs are never written"))
            }
        default:
            throw refusal(path, kind, "av writes this output only as a regular file")
        }
        try checkNotContaining(path, inputs: inputs)
    }

    /// Refuses `path` as a model-directory destination unless it is missing or a real directory whose
    /// every entry is a model file or one of `willWrite`, and no input is it or lies inside it.
    public static func checkModelDirectory(_ path: String, willWrite: Set<String>, inputs: [String])
        throws(SafeTensorsError)
    {
        try checkParent(of: path)
        let kind = FileKind(of: path)
        switch kind {
        case .missing: return
        case .directory: break
        default:
            throw refusal(path, kind, "a model directory cannot replace it")
        }
        try checkNotContaining(path, inputs: inputs)
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        } catch {
            throw SafeTensorsError(
                file: path,
                .io(operation: "list the existing output directory", message: describe(error)))
        }
        let dir = path.hasSuffix("/") ? path : path + "/"
        for name in entries {
            let entryKind = FileKind(of: dir + name)
            let known = name.hasSuffix(".safetensors") || modelDirectoryFiles.contains(name) || willWrite.contains(name)
            guard known, entryKind == .regular else {
                let what = entryKind == .regular ? "" : " (\(entryKind.phrase))"
                throw SafeTensorsError(
                    file: path,
                    .refusedOutput(
                        message:
                            "exists and holds \(JSONWriter.quoted(name))\(what), which is not part of a model"
                            + " directory; "
                            + "av replaces an existing directory only when it holds nothing but model files (choose"
                            + " another -o, or move it away)"
                    ))
            }
        }
    }

    /// The refusal of an existing `path` of `kind`: links are named as such, since replacing one would
    /// cut it (the user means the path it points to).
    static func refusal(_ path: String, _ kind: FileKind, _ rule: String) -> SafeTensorsError {
        if kind == .symbolicLink {
            return SafeTensorsError(
                file: path,
                .refusedOutput(
                    message: "is a symbolic link; av does not replace links (write to the path it points to)"))
        }
        return SafeTensorsError(file: path, .refusedOutput(message: "exists and is \(kind.phrase); \(rule)"))
    }

    /// Refuses an output that is an input or an input's ancestor directory.
    public static func checkNotContaining(_ path: String, inputs: [String]) throws(SafeTensorsError) {
        let out = canonical(path)
        for input in inputs {
            let i = canonical(input)
            if i == out || i.hasPrefix(out.hasSuffix("/") ? out : out + "/") {
                throw SafeTensorsError(
                    file: path,
                    .refusedOutput(
                        message: i == out
                            ? "is also an input (\(input)); inputs are never written"
                            : "contains an input (\(input)); inputs are never written"))
            }
        }
    }

    /// Refuses a destination whose directory does not exist or is not a directory.
    static func checkParent(of path: String) throws(SafeTensorsError) {
        let trimmed = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        let dir = splitPath(trimmed).dir
        guard !dir.isEmpty else { return }
        let kind = FileKind(of: dir, followingLinks: true)
        guard kind == .directory else {
            throw SafeTensorsError(
                file: path,
                .io(
                    operation: "write",
                    message: kind == .missing
                        ? "the directory \(dir) does not exist" : "\(dir) is \(kind.phrase), not a directory"))
        }
    }

    /// Whether two paths name the same existing file (device and inode).
    public static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat()
        var sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    /// `path` absolute, with symbolic links and `..` resolved as far as it exists.
    public static func canonical(_ path: String) -> String {
        if let real = realpath(path, nil) {
            defer { free(real) }
            return String(cString: real)
        }
        // A missing path: resolve its directory and append the name.
        let trimmed = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        let (dir, name) = splitPath(trimmed)
        if let real = realpath(dir.isEmpty ? "." : dir, nil) {
            defer { free(real) }
            let base = String(cString: real)
            return (base.hasSuffix("/") ? base : base + "/") + name
        }
        return URL(fileURLWithPath: path).standardizedFileURL.path
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Something that takes bytes in order: a file being written, a shard, a whole model directory.
public protocol ByteSink {
    func write(_ bytes: UnsafeRawBufferPointer) throws(SafeTensorsError)
}

extension ByteSink {
    /// Appends the bytes of an array.
    public func write(_ bytes: [UInt8]) throws(SafeTensorsError) {
        // withUnsafeBytes rethrows untyped errors; carry the typed one out in a Result.
        let result: Result<Void, SafeTensorsError> = bytes.withUnsafeBytes { raw in
            do throws(SafeTensorsError) { return .success(try write(raw)) } catch { return .failure(error) }
        }
        try result.get()
    }
}

/// A file written under a temporary name beside its destination and renamed into place on `commit`.
///
/// Until `commit` succeeds the destination is untouched; `abort` (or releasing the value without
/// committing) removes the temporary. A crash leaves at most a `.NAME.tmp-*` file, never a partial
/// destination. Small writes go through a reused buffer so many of them cost few system calls.
public final class AtomicFile: ByteSink {
    /// The path the file is renamed to by `commit`.
    public let destination: String
    /// Where the bytes go until then (`.NAME.tmp-PID-RANDOM` beside the destination).
    public let temporaryPath: String
    private var fd: Int32
    private var buffer: UnsafeMutableRawBufferPointer
    private var buffered = 0
    /// Bytes appended so far, buffered ones included.
    public private(set) var bytesWritten = 0
    private var done = false

    /// Pieces at least this large skip the buffer.
    static let directBytes = 256 << 10

    /// Creates the temporary file beside `destination`; writes of under `bufferSize` bytes are gathered.
    /// - Throws: `.refusedOutput` for a destination that exists and is not a regular file; `.io` when its
    ///   directory is missing or the temporary cannot be created.
    public init(destination: String, bufferSize: Int = 4 << 20) throws(SafeTensorsError) {
        self.destination = destination
        let kind = FileKind(of: destination)
        guard kind == .missing || kind == .regular else {
            throw SafeTensorsError(
                file: destination,
                .refusedOutput(message: "exists and is \(kind.phrase); av replaces only regular files"))
        }
        try OutputGuard.checkParent(of: destination)
        let (dir, name) = splitPath(destination)
        var attempt = 0
        var path: String
        var handle: Int32
        repeat {
            path = dir + "." + name + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let candidate = path
            handle = TemporaryFiles.creating(candidate, directory: false) {
                open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            }
            if handle < 0 { TemporaryFiles.unregister(candidate) }
            attempt += 1
        } while handle < 0 && errno == EEXIST && attempt < 16
        guard handle >= 0 else {
            throw SafeTensorsError(
                file: destination,
                .io(operation: "create a temporary file in \(dir.isEmpty ? "." : dir)", message: errnoText()))
        }
        fd = handle
        temporaryPath = path
        buffer = .allocate(byteCount: bufferSize, alignment: 64)
    }

    /// Appends `bytes`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(SafeTensorsError) {
        precondition(!done, "write after commit or abort")
        // Large pieces go straight to the file: copying them into the buffer first costs a pass.
        if bytes.count >= min(buffer.count, Self.directBytes) {
            try flushBuffer()
            try writeAll(bytes)
            return
        }
        if buffered + bytes.count > buffer.count { try flushBuffer() }
        if let src = bytes.baseAddress, let dst = buffer.baseAddress {
            (dst + buffered).copyMemory(from: src, byteCount: bytes.count)
        }
        buffered += bytes.count
        bytesWritten += bytes.count
    }

    private func flushBuffer() throws(SafeTensorsError) {
        guard buffered > 0 else { return }
        let n = buffered
        buffered = 0
        try writeAll(UnsafeRawBufferPointer(start: buffer.baseAddress, count: n), counted: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer, counted: Bool = false) throws(SafeTensorsError) {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = systemWrite(fd, p, left)
            if n < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError(file: destination, .io(operation: "write", message: errnoText()))
            }
            p += n
            left -= n
        }
        if !counted { bytesWritten += bytes.count }
    }

    /// Cuts the file back to `offset` bytes and continues writing from there (drops a tensor that
    /// turned out not to be needed).
    public func rewind(to offset: Int) throws(SafeTensorsError) {
        precondition(offset <= bytesWritten, "rewind past the end")
        try flushBuffer()
        guard ftruncate(fd, off_t(offset)) == 0, lseek(fd, off_t(offset), SEEK_SET) == off_t(offset) else {
            throw SafeTensorsError(file: destination, .io(operation: "truncate", message: errnoText()))
        }
        bytesWritten = offset
    }

    /// Writes `bytes` at `offset`, within what was already written (fills a reserved header).
    public func overwrite(_ bytes: [UInt8], at offset: Int) throws(SafeTensorsError) {
        precondition(offset + bytes.count <= bytesWritten, "overwrite past the end")
        try flushBuffer()
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
        guard n == bytes.count else {
            throw SafeTensorsError(file: destination, .io(operation: "write", message: errnoText()))
        }
    }

    /// Flushes, syncs to disk, and renames the temporary over the destination.
    public func commit() throws(SafeTensorsError) {
        precondition(!done, "commit twice")
        do throws(SafeTensorsError) {
            try flushBuffer()
            guard fsync(fd) == 0 else {
                throw SafeTensorsError(file: destination, .io(operation: "fsync", message: errnoText()))
            }
            guard close(fd) == 0 else {
                throw SafeTensorsError(file: destination, .io(operation: "close", message: errnoText()))
            }
            fd = -1
            guard rename(temporaryPath, destination) == 0 else {
                throw SafeTensorsError(file: destination, .io(operation: "rename into place", message: errnoText()))
            }
            done = true
            TemporaryFiles.unregister(temporaryPath)
            syncDirectory(of: destination)
        } catch {
            abort()
            throw error
        }
    }

    /// Removes the temporary file; the destination is left as it was.
    public func abort() {
        guard !done else { return }
        done = true
        if fd >= 0 { close(fd) }
        fd = -1
        unlink(temporaryPath)
        TemporaryFiles.unregister(temporaryPath)
    }

    deinit {
        abort()
        buffer.deallocate()
    }
}

@inline(__always)
private func systemWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
        Glibc.write(fd, p, n)
    #else
        Darwin.write(fd, p, n)
    #endif
}

/// Directory part (with a trailing slash, or empty) and last component of `path`.
func splitPath(_ path: String) -> (dir: String, name: String) {
    guard let slash = path.lastIndex(of: "/") else { return ("", path) }
    return (String(path[...slash]), String(path[path.index(after: slash)...]))
}

/// fsync on the directory holding `path`, so a rename survives a crash.
func syncDirectory(of path: String) {
    let dir = splitPath(path).dir
    let fd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd >= 0 {
        _ = fsync(fd)
        close(fd)
    }
}

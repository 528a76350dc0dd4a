#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The current `errno` as text.
func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

/// A whole file mapped read-only into memory.
///
/// Opening costs one `mmap` call, whatever the file's size: no byte is read until it is touched,
/// and the kernel may drop clean pages under pressure, so mapping a checkpoint larger than RAM is
/// fine. The mapping is private and read-only: nothing done through it can change the file.
public final class MappedFile: @unchecked Sendable {
    /// The file's path as given.
    public let path: String
    /// The file's size in bytes when it was mapped.
    public let size: Int
    /// The first byte of the mapping; a valid, empty buffer for an empty file.
    public let bytes: UnsafeRawBufferPointer

    /// Opens and maps `path` whole, read-only.
    /// - Throws: `.io` naming the operation that failed (open, stat, mmap).
    public init(path: String) throws(SafeTensorsError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SafeTensorsError(file: path, .io(operation: "open", message: errnoText())) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw SafeTensorsError(file: path, .io(operation: "stat", message: errnoText()))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw SafeTensorsError(file: path, .notAFile) }
        size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw SafeTensorsError(file: path, .io(operation: "mmap", message: errnoText()))
        }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    /// Tells the kernel the pages of `range` will be read soon (sequentially).
    public func willNeed(_ range: Range<Int>) { advise(range, MADV_WILLNEED) }

    /// Maps every page of the file into this process now, reading what the page cache lacks, so
    /// that first touches later take no page fault (Linux 5.14's `MADV_POPULATE_READ`: one call
    /// instead of a fault per few pages). Returns false, doing nothing, where that is unsupported.
    @discardableResult
    public func populate() -> Bool {
        #if os(Linux)
            guard let base = bytes.baseAddress else { return true }
            let populateRead: Int32 = 22  // MADV_POPULATE_READ, <linux/mman.h>
            return madvise(UnsafeMutableRawPointer(mutating: base), size, populateRead) == 0
        #else
            return false
        #endif
    }

    /// Asks for the file's pages in 2 MiB folios, mapped by one page-table entry each (Linux
    /// `MADV_HUGEPAGE` on a file mapping, where transparent huge pages are `madvise` or `always`):
    /// pages read after this come in 2 MiB pieces, and reading a whole model at every step costs 512×
    /// fewer TLB misses than in 4 KiB pages. Pages already cached keep their size. Harmless elsewhere.
    public func adviseHugePages() {
        #if os(Linux)
            advise(0..<size, 14)  // MADV_HUGEPAGE, <linux/mman.h>
        #endif
    }

    /// Drops the pages of `range` from this process: they are clean file pages, so this only lowers
    /// resident memory; reading them again faults them back in from the page cache or disk.
    public func release(_ range: Range<Int>) { advise(range, MADV_DONTNEED) }

    private func advise(_ range: Range<Int>, _ advice: Int32) {
        guard let base = bytes.baseAddress, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = max(0, range.lowerBound) / page * page
        let hi = min(size, range.upperBound)
        guard hi > lo else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + lo), hi - lo, advice)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }
}

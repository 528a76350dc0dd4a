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

/// Every temporary file and directory av has made and not yet renamed into place or removed, so
/// that SIGINT, SIGTERM or SIGHUP can remove them before the process dies (git's tempfile.c does the
/// same), and `installCrashCleanup` on crash signals. A `kill -9` cannot be caught: it may leave a hidden `.NAME.tmp-PID-RANDOM` beside the
/// destination (or `.NAME.old-PID-RANDOM` during a directory swap), which is safe to delete.
public enum TemporaryFiles {
    private static let lock = Lock()
    nonisolated(unsafe) private static var paths: [String: Bool] = [:]
    nonisolated(unsafe) private static var installed = false

    /// Records a temporary; `directory` says whether removal is recursive.
    public static func register(_ path: String, directory: Bool) {
        lock.lock()
        paths[path] = directory
        CrashCleanup.add(path, directory: directory)
        lock.unlock()
    }

    /// Creates a temporary with `make` while holding the registry, and records it when `make`
    /// succeeds: a signal cannot fall between the creation and the record, so no temporary escapes.
    public static func creating<T>(_ path: String, directory: Bool, _ make: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        let value = try make()
        paths[path] = directory
        CrashCleanup.add(path, directory: directory)
        return value
    }

    /// Forgets a temporary that was renamed into place or removed.
    public static func unregister(_ path: String) {
        lock.lock()
        paths[path] = nil
        CrashCleanup.remove(path)
        lock.unlock()
    }

    /// The temporaries registered now (for tests).
    public static var registered: [String] {
        lock.lock()
        defer { lock.unlock() }
        return paths.keys.sorted()
    }

    /// Removes every registered temporary. With `forever`, the registry stays locked afterwards, so
    /// no thread can create another temporary before the process dies.
    public static func removeAll(forever: Bool = false) {
        lock.lock()
        let all = paths
        paths = [:]
        for path in all.keys { CrashCleanup.remove(path) }
        for (path, isDirectory) in all {
            if isDirectory { try? FileManager.default.removeItem(atPath: path) } else { unlink(path) }
        }
        if !forever { lock.unlock() }
    }

    /// Removes the registered temporaries when the process crashes (a Swift trap, an abort, a
    /// segmentation fault), then lets the crash go on as before: see `CrashCleanup`.
    public static func installCrashCleanup() {
        lock.lock()
        defer { lock.unlock() }
        CrashCleanup.install()
        for (path, directory) in paths { CrashCleanup.add(path, directory: directory) }
    }

    /// Blocks SIGINT, SIGTERM and SIGHUP in every thread and waits for them on one thread of its own,
    /// which removes the temporaries and then dies of the same signal (so the parent sees it).
    /// Call it first thing in `main`, before any other thread starts, so they all inherit the mask.
    public static func installSignalCleanup() {
        guard !installed else { return }
        installed = true
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let context = UnsafeMutablePointer<sigset_t>.allocate(capacity: 1)
        context.initialize(to: set)
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { raw in
                guard let set = raw?.assumingMemoryBound(to: sigset_t.self) else { return nil }
                TemporaryFiles.waitForSignal(set)
                return nil
            }, context)
        if rc == 0 { pthread_detach(thread) }
    }

    /// The signal thread's body: waits for one of the signals in `set`, removes every temporary,
    /// and dies of that signal.
    private static func waitForSignal(_ set: UnsafeMutablePointer<sigset_t>) -> Never {
        var received: Int32 = 0
        while sigwait(set, &received) != 0 {}
        removeAll(forever: true)
        signal(received, SIG_DFL)
        var only = sigset_t()
        sigemptyset(&only)
        sigaddset(&only, received)
        pthread_sigmask(SIG_UNBLOCK, &only, nil)
        raise(received)
        _exit(128 + received)
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Removal of registered temporaries when the process crashes (SIGILL from a Swift trap, SIGTRAP,
/// SIGABRT, SIGSEGV, SIGBUS, SIGFPE), so a crash during a GGUF conversion does not leave gigabytes in
/// `/dev/shm` or a `.NAME.tmp-*` beside an output.
///
/// A crash handler should only call async-signal-safe functions, and may run while any lock is
/// held. So the registry is mirrored, at registration time, into a fixed table of C strings that
/// the handler reads without locks or allocation. Directories are emptied with `readdir` and
/// `unlinkat`; glibc's `opendir` allocates, so a crash inside `malloc` itself may leave a
/// directory behind (the next run's sweep of dead processes' `av-gguf-*` directories catches
/// that case). Then the handler restores the previous action (the Swift runtime's backtracer, or
/// the default) and raises the signal again, so the crash reports and exits as it would have.
enum CrashCleanup {
    /// Slots of the table; more temporaries than this at once are cleaned only by the normal paths.
    static let capacity = 64
    /// Per slot: a malloc'd NUL-terminated path, or nil; `directories[i]` says whether it is a directory.
    nonisolated(unsafe) static let slots = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(
        capacity: capacity)
    nonisolated(unsafe) static let directories = UnsafeMutablePointer<Bool>.allocate(capacity: capacity)
    nonisolated(unsafe) static let previous = UnsafeMutablePointer<sigaction>.allocate(capacity: 32)
    nonisolated(unsafe) static var installed = false
    static let signals: [Int32] = [SIGILL, SIGTRAP, SIGABRT, SIGSEGV, SIGBUS, SIGFPE]

    /// Adds `path` to the table (called with the registry's lock held).
    static func add(_ path: String, directory: Bool) {
        guard installed else { return }
        for i in 0..<capacity where slots[i] == nil {
            slots[i] = strdup(path)
            directories[i] = directory
            return
        }
    }

    /// Removes `path` from the table (called with the registry's lock held).
    static func remove(_ path: String) {
        guard installed else { return }
        for i in 0..<capacity {
            guard let p = slots[i], strcmp(p, path) == 0 else { continue }
            slots[i] = nil
            free(p)
        }
    }

    /// Installs the handler for the crash signals (once), on an alternate stack so a stack
    /// overflow can still clean up.
    static func install() {
        guard !installed else { return }
        slots.initialize(repeating: nil, count: capacity)
        directories.initialize(repeating: false, count: capacity)
        let stackSize = 64 * 1024
        var stack = stack_t()
        stack.ss_sp = UnsafeMutableRawPointer.allocate(byteCount: stackSize, alignment: 16)
        stack.ss_size = stackSize
        sigaltstack(&stack, nil)
        for s in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signal in CrashCleanup.handle(signal) }
            action.sa_flags = SA_ONSTACK | SA_NODEFER
            sigemptyset(&action.sa_mask)
            sigaction(s, &action, previous + Int(s))
        }
        // A parent may have left some of them blocked (a test runner blocks SIGABRT): a crash
        // signal sent with kill would then wait, unhandled, until the process ends on its own.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for s in signals { sigaddset(&unblock, s) }
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        installed = true
    }

    /// The handler: removes what the table holds, then lets the previous action have the signal.
    static func handle(_ signal: Int32) {
        for i in 0..<capacity {
            guard let p = slots[i] else { continue }
            if directories[i] { removeTree(p) } else { unlink(p) }
        }
        sigaction(signal, previous + Int(signal), nil)
        raise(signal)
        // A signal the previous action ignores must still end the process.
        _exit(128 + signal)
    }

    /// Removes a directory and the files in it (av's temporary directories hold files only; an
    /// empty subdirectory goes too).
    static func removeTree(_ path: UnsafePointer<CChar>) {
        guard let dir = opendir(path) else {
            unlink(path)
            return
        }
        let fd = dirfd(dir)
        while let entry = readdir(dir) {
            withUnsafePointer(to: entry.pointee.d_name) { raw in
                raw.withMemoryRebound(to: CChar.self, capacity: 256) { name in
                    guard strcmp(name, ".") != 0, strcmp(name, "..") != 0 else { return }
                    if unlinkat(fd, name, 0) != 0 { unlinkat(fd, name, AT_REMOVEDIR) }
                }
            }
        }
        closedir(dir)
        rmdir(path)
    }
}

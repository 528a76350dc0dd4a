#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A mutual-exclusion lock over a POSIX mutex, for the few places that share state between
/// threads. Foundation's `NSLock` is not in FoundationEssentials, which av uses to stay small.
public final class Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    /// A new, unlocked lock.
    public init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Blocks until the lock is held by the caller.
    public func lock() { pthread_mutex_lock(mutex) }

    /// Releases a lock the caller holds.
    public func unlock() { pthread_mutex_unlock(mutex) }

    /// Runs `body` with the lock held and returns its result.
    public func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}

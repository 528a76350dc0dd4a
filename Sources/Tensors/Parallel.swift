import Dispatch

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Work spread over threads with `DispatchQueue.concurrentPerform`.
public enum Parallel {
    /// Threads to use: `AV_THREADS` if set (at most `maximumThreads`), else every active core.
    public static var defaultThreads: Int {
        if let text = ProcessInfo.processInfo.environment["AV_THREADS"], let n = Int(text), n > 0 {
            return min(n, maximumThreads)
        }
        return activeCores
    }

    /// The cores this process may use, read once. `ProcessInfo.activeProcessorCount` reads the
    /// cgroup's CPU quota and cpuset files on every call (opens, reads and parses two files), which
    /// cost a forward pass 10–15% of its time when every matrix product asked it through `clamped`.
    static let activeCores = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// The most threads worth running: four per core, and at least 8 (so results can be checked to
    /// be independent of thread count on small machines). Engines keep scratch memory per thread, so
    /// an unbounded count would be an unbounded allocation.
    public static var maximumThreads: Int { max(8, 4 * activeCores) }

    /// `threads` within 1…`maximumThreads`.
    public static func clamped(_ threads: Int) -> Int { min(max(1, threads), maximumThreads) }

    /// Calls `body(worker, index)` for every index in `0..<count` on up to `threads` threads; worker
    /// `w` takes indices `w, w + threads, …`, so per-worker scratch needs no lock. Results must not
    /// depend on which worker ran an index: callers keep outputs per index and reduce in index order.
    public static func forEach(_ count: Int, threads: Int, _ body: (_ worker: Int, _ index: Int) -> Void) {
        guard let workers = workers(count, threads: threads, body) else { return }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var i = w
                while i < count {
                    box.value(w, i)
                    i += workers
                }
            }
        }
    }
}

extension Parallel {
    /// Calls `body(worker, index)` for every index in `0..<count` on up to `threads` threads, each
    /// worker taking the next unclaimed index when it finishes one: work items of unequal size
    /// balance. Which worker runs an index varies between runs, so results must be kept per index;
    /// `worker` is still unique to one thread at a time (per-worker scratch needs no lock).
    public static func forEachBalanced(_ count: Int, threads: Int, _ body: (_ worker: Int, _ index: Int) -> Void) {
        let workers = max(1, min(threads, count))
        if workers == 1 {
            forEach(count, threads: 1, body)
            return
        }
        recordWorkers(workers)
        let lock = Lock()
        var next = 0
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendable(body)
            let claim = UncheckedSendable {
                lock.lock()
                defer { lock.unlock() }
                next += 1
                return next - 1
            }
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                while true {
                    let i = claim.value()
                    if i >= count { break }
                    box.value(w, i)
                }
            }
        }
    }
}

extension Parallel {
    /// Counts the workers of every `forEach` run inside `Parallel.countingWorkers`.
    public final class WorkerCount: @unchecked Sendable {
        private let lock = Lock()
        private var most = 0

        /// The largest number of workers one `forEach` has used so far.
        public var largest: Int {
            lock.lock()
            defer { lock.unlock() }
            return most
        }

        func record(_ n: Int) {
            lock.lock()
            most = max(most, n)
            lock.unlock()
        }
    }

    @TaskLocal private static var workerCount: WorkerCount?

    /// Runs `body` and returns the largest number of workers one `forEach` called from it (on the
    /// calling task) used: lets tests show that work they call parallel really ran on several
    /// threads. The count is task-local, so work running concurrently elsewhere does not change it.
    public static func countingWorkers<R>(_ body: () throws -> R) rethrows -> (result: R, workers: Int) {
        let count = WorkerCount()
        let result = try $workerCount.withValue(count) { try body() }
        return (result, count.largest)
    }

    static func recordWorkers(_ n: Int) { workerCount?.record(n) }

    /// The workers a `forEach`-style call uses for `count` indices on `threads` (recorded); nil when
    /// that is one, after running every index on the caller.
    static func workers(_ count: Int, threads: Int, _ body: (_ worker: Int, _ index: Int) -> Void) -> Int? {
        let workers = max(1, min(threads, count))
        recordWorkers(workers)
        if workers > 1 { return workers }
        for i in 0..<count { body(0, i) }
        return nil
    }
}

/// A value passed across threads where the caller guarantees the access pattern is safe.
public struct UncheckedSendable<T>: @unchecked Sendable {
    /// The value shared.
    public var value: T
    /// Wraps `value`.
    public init(_ value: T) { self.value = value }
}

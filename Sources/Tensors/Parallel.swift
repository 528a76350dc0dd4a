import Dispatch
import Foundation

/// Work spread over threads with `DispatchQueue.concurrentPerform`.
public enum Parallel {
    /// Threads to use: `AV_THREADS` if set (at most `maximumThreads`), else every active core.
    public static var defaultThreads: Int {
        if let text = ProcessInfo.processInfo.environment["AV_THREADS"], let n = Int(text), n > 0 {
            return min(n, maximumThreads)
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// The most threads worth running: four per core, and at least 8 (so results can be checked to
    /// be independent of thread count on small machines). Engines keep scratch memory per thread, so
    /// an unbounded count would be an unbounded allocation.
    public static var maximumThreads: Int { max(8, 4 * ProcessInfo.processInfo.activeProcessorCount) }

    /// `threads` within 1…`maximumThreads`.
    public static func clamped(_ threads: Int) -> Int { min(max(1, threads), maximumThreads) }

    /// Calls `body(worker, index)` for every index in `0..<count` on up to `threads` threads; worker
    /// `w` takes indices `w, w + threads, …`, so per-worker scratch needs no lock. Results must not
    /// depend on which worker ran an index: callers keep outputs per index and reduce in index order.
    public static func forEach(_ count: Int, threads: Int, _ body: (_ worker: Int, _ index: Int) -> Void) {
        let workers = max(1, min(threads, count))
        recordWorkers(workers)
        if workers == 1 {
            for i in 0..<count { body(0, i) }
            return
        }
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
    private static let lock = NSLock()
    nonisolated(unsafe) private static var mostWorkers = 0

    /// The largest number of workers one `forEach` has used since the last reset: lets tests show
    /// that work they call parallel really ran on several threads.
    public static func workersSeen(reset: Bool = false) -> Int {
        lock.lock()
        defer { lock.unlock() }
        let n = mostWorkers
        if reset { mostWorkers = 0 }
        return n
    }

    static func recordWorkers(_ n: Int) {
        lock.lock()
        mostWorkers = max(mostWorkers, n)
        lock.unlock()
    }
}

/// A value passed across threads where the caller guarantees the access pattern is safe.
public struct UncheckedSendable<T>: @unchecked Sendable {
    public var value: T
    public init(_ value: T) { self.value = value }
}

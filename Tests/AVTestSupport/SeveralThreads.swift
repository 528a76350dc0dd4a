import Foundation
import Testing

/// Held by `onThreads` around each attempt: the tests that must prove their work ran on the pool's
/// threads take turns with each other instead of each finding the pool held by another.
private let proofLock = NSLock()

/// Runs `body` and returns its result, proving it ran as asked: with `threads` ≥ 2 its pool jobs were
/// split over several threads and none ran alone because another test held the pool (the C pool
/// runs a caller's job on the caller when the pool is busy, and Swift Testing runs tests side by
/// side). A run that did not is made again, up to `attempts` times with a growing pause (about 30 s
/// in all); then an issue is recorded. `counts` gives the calling thread's pool jobs since it last
/// asked (`Parallel.takePoolCounts`).
public func onThreads<T>(
    _ threads: Int, _ what: String, counts: () -> (split: Int, alone: Int), attempts: Int = 60,
    _ body: () throws -> T
) rethrows -> T {
    func attempt() throws -> (T, (split: Int, alone: Int)) {
        proofLock.lock()
        defer { proofLock.unlock() }
        _ = counts()
        let result = try body()
        return (result, counts())
    }
    var (result, last) = try attempt()
    guard threads >= 2 else { return result }
    for k in 1..<attempts where !(last.split > 0 && last.alone == 0) {
        usleep(UInt32(min(1_000_000, 10_000 * k)))
        (result, last) = try attempt()
    }
    if !(last.split > 0 && last.alone == 0) {
        Issue.record("\(what): never ran on \(threads) threads (split \(last.split), alone \(last.alone))")
    }
    return result
}

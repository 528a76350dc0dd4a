import Foundation
import Testing

/// Runs `body` and returns its result, proving it ran as asked: with `threads` ≥ 2 its pool jobs were
/// split over several threads and none ran alone because another test held the pool (the C pool
/// runs a caller's job on the caller when the pool is busy, and Swift Testing runs tests side by
/// side). A run that did not is made again, up to `attempts` times; then an issue is recorded.
/// `counts` gives the calling thread's pool jobs since it last asked (`Parallel.takePoolCounts`).
public func onThreads<T>(
    _ threads: Int, _ what: String, counts: () -> (split: Int, alone: Int), attempts: Int = 50,
    _ body: () throws -> T
) rethrows -> T {
    _ = counts()
    var result = try body()
    guard threads >= 2 else { return result }
    var last = counts()
    for _ in 1..<attempts where !(last.split > 0 && last.alone == 0) {
        usleep(20_000)
        _ = counts()
        result = try body()
        last = counts()
    }
    if !(last.split > 0 && last.alone == 0) {
        Issue.record("\(what): never ran on \(threads) threads (split \(last.split), alone \(last.alone))")
    }
    return result
}

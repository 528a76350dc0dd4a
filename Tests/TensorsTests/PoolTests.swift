import Foundation
import Testing

@testable import Tensors

/// `Parallel.forEachPooled`: every index once, workers within the threads asked, and callers that
/// find the pool busy still doing all of their work.
@Suite("Persistent pool")
struct PoolTests {
    /// Runs `count` indices on the pool; returns how often each index ran and the workers seen.
    func run(_ count: Int, threads: Int) -> (hits: [Int], workers: Set<Int>) {
        let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
        hits.initialize(repeating: 0)
        defer { hits.deallocate() }
        let seen = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
        defer { seen.deallocate() }
        Parallel.forEachPooled(count, threads: threads) { worker, i in
            hits[i] += 1  // one index is never run twice at once: a race would show as a count ≠ 1
            seen[i] = worker
        }
        return (Array(hits), Set(seen))
    }

    @Test("each index runs once, on workers 0 ..< threads")
    func everyIndexOnce() {
        for (count, threads) in [(1, 2), (7, 2), (100, 3), (1000, 8), (5, 1)] {
            let (hits, workers) = run(count, threads: threads)
            #expect(hits.allSatisfy { $0 == 1 }, "\(count) on \(threads)")
            #expect(workers.allSatisfy { (0..<threads).contains($0) }, "\(workers)")
            if threads == 1 || count == 1 { #expect(workers == [0]) }
        }
    }

    @Test("callers at once: each gets all of its indices done")
    func concurrentCallers() async {
        let results = await withTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 { group.addTask { run(5000, threads: 2).hits } }
            return await group.reduce(into: [[Int]]()) { $0.append($1) }
        }
        #expect(results.count == 4 && results.allSatisfy { $0.allSatisfy { $0 == 1 } })
    }
}

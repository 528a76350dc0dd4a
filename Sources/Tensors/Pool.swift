import CKernels

extension Parallel {
    /// Calls `body(worker, index)` for every index in `0..<count` on the matrix kernels' persistent
    /// pool: up to `threads` threads, the caller's among them, worker `w` of `n` taking indices
    /// `w, w + n, …` (per-worker scratch needs no lock). When another caller holds the pool, the
    /// caller runs every index itself. For the work between a forward pass's matrix products: the
    /// pool's workers spin between jobs, so work dispatched elsewhere would compete with them for
    /// the cores.
    public static func forEachPooled(_ count: Int, threads: Int, _ body: (_ worker: Int, _ index: Int) -> Void) {
        guard let workers = workers(count, threads: threads, body) else { return }
        withoutActuallyEscaping(body) { body in
            var task = PoolTask(count: count, body: body)
            withUnsafeMutablePointer(to: &task) { pointer in
                av_pool_run(
                    { context, part, parts in
                        let task = context!.assumingMemoryBound(to: PoolTask.self).pointee
                        var i = Int(part)
                        while i < task.count {
                            task.body(Int(part), i)
                            i += Int(parts)
                        }
                    }, pointer, Int32(clamped(workers)))
            }
        }
    }
}

extension Parallel {
    /// The calling thread's pool jobs since it last asked (then reset): those split over several
    /// threads, and those that wanted several but ran alone because another caller held the pool.
    public static func takePoolCounts() -> (split: Int, alone: Int) {
        var split: UInt = 0
        var alone: UInt = 0
        av_pool_take_counts(&split, &alone)
        return (Int(split), Int(alone))
    }
}

/// What `forEachPooled` hands the pool's threads.
private struct PoolTask {
    let count: Int
    let body: (_ worker: Int, _ index: Int) -> Void
}

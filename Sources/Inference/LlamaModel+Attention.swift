import Tensors

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where the tokens of one forward pass sit: each token's segment (continuations packed into one
/// pass after a shared prefix see the prefix and their own segment only, and count positions from
/// the prefix's end), or one segment for an ordinary pass.
struct Segments {
    /// Index in the pass of the first token of token t's segment.
    let first: [Int]
    /// The cache positions token t sees from before the pass, when not all of them: its segment's
    /// own prefix (sequences of several prompts packed together).
    let prefix: [Range<Int>]?

    /// One segment: every token sees every earlier one.
    init(whole count: Int) {
        first = [Int](repeating: 0, count: count)
        prefix = nil
    }

    /// Consecutive segments of these lengths, each after its range of cached positions `prefixes[i]`.
    init(lengths: [Int], prefixes: [Range<Int>]) {
        var first: [Int] = []
        var prefix: [Range<Int>] = []
        for (i, n) in lengths.enumerated() {
            first += [Int](repeating: first.count, count: n)
            prefix += [Range<Int>](repeating: prefixes[i], count: n)
        }
        self.first = first
        self.prefix = prefix
    }

    /// Token t's cache positions from before a pass that starts at `start`, and its position in its
    /// own sequence (what RoPE rotates by).
    func context(of t: Int, start: Int) -> (seen: Range<Int>, position: Int) {
        let seen = prefix?[t] ?? 0..<start
        return (seen, seen.count + t - first[t])
    }
}

extension LlamaModel {
    /// The cosines and sines RoPE rotates by at each of `positions`: `d/2` of each per position,
    /// computed once per forward pass for every layer, q and k.
    func rotations(_ positions: [Int]) -> [Float] {
        let half = config.headDim / 2
        var table = [Float](repeating: 0, count: positions.count * 2 * half)
        for (t, position) in positions.enumerated() {
            for i in 0..<half {
                let angle = Float(position) * inverseFrequencies[i]
                table[(2 * t) * half + i] = cosf(angle)
                table[(2 * t + 1) * half + i] = sinf(angle)
            }
        }
        return table
    }

    /// Rotates each head of `v` in place (rotate-half convention: pairs (i, i + d/2)) by one
    /// position's entry of `rotations` (`d/2` cosines, then `d/2` sines).
    func rope(_ v: UnsafeMutablePointer<Float>, heads: Int, rotation: UnsafePointer<Float>) {
        let d = config.headDim
        let half = d / 2
        for h in 0..<heads {
            let p = v + h * d
            for i in 0..<half {
                let (c, s) = (rotation[i], rotation[half + i])
                let a = p[i]
                let b = p[i + half]
                p[i] = a * c - b * s
                p[i + half] = b * c + a * s
            }
        }
    }

    /// Causal attention of the `T` new positions (cache positions `start…`) over the cache, heads
    /// spread over threads. A token sees the positions before the pass and those of its own segment
    /// up to itself, within the sliding window of its position (`start` + its offset in its segment).
    func attention(
        layer: Int, T: Int, start: Int, segments: Segments, cache: KVCache, ws: Workspace, threads: Int
    ) {
        let c = config
        let d = c.headDim
        let qDim = c.heads * d
        let kvDim = c.kvHeads * d
        let group = c.heads / c.kvHeads
        let scale = 1 / Float(d).squareRoot()
        let keys = cache.keys(layer)
        let values = cache.values(layer)
        let window = c.slidingWindow
        // The runs each token sees: [a, seen.end) before the pass (a cache position c there sits at
        // c − seen.start in the sequence) and [b, pos] of its own segment.
        let seen = (0..<T).map { t -> (before: Range<Int>, mine: Range<Int>) in
            let own = start + segments.first[t]
            let pos = start + t
            let (prior, position) = segments.context(of: t, start: start)
            let a = prior.lowerBound + (window.map { max(0, position - $0 + 1) } ?? 0)
            let b = max(own, window.map { pos - $0 + 1 } ?? 0)
            return (a..<max(a, prior.upperBound), b..<(pos + 1))
        }
        // Blocks of consecutive tokens whose runs start alike: the kernel reads their keys and values
        // once for the block.
        var blocks: [Range<Int>] = []
        var t = 0
        while t < T {
            var end = t + 1
            while end < T, end - t < KernelLevel.attendBlock, seen[end].before == seen[t].before,
                seen[end].mine.lowerBound == seen[t].mine.lowerBound
            {
                end += 1
            }
            blocks.append(t..<end)
            t = end
        }
        let counts = blocks.map { block in block.map { seen[$0].mine.count } }
        // A run of cached positions of kv head `kvh`.
        func run(_ r: Range<Int>, _ kvh: Int) -> KernelLevel.AttentionRun {
            let row = r.lowerBound * kvDim + kvh * d
            return (UnsafePointer(keys + row), UnsafePointer(values + row), r.count)
        }
        // A job on the persistent pool costs about a microsecond, the nine heads of a small model over
        // 32 positions a few: from there on, attention is split over the threads, a decode step's too.
        let workers = T * (start + T) < 32 ? 1 : threads
        Parallel.forEachPooled(blocks.count * c.heads, threads: workers) { worker, job in
            let b = job / c.heads
            let block = blocks[b]
            let h = job % c.heads
            let scores = ws.scores[worker]
            let first = seen[block.lowerBound]
            let own = run(first.mine, h / group)
            if kernels.attend(
                block: block.map { UnsafePointer(ws.q + $0 * qDim + h * d) },
                outputs: block.map { ws.attn + $0 * qDim + h * d }, before: run(first.before, h / group),
                own: (own.keys, own.values), counts: counts[b], stride: kvDim, headDim: d, scale: scale,
                scores: scores, width: cache.capacity)
            {
                return
            }
            for t in block {
                attend(t: t, head: h, scores: scores)
            }
        }
        // One query on the portable path.
        func attend(t: Int, head h: Int, scores: UnsafeMutablePointer<Float>) {
            let (before, mine) = seen[t]
            let offset = (h / group) * d
            let q = ws.q + t * qDim + h * d
            let out = ws.attn + t * qDim + h * d
            if kernels.attend(
                q: q, before: run(before, h / group), own: run(mine, h / group), stride: kvDim, headDim: d,
                scale: scale, scores: scores, out: out)
            {
                return
            }
            var maxScore = -Float.infinity
            var n = 0
            for r in [before, mine] {
                for p in r {
                    let s = Kernels.dot(UnsafeRawPointer(keys + p * kvDim + offset), q, d) * scale
                    scores[n] = s
                    maxScore = max(maxScore, s)
                    n += 1
                }
            }
            var sum: Float = 0
            for j in 0..<n {
                let e = expf(scores[j] - maxScore)
                scores[j] = e
                sum += e
            }
            for i in 0..<d { out[i] = 0 }
            n = 0
            for r in [before, mine] {
                for p in r {
                    let w = scores[n] / sum
                    let vrow = values + p * kvDim + offset
                    for i in 0..<d { out[i] += w * vrow[i] }
                    n += 1
                }
            }
        }
    }
}

// Follows transformers' modeling_llama.py (and modeling_mistral.py, modeling_qwen2.py): pre-norm
// decoder blocks, grouped-query attention with rotate-half RoPE, SiLU-gated MLP.
import AlignmentVectors
import SafeTensors
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

/// One decoder block's weights, named as in the checkpoint (`model.layers.N.…`).
struct Block {
    var inputNorm: [Float]
    var q: Weight
    var k: Weight
    var v: Weight
    var o: Weight
    var qBias: [Float]?
    var kBias: [Float]?
    var vBias: [Float]?
    var postNorm: [Float]
    var gate: Weight
    var up: Weight
    var down: Weight
}

/// A Llama-family causal language model on the CPU.
///
/// Weights stay in their stored dtype (f32, bf16, f16), read from the memory-mapped checkpoint
/// (or, for a mix, from the buffers the mix was computed into); matrix work accumulates in f32 on
/// all cores. Every tensor of the checkpoint must be used and every expected one found.
public final class LlamaModel: @unchecked Sendable {
    /// The validated `config.json`.
    public let config: LlamaConfig
    /// The model directory (or file) the weights came from.
    public let path: String
    let embed: Weight
    let blocks: [Block]
    let norm: [Float]
    let lmHead: Weight
    /// What keeps the weight memory alive: the checkpoint's mappings, mixed buffers.
    private let owners: [AnyObject]
    /// Worker threads for the matrix products and attention (results do not depend on it).
    public var threads = Parallel.defaultThreads
    /// The matrix kernels' instruction set: the best this CPU has, or `AV_KERNELS` (tests compare levels).
    public var kernels = KernelLevel.current
    /// Prompts round their activations to bf16 before each product with a bf16 weight, as llama.cpp
    /// does, instead of splitting each into two bf16 parts (faster; results move in the 3rd digit).
    /// Applies where a level packs activations for the bf16 dot product (AVX-512 BF16); elsewhere,
    /// and for decode steps, it changes nothing. `AV_BF16_ACTIVATIONS=bf16` sets the default.
    public var bf16Activations = PackedActivations.hiOnlyDefault
    /// Tokens run through the model so far (every position of every forward pass), for speed reports.
    public private(set) var tokensEvaluated = 0
    let inverseFrequencies: [Float]

    /// Loads the model in `directory` (config.json and safetensors, sharded or not).
    public convenience init(directory: String) throws(InferenceError) {
        let config = try LlamaConfig.load(directory: directory)
        let checkpoint: Checkpoint
        do {
            checkpoint = try Checkpoint(path: directory)
        } catch {
            throw .vectors(error)
        }
        checkpoint.populateIfSmall()
        try self.init(config: config, path: directory, tensors: WeightSource(checkpoint: checkpoint))
    }

    init(config: LlamaConfig, path: String, tensors: WeightSource) throws(InferenceError) {
        self.config = config
        self.path = path
        var used = Set<String>()
        let c = config
        func weight(_ name: String, _ rows: Int, _ cols: Int) throws(InferenceError) -> Weight {
            guard let t = tensors.tensor(name) else { throw .missingTensor(name: name, model: path) }
            guard t.shape == [rows, cols] else {
                throw .tensorShape(name: name, expected: [rows, cols], found: t.shape, model: path)
            }
            guard [.f32, .bf16, .f16].contains(t.dtype), let element = ElementType(t.dtype) else {
                throw .tensorDType(name: name, dtype: t.dtype.rawValue, model: path)
            }
            used.insert(name)
            return Weight(element: element, rows: rows, cols: cols, data: t.data)
        }
        func vector(_ name: String, _ n: Int) throws(InferenceError) -> [Float] {
            guard let t = tensors.tensor(name) else { throw .missingTensor(name: name, model: path) }
            guard t.shape == [n] else { throw .tensorShape(name: name, expected: [n], found: t.shape, model: path) }
            guard Convert.supports(t.dtype) else {
                throw .tensorDType(name: name, dtype: t.dtype.rawValue, model: path)
            }
            used.insert(name)
            var out = [Float](repeating: 0, count: n)
            out.withUnsafeMutableBufferPointer {
                Convert.toFloat(t.dtype, from: t.data, count: n, into: $0.baseAddress!)
            }
            return out
        }
        let qDim = c.heads * c.headDim
        let kvDim = c.kvHeads * c.headDim
        embed = try weight("model.embed_tokens.weight", c.vocabSize, c.hiddenSize)
        var blocks: [Block] = []
        for l in 0..<c.layers {
            let p = "model.layers.\(l)."
            blocks.append(
                Block(
                    inputNorm: try vector(p + "input_layernorm.weight", c.hiddenSize),
                    q: try weight(p + "self_attn.q_proj.weight", qDim, c.hiddenSize),
                    k: try weight(p + "self_attn.k_proj.weight", kvDim, c.hiddenSize),
                    v: try weight(p + "self_attn.v_proj.weight", kvDim, c.hiddenSize),
                    o: try weight(p + "self_attn.o_proj.weight", c.hiddenSize, qDim),
                    qBias: c.qkvBias ? try vector(p + "self_attn.q_proj.bias", qDim) : nil,
                    kBias: c.qkvBias ? try vector(p + "self_attn.k_proj.bias", kvDim) : nil,
                    vBias: c.qkvBias ? try vector(p + "self_attn.v_proj.bias", kvDim) : nil,
                    postNorm: try vector(p + "post_attention_layernorm.weight", c.hiddenSize),
                    gate: try weight(p + "mlp.gate_proj.weight", c.intermediateSize, c.hiddenSize),
                    up: try weight(p + "mlp.up_proj.weight", c.intermediateSize, c.hiddenSize),
                    down: try weight(p + "mlp.down_proj.weight", c.hiddenSize, c.intermediateSize)))
        }
        self.blocks = blocks
        norm = try vector("model.norm.weight", c.hiddenSize)
        if c.tieWordEmbeddings && tensors.tensor("lm_head.weight") == nil {
            lmHead = embed
        } else {
            lmHead = try weight("lm_head.weight", c.vocabSize, c.hiddenSize)
        }
        // Rotary embedding buffers some exporters keep are not weights.
        let unused = tensors.names.filter { !used.contains($0) && !$0.hasSuffix("rotary_emb.inv_freq") }
        guard unused.isEmpty else { throw .unusedTensors(names: unused.sorted(), model: path) }
        owners = tensors.owners
        inverseFrequencies = c.inverseFrequencies.map { Float($0) }
    }

    /// Decode-time mixing (`--mix logits`, DeRa): other models run in lockstep with this one (the base)
    /// and the logits returned are h_base + Σ λ·(h_model − h_base). Empty: this model alone.
    public var logitMix: [(model: LlamaModel, lambda: Double)] = []

    /// An empty cache for up to `capacity` positions (the model's context by default), with one for
    /// each model of `logitMix`.
    public func makeCache(capacity: Int? = nil) -> KVCache {
        let cache = KVCache(
            layers: config.layers, kvDim: config.kvHeads * config.headDim,
            capacity: capacity ?? config.maxPositionEmbeddings)
        cache.companions = logitMix.map { $0.model.makeCache(capacity: cache.capacity) }
        return cache
    }

    /// Runs `tokens` through the model after the cache's positions, appending to the cache.
    /// Returns the logits of every new position (`tokens.count × vocab`) when `allLogits`, else of
    /// the last one only; with `logitMix`, the mixed logits.
    public func forward(_ tokens: [Int], cache: KVCache, allLogits: Bool = false) throws(InferenceError) -> [Float] {
        try forward(tokens, cache: cache, allLogits: allLogits, segments: Segments(whole: tokens.count))
    }

    /// Several continuations of the cache's positions in one pass (`lengths` tokens each, in order):
    /// each sees the cache and its own earlier tokens, positioned as if it ran alone, so its logits
    /// are those of a separate `forward`, with larger matrix products. Returns every position's
    /// logits; the cache holds all the continuations after it (truncate it to go on).
    public func forward(_ tokens: [Int], packing lengths: [Int], cache: KVCache) throws(InferenceError) -> [Float] {
        try forward(
            tokens, packing: lengths, prefixes: lengths.map { _ in 0..<cache.count }, logitRows: Array(tokens.indices),
            cache: cache)
    }

    /// Several sequences packed into one pass, each after its own range of cached positions
    /// (`prefixes[i]`, empty for a sequence that starts here): each sees that range and its own
    /// earlier tokens, positioned as if it ran alone. Returns the logits of positions `logitRows`
    /// (increasing indices into `tokens`), in that order.
    public func forward(
        _ tokens: [Int], packing lengths: [Int], prefixes: [Range<Int>], logitRows: [Int], cache: KVCache
    ) throws(InferenceError) -> [Float] {
        guard lengths.count == prefixes.count, lengths.allSatisfy({ $0 >= 0 }), lengths.reduce(0, +) == tokens.count,
            prefixes.allSatisfy({ $0.lowerBound >= 0 && $0.upperBound <= cache.count }),
            logitRows.allSatisfy(tokens.indices.contains), zip(logitRows, logitRows.dropFirst()).allSatisfy({ $0 < $1 })
        else {
            throw .input(
                file: "packing", message: "segments, prefixes or logit rows do not fit the \(tokens.count) tokens")
        }
        return try forward(
            tokens, cache: cache, allLogits: true, segments: Segments(lengths: lengths, prefixes: prefixes),
            logitRows: logitRows)
    }

    func forward(
        _ tokens: [Int], cache: KVCache, allLogits: Bool, segments: Segments, logitRows: [Int]? = nil
    ) throws(InferenceError) -> [Float] {
        var h = try forwardAlone(
            tokens, cache: cache, allLogits: allLogits, segments: segments, logitRows: logitRows)
        guard !logitMix.isEmpty else { return h }
        guard cache.companions.count == logitMix.count else {
            throw .input(file: "cache", message: "made before the logit mix was set: make a new cache")
        }
        var mixed = h.map(Double.init)
        for (k, m) in logitMix.enumerated() {
            m.model.threads = threads
            m.model.kernels = kernels
            let other = try m.model.forwardAlone(
                tokens, cache: cache.companions[k], allLogits: allLogits, segments: segments, logitRows: logitRows)
            guard other.count == h.count else {
                throw .input(file: "logit mix", message: "the models' vocabularies differ")
            }
            for i in mixed.indices { mixed[i] += m.lambda * (Double(other[i]) - Double(h[i])) }
        }
        for i in h.indices { h[i] = Float(mixed[i]) }
        return h
    }

    /// `forward` of this model's own weights.
    func forwardAlone(
        _ tokens: [Int], cache: KVCache, allLogits: Bool, segments: Segments, logitRows: [Int]? = nil
    ) throws(InferenceError) -> [Float] {
        let c = config
        let T = tokens.count
        // A decode step dispatches no work (a dispatch per product measured ~20% slower than one
        // thread, Benchmarks/README.md): its matrix products go to the C kernels' persistent pool,
        // which splits each over `vectorThreads`; prompts use every thread through Parallel.
        let threads = T == 1 ? 1 : Parallel.clamped(self.threads)
        let vectorThreads = T == 1 ? Parallel.clamped(self.threads) : 1
        guard T > 0 else { return [] }
        tokensEvaluated += T
        guard cache.count + T <= cache.capacity else {
            throw .contextTooLong(tokens: cache.count + T, limit: cache.capacity)
        }
        for t in tokens where t < 0 || t >= c.vocabSize {
            throw .input(file: path, message: "token id \(t) is outside the vocabulary of \(c.vocabSize)")
        }
        let H = c.hiddenSize
        let qDim = c.heads * c.headDim
        let kvDim = c.kvHeads * c.headDim
        let I = c.intermediateSize
        // A decode step's attention goes to the pool too, once the context makes it worth a job.
        let attentionThreads = max(threads, vectorThreads)
        let ws = Workspace(
            T: T, hidden: H, qDim: qDim, kvDim: kvDim, intermediate: I, maxCols: max(H, I, qDim),
            threads: attentionThreads, context: cache.capacity)
        let x = ws.x
        for (t, id) in tokens.enumerated() {
            Convert.toFloat(embed.dtype, from: embed.row(id), count: H, into: x + t * H)
        }
        let start = cache.count
        // One matrix product of this forward pass: its threads, kernel level and decode pool.
        func product(_ w: Weight, _ input: UnsafePointer<Float>, _ vectors: Int, _ out: UnsafeMutablePointer<Float>) {
            Kernels.matmul(
                w, input, vectors, out, threads: threads, scratch: ws.rows, level: kernels,
                vectorThreads: vectorThreads, hiOnly: bf16Activations)
        }
        // Products of one input (packed once for all of them in a prompt).
        func products(_ list: [(Weight, UnsafeMutablePointer<Float>)], _ input: UnsafePointer<Float>, _ vectors: Int) {
            Kernels.matmuls(
                list, input, vectors, threads: threads, scratch: ws.rows, level: kernels, vectorThreads: vectorThreads,
                hiOnly: bf16Activations)
        }
        let rotation = rotations((0..<T).map { segments.context(of: $0, start: start).position })
        for (l, b) in blocks.enumerated() {
            Kernels.rmsNorm(x, b.inputNorm, eps: c.rmsNormEps, T: T, n: H, into: ws.h, threads: threads)
            products([(b.q, ws.q), (b.k, ws.k), (b.v, ws.v)], ws.h, T)
            if let qb = b.qBias, let kb = b.kBias, let vb = b.vBias {
                for t in 0..<T {
                    for i in 0..<qDim { ws.q[t * qDim + i] += qb[i] }
                    for i in 0..<kvDim {
                        ws.k[t * kvDim + i] += kb[i]
                        ws.v[t * kvDim + i] += vb[i]
                    }
                }
            }
            rotation.withUnsafeBufferPointer { r in
                for t in 0..<T {
                    rope(ws.q + t * qDim, heads: c.heads, rotation: r.baseAddress! + t * c.headDim)
                    rope(ws.k + t * kvDim, heads: c.kvHeads, rotation: r.baseAddress! + t * c.headDim)
                }
            }
            cache.append(layer: l, keys: ws.k, values: ws.v, count: T, at: start)
            attention(
                layer: l, T: T, start: start, segments: segments, cache: cache, ws: ws, threads: attentionThreads)
            product(b.o, ws.attn, T, ws.h)
            for i in 0..<(T * H) { x[i] += ws.h[i] }
            Kernels.rmsNorm(x, b.postNorm, eps: c.rmsNormEps, T: T, n: H, into: ws.h, threads: threads)
            products([(b.gate, ws.gate), (b.up, ws.up)], ws.h, T)
            Kernels.swiGLU(ws.gate, ws.up, count: T * I, threads: threads, level: kernels)
            product(b.down, ws.gate, T, ws.h)
            for i in 0..<(T * H) { x[i] += ws.h[i] }
        }
        cache.count = start + T
        // The rows whose logits are wanted, gathered in order (all, the last, or those asked for).
        let rows = logitRows ?? (allLogits ? Array(0..<T) : [T - 1])
        let n = rows.count
        for (j, t) in rows.enumerated() where j != t { (x + j * H).update(from: x + t * H, count: H) }
        Kernels.rmsNorm(x, norm, eps: c.rmsNormEps, T: n, n: H, into: ws.h, threads: threads)
        var logits = [Float](repeating: 0, count: n * c.vocabSize)
        logits.withUnsafeMutableBufferPointer { out in
            product(lmHead, ws.h, n, out.baseAddress!)
        }
        return logits
    }
}

/// Keys and values of every layer for the positions seen so far.
public final class KVCache: @unchecked Sendable {
    /// The most positions the cache holds.
    public let capacity: Int
    public internal(set) var count = 0

    let kvDim: Int
    private let storage: [UnsafeMutablePointer<Float>]

    init(layers: Int, kvDim: Int, capacity: Int) {
        self.capacity = capacity
        self.kvDim = kvDim
        storage = (0..<(2 * layers)).map { _ in .allocate(capacity: capacity * kvDim) }
    }

    deinit { storage.forEach { $0.deallocate() } }

    func keys(_ layer: Int) -> UnsafeMutablePointer<Float> { storage[2 * layer] }
    func values(_ layer: Int) -> UnsafeMutablePointer<Float> { storage[2 * layer + 1] }

    func append(layer: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, count: Int, at position: Int)
    {
        (keys(layer) + position * kvDim).update(from: k, count: count * kvDim)
        (values(layer) + position * kvDim).update(from: v, count: count * kvDim)
    }

    /// The caches of the models a logit mix runs in lockstep (`LlamaModel.logitMix`).
    var companions: [KVCache] = []

    /// Forgets positions from `position` on (to reuse a shared prompt prefix).
    public func truncate(to position: Int) {
        count = min(count, position)
        for c in companions { c.truncate(to: position) }
    }
}

/// Activations of one forward call, allocated once per call.
final class Workspace {
    let x, h, q, k, v, attn, gate, up: UnsafeMutablePointer<Float>
    let rows: [UnsafeMutablePointer<Float>]
    let scores: [UnsafeMutablePointer<Float>]
    private var all: [UnsafeMutablePointer<Float>] = []

    init(T: Int, hidden: Int, qDim: Int, kvDim: Int, intermediate: Int, maxCols: Int, threads: Int, context: Int) {
        func make(_ n: Int) -> UnsafeMutablePointer<Float> { .allocate(capacity: max(n, 1)) }
        x = make(T * hidden)
        h = make(T * max(hidden, qDim))
        q = make(T * qDim)
        k = make(T * kvDim)
        v = make(T * kvDim)
        attn = make(T * qDim)
        gate = make(T * intermediate)
        up = make(T * intermediate)
        rows = (0..<max(threads, 1)).map { _ in make(maxCols) }
        // A worker's scores: a row of the context for each query of an attention block.
        scores = (0..<max(threads, 1)).map { _ in make(min(T, KernelLevel.attendBlock) * context) }
        all = [x, h, q, k, v, attn, gate, up] + rows + scores
    }

    deinit { all.forEach { $0.deallocate() } }
}

import AlignmentVectors
import Tensors

/// A base model loaded once for many mixes, as a sweep or a search evaluates them: config,
/// tokenizer, chat template and the mapped base weights are read once; each vector's digests and
/// the base's content fingerprint are checked on the first mix that uses the vector; every mix
/// after that computes only the tensors its vectors change. For `--mix logits`, each domain's
/// aligned model (base + 1·AV) is computed once and shared by every point.
public final class MixSession: @unchecked Sendable {
    /// The base model's directory.
    public let directory: String
    /// The base's tokenizer, shared by every mix.
    public let tokenizer: Tokenizer
    /// The base's chat template, when av knows it.
    public let chatTemplate: ChatTemplate?
    let config: LlamaConfig
    let checkpoint: Checkpoint
    let force: Bool
    let threads: Int
    private let lock = Lock()
    /// Vectors whose digests (and the base's content against them) a mix has checked.
    private var checked = Set<ObjectIdentifier>()
    /// Each vector's aligned weights (base + 1·AV), for logit mixes.
    private var aligned: [ObjectIdentifier: WeightSource] = [:]

    /// Loads `directory` (config.json, safetensors, tokenizer.json, chat template); `force` and
    /// `threads` apply to every mix, as they do to `LanguageModel(directory:mixing:…)`.
    public init(directory: String, force: Bool = false, threads: Int = Parallel.defaultThreads)
        throws(InferenceError)
    {
        self.directory = directory
        self.force = force
        self.threads = threads
        config = try LlamaConfig.load(directory: directory)
        do {
            checkpoint = try Checkpoint(path: directory)
        } catch {
            throw .vectors(error)
        }
        checkpoint.populateIfSmall()
        tokenizer = try Tokenizer(path: directory)
        chatTemplate = ChatTemplate.detect(directory: directory)
    }

    /// Bytes of the base's weights: what one mixed model may hold at most.
    public var weightBytes: Int { checkpoint.tensors.reduce(0) { $0 + $1.byteCount } }

    /// The base with `terms` mixed in, as `LanguageModel(directory:mixing:method:mix:)` loads it,
    /// bit for bit; safe to call from several threads (the models it returns are independent).
    public func model(mixing terms: [MergeTerm], method: MergeMethod = .linear, mix: MixMode = .weights)
        throws(InferenceError) -> LanguageModel
    {
        let model: LlamaModel
        if terms.isEmpty {
            model = try LlamaModel(config: config, path: directory, tensors: WeightSource(checkpoint: checkpoint))
        } else if mix == .logits {
            guard method.isLinear else {
                throw .vectors(.usage("--mix logits mixes models, not TIES/DARE deltas: use --method linear"))
            }
            guard terms.allSatisfy({ $0.rule == nil }) else {
                throw .vectors(.usage("--mix logits mixes whole models: λ per layer or module needs --mix weights"))
            }
            model = try LlamaModel(config: config, path: directory, tensors: WeightSource(checkpoint: checkpoint))
            for t in terms {
                let source = try alignedWeights(t.vector)
                model.logitMix.append((try LlamaModel(config: config, path: directory, tensors: source), t.coefficient))
            }
        } else {
            model = try LlamaModel(config: config, path: directory, tensors: try weights(terms, method: method))
        }
        return LanguageModel(model: model, tokenizer: tokenizer, chatTemplate: chatTemplate)
    }

    /// base + Σ λ·AV, hashing only vectors no earlier mix has checked.
    private func weights(_ terms: [MergeTerm], method: MergeMethod) throws(InferenceError) -> WeightSource {
        // A vector at λ = 0 is not read, so not checked either.
        let ids = terms.filter { $0.coefficient != 0 || $0.rule != nil }.map { ObjectIdentifier($0.vector) }
        lock.lock()
        let known = ids.allSatisfy(checked.contains)
        lock.unlock()
        let source = try WeightSource(
            base: checkpoint, terms: terms, method: method, threads: threads, force: force, checked: known)
        lock.lock()
        checked.formUnion(ids)
        lock.unlock()
        return source
    }

    /// base + 1·AV, computed once per vector.
    private func alignedWeights(_ vector: AlignmentVector) throws(InferenceError) -> WeightSource {
        let id = ObjectIdentifier(vector)
        lock.lock()
        let cached = aligned[id]
        lock.unlock()
        if let cached { return cached }
        let source = try weights([MergeTerm(vector: vector, coefficient: 1)], method: .linear)
        lock.lock()
        defer { lock.unlock() }
        aligned[id] = aligned[id] ?? source
        return aligned[id]!
    }
}

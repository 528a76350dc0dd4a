import AlignmentVectors
import Dispatch
import Inference
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One domain of a sweep or a search: its vector and its levels file.
public struct SearchDomain: Sendable {
    /// The domain's name, as flags and reports spell it.
    public var name: String
    /// The domain's alignment vector.
    public var vector: AlignmentVector
    /// The domain's prompts with one response per level.
    public var levels: LevelsFile

    /// A domain from its parts.
    public init(name: String, vector: AlignmentVector, levels: LevelsFile) {
        self.name = name
        self.vector = vector
        self.levels = levels
    }
}

/// Level shares of mixes `base + Σ λ_d·AV_d`, evaluated in memory (nothing is written) and cached
/// per point and domain within a run, so a search never evaluates the same mix twice. The base is
/// loaded once (`MixSession`): each mix recomputes only the tensors its vectors change.
public final class MixEvaluator: @unchecked Sendable {
    /// The base model's directory.
    public let base: String
    /// The domains, in the order λ vectors list them.
    public let domains: [SearchDomain]
    /// Worker threads for merging and inference.
    public let threads: Int
    /// Mix vectors whose recorded base differs from `base`.
    public let force: Bool
    /// How a response is scored: mean or summed log-probability.
    public let score: LevelScore
    /// Text put before each prompt (a system turn, an instruction).
    public let prefix: String
    /// How each mix is applied: to the weights (default) or to the logits of models run in lockstep.
    public let mix: MixMode
    private var cache: [[Double]: [Int: LevelsResult]] = [:]
    private let lock = Lock()
    /// Mixes loaded so far (each is one pass that mixes the weights).
    public private(set) var mixesLoaded = 0
    private var session: MixSession?

    /// An evaluator of `domains` around `base`; nothing is loaded until the first evaluation.
    public init(
        base: String, domains: [SearchDomain], threads: Int, force: Bool = false, score: LevelScore = .mean,
        prefix: String = "", mix: MixMode = .weights
    ) {
        self.mix = mix
        self.base = base
        self.domains = domains
        self.threads = threads
        self.force = force
        self.score = score
        self.prefix = prefix
    }

    /// The base, loaded on the first evaluation and kept for every mix after it.
    private func loadedBase() throws(InferenceError) -> MixSession {
        lock.lock()
        defer { lock.unlock() }
        if let session { return session }
        let loaded = try MixSession(directory: base, force: force, threads: threads)
        session = loaded
        return loaded
    }

    /// The level results of the domains `which` (indices into `domains`) at `lambdas` (one per domain).
    public func results(at lambdas: [Double], for which: [Int]) throws(InferenceError) -> [Int: LevelsResult] {
        try prefetch([(lambdas, which)])
        lock.lock()
        defer { lock.unlock() }
        return (cache[lambdas] ?? [:]).filter { which.contains($0.key) }
    }

    /// Evaluates what is not cached yet of several requests at once: each (mix, levels file) pair
    /// is one task, run concurrently on the threads (the tiny matrices of a check gain more from
    /// running mixes side by side than from splitting one product).
    public func prefetch(_ requests: [(lambdas: [Double], which: [Int])]) throws(InferenceError) {
        var tasks: [(lambdas: [Double], domain: Int)] = []
        lock.lock()
        for (lambdas, which) in requests {
            precondition(lambdas.count == domains.count, "one λ per domain")
            for d in which
            where cache[lambdas]?[d] == nil && !tasks.contains(where: { $0.lambdas == lambdas && $0.domain == d }) {
                tasks.append((lambdas, d))
            }
        }
        lock.unlock()
        guard !tasks.isEmpty else { return }
        var models: [[Double]: LanguageModel] = [:]
        let session = try loadedBase()
        for t in tasks where models[t.lambdas] == nil {
            let terms = zip(domains, t.lambdas).filter { $0.1 != 0 }.map {
                MergeTerm(vector: $0.0.vector, coefficient: $0.1)
            }
            let lm = try session.model(mixing: terms, mix: mix)
            lm.model.threads = 1
            models[t.lambdas] = lm
            mixesLoaded += 1
        }
        var outcomes = [Result<LevelsResult, InferenceError>?](repeating: nil, count: tasks.count)
        let todo = tasks
        let workers = min(threads, todo.count)
        let box = UncheckedSendable((models, self))
        outcomes.withUnsafeMutableBufferPointer { out in
            let slots = UncheckedSendable(out)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var i = worker
                while i < todo.count {
                    let t = todo[i]
                    let lm = box.value.0[t.lambdas]!
                    do throws(InferenceError) {
                        slots.value[i] = .success(
                            try lm.evaluate(
                                levels: box.value.1.domains[t.domain].levels, score: box.value.1.score,
                                prefix: box.value.1.prefix))
                    } catch {
                        slots.value[i] = .failure(error)
                    }
                    i += workers
                }
            }
        }
        lock.lock()
        defer { lock.unlock() }
        for (t, outcome) in zip(tasks, outcomes) {
            cache[t.lambdas, default: [:]][t.domain] = try outcome!.get()
        }
    }
}

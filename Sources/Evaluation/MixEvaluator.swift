import AlignmentVectors
import Dispatch
import Inference
import Tensors

/// One domain of a search: its vector and its levels file.
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

/// What is measured at a mix: a levels file (by its index in ``MixEvaluator/levels``) or the pairs.
public enum Measurement: Hashable, Sendable {
    /// The shares of the levels file at this index.
    case levels(Int)
    /// Preference accuracy and margins over the pairs.
    case pairs
}

/// Level shares and preference accuracy of mixes `base + Σ λ_d·AV_d`, evaluated in memory (nothing
/// is written) and cached per point and measurement within a run, so a sweep or a search never
/// evaluates the same mix twice. The base is loaded once (`MixSession`): each mix recomputes only
/// the tensors its vectors change.
public final class MixEvaluator: @unchecked Sendable {
    /// The base model's directory.
    public let base: String
    /// The directions λ vectors list, in order.
    public let axes: [MixAxis]
    /// The levels files measured (``Measurement/levels(_:)`` indexes them).
    public let levels: [LevelsFile]
    /// The preference pairs measured, if any (``Measurement/pairs``).
    public let pairs: [PreferencePair]?
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
    private var cache: [[Double]: [Measurement: Outcome]] = [:]
    private let lock = Lock()
    /// Mixes loaded so far (each is one pass that mixes the weights).
    public private(set) var mixesLoaded = 0
    private var session: MixSession?

    private enum Outcome {
        case levels(LevelsResult)
        case pairs(PairsResult)
    }

    /// An evaluator of mixes along `axes`, measuring `levels` and `pairs`; nothing is loaded until
    /// the first evaluation.
    public init(
        base: String, axes: [MixAxis], levels: [LevelsFile], pairs: [PreferencePair]? = nil, threads: Int,
        force: Bool = false, score: LevelScore = .mean, prefix: String = "", mix: MixMode = .weights
    ) {
        self.base = base
        self.axes = axes
        self.levels = levels
        self.pairs = pairs
        self.threads = threads
        self.force = force
        self.score = score
        self.prefix = prefix
        self.mix = mix
    }

    /// An evaluator of a search's domains: one axis and one levels file per domain, in order.
    public convenience init(
        base: String, domains: [SearchDomain], threads: Int, force: Bool = false, score: LevelScore = .mean,
        prefix: String = "", mix: MixMode = .weights
    ) {
        self.init(
            base: base, axes: domains.map { MixAxis(name: $0.name, vector: $0.vector) }, levels: domains.map(\.levels),
            threads: threads, force: force, score: score, prefix: prefix, mix: mix)
    }

    /// Every measurement this evaluator makes: each levels file, then the pairs.
    public var measurements: [Measurement] {
        levels.indices.map { .levels($0) } + (pairs == nil ? [] : [.pairs])
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

    /// The level results of the levels files `which` (indices into `levels`) at `lambdas` (one per axis).
    public func results(at lambdas: [Double], for which: [Int]) throws(InferenceError) -> [Int: LevelsResult] {
        let outcomes = try measured(at: lambdas, which.map { .levels($0) })
        var out: [Int: LevelsResult] = [:]
        for (m, o) in outcomes {
            if case .levels(let i) = m, case .levels(let r) = o { out[i] = r }
        }
        return out
    }

    /// Every measurement at `lambdas`: a row of a sweep or a point of a search.
    public func point(at lambdas: [Double]) throws(InferenceError) -> GridPoint {
        let outcomes = try measured(at: lambdas, measurements)
        var levels: [LevelsResult] = []
        var pairs: PairsResult?
        for m in measurements {
            switch outcomes[m]! {
            case .levels(let r): levels.append(r)
            case .pairs(let r): pairs = r
            }
        }
        return GridPoint(lambdas: lambdas, pairs: pairs, levels: levels)
    }

    private func measured(at lambdas: [Double], _ which: [Measurement]) throws(InferenceError) -> [Measurement: Outcome]
    {
        try prefetch([(lambdas, which)])
        lock.lock()
        defer { lock.unlock() }
        return (cache[lambdas] ?? [:]).filter { which.contains($0.key) }
    }

    /// Evaluates the levels files `which` at several points at once (see `prefetch(measuring:)`).
    public func prefetch(_ requests: [(lambdas: [Double], which: [Int])]) throws(InferenceError) {
        try prefetch(requests.map { ($0.lambdas, $0.which.map { .levels($0) }) })
    }

    /// Evaluates what is not cached yet of several requests at once: each (mix, measurement) pair
    /// is one task, run concurrently on the threads (the tiny matrices of a check gain more from
    /// running mixes side by side than from splitting one product). Mixes are loaded in waves of
    /// at most `threads` (one for a model over 1 GiB), so memory holds a bounded number of them;
    /// each model gets the threads its tasks leave free (results do not depend on thread counts).
    public func prefetch(_ requests: [(lambdas: [Double], measure: [Measurement])]) throws(InferenceError) {
        var tasks: [(lambdas: [Double], measurement: Measurement)] = []
        lock.lock()
        for (lambdas, which) in requests {
            precondition(lambdas.count == axes.count, "one λ per axis")
            for m in which
            where cache[lambdas]?[m] == nil && !tasks.contains(where: { $0.lambdas == lambdas && $0.measurement == m })
            {
                tasks.append((lambdas, m))
            }
        }
        lock.unlock()
        guard !tasks.isEmpty else { return }
        let session = try loadedBase()
        var mixes: [[Double]] = []
        for t in tasks where !mixes.contains(t.lambdas) { mixes.append(t.lambdas) }
        let wave = session.weightBytes > 1 << 30 ? 1 : max(1, threads)
        for start in stride(from: 0, to: mixes.count, by: wave) {
            let these = mixes[start..<min(mixes.count, start + wave)]
            try run(tasks.filter { these.contains($0.lambdas) }, session: session)
        }
    }

    /// Loads the mixes of `tasks` and runs the tasks on the threads; caches every outcome.
    private func run(_ tasks: [(lambdas: [Double], measurement: Measurement)], session: MixSession)
        throws(InferenceError)
    {
        let workers = min(threads, tasks.count)
        var models: [[Double]: LanguageModel] = [:]
        for t in tasks where models[t.lambdas] == nil {
            let terms = zip(axes, t.lambdas).compactMap { $0.term($1) }
            let lm = try session.model(mixing: terms, mix: mix)
            lm.model.threads = max(1, threads / workers)
            models[t.lambdas] = lm
            mixesLoaded += 1
        }
        var outcomes = [Result<Outcome, InferenceError>?](repeating: nil, count: tasks.count)
        let box = UncheckedSendable((models, self, tasks))
        outcomes.withUnsafeMutableBufferPointer { out in
            let slots = UncheckedSendable(out)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                let (models, evaluator, tasks) = box.value
                for i in stride(from: worker, to: tasks.count, by: workers) {
                    let lm = models[tasks[i].lambdas]!
                    do throws(InferenceError) {
                        switch tasks[i].measurement {
                        case .levels(let k):
                            slots.value[i] = .success(
                                .levels(
                                    try lm.evaluate(
                                        levels: evaluator.levels[k], score: evaluator.score, prefix: evaluator.prefix)))
                        case .pairs:
                            slots.value[i] = .success(.pairs(try lm.evaluate(pairs: evaluator.pairs ?? [])))
                        }
                    } catch {
                        slots.value[i] = .failure(error)
                    }
                }
            }
        }
        lock.lock()
        defer { lock.unlock() }
        for (t, outcome) in zip(tasks, outcomes) {
            cache[t.lambdas, default: [:]][t.measurement] = try outcome!.get()
        }
    }
}

import SafeTensors
import Tensors

#if canImport(Glibc)
    import Glibc
#endif

/// How several deltas of one tensor combine, as mergekit defines its task-arithmetic methods
/// (`merge_methods/generalized_task_arithmetic.py`, `sparsify.py`, mergekit 0.1.5).
public struct MergeMethod: Sendable, Equatable {
    /// The method's name, as av and mergekit spell it.
    public enum Kind: String, Sendable, CaseIterable {
        /// base + Σ λ·Δ: every delta as it is.
        case linear
        /// TIES: each delta trimmed to its top ⌊D·n⌋ entries by |Δ|, signs elected, disjoint mean.
        case ties
        /// DARE: each entry kept with probability D, the kept ones rescaled; then summed.
        case dareLinear = "dare-linear"
        /// DARE's drop, then TIES's sign election.
        case dareTies = "dare-ties"
        /// Model Breadcrumbs: each delta without its largest γ·n entries and its smallest, ⌊D·n⌋ kept.
        case breadcrumbs
        /// Breadcrumbs' masks, then TIES's sign election.
        case breadcrumbsTies = "breadcrumbs-ties"
        /// Model Stock: the mean of the (λ-weighted) deltas, scaled per tensor by t = k·cos / (1 + (k − 1)·cos)
        /// from their mean pairwise cosine; at least two vectors.
        case modelStock = "model-stock"
        /// SCE: the elements of highest variance across the deltas selected (`density`), signs elected, each
        /// delta weighted by its mean square.
        case sce
        /// NuSLERP with a base: the two deltas interpolated spherically at t = λ₂ / (λ₁ + λ₂).
        case nuslerp
        /// PEFT's `magnitude_prune`: each delta trimmed to its top ⌊D·n⌋ entries by |Δ|, then Σ λ·Δ.
        case magnitudePrune = "magnitude-prune"
        /// DELLA: DARE's drop with a keep probability that grows with an entry's magnitude rank in its row
        /// (from D − ε to D + ε), the kept ones rescaled; then TIES's sign election.
        case della
        /// DELLA's drop, then a plain sum.
        case dellaLinear = "della-linear"
        /// SLERP between the base and base + Δ at t = λ (mergekit's `slerp` with the base as first model).
        case slerp

        /// Reads `ties`, `dare-linear`, `dare_linear` (mergekit's spelling), …
        public init?(spelling: String) {
            self.init(rawValue: String(spelling.map { $0 == "_" ? "-" : $0 }))
        }
    }

    /// How the sign of an element is elected.
    public enum Consensus: String, Sendable, CaseIterable {
        /// The sign of Σ λ_i·Δ_i (TIES's paper, mergekit's default).
        case sum
        /// The sign held by more of the λ-weighted deltas.
        case count
    }

    /// Which method.
    public var kind: Kind
    /// Share of entries kept per tensor and term, in (0, 1]; 1 keeps every entry.
    public var density: Double
    /// DARE's seed.
    public var seed: UInt64
    /// TIES's sign election (sum by default).
    public var consensus: Consensus
    /// Divide the combined delta by Σ λ_i (over the entries kept and agreeing, with sign election).
    public var normalize: Bool
    /// Scale each sparsified delta so its L1 norm is the dense delta's.
    public var rescale: Bool
    /// Breadcrumbs: the share of each delta's largest-magnitude entries dropped as outliers (0.01).
    public var gamma: Double
    /// DELLA: how far the keep probability spreads around the density by magnitude rank (0.15).
    public var epsilon: Double

    /// The plain sum, base + Σ λ·Δ.
    public static let linear = MergeMethod(kind: .linear)

    /// A method with mergekit's defaults: TIES normalizes and does not rescale, DARE rescales and
    /// does not normalize; `density` defaults to 1 as in mergekit (set it: 0.2–0.5 is usual).
    public init(
        kind: Kind, density: Double = 1, seed: UInt64 = 0, consensus: Consensus = .sum, normalize: Bool? = nil,
        rescale: Bool? = nil, gamma: Double = 0.01, epsilon: Double = 0.15
    ) {
        self.epsilon = epsilon
        self.kind = kind
        self.density = density
        self.seed = seed
        self.consensus = consensus
        self.gamma = gamma
        self.normalize = normalize ?? (kind == .ties || kind == .della)
        self.rescale = rescale ?? [.dareLinear, .dareTies, .della, .dellaLinear].contains(kind)
    }

    /// Whether the method is the plain sum (it streams; the others hold one tensor per term).
    public var isLinear: Bool { kind == .linear }

    var sparsification: (random: Bool, active: Bool) {
        switch kind {
        case .linear: (false, false)
        case .ties: (false, density < 1)
        case .dareLinear, .dareTies: (true, density < 1)
        case .breadcrumbs, .breadcrumbsTies: (false, density < 1)
        case .modelStock, .sce, .nuslerp, .slerp: (false, false)
        case .magnitudePrune: (false, density < 1)
        case .della, .dellaLinear: (true, density < 1)
        }
    }

    var electsSign: Bool { [.ties, .dareTies, .breadcrumbsTies, .della].contains(kind) }

    /// Breadcrumbs drops the largest entries as well as the smallest.
    public var prunesOutliers: Bool { kind == .breadcrumbs || kind == .breadcrumbsTies }

    /// What merge records in its provenance.
    public var json: JSONValue {
        var members: [(String, JSONValue)] = [("method", .string(kind.rawValue))]
        guard !isLinear else { return .object(members) }
        members += [("density", .double(density)), ("normalize", .bool(normalize)), ("rescale", .bool(rescale))]
        if electsSign { members.append(("consensus", .string(consensus.rawValue))) }
        if sparsification.random { members.append(("seed", .int(Int(truncatingIfNeeded: seed)))) }
        if prunesOutliers { members.append(("gamma", .double(gamma))) }
        if kind == .della || kind == .dellaLinear { members.append(("epsilon", .double(epsilon))) }
        return .object(members)
    }

    /// Refuses settings outside the method's definition.
    public func validate() throws(AVError) {
        guard density > 0, density <= 1, density.isFinite else {
            throw .usage("--density must be in (0, 1], not \(density)")
        }
        if (isLinear || kind == .modelStock) && density != 1 {
            throw .usage("--density applies to ties, dare, breadcrumbs and sce methods")
        }
        guard gamma >= 0, gamma < 1, gamma.isFinite else { throw .usage("--gamma must be in [0, 1), not \(gamma)") }
        if kind == .della || kind == .dellaLinear, density < 1, !(density - epsilon > 0 && density + epsilon < 1) {
            throw .usage("--epsilon must keep density ± epsilon within (0, 1): density \(density), epsilon \(epsilon)")
        }
    }
}

extension MergeMethod {
    /// The combined delta of one tensor: `deltas[i]` is term i's exact delta, `weights[i]` its λ,
    /// `domains[i]` its domain (DARE's random stream is keyed by domain and tensor). Per element,
    /// in f64, in a fixed order: the same bytes on every run and thread count.
    public func combine(
        tensor: String, deltas: [[Double]], weights: [Double], domains: [String], columns: Int? = nil,
        base: [Double]? = nil
    ) -> [Double] {
        precondition(deltas.count == weights.count && deltas.count == domains.count)
        if kind == .modelStock { return modelStock(zip(deltas, weights).map { d, w in d.map { $0 * w } }) }
        if kind == .sce { return sce(zip(deltas, weights).map { d, w in d.map { $0 * w } }) }
        if kind == .nuslerp, deltas.count == 2 { return nuslerp(deltas[0], deltas[1], weights: weights) }
        if kind == .slerp, deltas.count == 1, let base, base.count == deltas[0].count {
            return slerp(base: base, delta: deltas[0], t: weights[0])
        }
        let n = deltas.first?.count ?? 0
        var weighted: [[Double]] = []
        for (i, delta) in deltas.enumerated() {
            var d = delta
            if sparsification.active {
                d =
                    sparsification.random
                    ? drop(d, key: Self.streamKey(seed: seed, domain: domains[i], tensor: tensor), columns: columns)
                    : prunesOutliers ? outliers(d) : trim(d)
            }
            weighted.append(d.map { $0 * weights[i] })
        }
        var mixed = [Double](repeating: 0, count: n)
        for e in 0..<n {
            var sum = 0.0
            var divisor = 0.0
            if electsSign {
                var vote = 0.0
                for w in weighted {
                    vote += consensus == .sum ? w[e] : Self.sign(w[e])
                }
                let majority: Double = vote >= 0 ? 1 : -1
                for (i, w) in weighted.enumerated() where Self.sign(w[e]) == majority {
                    sum += w[e]
                    divisor += weights[i]
                }
                if divisor == 0 { divisor = 1 }
            } else {
                for (i, w) in weighted.enumerated() {
                    sum += w[e]
                    divisor += weights[i]
                }
                if divisor.magnitude < 1e-8 { divisor = 1 }
            }
            mixed[e] = normalize ? sum / divisor : sum
        }
        return mixed
    }

    static func sign(_ x: Double) -> Double { x > 0 ? 1 : (x < 0 ? -1 : 0) }

    /// TIES's trim: the top max(1, ⌊D·n⌋) entries by |Δ| (compared in f32, as mergekit does; ties
    /// to the lower index), optionally rescaled to the dense L1 norm.
    func trim(_ delta: [Double]) -> [Double] {
        // PEFT's magnitude_prune keeps ⌊D·n⌋, which may be none.
        let k =
            kind == .magnitudePrune ? Int(density * Double(delta.count)) : max(1, Int(density * Double(delta.count)))
        let magnitudes = delta.map { Double(Float($0).magnitude) }
        var out = [Double](repeating: 0, count: delta.count)
        for i in DeltaEncoder.topIndices(magnitudes, k: k) { out[i] = delta[i] }
        return rescaled(out, like: delta)
    }

    /// Breadcrumbs' mask (mergekit's `magnitude_outliers`): the entries ranked by |Δ| (in f32, ties to the
    /// lower index) from the smallest; the ⌊D·n⌋ after the smallest max(0, n − ⌊D·n⌋ − ⌊γ·n⌋) are kept,
    /// so the largest ⌊γ·n⌋ are dropped unless keeping the density needs them.
    func outliers(_ delta: [Double]) -> [Double] {
        let n = delta.count
        let target = Int(density * Double(n))
        let bottom = max(0, n - target - Int(gamma * Double(n)))
        let magnitudes = delta.map { Float($0).magnitude }
        let order = delta.indices.sorted {
            magnitudes[$0] != magnitudes[$1] ? magnitudes[$0] < magnitudes[$1] : $0 < $1
        }
        var out = [Double](repeating: 0, count: n)
        for i in order[bottom..<min(n, bottom + target)] { out[i] = delta[i] }
        return rescaled(out, like: delta)
    }

    /// DARE's drop: entry i kept when the i-th value of the tensor's random stream is below D.
    func drop(_ delta: [Double], key: UInt64, columns: Int? = nil) -> [Double] {
        var out = [Double](repeating: 0, count: delta.count)
        guard kind == .della || kind == .dellaLinear else {
            for i in delta.indices where Self.uniform(key: key, index: i) < density { out[i] = delta[i] }
            return rescaled(out, like: delta)
        }
        // DELLA (mergekit's della_magprune): per row, the entries ranked by |Δ| in f32 from the smallest
        // (ties to the lower index), rank r of c kept with probability D − ε + 2ε·(r − 1)/(c − 1).
        let c = max(1, min(columns ?? delta.count, delta.count))
        for row in stride(from: 0, to: delta.count, by: c) {
            let end = min(delta.count, row + c)
            let order = (row..<end).sorted {
                let (a, b) = (Float(delta[$0]).magnitude, Float(delta[$1]).magnitude)
                return a != b ? a < b : $0 < $1
            }
            for (rank, i) in order.enumerated() {
                let spread = end - row > 1 ? Double(rank) / Double(end - row - 1) : 0
                if Self.uniform(key: key, index: i) < density - epsilon + spread * 2 * epsilon { out[i] = delta[i] }
            }
        }
        return rescaled(out, like: delta)
    }

    /// mergekit's `rescaled_masked_tensor` with the L1 norm: unchanged when either norm is below 1e-7.
    func rescaled(_ masked: [Double], like dense: [Double]) -> [Double] {
        guard rescale else { return masked }
        let before = dense.reduce(0) { $0 + $1.magnitude }
        let after = masked.reduce(0) { $0 + $1.magnitude }
        guard before >= 1e-7, after >= 1e-7 else { return masked }
        return masked.map { $0 * (before / after) }
    }

    /// The key of DARE's stream for one term and tensor: XXH64 of "DOMAIN/TENSOR", xor the seed.
    static func streamKey(seed: UInt64, domain: String, tensor: String) -> UInt64 {
        Array((domain + "/" + tensor).utf8).withUnsafeBytes { XXHash64.hash($0) } ^ seed
    }

    /// The `index`-th value of SplitMix64 started at `key`, as a uniform double in [0, 1): computed
    /// from the index alone, so any thread can draw any element.
    static func uniform(key: UInt64, index: Int) -> Double {
        var g = SplitMix64(seed: key &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        return Double(g.next() >> 11) * 0x1p-53
    }
}

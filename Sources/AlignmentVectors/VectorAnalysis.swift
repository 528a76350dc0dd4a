import SafeTensors
import Tensors

/// What `av analyze` measures of one or more alignment vectors, tensor by tensor, in f64: the size of
/// each vector, where it lives (layers, matrices), how it relates to the others (cosine similarity,
/// sign conflicts, overlap of the largest entries) and, on request, how much of each matrix lives in a
/// few directions. Every sum runs over a tensor in one fixed order, so the numbers do not depend on
/// the thread count.
public struct VectorAnalysis: Sendable {
    /// The measurements of one tensor name.
    public struct Tensor: Sendable {
        /// The tensor's name.
        public var name: String
        /// Its shape.
        public var shape: [Int]
        /// `N` of `model.layers.N.`, nil for tensors outside the layers (embeddings, final norm).
        public var layer: Int?
        /// ‖Δ‖² of each vector (0 where a vector leaves the tensor out).
        public var energy: [Double]
        /// ‖W‖² of the base's tensor, when a base was given.
        public var baseEnergy: Double?
        /// Per pair (in ``VectorAnalysis/pairs`` order): Σ a·b.
        public var dot: [Double]
        /// Per pair: Σ (|a| + |b|) over entries where both are non-zero and their signs differ.
        public var conflictWeight: [Double]
        /// Per pair: Σ (|a| + |b|) over entries where both are non-zero.
        public var sharedWeight: [Double]
        /// Per pair: how many of a's `topK` largest-magnitude entries are among b's.
        public var overlap: [Int]
        /// Entries per vector counted as its largest: ⌈density · elements⌉.
        public var topK: Int
        /// Per vector, for matrices when asked: the share of ‖Δ‖² in the top 1, 8 and 32 singular
        /// directions (randomized SVD, seeded).
        public var spectrum: [[Double]]?
    }

    /// The vectors' domains, in the order given.
    public var domains: [String]
    /// Their files.
    public var paths: [String]
    /// Every pair (i < j) of vectors.
    public var pairs: [(Int, Int)]
    /// Tensors in the first vector's order, then the others' remaining ones.
    public var tensors: [Tensor]
    /// The share of entries counted as a vector's largest.
    public var density: Double
    /// The base measured against, if any.
    public var base: String?

    /// Sums over the tensors that `include` accepts.
    public struct Totals: Sendable {
        /// ‖Δ‖² per vector.
        public var energy: [Double]
        /// ‖W‖² (0 without a base).
        public var baseEnergy: Double
        /// Σ a·b per pair.
        public var dot: [Double]
        /// Conflicting and shared magnitude per pair.
        public var conflictWeight: [Double]
        /// Shared magnitude per pair.
        public var sharedWeight: [Double]
        /// Overlapping top entries per pair, and top entries per vector.
        public var overlap: [Int]
        /// Top entries counted per vector.
        public var topK: Int

        /// Cosine similarity of pair `p` (0 when either vector is zero here).
        public func cosine(_ p: Int, _ pairs: [(Int, Int)]) -> Double {
            let (a, b) = pairs[p]
            let d = (energy[a] * energy[b]).squareRoot()
            return d > 0 ? dot[p] / d : 0
        }

        /// Magnitude-weighted share of shared entries whose signs disagree, for pair `p`.
        public func conflictRate(_ p: Int) -> Double { sharedWeight[p] > 0 ? conflictWeight[p] / sharedWeight[p] : 0 }

        /// Share of the top entries that both vectors of pair `p` have among their top entries.
        public func overlapRate(_ p: Int) -> Double { topK > 0 ? Double(overlap[p]) / Double(topK) : 0 }
    }

    /// Vector `v`'s energy in its matrices' top 1, 8 and 32 singular directions, as shares of the
    /// energy of the matrices with a spectrum (‖Δ‖²-weighted); zeros when none has one.
    public func spectrumShares(_ v: Int) -> [Double] {
        var kept = [0.0, 0.0, 0.0]
        var total = 0.0
        for t in tensors {
            guard let s = t.spectrum?[v] else { continue }
            for k in 0..<3 { kept[k] += s[k] * t.energy[v] }
            total += t.energy[v]
        }
        return kept.map { total > 0 ? $0 / total : 0 }
    }

    /// Totals over the tensors `include` accepts (all by default).
    public func totals(where include: (Tensor) -> Bool = { _ in true }) -> Totals {
        var t = Totals(
            energy: Array(repeating: 0, count: domains.count), baseEnergy: 0,
            dot: Array(repeating: 0, count: pairs.count), conflictWeight: Array(repeating: 0, count: pairs.count),
            sharedWeight: Array(repeating: 0, count: pairs.count), overlap: Array(repeating: 0, count: pairs.count),
            topK: 0)
        for x in tensors where include(x) {
            for v in domains.indices { t.energy[v] += x.energy[v] }
            t.baseEnergy += x.baseEnergy ?? 0
            for p in pairs.indices {
                t.dot[p] += x.dot[p]
                t.conflictWeight[p] += x.conflictWeight[p]
                t.sharedWeight[p] += x.sharedWeight[p]
                t.overlap[p] += x.overlap[p]
            }
            t.topK += x.topK
        }
        return t
    }

    /// The layers present, in order.
    public var layers: [Int] { Array(Set(tensors.compactMap(\.layer))).sorted() }
}

extension VectorAnalysis {
    /// The layer number in a Hugging Face tensor name (`model.layers.N.…`), nil outside the layers.
    public static func layer(of name: String) -> Int? {
        let parts = name.split(separator: ".")
        guard let i = parts.firstIndex(of: "layers"), i + 1 < parts.count else { return nil }
        return Int(parts[i + 1])
    }
}

/// Measures `vectors` (one or more) tensor by tensor; with `base`, also ‖W‖ of each tensor.
/// - Parameters:
///   - density: the share of each tensor's entries counted as a vector's largest, for the overlap.
///   - spectrum: also the energy in each matrix's top 1, 8 and 32 singular directions (slower).
/// - Throws: `AVError` for vectors made from models of different structure (unless `force`), a tensor whose
///   shape differs between the vectors or from the base's, or a damaged vector (digests).
public func analyzeVectors(
    _ vectors: [AlignmentVector], base: Checkpoint? = nil, density: Double = 0.05, spectrum: Bool = false,
    force: Bool = false, threads: Int = Parallel.defaultThreads
) throws(AVError) -> VectorAnalysis {
    guard !vectors.isEmpty else { throw .usage("analyze needs at least one vector") }
    // Vectors of different models do not share coordinates: comparing them would print noise.
    if !force, let other = vectors.first(where: { $0.header.base.structure != vectors[0].header.base.structure }) {
        throw .differentBases(
            first: vectors[0].path, firstBase: vectors[0].header.base.fingerprint, second: other.path,
            secondBase: other.header.base.fingerprint)
    }
    guard density > 0, density <= 1 else { throw .usage("--density must be in (0, 1]") }
    var pairs: [(Int, Int)] = []
    for i in vectors.indices { for j in vectors.indices where j > i { pairs.append((i, j)) } }
    var names: [String] = []
    var seen = Set<String>()
    for v in vectors { for d in v.deltas where seen.insert(d.name).inserted { names.append(d.name) } }
    var out: [VectorAnalysis.Tensor] = []
    for name in names {
        var shape: [Int]?
        var values: [[Double]?] = []
        for v in vectors {
            guard let d = v.deltas.first(where: { $0.name == name }) else {
                values.append(nil)
                continue
            }
            if let shape, shape != d.shape {
                throw .vectorShape(av: v.path, tensor: name, vector: d.shape, base: shape)
            }
            shape = d.shape
            values.append(try v.deltaValues(d))
        }
        let n = values.compactMap { $0?.count }.first ?? 0
        var t = VectorAnalysis.Tensor(
            name: name, shape: shape ?? [], layer: VectorAnalysis.layer(of: name),
            energy: values.map { $0.map(sumOfSquares) ?? 0 }, baseEnergy: nil,
            dot: Array(repeating: 0, count: pairs.count), conflictWeight: Array(repeating: 0, count: pairs.count),
            sharedWeight: Array(repeating: 0, count: pairs.count), overlap: Array(repeating: 0, count: pairs.count),
            topK: max(1, Int((density * Double(n)).rounded(.up))), spectrum: nil)
        if let base {
            guard let info = base.info(name), info.shape == shape, let view = base.view(name) else {
                throw .vectorTensorNotInBase(av: vectors[0].path, tensor: name)
            }
            t.baseEnergy = sumOfSquares(ElementOps.widen(info.dtype, view.bytes, count: info.elementCount))
        }
        let tops = values.map { $0.map { Set(DeltaEncoder.topIndices($0, k: t.topK)) } }
        for (p, (i, j)) in pairs.enumerated() {
            guard let a = values[i], let b = values[j] else { continue }
            var dot = 0.0
            var conflict = 0.0
            var shared = 0.0
            for e in 0..<n {
                let x = a[e]
                let y = b[e]
                dot += x * y
                guard x != 0, y != 0 else { continue }
                let w = abs(x) + abs(y)
                shared += w
                if (x < 0) != (y < 0) { conflict += w }
            }
            t.dot[p] = dot
            t.conflictWeight[p] = conflict
            t.sharedWeight[p] = shared
            if let ta = tops[i], let tb = tops[j] { t.overlap[p] = ta.intersection(tb).count }
        }
        if spectrum, let shape, shape.count == 2 {
            t.spectrum = values.enumerated().map { v, delta in
                guard let delta, t.energy[v] > 0 else { return [0, 0, 0] }
                let svd = LowRank.svd(delta, rows: shape[0], cols: shape[1], rank: 32, threads: threads)
                return [1, 8, 32].map { k in
                    min(1, svd.singularValues.prefix(k).reduce(0) { $0 + $1 * $1 } / t.energy[v])
                }
            }
        }
        out.append(t)
    }
    return VectorAnalysis(
        domains: vectors.map(\.domain), paths: vectors.map(\.path), pairs: pairs, tensors: out, density: density,
        base: base?.path)
}

func sumOfSquares(_ x: [Double]) -> Double { x.reduce(0) { $0 + $1 * $1 } }

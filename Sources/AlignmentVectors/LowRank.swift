import Tensors

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A truncated singular value decomposition `A ≈ U·diag(σ)·Vᵀ` of a row-major m × n matrix.
public struct TruncatedSVD: Sendable {
    /// Singular values, largest first (as many as were computed, ≥ the rank asked for).
    public var singularValues: [Double]
    /// Left singular vectors, m × count, row-major.
    public var u: [Double]
    /// Right singular vectors, n × count, row-major.
    public var v: [Double]
    /// Rows of the factored matrix (m).
    public var rows: Int
    /// Columns of the factored matrix (n).
    public var cols: Int
    /// How many singular triplets `u`, `v` and `singularValues` hold.
    public var count: Int { singularValues.count }
}

/// Randomized subspace iteration (Halko, Martinsson and Tropp 2011, algorithm 4.4) in f64, with a
/// seeded Gaussian start: deterministic for a seed, and independent of the thread count (every
/// output element is summed in one fixed order). No LAPACK: the small l × l problem is solved by
/// the cyclic Jacobi eigenvalue method.
public enum LowRank {
    /// The `rank` largest singular triplets of `a` (m × n, row-major), computed with `oversampling`
    /// extra directions and `iterations` power iterations.
    public static func svd(
        _ a: [Double], rows m: Int, cols n: Int, rank: Int, oversampling: Int = 10, iterations: Int = 4,
        seed: UInt64 = 0x5EED, threads: Int = Parallel.defaultThreads
    ) -> TruncatedSVD {
        let l = max(1, min(rank + oversampling, m, n))
        let at = transpose(a, rows: m, cols: n)
        var rng = SplitMix64(seed: seed)
        var omega = [Double](repeating: 0, count: n * l)
        for i in omega.indices { omega[i] = rng.gaussian() }
        var q = multiply(a, rows: m, inner: n, by: omega, cols: l, threads: threads)
        orthonormalize(&q, rows: m, cols: l, rng: &rng)
        for _ in 0..<iterations {
            var z = multiply(at, rows: n, inner: m, by: q, cols: l, threads: threads)
            orthonormalize(&z, rows: n, cols: l, rng: &rng)
            q = multiply(a, rows: m, inner: n, by: z, cols: l, threads: threads)
            orthonormalize(&q, rows: m, cols: l, rng: &rng)
        }
        // B = Qᵀ·A (l × n) = (Aᵀ·Q)ᵀ; then B·Bᵀ = W·diag(σ²)·Wᵀ.
        let bt = multiply(at, rows: n, inner: m, by: q, cols: l, threads: threads)  // n × l
        var gram = [Double](repeating: 0, count: l * l)
        for i in 0..<l {
            for j in i..<l {
                var s = 0.0
                for k in 0..<n { s += bt[k * l + i] * bt[k * l + j] }
                gram[i * l + j] = s
                gram[j * l + i] = s
            }
        }
        let (values, vectors) = symmetricEigen(gram, size: l)
        let order = values.indices.sorted { values[$0] > values[$1] || (values[$0] == values[$1] && $0 < $1) }
        let sigma = order.map { max(0, values[$0]).squareRoot() }
        var w = [Double](repeating: 0, count: l * l)  // columns in descending order
        for (c, o) in order.enumerated() {
            for r in 0..<l { w[r * l + c] = vectors[r * l + o] }
        }
        let u = multiply(q, rows: m, inner: l, by: w, cols: l, threads: threads)
        var v = multiply(bt, rows: n, inner: l, by: w, cols: l, threads: threads)
        for c in 0..<l where sigma[c] > 0 {
            for r in 0..<n { v[r * l + c] /= sigma[c] }
        }
        return TruncatedSVD(singularValues: sigma, u: u, v: v, rows: m, cols: n)
    }

    static func transpose(_ a: [Double], rows m: Int, cols n: Int) -> [Double] {
        var t = [Double](repeating: 0, count: a.count)
        for i in 0..<m {
            for j in 0..<n { t[j * m + i] = a[i * n + j] }
        }
        return t
    }

    /// `a` (rows × inner) times `b` (inner × cols), row-major; rows split over threads.
    static func multiply(_ a: [Double], rows: Int, inner: Int, by b: [Double], cols: Int, threads: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows * cols)
        out.withUnsafeMutableBufferPointer { o in
            let dst = UncheckedSendable(o)
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    let blocks = (rows + 31) / 32
                    Parallel.forEach(blocks, threads: threads) { _, block in
                        for i in (block * 32)..<min(rows, block * 32 + 32) {
                            let row = dst.value.baseAddress! + i * cols
                            for k in 0..<inner {
                                let x = ap[i * inner + k]
                                if x == 0 { continue }
                                let bk = bp.baseAddress! + k * cols
                                for j in 0..<cols { row[j] += x * bk[j] }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Orthonormal columns by modified Gram–Schmidt, twice; a column that vanishes (the matrix has
    /// lower rank) is replaced by a random direction orthogonal to the others.
    static func orthonormalize(_ a: inout [Double], rows m: Int, cols l: Int, rng: inout SplitMix64) {
        for c in 0..<l {
            var original = 0.0
            for r in 0..<m { original += a[r * l + c] * a[r * l + c] }
            var attempts = 0
            while true {
                for _ in 0..<2 {
                    for p in 0..<c {
                        var dot = 0.0
                        for r in 0..<m { dot += a[r * l + p] * a[r * l + c] }
                        for r in 0..<m { a[r * l + c] -= dot * a[r * l + p] }
                    }
                }
                var norm = 0.0
                for r in 0..<m { norm += a[r * l + c] * a[r * l + c] }
                if norm > 1e-24 * max(original, 1e-300) && norm > 1e-300 || attempts >= 3 {
                    let inv = norm > 0 ? 1 / norm.squareRoot() : 0
                    for r in 0..<m { a[r * l + c] *= inv }
                    break
                }
                attempts += 1
                for r in 0..<m { a[r * l + c] = rng.gaussian() }
                original = Double(m)
            }
        }
    }

    /// Eigenvalues and eigenvectors (columns of the returned row-major matrix) of a symmetric
    /// matrix, by cyclic Jacobi rotations until the off-diagonal part is negligible.
    static func symmetricEigen(_ matrix: [Double], size n: Int) -> (values: [Double], vectors: [Double]) {
        var a = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        var scale = 0.0
        for x in a { scale += x * x }
        for _ in 0..<100 {
            var off = 0.0
            for i in 0..<n {
                for j in 0..<n where i != j { off += a[i * n + j] * a[i * n + j] }
            }
            if off <= 1e-30 * scale || off == 0 { break }
            for p in 0..<n {
                for q in (p + 1)..<n {
                    let apq = a[p * n + q]
                    if apq == 0 { continue }
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot()
                    let s = t * c
                    for k in 0..<n {
                        let akp = a[k * n + p]
                        let akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p * n + k]
                        let aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k * n + p]
                        let vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<n).map { a[$0 * n + $0] }, v)
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): a small seeded generator, the same sequence on every
/// platform; Gaussian values by the Box–Muller transform.
public struct SplitMix64: Sendable {
    private var state: UInt64

    /// A generator that starts from `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform value in (0, 1).
    public mutating func uniform() -> Double { (Double(next() >> 11) + 0.5) / 9_007_199_254_740_992 }

    /// A standard normal value.
    public mutating func gaussian() -> Double {
        let u1 = uniform()
        let u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

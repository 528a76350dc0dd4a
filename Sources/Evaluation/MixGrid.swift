import AlignmentVectors
import Inference

/// One direction of a sweep or a search: a domain's vector, over the whole model or one group of
/// layers (the vector's other tensors at 0).
public struct MixAxis: Sendable {
    /// The axis's name in reports: the domain, or `DOMAIN[A-B]` for a layer group.
    public var name: String
    /// The domain's alignment vector.
    public var vector: AlignmentVector
    /// When set, λ applies to these layers only.
    public var layers: ClosedRange<Int>?

    /// An axis from its parts.
    public init(name: String, vector: AlignmentVector, layers: ClosedRange<Int>? = nil) {
        self.name = name
        self.vector = vector
        self.layers = layers
    }

    /// The term that puts this axis at `lambda`; nil at 0, which leaves the base as it is (adding
    /// 0·AV changes no bit of it).
    public func term(_ lambda: Double) -> MergeTerm? {
        guard lambda != 0 else { return nil }
        guard let layers else { return MergeTerm(vector: vector, coefficient: lambda) }
        var rule = CoefficientRule()
        rule.layers = [(layers, lambda)]
        return MergeTerm(vector: vector, coefficient: 0, rule: rule)
    }
}

/// One evaluated mix: λ per axis and what was measured there.
public struct GridPoint: Sendable, Equatable {
    /// λ per axis, in axis order.
    public var lambdas: [Double]
    /// Preference accuracy and margins, when pairs were measured.
    public var pairs: PairsResult?
    /// Per levels file (in the evaluator's order), the result at this point.
    public var levels: [LevelsResult]

    /// A point from its parts.
    public init(lambdas: [Double], pairs: PairsResult?, levels: [LevelsResult]) {
        self.lambdas = lambdas
        self.pairs = pairs
        self.levels = levels
    }
}

/// Grids of mixes: the points of a sweep and of a grid search, the share of them one task of a
/// sharded run evaluates, and their evaluation in batches.
public enum MixGrid {
    /// Points evaluated before the cache is read: enough to keep every thread busy, few enough
    /// that a progress report moves.
    static let batch = 16

    /// The most mixes a sweep or search may enumerate: each one is a model evaluation (about a
    /// second on Checkpoints), and the points are held in memory.
    public static let maximumPoints = 100_000

    /// Every combination of one value per axis, the first axis varying slowest.
    public static func points(_ values: [[Double]]) -> [[Double]] {
        values.reduce([[]]) { partial, axis in partial.flatMap { p in axis.map { p + [$0] } } }
    }

    /// The points of shard `shard` of `count`: every `count`-th point from `shard`, in grid order.
    public static func shard(_ points: [[Double]], _ shard: Int, of count: Int) -> [[Double]] {
        points.enumerated().filter { $0.offset % count == shard }.map(\.element)
    }

    /// Every measurement of `evaluator` at each of `points`, in order; `progress` hears the points
    /// done after each batch.
    public static func evaluate(
        _ evaluator: MixEvaluator, points: [[Double]], progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws(InferenceError) -> [GridPoint] {
        var out: [GridPoint] = []
        for start in stride(from: 0, to: points.count, by: batch) {
            let these = points[start..<min(points.count, start + batch)]
            try evaluator.prefetch(these.map { (lambdas: $0, measure: evaluator.measurements) })
            for lambdas in these { out.append(try evaluator.point(at: lambdas)) }
            progress?(out.count, points.count)
        }
        return out
    }
}

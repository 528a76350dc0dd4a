import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A preference profile: a target level per domain (in domain order).
public typealias Profile = [String]

/// One evaluated mix: λ per domain and the level shares of every domain there.
public struct SearchPoint: Sendable, Equatable {
    /// λ per domain, in domain order.
    public var lambdas: [Double]
    /// Per domain, the shares of its levels (in its levels file's order).
    public var shares: [[Double]]

    /// A point from its λs and the shares measured there.
    public init(lambdas: [Double], shares: [[Double]]) {
        self.lambdas = lambdas
        self.shares = shares
    }

    /// The Wilson interval of domain `domain`'s share of the level at `level`, over its `prompts`
    /// prompts (the share is a count of prompts, so the count is exact).
    public func shareInterval(
        domain: Int, level: Int, prompts: Int, confidence: Double = Statistics.defaultConfidence
    ) -> Interval {
        Statistics.wilson(share: shares[domain][level], trials: prompts, confidence: confidence)
    }

    /// How far the profile is reached: over domains, the smallest lead of the target level's share
    /// over the best other level's (positive when every domain's target leads).
    public func margin(_ profile: Profile, levels: [[String]]) -> Double {
        var worst = Double.infinity
        for (d, target) in profile.enumerated() {
            guard let t = levels[d].firstIndex(of: target) else { return -.infinity }
            let other = shares[d].indices.filter { $0 != t }.map { shares[d][$0] }.max() ?? 0
            worst = min(worst, shares[d][t] - other)
        }
        return worst
    }
}

/// What a search found for one profile.
public struct ProfileResult: Sendable, Equatable {
    /// The target level per domain.
    public var profile: Profile
    /// The best mix reaching the profile (largest margin; ties: smallest Σ|λ|), if any.
    public var best: SearchPoint?
    /// `best`'s margin (the smallest lead of a target level over the other levels); −∞ when none reaches it.
    public var margin: Double
    /// Other mixes that reach it, best first (at most three).
    public var runnersUp: [SearchPoint]
    /// Whether some mix reaches the profile.
    public var reached: Bool { best != nil }
}

/// How the λ space is explored.
public enum SearchStrategy: String, Sendable {
    /// Per domain a sweep of its own λ (the others at 0), then the best candidates of each domain
    /// combined and checked as whole mixes: domains interact weakly, so few mixes are needed.
    case coordinate
    /// Every point of the grid: exhaustive, and the one that shards (`--shard I/N`).
    case grid
}

/// The multi-domain search: λ per domain such that in every domain the target level has the
/// largest share.
public enum MixSearch {
    /// Every combination of the domains' levels.
    public static func allProfiles(_ levels: [[String]]) -> [Profile] {
        levels.reduce([[]]) { partial, options in partial.flatMap { p in options.map { p + [$0] } } }
    }

    /// Picks the best point and runners-up of each profile among `points`, in a fixed order, so the
    /// same points give the same answer however they were computed.
    public static func select(_ profiles: [Profile], from points: [SearchPoint], levels: [[String]]) -> [ProfileResult]
    {
        profiles.map { profile in
            let reaching = points.map { ($0, $0.margin(profile, levels: levels)) }.filter { $0.1 > 0 }
                .sorted { a, b in
                    if a.1 != b.1 { return a.1 > b.1 }
                    let sa = a.0.lambdas.map(\.magnitude).reduce(0, +)
                    let sb = b.0.lambdas.map(\.magnitude).reduce(0, +)
                    if sa != sb { return sa < sb }
                    return a.0.lambdas.lexicographicallyPrecedes(b.0.lambdas)
                }
            return ProfileResult(
                profile: profile, best: reaching.first?.0, margin: reaching.first?.1 ?? 0,
                runnersUp: reaching.dropFirst().prefix(3).map(\.0))
        }
    }

    /// Every point of the grid, in a fixed order (the first domain varies slowest).
    public static func gridPoints(_ values: [Double], domains: Int) -> [[Double]] {
        MixGrid.points(Array(repeating: values, count: domains))
    }

    /// A search point from a grid point: the shares of every domain's levels.
    public static func point(_ p: GridPoint) -> SearchPoint {
        SearchPoint(lambdas: p.lambdas, shares: p.levels.map(\.shares))
    }

    /// Evaluates the points of shard `shard` of `of` (every `of`-th point of the grid, from `shard`).
    public static func evaluateGrid(_ evaluator: MixEvaluator, values: [Double], shard: Int = 0, of count: Int = 1)
        throws(InferenceError) -> [SearchPoint]
    {
        let mine = MixGrid.shard(gridPoints(values, domains: evaluator.axes.count), shard, of: count)
        return try MixGrid.evaluate(evaluator, points: mine).map(point)
    }

    /// The coordinate search: per domain a sweep of `values` alone, then for each profile the
    /// combinations of each domain's best candidates (at most `tries` per profile), checked whole.
    public static func coordinate(
        _ evaluator: MixEvaluator, values: [Double], profiles: [Profile], candidates: Int = 3, tries: Int = 4
    ) throws(InferenceError) -> [SearchPoint] {
        let domains = evaluator.axes
        let levels = evaluator.levels.map(\.levels)
        let all = Array(domains.indices)
        // Stage 1: each domain's shares along its own λ (all evaluated side by side first).
        try evaluator.prefetch(
            domains.indices.flatMap { d in
                values.map { v in
                    var lambdas = [Double](repeating: 0, count: domains.count)
                    lambdas[d] = v
                    return (lambdas: lambdas, which: [d])
                }
            })
        var alone: [[(Double, [Double])]] = []
        for d in domains.indices {
            var row: [(Double, [Double])] = []
            for v in values {
                var lambdas = [Double](repeating: 0, count: domains.count)
                lambdas[d] = v
                row.append((v, try evaluator.results(at: lambdas, for: [d])[d]!.shares))
            }
            alone.append(row)
        }
        // Stage 2: whole mixes from the best candidates of each domain.
        var points: [[Double]: SearchPoint] = [:]
        for profile in profiles {
            var ranked: [[Double]] = []
            for d in domains.indices {
                let t = levels[d].firstIndex(of: profile[d]) ?? 0
                let scored = alone[d].map { v, s -> (Double, Double) in
                    (v, s[t] - (s.indices.filter { $0 != t }.map { s[$0] }.max() ?? 0))
                }
                // The gentlest λ that reaches the target with at least half the best lead comes first
                // (a mild mix disturbs the other domains least), then the rest by lead.
                let byLead = scored.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0.magnitude < $1.0.magnitude }
                let best = byLead.first?.1 ?? 0
                let gentle = scored.filter { best > 0 && $0.1 >= best / 2 }.min { $0.0.magnitude < $1.0.magnitude }
                var order = gentle.map { [$0.0] } ?? []
                for (v, _) in byLead where !order.contains(v) { order.append(v) }
                ranked.append(Array(order.prefix(candidates)))
            }
            // Combinations in order of total rank: all first choices, then one second choice, …
            var combos = MixSearch.gridPoints(
                [0, 1, 2].filter { $0 < candidates }.map(Double.init), domains: domains.count
            )
            .map { $0.map(Int.init) }
            .filter { c in c.enumerated().allSatisfy { $0.element < ranked[$0.offset].count } }
            combos.sort { a, b in
                a.reduce(0, +) != b.reduce(0, +) ? a.reduce(0, +) < b.reduce(0, +) : a.lexicographicallyPrecedes(b)
            }
            var tried = 0
            for combo in combos where tried < tries {
                let lambdas = combo.enumerated().map { ranked[$0.offset][$0.element] }
                tried += 1
                let r = try evaluator.results(at: lambdas, for: all)
                let point = SearchPoint(lambdas: lambdas, shares: all.map { r[$0]!.shares })
                points[lambdas] = point
                if point.margin(profile, levels: levels) > 0 { break }
            }
        }
        return points.values.sorted { $0.lambdas.lexicographicallyPrecedes($1.lambdas) }
    }
}

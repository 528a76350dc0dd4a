import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A partial result of a sharded grid search (`av search --shard I/N`): the points one task
/// evaluated, with the fingerprints of every input and the grid, so that `--collect` refuses to
/// combine shards of different runs and gives exactly what the unsharded run gives.
public struct SearchShard: Sendable, Equatable {
    /// What identifies the run's inputs (see `inputs(_:)`).
    public var inputs: JSONValue
    /// The grid of λ values every domain takes.
    public var values: [Double]
    /// Which shard this is, from 0.
    public var shard: Int
    /// How many shards the grid was cut into.
    public var count: Int
    /// The points this shard evaluated, in grid order.
    public var points: [SearchPoint]

    /// A shard from its parts.
    public init(inputs: JSONValue, values: [Double], shard: Int, count: Int, points: [SearchPoint]) {
        self.inputs = inputs
        self.values = values
        self.shard = shard
        self.count = count
        self.points = points
    }

    /// What identifies a search's inputs: the base and vectors (fingerprints the vectors record),
    /// the levels files (XXH64 of their bytes), the scoring and the prompt prefix.
    public static func inputs(_ evaluator: MixEvaluator) -> JSONValue {
        // A logit mix is another search; weight mixes keep the identity they always had.
        let mix: [(String, JSONValue)] = evaluator.mix == .logits ? [("mix", .string("logits"))] : []
        return .object(
            [
                (
                    "domains",
                    .array(
                        evaluator.domains.map { d in
                            let bytes = FileManager.default.contents(atPath: d.levels.path) ?? Data()
                            let digest = [UInt8](bytes).withUnsafeBytes { XXHash64.hex(XXHash64.hash($0)) }
                            return .object([
                                ("name", .string(d.name)), ("base", .string(d.vector.header.base.fingerprint)),
                                ("aligned", .string(d.vector.header.aligned.fingerprint)), ("levels", .string(digest)),
                            ])
                        })
                ),
                ("score", .string(evaluator.score.rawValue)), ("prefix", .string(evaluator.prefix)),
            ] + mix)
    }

    /// The shard as the JSON file `av search --shard` writes.
    public var json: JSONValue {
        .object([
            ("format", .string("av-search-shard")), ("inputs", inputs), ("values", .array(values.map { .double($0) })),
            ("shard", .int(shard)), ("count", .int(count)),
            (
                "points",
                .array(
                    points.map { p in
                        .object([
                            ("lambdas", .array(p.lambdas.map { .double($0) })),
                            ("shares", .array(p.shares.map { .array($0.map { .double($0) }) })),
                        ])
                    })
            ),
        ])
    }

    /// Reads a shard file written by `json`.
    public static func load(_ path: String) throws(InferenceError) -> SearchShard {
        let text = try TextInput.read(path)
        func fail(_ m: String) -> InferenceError { .input(file: path, message: m) }
        guard let v = try? JSONParser.parse(text), v["format"]?.stringValue == "av-search-shard",
            let inputs = v["inputs"],
            let values = v["values"]?.arrayValue?.compactMap(\.doubleValue), let shard = v["shard"]?.doubleValue,
            let count = v["count"]?.doubleValue, let points = v["points"]?.arrayValue,
            // Checked as numbers before they become Ints: 1e19 would trap the conversion.
            count >= 1, count <= 1e6, count == count.rounded(), shard >= 0, shard < count, shard == shard.rounded()
        else { throw fail("not a search shard written by av search --shard (format, shard and count)") }
        var out: [SearchPoint] = []
        for p in points {
            guard let l = p["lambdas"]?.arrayValue?.compactMap(\.doubleValue),
                let s = p["shares"]?.arrayValue?.map({ $0.arrayValue?.compactMap(\.doubleValue) ?? [] })
            else { throw fail("a point is malformed") }
            out.append(SearchPoint(lambdas: l, shares: s))
        }
        return SearchShard(inputs: inputs, values: values, shard: Int(shard), count: Int(count), points: out)
    }

    /// The points of a whole grid from its shards: refuses shards of other inputs or grids, and a
    /// missing or repeated shard. The order is the grid's, as the unsharded run has it.
    public static func combine(_ shards: [(path: String, shard: SearchShard)]) throws(InferenceError) -> (
        inputs: JSONValue, values: [Double], points: [SearchPoint]
    ) {
        guard let first = shards.first else { throw .input(file: "collect", message: "no shard files") }
        for (path, s) in shards {
            guard s.inputs == first.shard.inputs else {
                throw .input(
                    file: path,
                    message:
                        "was computed from other inputs than \(first.path) (vectors, levels files, score or prefix"
                        + " differ)"
                )
            }
            guard s.values == first.shard.values, s.count == first.shard.count else {
                throw .input(file: path, message: "has another grid or shard count than \(first.path)")
            }
        }
        let seen = shards.map(\.shard.shard).sorted()
        guard seen == Array(0..<first.shard.count) else {
            let missing = Set(0..<first.shard.count).subtracting(seen).sorted()
            throw .input(
                file: "collect",
                message: missing.isEmpty
                    ? "a shard is given twice"
                    : "shards \(missing.map { "\($0)/\(first.shard.count)" }.joined(separator: ", ")) are missing")
        }
        let points = shards.flatMap(\.shard.points)
        let order = MixSearch.gridPoints(first.shard.values, domains: points.first?.lambdas.count ?? 0)
        let index = Dictionary(order.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        // The points must be the grid's, each once: shards of a cut-short or edited run are refused.
        let found = points.compactMap { index[$0.lambdas] }
        guard found.count == points.count, Set(found).count == points.count, points.count == index.count else {
            throw .input(
                file: "collect", message: "the shards hold \(points.count) points, not the grid's \(index.count) each once")
        }
        return (first.shard.inputs, first.shard.values, points.sorted { index[$0.lambdas]! < index[$1.lambdas]! })
    }
}

import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A partial result of a sharded sweep or grid search (`--shard I/N`): the points one task
/// evaluated, with the fingerprints of every input and the grid, so that `--collect` refuses to
/// combine shards of different runs and gives exactly what the unsharded run gives. Sweep and
/// search write the same format; a shard names the command that wrote it.
public struct GridShard: Sendable, Equatable {
    /// The command that wrote the shard: `sweep` or `search`.
    public var command: String
    /// What identifies the run's inputs (see `inputs(_:)`).
    public var inputs: JSONValue
    /// The λ values of each axis.
    public var grid: [[Double]]
    /// Which shard this is, from 0.
    public var shard: Int
    /// How many shards the grid was cut into.
    public var count: Int
    /// The points this shard evaluated, in grid order.
    public var points: [GridPoint]

    /// The most shards a run may be cut into.
    public static let maximumCount = 1_000_000

    /// A shard from its parts.
    public init(command: String, inputs: JSONValue, grid: [[Double]], shard: Int, count: Int, points: [GridPoint]) {
        self.command = command
        self.inputs = inputs
        self.grid = grid
        self.shard = shard
        self.count = count
        self.points = points
    }

    /// What identifies a run's inputs: each axis (its vector's fingerprints and layer group), the
    /// levels files (XXH64 of their bytes), the pairs, the scoring, the prompt prefix and the mix.
    public static func inputs(_ evaluator: MixEvaluator) -> JSONValue {
        func digest(_ bytes: [UInt8]) -> JSONValue {
            .string(bytes.withUnsafeBytes { XXHash64.hex(XXHash64.hash($0)) })
        }
        let pairs = evaluator.pairs.map { pairs in
            digest(Array(pairs.map { "\($0.prompt)\u{0}\($0.chosen)\u{0}\($0.rejected)\u{0}" }.joined().utf8))
        }
        return .object([
            (
                "axes",
                .array(
                    evaluator.axes.map { a in
                        .object([
                            ("name", .string(a.name)), ("base", .string(a.vector.header.base.fingerprint)),
                            ("aligned", .string(a.vector.header.aligned.fingerprint)),
                            ("layers", a.layers.map { .array([.int($0.lowerBound), .int($0.upperBound)]) } ?? .null),
                        ])
                    })
            ),
            (
                "levels",
                .array(
                    evaluator.levels.map { digest([UInt8](FileManager.default.contents(atPath: $0.path) ?? Data())) })
            ),
            ("pairs", pairs ?? .null), ("score", .string(evaluator.score.rawValue)),
            ("prefix", .string(evaluator.prefix)), ("mix", .string(evaluator.mix.rawValue)),
        ])
    }

    /// The shard as the JSON file `--shard` writes.
    public var json: JSONValue {
        .object([
            ("format", .string("av-grid-shard")), ("command", .string(command)), ("inputs", inputs),
            ("grid", .array(grid.map { .array($0.map { .double($0) }) })), ("shard", .int(shard)),
            ("count", .int(count)), ("rows", .array(points.map(Self.json))),
        ])
    }

    private static func json(_ p: GridPoint) -> JSONValue {
        .object([
            ("lambdas", .array(p.lambdas.map { .double($0) })),
            (
                "pairs",
                p.pairs.map {
                    .object([
                        ("pairs", .int($0.pairs)), ("accuracy", .double($0.accuracy)),
                        ("meanMargin", .double($0.meanMargin)), ("margins", .array($0.margins.map { .double($0) })),
                    ])
                } ?? .null
            ),
            (
                "levels",
                .array(
                    p.levels.map { l in
                        .object([
                            ("levels", .array(l.levels.map { .string($0) })),
                            ("shares", .array(l.shares.map { .double($0) })),
                        ])
                    })
            ),
        ])
    }

    /// Reads a shard that `command` wrote; every field is checked, and a malformed row is refused
    /// with its number, never read as zeros.
    public static func load(_ path: String, command: String) throws(InferenceError) -> GridShard {
        func fail(_ m: String) -> InferenceError { .input(file: path, message: m) }
        guard let v = try? JSONParser.parse(try TextInput.read(path)), v["format"]?.stringValue == "av-grid-shard",
            v["command"]?.stringValue == command, let inputs = v["inputs"],
            let grid = v["grid"]?.arrayValue?.map({ numbers($0) }), !grid.contains(nil),
            let shard = v["shard"]?.doubleValue, let count = v["count"]?.doubleValue,
            // Checked as numbers before they become Ints: 1e19 would trap the conversion.
            count >= 1, count <= Double(maximumCount), count == count.rounded(), shard >= 0, shard < count,
            shard == shard.rounded()
        else { throw fail("not a \(command) shard written by av \(command) --shard (format, shard and count)") }
        guard let rows = v["rows"]?.arrayValue else { throw fail("no \"rows\" list") }
        var points: [GridPoint] = []
        for (k, r) in rows.enumerated() {
            points.append(try point(r, in: path, number: k + 1))
        }
        return GridShard(
            command: command, inputs: inputs, grid: grid.map { $0! }, shard: Int(shard), count: Int(count),
            points: points)
    }

    /// A list of finite numbers, or nil.
    private static func numbers(_ v: JSONValue?) -> [Double]? {
        guard let items = v?.arrayValue else { return nil }
        let values = items.compactMap(\.doubleValue)
        return values.count == items.count && values.allSatisfy(\.isFinite) ? values : nil
    }

    private static func point(_ r: JSONValue, in path: String, number: Int) throws(InferenceError) -> GridPoint {
        func fail(_ what: String) -> InferenceError { .input(file: path, message: "row \(number): \(what)") }
        guard let lambdas = numbers(r["lambdas"]), !lambdas.isEmpty else { throw fail("\"lambdas\" must be numbers") }
        var pairs: PairsResult?
        if let p = r["pairs"], p != .null {
            guard let n = p["pairs"]?.doubleValue, n >= 1, n <= 1e9, n == n.rounded(),
                let accuracy = p["accuracy"]?.doubleValue, (0...1).contains(accuracy),
                let mean = p["meanMargin"]?.doubleValue, mean.isFinite, let margins = numbers(p["margins"]),
                margins.count == Int(n)
            else { throw fail("\"pairs\" must hold pairs, accuracy, meanMargin and one margin per pair") }
            pairs = PairsResult(
                pairs: Int(n), accuracy: accuracy, meanMargin: mean, rewardAccuracy: nil, meanRewardMargin: nil,
                margins: margins)
        }
        guard let entries = r["levels"]?.arrayValue else { throw fail("\"levels\" must be a list") }
        var levels: [LevelsResult] = []
        for l in entries {
            guard let items = l["levels"]?.arrayValue, items.count >= 2, items.allSatisfy({ $0.stringValue != nil }),
                let shares = numbers(l["shares"]), shares.count == items.count,
                shares.allSatisfy({ (0...1).contains($0) })
            else { throw fail("each \"levels\" entry must name its levels and give a share from 0 to 1 for each") }
            levels.append(
                LevelsResult(
                    levels: items.map { $0.stringValue! }, shares: shares, meanMargins: [], winners: [], scores: [],
                    meanPromptTokens: 0))
        }
        return GridPoint(lambdas: lambdas, pairs: pairs, levels: levels)
    }

    /// The points of the whole grid from the shard files (`*.json`) in `dir`, in grid order:
    /// refuses shards another command wrote, of other inputs, grids or counts, a missing or
    /// repeated shard, shards whose points are not the grid's, each once, and points that do not
    /// hold the measurements of `evaluator` (its levels files and, when it has them, its pairs).
    public static func collect(_ dir: String, command: String, evaluator: MixEvaluator, grid: [[Double]])
        throws(InferenceError) -> [GridPoint]
    {
        let inputs = Self.inputs(evaluator)
        let levels = evaluator.levels.map(\.levels)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".json") }
        guard !names.isEmpty else { throw .input(file: dir, message: "no shard files (*.json)") }
        var shards: [GridShard] = []
        for name in names.sorted() {
            let path = Path.join(dir, name)
            let s = try load(path, command: command)
            guard s.grid == grid, shards.first.map({ $0.count == s.count }) ?? true else {
                throw .input(file: path, message: "has another grid or shard count than this command names")
            }
            guard s.inputs == inputs else {
                throw .input(
                    file: path,
                    message:
                        "was computed from other inputs than this command names (vectors, levels or pairs files,"
                        + " score, prefix or mix)")
            }
            for (k, p) in s.points.enumerated()
            where p.levels.map(\.levels) != levels || (p.pairs != nil) != (evaluator.pairs != nil)
                || p.lambdas.count != grid.count
            {
                throw .input(file: path, message: "row \(k + 1): does not hold this run's measurements")
            }
            shards.append(s)
        }
        let total = shards[0].count
        let seen = shards.map(\.shard).sorted()
        guard seen == Array(0..<total) else {
            let missing = Set(0..<total).subtracting(seen).sorted().map { "\($0)/\(total)" }
            throw .input(
                file: dir,
                message: missing.isEmpty
                    ? "a shard is given twice" : "shards \(missing.joined(separator: ", ")) are missing")
        }
        let order = MixGrid.points(grid)
        let index = Dictionary(order.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let points = shards.flatMap(\.points)
        let found = points.compactMap { index[$0.lambdas] }
        guard found.count == points.count, Set(found).count == points.count, points.count == index.count else {
            throw .input(
                file: dir,
                message: "the shards hold \(points.count) points, not the grid's \(index.count) points each once")
        }
        return points.sorted { index[$0.lambdas]! < index[$1.lambdas]! }
    }
}

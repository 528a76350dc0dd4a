import AlignmentVectors
import Evaluation
import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `av sweep --shard I/N` and `--collect DIR`: a sweep split over the tasks of a scheduler. Each
/// shard evaluates every N-th point from I and writes its rows with the fingerprints of the inputs;
/// collecting refuses shards of other inputs, grids or counts, and prints what the unsharded
/// sweep prints.
enum SweepShards {
    /// What identifies a sweep's inputs: the vectors, the pairs and levels files, score and prefix.
    static func inputs(
        axes: [(domain: String, values: [Double], vector: AlignmentVector)], files: [String], score: LevelScore,
        prefix: String
    )
        -> JSONValue
    {
        func digest(_ path: String) -> String {
            [UInt8](FileManager.default.contents(atPath: path) ?? Data()).withUnsafeBytes {
                XXHash64.hex(XXHash64.hash($0))
            }
        }
        return .object([
            (
                "vectors",
                .array(
                    axes.map {
                        .string(
                            "\($0.domain)=\($0.vector.header.aligned.fingerprint)@\($0.vector.header.base.fingerprint)")
                    })
            ),
            ("files", .array(files.map { .string(digest($0)) })), ("score", .string(score.rawValue)),
            ("prefix", .string(prefix)),
            ("grid", .array(axes.map { .array($0.values.map { .double($0) }) })),
        ])
    }

    static func json(_ rows: [SweepCommand.Row], inputs: JSONValue, shard: Int, count: Int) -> JSONValue {
        .object([
            ("format", .string("av-sweep-shard")), ("inputs", inputs), ("shard", .int(shard)), ("count", .int(count)),
            (
                "rows",
                .array(
                    rows.map { r in
                        .object([
                            ("lambdas", .array(r.lambdas.map { .double($0) })),
                            (
                                "pairs",
                                r.pairs.map {
                                    .object([
                                        ("pairs", .int($0.pairs)), ("accuracy", .double($0.accuracy)),
                                        ("meanMargin", .double($0.meanMargin)),
                                        ("margins", .array($0.margins.map { .double($0) })),
                                    ])
                                } ?? .null
                            ),
                            (
                                "levels",
                                .array(
                                    r.levels.map { l in
                                        .object([
                                            ("levels", .array(l.levels.map { .string($0) })),
                                            ("shares", .array(l.shares.map { .double($0) })),
                                        ])
                                    })
                            ),
                        ])
                    })
            ),
        ])
    }

    /// One row of a shard, every field checked: a malformed row is refused, never read as zeros.
    static func row(_ r: JSONValue, in path: String, number: Int) throws -> SweepCommand.Row {
        func fail(_ what: String) -> CLIError {
            CLIError(message: "\(path): row \(number): \(what)", code: .badInput)
        }
        func numbers(_ v: JSONValue?) -> [Double]? {
            guard let items = v?.arrayValue else { return nil }
            let values = items.compactMap(\.doubleValue)
            return values.count == items.count && values.allSatisfy(\.isFinite) ? values : nil
        }
        guard let lambdas = numbers(r["lambdas"]), !lambdas.isEmpty else { throw fail("\"lambdas\" must be numbers") }
        var pairs: PairsResult?
        if let p = r["pairs"], p != .null {
            guard let n = p["pairs"]?.doubleValue, n >= 1, n <= 1e9, n == n.rounded(), let accuracy = p["accuracy"]?.doubleValue,
                (0...1).contains(accuracy), let mean = p["meanMargin"]?.doubleValue, mean.isFinite,
                let margins = numbers(p["margins"]), margins.count == Int(n)
            else { throw fail("\"pairs\" must hold pairs, accuracy, meanMargin and one margin per pair") }
            pairs = PairsResult(
                pairs: Int(n), accuracy: accuracy, meanMargin: mean, rewardAccuracy: nil, meanRewardMargin: nil,
                margins: margins)
        }
        guard let levelValues = r["levels"]?.arrayValue else { throw fail("\"levels\" must be a list") }
        let levels = try levelValues.map { l in
            guard let names = l["levels"]?.arrayValue?.compactMap(\.stringValue), names.count >= 2,
                let shares = numbers(l["shares"]), shares.count == names.count,
                shares.allSatisfy({ (0...1).contains($0) })
            else { throw fail("each \"levels\" entry must name its levels and give a share from 0 to 1 for each") }
            return LevelsResult(
                levels: names, shares: shares, meanMargins: [], winners: [], scores: [], meanPromptTokens: 0)
        }
        return SweepCommand.Row(lambdas: lambdas, pairs: pairs, levels: levels)
    }

    /// The rows of every shard in `dir`, in grid order; refuses mismatched or missing shards.
    static func collect(_ dir: String, inputs: JSONValue, grid: [[Double]]) throws -> [SweepCommand.Row] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".json") }
            .sorted()
        guard !files.isEmpty else { throw CLIError(message: "\(dir): no shard files (*.json)", code: .io) }
        var seen: [Int] = []
        var count: Int?
        var rows: [SweepCommand.Row] = []
        for name in files {
            let path = Path.join(dir, name)
            let v = try JSONParser.parse(try TextInput.read(path))
            // Counts are checked as numbers before they become Ints (1e19 would trap the conversion).
            guard v["format"]?.stringValue == "av-sweep-shard", let shard = v["shard"]?.doubleValue,
                let n = v["count"]?.doubleValue, n >= 1, n <= Double(max(grid.count, 1)), n == n.rounded(),
                shard >= 0, shard < n, shard == shard.rounded()
            else {
                throw CLIError(
                    message: "\(path): not a sweep shard written by av sweep --shard (format, shard and count)",
                    code: .badInput)
            }
            guard v["inputs"] == inputs else {
                throw CLIError(
                    message: "\(path): computed from other inputs or another grid than this command names",
                    code: .badInput)
            }
            guard count == nil || count == Int(n) else {
                throw CLIError(message: "\(path): another shard count", code: .badInput)
            }
            count = Int(n)
            seen.append(Int(shard))
            guard let rowValues = v["rows"]?.arrayValue else {
                throw CLIError(message: "\(path): no \"rows\" list", code: .badInput)
            }
            for (k, r) in rowValues.enumerated() {
                rows.append(try row(r, in: path, number: k + 1))
            }
        }
        let total = count ?? 0
        guard seen.sorted() == Array(0..<total) else {
            let missing = Set(0..<total).subtracting(seen).sorted().map { "\($0)/\(total)" }
            throw CLIError(
                message: missing.isEmpty
                    ? "\(dir): a shard is given twice"
                    : "\(dir): shards \(missing.joined(separator: ", ")) are missing", code: .badInput)
        }
        // The rows must be the grid's points, each once: shards of a cut-short run are refused.
        let index = Dictionary(grid.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let found = rows.compactMap { index[$0.lambdas] }
        guard found.count == rows.count, Set(found).count == rows.count, rows.count == index.count else {
            throw CLIError(
                message: "\(dir): the shards hold \(rows.count) points, not the grid's \(index.count) points each once",
                code: .badInput)
        }
        return rows.sorted { index[$0.lambdas]! < index[$1.lambdas]! }
    }
}

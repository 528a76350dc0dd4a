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
                                r.pairs.map { .array([.int($0.pairs), .double($0.accuracy), .double($0.meanMargin)]) }
                                    ?? .null
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
            guard v["format"]?.stringValue == "av-sweep-shard", let shard = v["shard"]?.doubleValue,
                let n = v["count"]?.doubleValue
            else {
                throw CLIError(message: "\(path): not a sweep shard written by av sweep --shard", code: .badInput)
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
            for r in v["rows"]?.arrayValue ?? [] {
                let lambdas = r["lambdas"]?.arrayValue?.compactMap(\.doubleValue) ?? []
                var pairs: PairsResult?
                if let p = r["pairs"]?.arrayValue, p.count == 3 {
                    pairs = PairsResult(
                        pairs: Int(p[0].doubleValue ?? 0), accuracy: p[1].doubleValue ?? 0,
                        meanMargin: p[2].doubleValue ?? 0, rewardAccuracy: nil,
                        meanRewardMargin: nil, margins: [])
                }
                let levels = (r["levels"]?.arrayValue ?? []).map { l in
                    LevelsResult(
                        levels: l["levels"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                        shares: l["shares"]?.arrayValue?.compactMap(\.doubleValue) ?? [],
                        meanMargins: [], winners: [], scores: [], meanPromptTokens: 0)
                }
                rows.append(SweepCommand.Row(lambdas: lambdas, pairs: pairs, levels: levels))
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
        let index = Dictionary(uniqueKeysWithValues: grid.enumerated().map { ($1, $0) })
        return rows.sorted { (index[$0.lambdas] ?? 0) < (index[$1.lambdas] ?? 0) }
    }
}

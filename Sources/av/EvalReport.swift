import Evaluation
import Inference
import SafeTensors
import Tensors

/// What `av eval` prints: a line (or a few) per measurement with its 95% intervals, the paired
/// comparison as a table; or all of it as JSON.
enum EvalReport {
    /// The lines, in the order text, pairs, levels, KL, comparison.
    static func text(_ a: EvalArguments, _ r: Measurements.Results) -> String {
        var lines: [String] = []
        if let t = r.text {
            lines.append(
                String(
                    cFormat: "perplexity  %.4f over %ld tokens (mean NLL %.4f nats)", t.perplexity, t.tokens, t.meanNLL)
            )
        }
        if let p = r.pairs {
            lines.append(
                "pairs       accuracy \(Format.share(p.accuracy, p.accuracyInterval())) (\(p.wins) of \(p.pairs)),"
                    + " mean margin \(Format.mean(p.meanMargin, p.meanMarginInterval())) nats")
            if let ra = p.rewardAccuracy, let rm = p.meanRewardMargin {
                lines.append(
                    "reward      DPO implicit-reward accuracy"
                        + " \(Format.share(ra, Statistics.wilson(share: ra, trials: p.pairs))),"
                        + String(cFormat: " mean reward margin %+.4f", rm) + " (reference \(a.reference ?? ""))")
            }
        }
        if let l = r.levels, let file = a.levels {
            let shares = l.levels.indices.map {
                "\(l.levels[$0]) \(Format.share(l.shares[$0], l.shareInterval(at: $0)))"
            }
            lines.append(
                "levels      \(shares.joined(separator: ", ")) over \(file.items.count) prompts; leading: \(l.leading)")
            if l.ties > 0 {
                lines.append(
                    "            note: \(l.ties) of \(file.items.count) prompts tie between levels"
                        + " (counted for the level listed first)")
            }
            lines.append(
                "            mean margin over the best other level: "
                    + zip(l.levels, l.meanMargins).map { "\($0) \(String(cFormat: "%+.3f", $1))" }.joined(
                        separator: ", ")
                    + (a.score == .mean ? " (nats per token)" : " (nats)"))
            if let base = r.levelsWithoutPrefix {
                lines.append(
                    String(
                        cFormat: "            prompt prefix: %.1f extra prompt tokens per query",
                        l.meanPromptTokens - base.meanPromptTokens)
                        + " (without it: "
                        + base.levels.indices.map {
                            "\(base.levels[$0]) " + Format.share(base.shares[$0], base.shareInterval(at: $0))
                        }.joined(separator: ", ") + ")")
            }
        }
        if let k = r.kl, let other = a.klTo {
            lines.append(
                String(cFormat: "kl          mean %.6f, max %.6f nats over %ld prompts", k.mean, k.max, k.prompts)
                    + " (KL(\(other) ‖ model))")
        }
        if let name = a.compare { lines += EvalCommand.render(r.comparisons, with: name) }
        return lines.joined(separator: "\n")
    }

    /// The same as one JSON object, with every prompt's winner and scores for levels.
    static func json(_ a: EvalArguments, _ r: Measurements.Results) -> JSONValue {
        var results: [(key: String, value: JSONValue)] = [("model", .string(a.model))]
        if let t = r.text, let file = a.textFile {
            results.append(
                (
                    "text",
                    .object([
                        ("file", .string(file)), ("tokens", .int(t.tokens)), ("meanNLL", .double(t.meanNLL)),
                        ("perplexity", .double(t.perplexity)),
                    ])
                ))
        }
        if let p = r.pairs, let file = a.pairsFile {
            var obj: [(key: String, value: JSONValue)] = [
                ("file", .string(file)), ("pairs", .int(p.pairs)), ("accuracy", .double(p.accuracy)),
                ("accuracyInterval", Format.json(p.accuracyInterval())), ("meanMargin", .double(p.meanMargin)),
                ("meanMarginInterval", Format.json(p.meanMarginInterval())),
            ]
            if let ra = p.rewardAccuracy, let rm = p.meanRewardMargin {
                obj += [
                    ("rewardAccuracy", .double(ra)),
                    ("rewardAccuracyInterval", Format.json(Statistics.wilson(share: ra, trials: p.pairs))),
                    ("meanRewardMargin", .double(rm)),
                ]
            }
            results.append(("pairs", .object(obj)))
        }
        if let l = r.levels, let file = a.levels {
            results.append(("levels", levels(l, file, a, r.levelsWithoutPrefix)))
        }
        if let k = r.kl, let other = a.klTo {
            results.append(
                (
                    "kl",
                    .object([
                        ("to", .string(other)), ("prompts", .int(k.prompts)), ("mean", .double(k.mean)),
                        ("max", .double(k.max)),
                    ])
                ))
        }
        if let name = a.compare { results.append(("compare", EvalCommand.json(r.comparisons, with: name))) }
        return .object(results)
    }

    private static func levels(_ r: LevelsResult, _ file: LevelsFile, _ a: EvalArguments, _ base: LevelsResult?)
        -> JSONValue
    {
        var obj: [(key: String, value: JSONValue)] = [
            ("file", .string(file.path)), ("prompts", .int(file.items.count)), ("score", .string(a.score.rawValue)),
            ("shares", .object(zip(r.levels, r.shares).map { ($0, .double($1)) })),
            ("shareIntervals", .object(r.levels.indices.map { (r.levels[$0], Format.json(r.shareInterval(at: $0))) })),
            ("meanMargins", .object(zip(r.levels, r.meanMargins).map { ($0, .double($1)) })),
            ("leading", .string(r.leading)), ("ties", .int(r.ties)), ("meanPromptTokens", .double(r.meanPromptTokens)),
            (
                "perPrompt",
                .array(
                    zip(file.items, zip(r.winners, r.scores)).map { item, w in
                        .object([
                            ("prompt", .string(item.prompt)), ("winner", .string(r.levels[w.0])),
                            ("scores", .object(zip(r.levels, w.1).map { ($0, .double($1)) })),
                        ])
                    })
            ),
        ]
        if let base { obj.append(("withoutPrefix", .object(zip(base.levels, base.shares).map { ($0, .double($1)) }))) }
        return .object(obj)
    }
}

import Evaluation
import Inference
import SafeTensors
import Tensors

// `av eval --compare MODEL`: the paired tests of the differences, as a table and as JSON.
extension EvalCommand {
    /// The comparisons as a table under a "compare" line.
    static func render(_ comparisons: [PairedComparison], with name: String) -> [String] {
        func value(_ c: PairedComparison, _ v: Double) -> String {
            c.discordant != nil
                ? String(cFormat: "%.1f%%", 100 * v) : String(cFormat: c.metric == "perplexity" ? "%.4f" : "%+.4f", v)
        }
        let rows = comparisons.map { c in
            [
                c.metric, value(c, c.value), value(c, c.other),
                c.discordant != nil
                    ? String(cFormat: "%+.1f points", 100 * c.difference) : String(cFormat: "%+.4f", c.difference),
                c.discordant.map { "\($0.onlyThis) / \($0.onlyOther)" } ?? "",
                // A bootstrap's smallest p is 1 / (resamples + 1): say "below" rather than print the floor.
                c.discordant == nil && c.pValue < 2e-4 ? "< 0.0002" : String(cFormat: "%.4g", c.pValue), c.test,
            ]
        }
        let table = Format.table(
            ["metric", "this", name, "difference", "only this / only it", "p", "test"], rows,
            rightAligned: [1, 2, 3, 5])
        return ["compare     paired on the same inputs, two-sided p-values:"]
            + table.split(separator: "\n").map { "            " + $0 }
    }

    /// The comparisons as JSON.
    static func json(_ comparisons: [PairedComparison], with name: String) -> JSONValue {
        .object([
            ("to", .string(name)),
            (
                "metrics",
                .array(
                    comparisons.map { c in
                        var fields: [(key: String, value: JSONValue)] = [
                            ("metric", .string(c.metric)), ("value", .double(c.value)), ("other", .double(c.other)),
                            ("difference", .double(c.difference)), ("p", .double(c.pValue)), ("test", .string(c.test)),
                        ]
                        if let d = c.discordant {
                            fields += [("onlyThis", .int(d.onlyThis)), ("onlyOther", .int(d.onlyOther))]
                        }
                        return .object(fields)
                    })
            ),
        ])
    }
}

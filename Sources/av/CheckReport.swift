import Evaluation
import SafeTensors
import Tensors

/// What `av check` reports: a table of the checks on stdout, GitHub Actions annotations for the
/// failures, the JSON report (`--report`) and JUnit XML (`--junit`).
struct CheckReport {
    var recipe: String
    var model: String
    /// Whether the model is the recipe's mix by its recorded provenance, in words.
    var provenance: String
    var mergeSeconds: Double
    var seconds: Double
    var results: [ReleaseCheckResult]

    var failed: [ReleaseCheckResult] { results.filter { !$0.passed } }
    var passed: Bool { failed.isEmpty }

    /// The header line, the table, each detail, and the verdict.
    var text: String {
        var lines = [
            "av check: \(recipe) on \(model)"
                + (mergeSeconds > 0 ? String(cFormat: " (merged in %.2f s)", mergeSeconds) : "")
        ]
        let rows = results.map {
            [$0.passed ? "pass" : "FAIL", $0.name, $0.threshold, $0.measured, String(cFormat: "%.2f s", $0.seconds)]
        }
        lines.append(
            indent(Format.table(["result", "check", "threshold", "measured", "time"], rows, rightAligned: [4])))
        for r in results where r.detail != nil { lines.append("  \(r.name): \(r.detail!)") }
        lines.append(
            failed.isEmpty
                ? (results.count == 1 ? "the check passed" : "all \(results.count) checks passed")
                : "\(failed.count) of \(results.count) checks failed")
        return lines.joined(separator: "\n")
    }

    /// One `::error` workflow command per failed check.
    var annotations: [String] {
        failed.map { r in
            let message =
                "\(r.name): measured \(r.measured), threshold \(r.threshold)\(r.detail.map { " (\($0))" } ?? "")"
            return "::error title=av check::\(CheckCommand.annotationEscape(message))"
        }
    }

    /// The machine-readable report.
    var json: JSONValue {
        .object([
            ("recipe", .string(recipe)), ("model", .string(model)), ("provenance", .string(provenance)),
            ("passed", .bool(passed)), ("mergeSeconds", .double(mergeSeconds)), ("seconds", .double(seconds)),
            (
                "checks",
                .array(
                    results.map { r in
                        .object([
                            ("name", .string(r.name)), ("type", .string(r.type)), ("threshold", .string(r.threshold)),
                            ("measured", .string(r.measured)), ("passed", .bool(r.passed)),
                            ("seconds", .double(r.seconds)), ("detail", r.detail.map { .string($0) } ?? .null),
                        ])
                    })
            ),
        ])
    }

    /// JUnit XML, which CI systems show as test results; every text escaped for XML.
    var junit: String {
        let e = CheckCommand.xmlEscape
        let time = String(cFormat: "%.3f", seconds)
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml +=
            "<testsuites name=\"av check\" tests=\"\(results.count)\" failures=\"\(failed.count)\" time=\"\(time)\">\n"
        xml +=
            "  <testsuite name=\"\(e(recipe))\" tests=\"\(results.count)\" failures=\"\(failed.count)\""
            + " time=\"\(time)\">\n"
        for r in results {
            xml +=
                "    <testcase classname=\"av.check.\(e(r.type))\" name=\"\(e(r.name))\""
                + " time=\"\(String(cFormat: "%.3f", r.seconds))\">"
            if r.passed {
                xml += "</testcase>\n"
            } else {
                let message = "measured \(r.measured), threshold \(r.threshold)" + (r.detail.map { ": \($0)" } ?? "")
                xml += "\n      <failure message=\"\(e(message))\"/>\n    </testcase>\n"
            }
        }
        return xml + "  </testsuite>\n</testsuites>\n"
    }
}

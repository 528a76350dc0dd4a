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

// `av search`'s reports: the table, the shares at the best mix, JSON, and the recipe it writes.
extension SearchCommand {
    static func text(
        _ results: [ProfileResult], domains: [SearchDomain], strategy: SearchStrategy, points: Int, seconds: Double,
        mixes: Int
    ) -> String {
        let reached = results.filter(\.reached).count
        var lines = [
            "av search: \(reached) of \(results.count) profile\(results.count == 1 ? "" : "s") reached "
                + "(\(strategy.rawValue), \(points) mixes checked whole, \(mixes) loaded,"
                + " \(String(cFormat: "%.1f", seconds)) s)"
        ]
        let profile = "profile (" + domains.map(\.name).joined(separator: "/") + ")"
        let header = [profile, "reached"] + domains.map { "λ \($0.name)" } + ["margin", "target shares [95%]"]
        let rows = results.map { r -> [String] in
            [r.profile.joined(separator: "/"), r.reached ? "yes" : "no"]
                + (r.best.map { $0.lambdas.map { String(cFormat: "%+.2f", $0) } } ?? domains.map { _ in "" })
                + [
                    r.best == nil ? "" : marginText(r.margin, domains: domains),
                    r.best.map { targets($0, r, domains) } ?? "",
                ]
        }
        lines.append(indent(Format.table(header, rows, rightAligned: Set(2..<header.count))))
        if results.count == 1, let best = results[0].best {
            lines.append("")
            lines.append("shares at the best mix:")
            for (d, domain) in domains.enumerated() {
                let n = domain.levels.items.count
                let cells = domain.levels.levels.indices.map {
                    "\(domain.levels.levels[$0]) "
                        + best.shareInterval(domain: d, level: $0, prompts: n).percent(
                            of: best.shares[d][$0], decimals: 0)
                }.joined(separator: ", ")
                lines.append("  \(domain.name): \(cells)   (target \(results[0].profile[d]))")
            }
            for r in results[0].runnersUp {
                lines.append(
                    "  runner-up: "
                        + zip(domains, r.lambdas).map { "\($0.name) \(String(cFormat: "%+.2f", $1))" }.joined(
                            separator: ", "))
            }
        }
        return lines.joined(separator: "\n")
    }

    /// A margin in shares and in prompts of the smallest levels file: "0.02 (1 prompt of 48)".
    static func marginText(_ margin: Double, domains: [SearchDomain]) -> String {
        let n = domains.map(\.levels.items.count).min() ?? 0
        let prompts = Int((margin * Double(n)).rounded())
        return String(cFormat: "%.2f", margin) + " (\(prompts) prompt\(prompts == 1 ? "" : "s") of \(n))"
    }

    /// Each domain's target share at `best` with its interval: "expert 52% [38–66]".
    static func targets(_ best: SearchPoint, _ r: ProfileResult, _ domains: [SearchDomain]) -> String {
        domains.indices.map { d in
            let level = domains[d].levels.levels.firstIndex(of: r.profile[d]) ?? 0
            return "\(r.profile[d]) "
                + best.shareInterval(domain: d, level: level, prompts: domains[d].levels.items.count)
                .percent(of: best.shares[d][level], decimals: 0)
        }.joined(separator: ", ")
    }

    static func json(_ results: [ProfileResult], domains: [SearchDomain], strategy: SearchStrategy, points: Int)
        -> JSONValue
    {
        func point(_ p: SearchPoint) -> JSONValue {
            .object([
                ("lambdas", .object(zip(domains, p.lambdas).map { ($0.name, .double($1)) })),
                (
                    "shares",
                    .object(
                        zip(domains, p.shares).map { d, s in
                            (d.name, .object(zip(d.levels.levels, s).map { ($0, .double($1)) }))
                        })
                ),
            ])
        }
        return .object([
            ("strategy", .string(strategy.rawValue)), ("domains", .array(domains.map { .string($0.name) })),
            ("mixesChecked", .int(points)),
            ("reached", .int(results.filter(\.reached).count)), ("profiles", .int(results.count)),
            (
                "results",
                .array(
                    results.map { r in
                        .object([
                            ("target", .object(zip(domains, r.profile).map { ($0.name, .string($1)) })),
                            ("reached", .bool(r.reached)),
                            ("margin", .double(r.margin)), ("best", r.best.map(point) ?? .null),
                            (
                                "targetIntervals",
                                r.best.map { best in
                                    .object(
                                        domains.indices.map { d in
                                            let level = domains[d].levels.levels.firstIndex(of: r.profile[d]) ?? 0
                                            let interval = best.shareInterval(
                                                domain: d, level: level, prompts: domains[d].levels.items.count)
                                            return (domains[d].name, Format.json(interval))
                                        })
                                } ?? .null
                            ),
                            ("runnersUp", .array(r.runnersUp.map(point))),
                        ])
                    })
            ),
        ])
    }

    /// A recipe with the found mix and a levels check per domain, paths relative to the recipe.
    static func recipe(
        base: String, vectors: String, domains: [SearchDomain], point: SearchPoint, profile: Profile, at path: String
    ) -> String {
        let dir = OutputGuard.canonical(
            Path.parent(path).isEmpty ? "." : Path.parent(path))
        func rel(_ p: String) -> String { relativePath(OutputGuard.canonical(p), from: dir) }
        let value = JSONValue.object([
            (
                "description",
                .string(
                    "found by av search: " + zip(domains, profile).map { "\($0.name) \($1)" }.joined(separator: ", "))
            ),
            ("base", .string(rel(base))), ("vectors_dir", .string(rel(vectors))),
            ("mix", .object(zip(domains, point.lambdas).map { ($0.name, .double($1)) })),
            (
                "checks",
                .array(
                    zip(domains, profile).map { d, level in
                        .object([
                            ("name", .string("\(d.name) answers \(level)")), ("type", .string("levels")),
                            ("file", .string(rel(d.levels.path))),
                            ("level", .string(level)), ("largest", .bool(true)),
                        ])
                    })
            ),
        ])
        return value.rendered(pretty: true) + "\n"
    }
}

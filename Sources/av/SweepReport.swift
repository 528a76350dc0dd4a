import Evaluation
import SafeTensors
import Tensors

/// What `av sweep` prints: a table of λ against accuracy, margin and level shares with their 95%
/// intervals, the same as JSON, and the SVG plot of the curves.
enum SweepReport {
    /// The table, with a line that says what was measured and one that explains the intervals.
    static func text(_ a: SweepArguments, _ rows: [GridPoint]) -> String {
        var header = a.axes.map { "λ \($0.axis.name)" }
        if a.pairs != nil { header += ["accuracy", "mean margin"] }
        for l in a.levels { header.append("\(l.domain): " + l.file.levels.joined(separator: " / ")) }
        let table = rows.map { r in
            var cells = r.lambdas.map { String(cFormat: "%+.3f", $0) }
            if let p = r.pairs {
                cells += [
                    Format.share(p.accuracy, p.accuracyInterval()), Format.mean(p.meanMargin, p.meanMarginInterval()),
                ]
            }
            for (l, res) in zip(a.levels, r.levels) {
                cells.append(
                    res.shares.map {
                        // Padded to the widest, "100% [93–100]", so the columns line up.
                        let cell = Format.share($0, interval($0, l.file.items.count), decimals: 0)
                        return String(repeating: " ", count: max(0, 13 - cell.count)) + cell
                    }.joined(separator: " / "))
            }
            return cells
        }
        var what: [String] = []
        if let pairs = a.pairs, let file = a.pairsFile { what.append("\(pairs.count) pairs from \(file)") }
        for l in a.levels { what.append("\(l.file.items.count) \(l.domain) prompts from \(l.file.path)") }
        return [
            "av sweep: \(what.joined(separator: ", ")) on \(a.given)"
                + (a.prefix == nil ? "" : " (with a prompt prefix)"),
            Format.table(header, table, rightAligned: Set(0..<header.count)),
            "[…]: 95% intervals (Wilson for shares and accuracy, a seeded bootstrap over pairs for margins)",
        ].joined(separator: "\n")
    }

    /// One object per point: λ per axis, accuracy and margin with intervals, level shares with intervals.
    static func json(_ a: SweepArguments, _ rows: [GridPoint]) -> String {
        JSONValue.array(
            rows.map { r in
                var o: [(key: String, value: JSONValue)] = zip(a.axes, r.lambdas).map { ($0.axis.name, .double($1)) }
                if let p = r.pairs {
                    o += [
                        ("accuracy", .double(p.accuracy)), ("accuracyInterval", Format.json(p.accuracyInterval())),
                        ("meanMargin", .double(p.meanMargin)),
                        ("meanMarginInterval", Format.json(p.meanMarginInterval())),
                    ]
                }
                if !a.levels.isEmpty {
                    let levels = zip(a.levels, r.levels)
                    o.append(
                        (
                            "levels",
                            .object(
                                levels.map { l, res in
                                    (l.domain, .object(zip(res.levels, res.shares).map { ($0, .double($1)) }))
                                })
                        ))
                    o.append(
                        (
                            "levelIntervals",
                            .object(
                                levels.map { l, res in
                                    let n = l.file.items.count
                                    return (
                                        l.domain,
                                        .object(
                                            res.levels.indices.map {
                                                (res.levels[$0], Format.json(interval(res.shares[$0], n)))
                                            })
                                    )
                                })
                        ))
                }
                return .object(o)
            }
        ).rendered(pretty: true)
    }

    /// The SVG: stacked level shares against λ (one swept domain), or accuracy and margin curves.
    static func plot(_ a: SweepArguments, _ rows: [GridPoint]) -> String {
        if !a.levels.isEmpty {
            let first = a.axes[0].axis.name
            let index = a.levels.firstIndex { $0.domain == first } ?? 0
            let l = a.levels[index]
            return SVGPlot.levels(
                domain: first, levelsDomain: l.domain, levels: l.file.levels, prompts: l.file.items.count,
                rows: rows.map { ($0.lambdas[0], $0.levels[index].shares) })
        }
        return SVGPlot.render(
            axes: a.axes.map { ($0.axis.name, $0.values) },
            rows: rows.map {
                SVGPlot.PairsRow(
                    lambdas: $0.lambdas, accuracy: $0.pairs!.accuracy, margin: $0.pairs!.meanMargin,
                    accuracyInterval: $0.pairs!.accuracyInterval(), marginInterval: $0.pairs!.meanMarginInterval())
            })
    }
}

/// The Wilson interval of a share of `prompts` prompts (a share is a count of prompts).
func interval(_ share: Double, _ prompts: Int) -> Interval {
    Statistics.wilson(share: share, trials: prompts)
}

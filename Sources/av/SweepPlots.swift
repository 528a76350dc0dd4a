import Evaluation
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A two-panel line chart (accuracy, mean margin) against λ of the first domain, one line per
/// value of the second domain, each with its 95% band. Every name is escaped for XML.
enum SVGPlot {
    /// One point of the pairs plot: λs, accuracy and mean margin with their intervals.
    struct PairsRow {
        var lambdas: [Double]
        var accuracy: Double
        var margin: Double
        var accuracyInterval: Interval
        var marginInterval: Interval
    }

    static func render(axes: [(String, [Double])], rows: [PairsRow]) -> String {
        let axes = axes.map { (XML.escape($0.0), $0.1) }
        let width = 720.0
        let panel = 260.0
        let left = 70.0
        let plotWidth = width - left - 30
        let xs = axes[0].1
        let (xMin, xMax) = (xs.min()!, xs.max()!)
        func x(_ v: Double) -> Double { left + (v - xMin) / max(xMax - xMin, 1e-12) * plotWidth }
        let series: [[PairsRow]] =
            axes.count == 2 ? axes[1].1.map { v in rows.filter { $0.lambdas[1] == v } } : [rows]
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
        var out =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(2 * panel + 90))\""
            + " font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        for (p, metric) in ["preference accuracy", "mean margin (nats)"].enumerated() {
            let top = 30.0 + Double(p) * (panel + 30)
            let values = rows.flatMap {
                p == 0 ? [$0.accuracy] : [$0.margin, $0.marginInterval.lower, $0.marginInterval.upper]
            }
            var (lo, hi) = p == 0 ? (0.0, 1.0) : (values.min()!, values.max()!)
            if hi - lo < 1e-9 { (lo, hi) = (lo - 1, hi + 1) }
            func y(_ v: Double) -> Double { top + panel - 20 - (v - lo) / (hi - lo) * (panel - 40) }
            out += "<text x=\"\(left)\" y=\"\(top - 8)\" font-weight=\"bold\">\(metric) vs λ \(axes[0].0)</text>\n"
            out += "<line x1=\"\(left)\" y1=\"\(y(lo))\" x2=\"\(left + plotWidth)\" y2=\"\(y(lo))\" stroke=\"#333\"/>\n"
            out += "<line x1=\"\(left)\" y1=\"\(y(lo))\" x2=\"\(left)\" y2=\"\(y(hi))\" stroke=\"#333\"/>\n"
            for v in [lo, (lo + hi) / 2, hi] {
                let label = p == 0 ? String(cFormat: "%.0f%%", 100 * v) : String(cFormat: "%.2f", v)
                out += "<text x=\"\(left - 6)\" y=\"\(y(v) + 4)\" text-anchor=\"end\">\(label)</text>\n"
            }
            for v in [xMin, 0, 1, xMax] where v >= xMin && v <= xMax {
                out += "<line x1=\"\(x(v))\" y1=\"\(y(lo))\" x2=\"\(x(v))\" y2=\"\(y(hi))\" stroke=\"#ddd\"/>\n"
                out +=
                    "<text x=\"\(x(v))\" y=\"\(y(lo) + 15)\""
                    + " text-anchor=\"middle\">\(String(cFormat: "%g", v))</text>\n"
            }
            for (k, s) in series.enumerated() {
                let points = s.map { "\(x($0.lambdas[0])),\(y(p == 0 ? $0.accuracy : $0.margin))" }.joined(
                    separator: " ")
                let color = colors[k % colors.count]
                let band = s.map { p == 0 ? $0.accuracyInterval : $0.marginInterval }
                out += polygon(
                    upper: zip(s, band).map { (x($0.lambdas[0]), y($1.upper)) },
                    lower: zip(s, band).map { (x($0.lambdas[0]), y($1.lower)) }, fill: color, opacity: 0.15)
                out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
                for r in s {
                    out +=
                        "<circle cx=\"\(x(r.lambdas[0]))\" cy=\"\(y(p == 0 ? r.accuracy : r.margin))\" r=\"3\""
                        + " fill=\"\(color)\"/>\n"
                }
                if axes.count == 2, p == 0 {
                    out +=
                        "<text x=\"\(left + plotWidth - 120)\" y=\"\(top + 14 * Double(k + 1))\" fill=\"\(color)\">λ"
                        + " \(axes[1].0) = \(String(cFormat: "%g", s[0].lambdas[1]))</text>\n"
                }
            }
        }
        return out + "</svg>\n"
    }

    /// A filled band between two lines given left to right.
    static func polygon(upper: [(Double, Double)], lower: [(Double, Double)], fill: String, opacity: Double)
        -> String
    {
        let points = (upper + lower.reversed()).map { "\($0.0),\($0.1)" }.joined(separator: " ")
        return "<polygon fill=\"\(fill)\" fill-opacity=\"\(opacity)\" stroke=\"none\" points=\"\(points)\"/>\n"
    }
}

extension SVGPlot {
    /// The paper's figure: the share of answers at each level, stacked, against λ of one domain.
    /// Each boundary between levels is a share of `prompts` prompts (those won by the levels
    /// below it), drawn with its 95% Wilson band.
    static func levels(
        domain: String, levelsDomain: String, levels: [String], prompts: Int, rows: [(lambda: Double, shares: [Double])]
    ) -> String {
        let (domain, levelsDomain, levels) = (XML.escape(domain), XML.escape(levelsDomain), levels.map(XML.escape))
        let (width, height, left, top) = (720.0, 380.0, 70.0, 40.0)
        let plotWidth = width - left - 150
        let plotHeight = height - top - 50
        let xs = rows.map(\.lambda)
        let (xMin, xMax) = (xs.min() ?? 0, xs.max() ?? 1)
        func x(_ v: Double) -> Double { left + (v - xMin) / max(xMax - xMin, 1e-12) * plotWidth }
        func y(_ v: Double) -> Double { top + plotHeight - v * plotHeight }
        let colors = ["#d62728", "#7f7f7f", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"]
        var out =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\""
            + " font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out +=
            "<text x=\"\(left)\" y=\"\(top - 14)\" font-weight=\"bold\">share of \(levelsDomain) answers at each"
            + " level vs λ \(domain)</text>\n"
        var lower = [Double](repeating: 0, count: rows.count)
        for (k, level) in levels.enumerated() {
            let upper = zip(lower, rows).map { $0 + $1.shares[k] }
            let forward = zip(rows, upper).map { "\(x($0.lambda)),\(y($1))" }
            let back = zip(rows, lower).reversed().map { "\(x($0.lambda)),\(y($1))" }
            out +=
                "<polygon fill=\"\(colors[k % colors.count])\" fill-opacity=\"0.8\""
                + " points=\"\((forward + back).joined(separator: " "))\"/>\n"
            out +=
                "<rect x=\"\(left + plotWidth + 20)\" y=\"\(top + 20 * Double(k))\" width=\"12\" height=\"12\""
                + " fill=\"\(colors[k % colors.count])\"/>\n"
            out += "<text x=\"\(left + plotWidth + 38)\" y=\"\(top + 20 * Double(k) + 11)\">\(level)</text>\n"
            lower = upper
        }
        // Bands over the areas, at every inner boundary.
        var cumulative = [Double](repeating: 0, count: rows.count)
        for k in 0..<(levels.count - 1) {
            cumulative = zip(cumulative, rows).map { $0 + $1.shares[k] }
            let bands = cumulative.map { interval(min($0, 1), prompts) }
            out += polygon(
                upper: zip(rows, bands).map { (x($0.lambda), y($1.upper)) },
                lower: zip(rows, bands).map { (x($0.lambda), y($1.lower)) }, fill: "white", opacity: 0.45)
        }
        out +=
            "<text x=\"\(left + plotWidth + 20)\" y=\"\(top + 20 * Double(levels.count) + 11)\" fill=\"#555\">"
            + "light bands: 95%</text>\n"
        out += "<line x1=\"\(left)\" y1=\"\(y(0))\" x2=\"\(left + plotWidth)\" y2=\"\(y(0))\" stroke=\"#333\"/>\n"
        out += "<line x1=\"\(left)\" y1=\"\(y(0))\" x2=\"\(left)\" y2=\"\(y(1))\" stroke=\"#333\"/>\n"
        for v in [0.0, 0.5, 1.0] {
            out += "<text x=\"\(left - 6)\" y=\"\(y(v) + 4)\" text-anchor=\"end\">\(Int(v * 100))%</text>\n"
        }
        for r in rows {
            out +=
                "<text x=\"\(x(r.lambda))\" y=\"\(y(0) + 16)\""
                + " text-anchor=\"middle\">\(String(cFormat: "%g", r.lambda))</text>\n"
        }
        return out + "</svg>\n"
    }
}

import AlignmentVectors
import Tensors

/// `av analyze --plot`: two heatmaps side by side, rows = layers (then "other"): each vector's share of
/// its ‖Δ‖² per layer (white → blue), and each pair's cosine per layer (red −1, white 0, blue +1), the
/// value written in each cell.
enum AnalyzePlot {
    static let cellHeight = 22.0

    static func render(_ a: VectorAnalysis) -> String {
        let groups = AnalyzeCommand.groups(a)
        let all = a.totals()
        let energy: [[Double]] = groups.map { _, include in
            let t = a.totals(where: include)
            return a.domains.indices.map { all.energy[$0] > 0 ? t.energy[$0] / all.energy[$0] : 0 }
        }
        let cosine: [[Double]] = groups.map { _, include in
            let t = a.totals(where: include)
            return a.pairs.indices.map { t.cosine($0, a.pairs) }
        }
        let pairNames = a.pairs.map { "\(a.domains[$0.0])·\(a.domains[$0.1])" }
        // Wide enough for the longest column name at 11 px.
        let cell = (
            width: max(86, 6.6 * Double((a.domains + pairNames).map(\.count).max() ?? 0) + 14), height: cellHeight
        )
        let left = 60.0
        let top = 60.0
        let gap = 40.0
        let widthA = Double(a.domains.count) * cell.width
        let widthB = Double(a.pairs.count) * cell.width
        let width = left + widthA + (a.pairs.isEmpty ? 0 : gap + widthB) + 20
        let height = top + Double(groups.count) * cell.height + 20
        var svg = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\""
                + " font-family=\"sans-serif\" font-size=\"11\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            text(left, 18, "share of ‖Δ‖² by layer", anchor: "start", size: 13),
        ]
        if !a.pairs.isEmpty { svg.append(text(left + widthA + gap, 18, "cosine by layer", anchor: "start", size: 13)) }
        for (r, (name, _)) in groups.enumerated() {
            svg.append(text(left - 6, top + (Double(r) + 0.68) * cell.height, name, anchor: "end"))
        }
        func heatmap(
            _ x0: Double, _ columns: [String], _ values: [[Double]], color: (Double) -> String,
            label: (Double) -> String
        ) {
            for (c, name) in columns.enumerated() {
                svg.append(text(x0 + (Double(c) + 0.5) * cell.width, top - 8, name, anchor: "middle"))
            }
            for (r, row) in values.enumerated() {
                for (c, v) in row.enumerated() {
                    let x = x0 + Double(c) * cell.width
                    let y = top + Double(r) * cell.height
                    svg.append(
                        "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(cell.width)\" height=\"\(cell.height)\""
                            + " fill=\"\(color(v))\" stroke=\"white\"/>")
                    svg.append(text(x + cell.width / 2, y + cell.height * 0.68, label(v), anchor: "middle"))
                }
            }
        }
        let peak = max(energy.flatMap { $0 }.max() ?? 0, 1e-12)
        heatmap(left, a.domains, energy, color: { blend(1 - $0 / peak, toward: (49, 99, 206)) }) {
            String(cFormat: "%.1f%%", 100 * $0)
        }
        if !a.pairs.isEmpty {
            heatmap(
                left + widthA + gap, pairNames, cosine,
                color: {
                    $0 >= 0
                        ? blend(1 - min($0, 1), toward: (49, 99, 206)) : blend(1 + max($0, -1), toward: (206, 64, 49))
                }
            ) { String(cFormat: "%+.2f", $0) }
        }
        svg.append("</svg>")
        return svg.joined(separator: "\n") + "\n"
    }

    /// `rgb` mixed with white: `whiteness` 1 is white, 0 the color.
    static func blend(_ whiteness: Double, toward rgb: (Int, Int, Int)) -> String {
        let w = max(0, min(1, whiteness))
        func mix(_ c: Int) -> Int { Int((Double(c) + (255 - Double(c)) * w).rounded()) }
        return "rgb(\(mix(rgb.0)),\(mix(rgb.1)),\(mix(rgb.2)))"
    }

    static func text(_ x: Double, _ y: Double, _ s: String, anchor: String, size: Int = 11) -> String {
        "<text x=\"\(x)\" y=\"\(y)\" text-anchor=\"\(anchor)\" font-size=\"\(size)\">\(XML.escape(s))</text>"
    }
}

import AlignmentVectors
import SafeTensors
import Tensors

/// The lines `av inspect` adds for an encoded AV.
extension InspectCommand {
    /// For an encoded AV: parameters, size against the dense f32 vector, and the share of ‖Δ‖² kept.
    static func encodingSummary(_ vector: AlignmentVector) -> [(String, String)] {
        let h = vector.header
        guard h.encoding != .dense || !h.retained.isEmpty else { return [] }
        let stored = vector.deltas.reduce(0) { $0 + $1.storedBytes }
        let dense = vector.deltas.reduce(0) { $0 + 4 * $1.elementCount }
        let encoded = vector.deltas.filter { $0.encoding != .dense }.count
        var rows: [(String, String)] = []
        if let p = h.encodingParameters { rows.append(("", "parameters \(p.rendered())")) }
        rows.append(
            (
                "",
                "\(encoded) of \(vector.deltas.count) tensors encoded; \(Format.bytes(stored)) of deltas,"
                    + " \(String(cFormat: "%.1f", dense > 0 ? 100 * Double(stored) / Double(dense) : 0))% of dense f32"
                    + " (\(Format.bytes(dense)))"
            ))
        if let (kept, error) = h.retainedTotal {
            rows.append(
                (
                    "",
                    "keeps " + String(cFormat: "%.2f", 100 * kept) + "% of ‖Δ‖², ‖Δ − Δ̂‖/‖Δ‖ = "
                        + String(cFormat: "%.3f", error) + " (av.retained)"
                ))
        }
        return rows
    }

    /// The last part of a path: a shard's file name.
    static func splitName(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}

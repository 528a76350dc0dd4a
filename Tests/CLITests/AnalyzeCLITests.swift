import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors
@testable import Tensors

/// `av analyze`: its numbers against the same sums computed here from the models themselves.
@Suite("av analyze")
struct AnalyzeCLITests {
    static let checkpoints = checkpointsDirectory

    /// Every tensor of a model as f64.
    static func values(_ dir: String) throws -> [String: [Double]] {
        let m = try SafeTensorsModel(path: dir)
        var out: [String: [Double]] = [:]
        for name in m.tensorNames {
            let info = m.info(name)!
            var f = [Float](repeating: 0, count: info.elementCount)
            Convert.toFloat(info.dtype, from: try m.bytes(named: name).baseAddress!, count: f.count, into: &f)
            out[name] = f.map(Double.init)
        }
        return out
    }

    static func vectors(in dir: TemporaryDirectory) throws -> (String, String) {
        for d in ["medical", "legal"] {
            let r = try runAV([
                "diff", checkpoints + "/base", checkpoints + "/\(d)-aligned", "-o", dir.file("\(d).av"), "-q",
            ])
            #expect(r.status == 0, "\(r.stderr)")
        }
        return (dir.file("medical.av"), dir.file("legal.av"))
    }

    @Test("norms, cosine, sign conflicts and overlap equal the sums over the models' own deltas")
    func matchesIndependentSums() throws {
        let dir = TemporaryDirectory()
        let (medical, legal) = try Self.vectors(in: dir)
        let r = try runAV([
            "analyze", medical, legal, "--base", Self.checkpoints + "/base", "--json", "--density", "0.1",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let base = try Self.values(Self.checkpoints + "/base")
        let a = try Self.values(Self.checkpoints + "/medical-aligned")
        let b = try Self.values(Self.checkpoints + "/legal-aligned")
        var (ea, eb, dot, ew, conflict, shared) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for (name, w) in base {
            let da = zip(a[name]!, w).map { $0 - $1 }
            let db = zip(b[name]!, w).map { $0 - $1 }
            for i in w.indices {
                ea += da[i] * da[i]
                eb += db[i] * db[i]
                dot += da[i] * db[i]
                ew += w[i] * w[i]
                if da[i] != 0 && db[i] != 0 {
                    shared += abs(da[i]) + abs(db[i])
                    if (da[i] < 0) != (db[i] < 0) { conflict += abs(da[i]) + abs(db[i]) }
                }
            }
        }
        let norms = json["norms"] as! [Double]
        #expect(abs(norms[0] - ea.squareRoot()) <= 1e-9 * ea.squareRoot())
        #expect(abs(norms[1] - eb.squareRoot()) <= 1e-9 * eb.squareRoot())
        let relative = json["relativeNorms"] as! [Double]
        #expect(abs(relative[0] - (ea / ew).squareRoot()) <= 1e-9)
        let pair = (json["pairs"] as! [[String: Any]])[0]
        #expect(abs(pair["cosine"] as! Double - dot / (ea * eb).squareRoot()) <= 1e-9)
        #expect(abs(pair["conflict"] as! Double - conflict / shared) <= 1e-9)
        // The overlap of one tensor's top 10%, by sorting here.
        let name = "model.layers.1.mlp.up_proj.weight"
        let w = base[name]!
        func top(_ m: [Double]) -> Set<Int> {
            let d = zip(m, w).map { abs($0 - $1) }
            let k = Int((0.1 * Double(d.count)).rounded(.up))
            return Set(d.indices.sorted { d[$0] != d[$1] ? d[$0] > d[$1] : $0 < $1 }.prefix(k))
        }
        let ta = top(a[name]!)
        let tb = top(b[name]!)
        let tensor = (json["tensors"] as! [[String: Any]]).first { $0["name"] as? String == name }!
        #expect(
            abs((tensor["overlap"] as! [Double])[0] - Double(ta.intersection(tb).count) / Double(ta.count)) <= 1e-12)
    }

    @Test("a vector against itself: cosine 1, no conflict, full overlap; the plot and the refusals")
    func selfAndRefusals() throws {
        let dir = TemporaryDirectory()
        let (medical, _) = try Self.vectors(in: dir)
        let r = try runAV(["analyze", medical, medical, "--plot", dir.file("a.svg"), "--spectrum"])
        #expect(r.status == 0, "\(r.stderr)")
        let line = r.stdout.split(separator: "\n").first { $0.contains("medical·medical") && $0.contains("%") }
        #expect(line?.split(separator: " ").map(String.init) == ["medical·medical", "+1.0000", "0.0%", "100.0%"])
        #expect(r.stdout.contains("top 32"))
        let svg = try String(contentsOfFile: dir.file("a.svg"), encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("medical·medical") && svg.contains("+1.00"))
        #expect(try runAV(["analyze"]).status == 2)
        // A vector of another model: refused (its coordinates are not these), unless --force.
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("AlignmentVectorsTests/Fixtures").path
        let other = dir.file("other.av")
        let d = try runAV([
            "diff", fixtures + "/base_F32.safetensors", fixtures + "/medical_F32.safetensors", "-o", other, "-q",
        ])
        #expect(d.status == 0, "\(d.stderr)")
        let mixed = try runAV(["analyze", medical, other])
        #expect(mixed.status != 0 && mixed.stderr.contains("different bases"), "\(mixed.stderr)")
        #expect(try runAV(["analyze", medical, other, "--force"]).status == 0)
        #expect(try runAV(["analyze", medical, "--density", "0"]).status == 2)
        let overInput = try runAV(["analyze", medical, "--plot", medical])
        #expect(overInput.status != 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: medical)).prefix(8).count == 8)
    }
}

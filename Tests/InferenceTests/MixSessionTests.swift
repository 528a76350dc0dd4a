import AVTestSupport
import Foundation
import Testing

@testable import AlignmentVectors
@testable import Inference

/// A base loaded once for many mixes gives the models a fresh load gives, and still refuses a
/// damaged vector the first time a mix uses it.
@Suite("Mixes from one loaded base")
struct MixSessionTests {
    static let checkpoints = checkpointsDirectory

    /// The domain's vector against the Checkpoints base, written into `dir`.
    static func vector(_ domain: String, in dir: TemporaryDirectory) throws -> String {
        let path = dir.file("\(domain).av")
        _ = try diff(
            base: Checkpoint(path: checkpoints + "/base"),
            aligned: Checkpoint(path: checkpoints + "/\(domain)-aligned"),
            output: path, options: DiffOptions(domain: domain))
        return path
    }

    @Test("every point's logits equal a fresh load's, for weight and logit mixes, λ = 0 included")
    func sameModels() throws {
        let dir = TemporaryDirectory()
        let medical = try AlignmentVector(path: try Self.vector("medical", in: dir))
        let legal = try AlignmentVector(path: try Self.vector("legal", in: dir))
        let session = try MixSession(directory: Self.checkpoints + "/base", threads: 2)
        let ids = session.tokenizer.encode("The patient asked about a contract.")
        for mix in MixMode.allCases {
            for (a, b) in [(0.5, 0.0), (0.0, 1.0), (1.5, -0.5), (0.5, 0.0)] {
                let terms = [MergeTerm(vector: medical, coefficient: a), MergeTerm(vector: legal, coefficient: b)]
                    .filter { $0.coefficient != 0 }
                let reused = try session.model(mixing: terms, mix: mix)
                let fresh = try LanguageModel(
                    directory: Self.checkpoints + "/base", mixing: terms, mix: mix, threads: 2)
                let x = try reused.model.forward(ids, cache: reused.model.makeCache(), allLogits: true)
                let y = try fresh.model.forward(ids, cache: fresh.model.makeCache(), allLogits: true)
                #expect(x == y, "\(mix.rawValue) at medical \(a), legal \(b)")
            }
        }
        // Distinct points give distinct models (the mix is really recomputed).
        let p = try session.model(mixing: [MergeTerm(vector: medical, coefficient: 0.5)])
        let q = try session.model(mixing: [MergeTerm(vector: medical, coefficient: 1.0)])
        #expect(
            try p.model.forward(ids, cache: p.model.makeCache()) != q.model.forward(ids, cache: q.model.makeCache()))
    }

    @Test("a damaged vector is refused on its first use, even after a point where its λ was 0")
    func damagedVectorRefused() throws {
        let dir = TemporaryDirectory()
        let medical = try AlignmentVector(path: try Self.vector("medical", in: dir))
        let path = try Self.vector("legal", in: dir)
        let clean = try AlignmentVector(path: path)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let info = clean.file.info("model.layers.1.mlp.up_proj.weight")!
        bytes[clean.file.fileOffset(of: info) + 101] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: dir.file("bad.av")))
        let bad = try AlignmentVector(path: dir.file("bad.av"))
        let session = try MixSession(directory: Self.checkpoints + "/base", threads: 2)
        _ = try session.model(mixing: [
            MergeTerm(vector: medical, coefficient: 1), MergeTerm(vector: bad, coefficient: 0),
        ])
        _ = try session.model(mixing: [MergeTerm(vector: medical, coefficient: 0.5)])
        #expect(throws: InferenceError.self) {
            _ = try session.model(mixing: [
                MergeTerm(vector: medical, coefficient: 1), MergeTerm(vector: bad, coefficient: 1),
            ])
        }
        #expect(throws: InferenceError.self) {
            _ = try session.model(mixing: [MergeTerm(vector: bad, coefficient: 1)], mix: .logits)
        }
    }
}

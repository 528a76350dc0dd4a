import AVTestSupport
import Foundation
import Testing

@testable import AlignmentVectors
@testable import SafeTensors
@testable import Tensors

/// `BaseSamples`: the base values an AV records, and the test that takes a quantized copy for the base.
@Suite("Base samples: recognizing a quantized copy of the base")
struct BaseSamplesTests {
    /// ggml's reference Q4_0 of `x` (blocks of 32: d = the signed value of largest magnitude / −8,
    /// stored in f16; codes min(15, trunc(x/d + 8.5))), dequantized.
    static func q4_0(_ x: [Float]) -> [Float] {
        var out: [Float] = []
        for start in stride(from: 0, to: x.count, by: 32) {
            let block = x[start..<min(x.count, start + 32)]
            let max = block.max { abs($0) < abs($1) }!
            let d = FloatBits.f16ToFloat(FloatBits.floatToF16(max / -8))
            let id: Float = d == 0 ? 0 : 1 / d
            for v in block {
                let q = Swift.min(15, Int(v * id + 8.5))
                out.append(Float(q - 8) * d)
            }
        }
        return out
    }

    @Test("positions spread over the tensor; the metadata round-trips; malformed metadata is refused")
    func metadata() throws {
        #expect(BaseSamples.positions(count: 10) == Array(0..<10))
        let many = BaseSamples.positions(count: 1_000_003)
        #expect(many.count == 64 && Set(many).count == 64 && many.first! > 0 && many.last! < 1_000_003)
        #expect(zip(many, many.dropFirst()).allSatisfy { $0 < $1 })
        let samples = BaseSamples(values: ["a": [1.5, -2, .pi, -0.0], "b": [Float.leastNonzeroMagnitude]])
        let parsed = try #require(BaseSamples(metadataText: samples.metadataText))
        #expect(parsed.values.mapValues { $0.map(\.bitPattern) } == samples.values.mapValues { $0.map(\.bitPattern) })
        let tooMany = Data(repeating: 0, count: 4 * 65).base64EncodedString()
        for bad in [#"{"a": "not base64!"}"#, #"{"a": "AAA="}"#, "{\"a\": \"\(tooMany)\"}", "[1]", #"{"a": 3}"#] {
            #expect(BaseSamples(metadataText: bad) == nil, "\(bad)")
        }
        var header = AVHeader(
            domain: "d", base: ModelIdentity(path: "b", dtype: "BF16", structure: "s", content: "c", tensors: 1),
            aligned: ModelIdentity(path: "a", dtype: "BF16", structure: "s", content: "c", tensors: 1), dtype: .f32)
        header.baseSamples = samples
        var metadata = header.metadata
        #expect(try AVHeader(metadata: metadata, file: "x.av").baseSamples == samples)
        metadata["av.base_samples"] = #"{"a": 1}"#
        #expect(throws: AVError.notAnAV(file: "x.av", reason: "metadata \"av.base_samples\" is malformed")) {
            try AVHeader(metadata: metadata, file: "x.av")
        }
    }

    @Test("a Q4_0 copy of the base passes on every sample; another model's copy, or one not marked quantized, does not")
    func compare() throws {
        let dir = TemporaryDirectory()
        let w = values(64 * 96, seed: 11)
        let norm = values(64, seed: 12).map { 1 + $0 }
        try writeModel(dir.file("base.safetensors"), [("w", [64, 96], w), ("norm", [64], norm)])
        let base = try Checkpoint(path: dir.file("base.safetensors"))
        let samples = BaseSamples.of(base)
        #expect(samples.values["w"]?.count == 64 && samples.values["norm"]?.count == 64)

        // The copy: w through Q4_0 and back to bf16, the norm as it was (GGUF keeps norms in float).
        func copy(_ name: String, _ weights: [Float], marked: Bool = true) throws -> Checkpoint {
            let bf16 = weights.map { FloatBits.bf16ToFloat(FloatBits.floatToBF16($0)) }
            let specs = [
                TensorSpec(name: "w", dtype: .bf16, shape: [64, 96]),
                TensorSpec(name: "norm", dtype: .bf16, shape: [64]),
            ]
            let tensors = zip(specs, [Self.q4_0(bf16), norm]).map { spec, v -> (TensorSpec, [UInt8]) in
                var bytes = [UInt8](repeating: 0, count: v.count * 2)
                bytes.withUnsafeMutableBytes {
                    Convert.fromFloat(.bf16, from: v, count: v.count, into: $0.baseAddress!)
                }
                return (spec, bytes)
            }
            try SafeTensorsWriter.write(
                path: dir.file(name), tensors: tensors,
                metadata: marked ? ["format": "pt", "av.dequantized": #"{"w": 4}"#] : ["format": "pt"])
            return try Checkpoint(path: dir.file(name))
        }
        let quantized = try copy("q4.safetensors", w)
        #expect(quantized.dequantizedBits == ["w": 4])
        let check = QuantizedBaseCheck.compare(quantized, with: samples)
        #expect(check.within == 128 && check.sampled == 128 && check.accepted)
        // Really moved: the copy's values are not the base's.
        let moved = zip(BaseSamples.of(quantized).values["w"]!, samples.values["w"]!).filter { $0 != $1 }.count
        #expect(moved > 32)

        // Another model of the same shapes (the base's values in reverse order), quantized alike.
        let other = QuantizedBaseCheck.compare(try copy("other.safetensors", w.reversed()), with: samples)
        #expect(!other.accepted && other.within < 100, "\(other)")
        // A different norm alone is caught too: float tensors must match to half a unit in the last place.
        #expect(QuantizedBaseCheck.halfULP(1, .bf16) == 1.0 / 256)

        // Through verifyBase: accepted with the counts; not marked quantized, the fingerprint refusal.
        let dirAV = TemporaryDirectory()
        try writeModel(
            dirAV.file("aligned.safetensors"), [("w", [64, 96], w.map { $0 + 0.01 }), ("norm", [64], norm)])
        _ = try makeAV(dir.file("base.safetensors"), dirAV.file("aligned.safetensors"), dirAV.file("x.av"))
        let vector = try AlignmentVector(path: dirAV.file("x.av"))
        #expect(vector.header.baseSamples == samples)
        #expect(try verifyBase(quantized, of: vector, structure: "s", content: "other")?.accepted == true)
        #expect(try verifyBase(base, of: vector, structure: "s", content: vector.header.base.content) == nil)
        let unmarked = try copy("unmarked.safetensors", w, marked: false)
        do {
            _ = try verifyBase(unmarked, of: vector, structure: "s", content: "other")
            Issue.record("a copy not marked quantized was accepted")
        } catch {
            #expect("\(error)".contains("was made from a different base"))
        }
    }
}

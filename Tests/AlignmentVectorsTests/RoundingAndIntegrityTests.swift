import AVTestSupport
import Foundation
import Testing

@testable import AlignmentVectors
@testable import SafeTensors
@testable import Tensors

/// `v` rounded once to a float format of `bits` significant bits (bf16: 8, f16: 11), nearest-even:
/// the reference, independent of av's kernels (scale to an integer significand, round it in f64).
func roundOnce(_ v: Double, significandBits bits: Int) -> Double {
    guard v != 0, v.isFinite else { return v }
    let e = Int(v.exponent)
    let scale = Double(sign: .plus, exponent: e - (bits - 1), significand: 1)
    return (v / scale).rounded(.toNearestOrEven) * scale
}

@Suite("Merge rounds once; AV payloads are checked")
struct RoundingAndIntegrityTests {
    /// Deltas of half a bf16 (2^-8) or f16 (2^-11) ulp on bases that both hold exactly: with λ = 1 ± 2^-22
    /// the f64 sum lies 2^-30 (2^-33) off the midpoint, which f32 cannot hold, so f32 lands on the
    /// midpoint and rounding twice (f64 → f32 → 16-bit) ties to even, the wrong way for 1 + 2^-22.
    static func constructed() -> (base: [Float], delta: [Float]) {
        var base: [Float] = []
        var delta: [Float] = []
        for k in 0..<64 {
            for mid in [exp2(-8.0), exp2(-11.0)] {
                base.append(Float(1 + Double(k) / 64))
                delta.append(Float(mid))
            }
        }
        return (base, delta)
    }

    @Test(
        "f32 base, bf16 and f16 outputs equal the correctly rounded f64 sum, including double-rounding cases",
        arguments: ["BF16", "F16"])
    func roundedOnce(dtypeName: String) throws {
        let out = DType(rawValue: dtypeName)!
        let dir = TemporaryDirectory()
        let (cb, cd) = Self.constructed()
        let random = values(5000, seed: 11, scale: 2)
        let base = cb + random
        let aligned = zip(base, cd + values(5000, seed: 12, scale: 0.01)).map { $0 + $1 }
        try writeModel(dir.file("base.safetensors"), [("w", [base.count], base)], dtype: .f32)
        try writeModel(dir.file("aligned.safetensors"), [("w", [aligned.count], aligned)], dtype: .f32)
        _ = try makeAV(dir.file("base.safetensors"), dir.file("aligned.safetensors"), dir.file("d.av"))
        var failures = 0
        var constructedWrong = 0
        for lambda in [1 + exp2(-22.0), 1 - exp2(-22.0), 1.0, 0.37, -1.25] {
            _ = try mix(
                dir.file("base.safetensors"), [(dir.file("d.av"), lambda)], dir.file("m.safetensors"), dtype: out)
            let bytes = try tensorBytes(dir.file("m.safetensors"))["w"]!
            var got = [Float](repeating: 0, count: base.count)
            bytes.withUnsafeBytes { Convert.toFloat(out, from: $0.baseAddress!, count: base.count, into: &got) }
            for i in 0..<base.count {
                let exact = Double(base[i]) + lambda * (Double(aligned[i]) - Double(base[i]))
                let want = roundOnce(exact, significandBits: out == .bf16 ? 8 : 11)
                if Double(got[i]) != want { failures += 1 }
                // The constructed cases really do round differently twice (the test can fail).
                let twice = Float(exact)
                var t = [UInt8](repeating: 0, count: 2)
                var tf = twice
                Convert.fromFloat(out, from: &tf, count: 1, into: &t)
                var back: Float = 0
                Convert.toFloat(out, from: t, count: 1, into: &back)
                if i < cb.count, Double(back) != want { constructedWrong += 1 }
            }
        }
        #expect(failures == 0)
        #expect(constructedWrong >= 32)
    }

    @Test("round to odd: exact values unchanged, inexact ones odd and toward zero")
    func roundToOdd() {
        #expect(FloatBits.roundToOdd(1.5) == 1.5)
        let v = 1 + exp2(-30.0)
        #expect(FloatBits.roundToOdd(v).bitPattern == Float(1).bitPattern | 1)
        #expect(FloatBits.roundToOdd(-v).bitPattern == Float(-1).bitPattern | 1)
        let below = 1 - exp2(-40.0)  // Float() rounds up to 1: round to odd steps back below 1
        #expect(FloatBits.roundToOdd(below) < 1 && FloatBits.roundToOdd(below).bitPattern & 1 == 1)
        #expect(FloatBits.roundToOdd(1e300) == Float.greatestFiniteMagnitude)
        #expect(FloatBits.roundToOdd(.nan).isNaN && FloatBits.roundToOdd(.infinity) == .infinity)
    }

    @Test("a flipped bit in an AV's payload is refused by merge and by in-memory mixes, naming the tensor")
    func flippedBit() throws {
        let dir = TemporaryDirectory()
        let n = 1_200_000  // more than two digest runs
        let b = values(n, seed: 3)
        try writeModel(dir.file("base.safetensors"), [("w", [n], b), ("v", [4], [1, 2, 3, 4])])
        try writeModel(
            dir.file("aligned.safetensors"),
            [("w", [n], zip(b, values(n, seed: 4, scale: 0.01)).map { $0 + $1 }), ("v", [4], [1, 2, 3, 5])])
        _ = try makeAV(dir.file("base.safetensors"), dir.file("aligned.safetensors"), dir.file("d.av"))
        let av = try AlignmentVector(path: dir.file("d.av"))
        #expect(Set(av.header.digests.keys) == Set(av.file.tensors.map(\.name)))
        // Clean: merges. Then flip one bit deep inside tensor "w" (in its third digest run).
        _ = try mix(dir.file("base.safetensors"), [(dir.file("d.av"), 0.5)], dir.file("m.safetensors"))
        let info = av.file.info("w")!
        var bytes = readFile(dir.file("d.av"))
        bytes[av.file.fileOffset(of: info) + 4 * 1_100_000 + 1] ^= 0x04
        try Data(bytes).write(to: URL(fileURLWithPath: dir.file("bad.av")))
        #expect(throws: AVError.self) {
            try mix(dir.file("base.safetensors"), [(dir.file("bad.av"), 0.5)], dir.file("m2.safetensors"))
        }
        do {
            _ = try mix(dir.file("base.safetensors"), [(dir.file("bad.av"), 0.5)], dir.file("m2.safetensors"))
        } catch {
            #expect("\(error)".contains("tensor \"w\" is damaged"))
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("m2.safetensors")))
        let bad = try AlignmentVector(path: dir.file("bad.av"))
        #expect(throws: AVError.self) {
            _ = try mixTensors(
                base: Checkpoint(path: dir.file("base.safetensors")), terms: [MergeTerm(vector: bad, coefficient: 1)],
                threads: 2)
        }
    }
}

@Suite("Mixes evaluated in memory")
struct InMemoryMixTests {
    @Test(
        "the in-memory mix holds, bit for bit, the weights av merge writes, at fractional and negative λ",
        arguments: ["BF16", "F16", "F32"])
    func sameWeights(dtypeName: String) throws {
        let dir = TemporaryDirectory()
        let dtype = DType(rawValue: dtypeName)!
        let base = values(3000, seed: 31, scale: 0.5)
        try writeModel(
            dir.file("base.safetensors"), [("a", [30, 100], base), ("b", [17], values(17, seed: 5))], dtype: dtype)
        try writeModel(
            dir.file("x.safetensors"),
            [
                ("a", [30, 100], zip(base, values(3000, seed: 32, scale: 0.01)).map { $0 + $1 }),
                ("b", [17], values(17, seed: 5)),
            ],
            dtype: dtype)
        try writeModel(
            dir.file("y.safetensors"),
            [
                ("a", [30, 100], zip(base, values(3000, seed: 33, scale: 0.02)).map { $0 - $1 }),
                ("b", [17], values(17, seed: 6)),
            ],
            dtype: dtype)
        _ = try makeAV(dir.file("base.safetensors"), dir.file("x.safetensors"), dir.file("x.av"))
        _ = try makeAV(dir.file("base.safetensors"), dir.file("y.safetensors"), dir.file("y.av"))
        let terms = [(dir.file("x.av"), 0.37), (dir.file("y.av"), -1.3)]
        _ = try mix(dir.file("base.safetensors"), terms, dir.file("m.safetensors"))
        let written = try tensorBytes(dir.file("m.safetensors"))
        let inMemory = try mixTensors(
            base: Checkpoint(path: dir.file("base.safetensors")),
            terms: terms.map { MergeTerm(vector: try AlignmentVector(path: $0.0), coefficient: $0.1) },
            threads: 2)
        #expect(Set(inMemory.keys) == ["a", "b"])
        for (name, buffer) in inMemory {
            let bytes = [UInt8](UnsafeRawBufferPointer(start: buffer.pointer, count: buffer.count))
            #expect(bytes == written[name], "\(name)")
            #expect(bytes != (try tensorBytes(dir.file("base.safetensors")))[name])  // the mix moved it
        }
    }
}

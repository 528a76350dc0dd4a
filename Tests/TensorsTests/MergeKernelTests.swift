import Testing

@testable import Tensors

/// The merge engine's C loops at every level this CPU runs, against their definition written out
/// here element by element: the same f64 sums, the same rounded bits, the same counts.
@Suite("Merge kernels at each level")
struct MergeKernelTests {
    /// Values that exercise every rule: zeros of both signs, subnormals, the f32 and bf16 limits,
    /// ties in bf16 rounding, infinities and NaNs, and ordinary numbers.
    static func values(_ n: Int, seed: UInt64) -> [Float] {
        let special: [Float] = [
            0, -0, 1, -1, .leastNonzeroMagnitude, -.leastNormalMagnitude, .greatestFiniteMagnitude,
            -.greatestFiniteMagnitude, .infinity, -.infinity, .nan, 3.0e38, 1.00390625, 1.01171875, 65504, 1e-30,
        ]
        var random = TestRandom(seed: seed)
        return (0..<n).map { i in
            if i % 7 == Int(seed % 7) { return special[(i / 7 + Int(seed)) % special.count] }
            let state = random.bits()
            let mantissa = Float(Int64(bitPattern: state >> 11) % 2_000_000) / 1_000_000
            return mantissa * Float(sign: .plus, exponent: Int(state >> 58) - 30, significand: 1)
        }
    }

    /// The definition: out = narrow(b + Σ s·d) with narrow through a round-to-odd f32 for bf16.
    static func reference(
        base: [Float], deltas: [[Float]], scales: [Double], outBF16: Bool, baseBF16: Bool
    ) -> (out: [UInt32], changed: Int, nonFinite: Int, same: Int) {
        var out: [UInt32] = []
        var changed = 0
        var nonFinite = 0
        var same = 0
        for i in base.indices {
            var acc = Double(base[i])
            for (d, s) in zip(deltas, scales) { acc += s * Double(d[i]) }
            let bits: UInt32 =
                outBF16
                ? UInt32(FloatBits.floatToBF16(FloatBits.roundToOdd(acc))) : Float(acc).bitPattern
            out.append(bits)
            let isChanged = acc.bitPattern != Double(base[i]).bitPattern
            let baseFinite = base[i].bitPattern & 0x7F80_0000 != 0x7F80_0000
            let outFinite = outBF16 ? bits & 0x7F80 != 0x7F80 : bits & 0x7F80_0000 != 0x7F80_0000
            changed += isChanged ? 1 : 0
            nonFinite += !outFinite && baseFinite ? 1 : 0
            let kept = outBF16 ? (baseBF16 && bits == base[i].bitPattern >> 16) : bits == base[i].bitPattern
            same += isChanged && kept ? 1 : 0
        }
        return (out, changed, nonFinite, same)
    }

    @Test("accumulate and store equal the definition, f32 and bf16 deltas and outputs", arguments: [false, true])
    func levelsMatchDefinition(bf16Deltas: Bool) {
        let n = 1_003  // a tail the kernels leave to the caller
        let baseBF16 = bf16Deltas
        var base = Self.values(n, seed: 1)
        if baseBF16 { base = base.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) } }
        var deltas = [Self.values(n, seed: 2), Self.values(n, seed: 3)]
        if bf16Deltas { deltas = deltas.map { $0.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) } } }
        let scales = [0.5, -1.2]
        let stored: [[UInt8]] = deltas.map { d in
            bf16Deltas
                ? d.flatMap { f -> [UInt8] in
                    let h = UInt16(f.bitPattern >> 16); return [UInt8(h & 0xFF), UInt8(h >> 8)]
                }
                : d.flatMap { f -> [UInt8] in withUnsafeBytes(of: f.bitPattern.littleEndian, Array.init) }
        }
        let levels = KernelLevel.supported.filter { $0 != .portable }
        #expect(
            KernelLevel.portable.mergeStore(
                [0], base: [0], count: 1, out: .allocate(byteCount: 4, alignment: 4),
                outBF16: false, baseBF16: false) == nil, "the portable level leaves the work to Swift")
        for level in levels {
            var acc = [Double](repeating: .nan, count: n)
            let ok = stored[0].withUnsafeBytes { d0 in
                stored[1].withUnsafeBytes { d1 in
                    level.mergeAccumulate(
                        base: base, count: n,
                        deltas: [(d0.baseAddress!, bf16Deltas, scales[0]), (d1.baseAddress!, bf16Deltas, scales[1])],
                        into: &acc)
                }
            }
            #expect(ok)
            for i in 0..<n {
                let want = Double(base[i]) + scales[0] * Double(deltas[0][i]) + scales[1] * Double(deltas[1][i])
                #expect(acc[i].bitPattern == want.bitPattern || (acc[i].isNaN && want.isNaN), "\(level.name) acc[\(i)]")
            }
            for outBF16 in [false, true] {
                let ref = Self.reference(
                    base: base, deltas: deltas, scales: scales, outBF16: outBF16, baseBF16: baseBF16)
                let width = outBF16 ? 2 : 4
                let out = UnsafeMutableRawPointer.allocate(byteCount: n * width, alignment: 64)
                defer { out.deallocate() }
                guard
                    let c = level.mergeStore(acc, base: base, count: n, out: out, outBF16: outBF16, baseBF16: baseBF16)
                else {
                    Issue.record("\(level.name): store did nothing")
                    continue
                }
                #expect(c.done == n / 8 * 8)
                let got = (0..<c.done).map {
                    outBF16
                        ? UInt32(out.load(fromByteOffset: 2 * $0, as: UInt16.self))
                        : out.load(fromByteOffset: 4 * $0, as: UInt32.self)
                }
                #expect(got == Array(ref.out[..<c.done]), "\(level.name) bf16 out: \(outBF16)")
                let head = Self.reference(
                    base: Array(base[..<c.done]), deltas: deltas.map { Array($0[..<c.done]) }, scales: scales,
                    outBF16: outBF16, baseBF16: baseBF16)
                #expect(c.changed == head.changed && c.nonFinite == head.nonFinite && c.same == head.same)
                #expect(head.nonFinite > 0 && head.changed > 0, "the values exercise the counts")
            }
        }
    }
}

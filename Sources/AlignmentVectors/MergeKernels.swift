import Tensors

/// One term of a block as the kernels take it: where its deltas are, their dtype, and λ, the
/// coefficient the recipe gave the vector for this tensor.
struct KernelTerm {
    /// The block's first delta.
    var pointer: UnsafeRawPointer
    /// The deltas' element type (f32, bf16, or f64 for a method's combined delta).
    var element: ElementType
    /// λ.
    var scale: Double

    /// The deltas' dtype.
    var dtype: DType { element.dtype }

    /// The same term `elements` further on.
    func advanced(by elements: Int) -> KernelTerm {
        KernelTerm(pointer: pointer + elements * element.size, element: element, scale: scale)
    }
}

extension MergeEngine {
    /// The common case: bf16, f16 or f32 base, f32 or bf16 deltas, bf16 or f32 output, in the C
    /// kernels of the current level (else loops that vectorize). The same arithmetic, in the same
    /// order, as the general path.
    static func fastBlock(
        level: KernelLevel, base b: UnsafeRawPointer, dtype: DType, count n: Int, terms: [KernelTerm],
        outDType: DType,
        out o: UnsafeMutableRawPointer, scratch s: Scratch, first: Int,
        residuals: [(indices: [Int], values: [Double])?],
        stats st: inout ChunkStats
    ) {
        let fb = floatView(dtype, b, count: n, scratch: s.f32)
        let acc = s.accA
        let deltas = terms.map { (pointer: $0.pointer, bf16: $0.dtype == .bf16, scale: $0.scale) }
        if !level.mergeAccumulate(base: fb, count: n, deltas: deltas, into: acc) {
            for i in 0..<n { acc[i] = Double(fb[i]) }
            for t in terms {
                let d = floatView(t.dtype, t.pointer, count: n, scratch: s.f32b)
                for i in 0..<n { acc[i] += t.scale * Double(d[i]) }
            }
        }
        for (k, r) in residuals.enumerated() {
            guard let r else { continue }
            var j = lowerBound(r.indices, first)
            while j < r.indices.count, r.indices[j] < first + n {
                acc[r.indices[j] - first] += terms[k].scale * r.values[j]
                j += 1
            }
        }
        // Round, store and count four lanes at a time; tests are integer bit arithmetic
        // (nonZero(x) = (x | −x) >> 31) because SIMD comparison masks compile to scalar code here.
        @inline(__always) func nonZero(_ x: SIMD4<UInt32>) -> SIMD4<UInt32> { (x | (SIMD4<UInt32>() &- x)) &>> 31 }
        var changedV = SIMD4<UInt32>()
        var nonFiniteV = SIMD4<UInt32>()
        var sameV = SIMD4<UInt32>()  // changed in f64 but stored as the base's own bits: rounded away
        let rawAcc = UnsafeRawPointer(acc)
        let rawB = UnsafeRawPointer(fb)
        let bf16Base = dtype == .bf16
        var i = 0
        if let c = level.mergeStore(acc, base: fb, count: n, out: o, outBF16: outDType == .bf16, baseBF16: bf16Base) {
            i = c.done
            changedV[0] = UInt32(c.changed)
            nonFiniteV[0] = UInt32(c.nonFinite)
            sameV[0] = UInt32(c.same)
        }
        while i + 4 <= n {
            let a = rawAcc.loadUnaligned(fromByteOffset: 8 * i, as: SIMD4<Double>.self)
            let bv = rawB.loadUnaligned(fromByteOffset: 4 * i, as: SIMD4<Float>.self)
            var f = SIMD4<Float>(Float(a[0]), Float(a[1]), Float(a[2]), Float(a[3]))
            if outDType == .bf16 {
                // Round to odd in f32 (toward zero, last bit set when inexact) so that the bf16
                // rounding below is the only one: integer arithmetic, as SIMD masks are scalar here.
                let back = SIMD4<Double>(Double(f[0]), Double(f[1]), Double(f[2]), Double(f[3]))
                let magA = unsafeBitCast(a, to: SIMD4<UInt64>.self) & 0x7FFF_FFFF_FFFF_FFFF
                let magB = unsafeBitCast(back, to: SIMD4<UInt64>.self) & 0x7FFF_FFFF_FFFF_FFFF
                let diff = magA ^ magB
                let inexact = SIMD4<UInt32>(truncatingIfNeeded: (diff | (SIMD4<UInt64>() &- diff)) &>> 63)
                let away = SIMD4<UInt32>(truncatingIfNeeded: (magA &- magB) &>> 63)  // |f| > |a|
                let isNaN = SIMD4<UInt32>(truncatingIfNeeded: (0x7FF0_0000_0000_0000 &- magA) &>> 63)
                let fix = inexact & (1 &- isNaN)
                let fb32 = unsafeBitCast(f, to: SIMD4<UInt32>.self)
                f = unsafeBitCast(((fb32 &- (away & fix)) | fix), to: SIMD4<Float>.self)
            }
            let bd = SIMD4<Double>(Double(bv[0]), Double(bv[1]), Double(bv[2]), Double(bv[3]))
            let x = unsafeBitCast(a, to: SIMD4<UInt64>.self) ^ unsafeBitCast(bd, to: SIMD4<UInt64>.self)
            let changed = SIMD4<UInt32>(truncatingIfNeeded: (x | (SIMD4<UInt64>() &- x)) &>> 63)
            let bits = unsafeBitCast(f, to: SIMD4<UInt32>.self)
            let baseBits = unsafeBitCast(bv, to: SIMD4<UInt32>.self)
            let baseInf = 1 &- nonZero((baseBits & 0x7F80_0000) ^ 0x7F80_0000)
            if outDType == .bf16 {
                let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
                let nan = SIMD4<UInt32>() &- ((0x7F80_0000 &- (bits & 0x7FFF_FFFF)) &>> 31)
                let ob = (rounded & ~nan) | (((bits &>> 16) | 0x40) & nan)
                o.storeBytes(of: SIMD4<UInt16>(truncatingIfNeeded: ob), toByteOffset: 2 * i, as: SIMD4<UInt16>.self)
                let outInf = 1 &- nonZero((ob & 0x7F80) ^ 0x7F80)
                nonFiniteV &+= outInf & (1 &- baseInf)
                if bf16Base { sameV &+= changed & (1 &- nonZero(ob ^ (baseBits &>> 16))) }
            } else {
                o.storeBytes(of: f, toByteOffset: 4 * i, as: SIMD4<Float>.self)
                let outInf = 1 &- nonZero((bits & 0x7F80_0000) ^ 0x7F80_0000)
                nonFiniteV &+= outInf & (1 &- baseInf)
                sameV &+= changed & (1 &- nonZero(bits ^ baseBits))
            }
            changedV &+= changed
            i += 4
        }
        var changed = Int(changedV.wrappedSum())
        var nonFinite = Int(nonFiniteV.wrappedSum())
        var same = Int(sameV.wrappedSum())
        while i < n {
            let v = outDType == .bf16 ? FloatBits.roundToOdd(acc[i]) : Float(acc[i])
            let isChanged = acc[i].bitPattern != Double(fb[i]).bitPattern
            let baseInf = fb[i].bitPattern & 0x7F80_0000 == 0x7F80_0000
            changed += isChanged ? 1 : 0
            if outDType == .bf16 {
                let ob = FloatBits.floatToBF16(v)
                o.storeBytes(of: ob, toByteOffset: 2 * i, as: UInt16.self)
                nonFinite += (ob & 0x7F80 == 0x7F80 && !baseInf) ? 1 : 0
                if bf16Base { same += (isChanged && ob == UInt16(fb[i].bitPattern >> 16)) ? 1 : 0 }
            } else {
                o.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self)
                nonFinite += (v.bitPattern & 0x7F80_0000 == 0x7F80_0000 && !baseInf) ? 1 : 0
                same += (isChanged && v.bitPattern == fb[i].bitPattern) ? 1 : 0
            }
            i += 1
        }
        st.changed += changed
        st.nonFinite += nonFinite
        if outDType == dtype { st.roundedAway += same }
    }

    /// `out = narrow(base + Σ λ·Δ)` for `count` elements, counting changes, changes rounded away
    /// by the output dtype, and non-finite results.
    static func chunk(
        level: KernelLevel = .current, base: UnsafeRawPointer, element: ElementType, count: Int, terms: [KernelTerm],
        out outElement: ElementType, into out: UnsafeMutableRawPointer, scratch s: Scratch, first: Int,
        residuals: [(indices: [Int], values: [Double])?]
    ) -> ChunkStats {
        var st = ChunkStats()
        let (dtype, size) = (element.dtype, element.size)
        let (outDType, outSize) = (outElement.dtype, outElement.size)
        let fast =
            [.bf16, .f16, .f32].contains(dtype) && (outDType == .bf16 || outDType == .f32)
            && terms.allSatisfy { $0.dtype == .f32 || $0.dtype == .bf16 }
        var off = 0
        while off < count {
            let n = min(Scratch.block, count - off)
            let b = base + off * size
            let o = out + off * outSize
            if fast {
                fastBlock(
                    level: level, base: b, dtype: dtype, count: n, terms: terms.map { $0.advanced(by: off) },
                    outDType: outDType,
                    out: o,
                    scratch: s, first: first + off, residuals: residuals, stats: &st)
                off += n
                continue
            }
            Accumulate.widen(dtype, b, count: n, into: s.accB, scratch: s.f32)
            s.accA.update(from: s.accB, count: n)
            for t in terms {
                let d = t.advanced(by: off)
                Accumulate.addScaled(d.dtype, d.pointer, count: n, scale: d.scale, into: s.accA, scratch: s.f32)
            }
            // Exact remainders come after all dense deltas, term by term, as diff checked them.
            for (k, r) in residuals.enumerated() {
                guard let r else { continue }
                let lo = first + off
                var j = lowerBound(r.indices, lo)
                while j < r.indices.count, r.indices[j] < lo + n {
                    s.accA[r.indices[j] - lo] += terms[k].scale * r.values[j]
                    j += 1
                }
            }
            Accumulate.narrow(s.accA, count: n, to: outDType, into: o, scratch: s.f32b)
            var changed = 0
            var nonFinite = 0
            for i in 0..<n where s.accA[i] != s.accB[i] { changed += 1 }
            // Finite sums can still overflow the output dtype (f16 above 65504): check what was stored.
            if outDType == .f64 {
                for i in 0..<n where !s.accA[i].isFinite && s.accB[i].isFinite { nonFinite += 1 }
            } else {
                Convert.toFloat(outDType, from: o, count: n, into: s.f32)
                for i in 0..<n where !s.f32[i].isFinite && s.accB[i].isFinite { nonFinite += 1 }
            }
            st.changed += changed
            st.nonFinite += nonFinite
            if changed > 0 && outDType == dtype {
                // A change the output dtype cannot hold comes back as the base's own bits.
                for i in 0..<n
                where s.accA[i] != s.accB[i] && ElementOps.bits(o, i, size: size) == ElementOps.bits(b, i, size: size) {
                    st.roundedAway += 1
                }
            }
            off += n
        }
        return st
    }
}

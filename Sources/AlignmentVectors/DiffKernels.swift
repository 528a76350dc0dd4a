import SafeTensors
import Tensors

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Counts elements whose stored bits differ, sized loops so each compiles to a tight compare.
func countDiffering(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int, size: Int) -> Int {
    // Branch-free counts, so the loops vectorize.
    var n = 0
    switch size {
    case 1:
        for i in 0..<count {
            n &+= a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) ? 1 : 0
        }
    case 2:
        for i in 0..<count {
            n &+=
                a.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                    != b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self) ? 1 : 0
        }
    case 4:
        for i in 0..<count {
            n &+=
                a.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)
                    != b.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self) ? 1 : 0
        }
    default:
        for i in 0..<count {
            n &+=
                a.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)
                    != b.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self) ? 1 : 0
        }
    }
    return n
}

/// Σx², Σy² and max|x| with four partial sums each: independent chains, fixed order, so the
/// result is the same on every run.
@inline(__always)
func sums(_ d: UnsafePointer<Double>, _ b: UnsafePointer<Float>, count n: Int) -> (Double, Double, Double) {
    var sd = SIMD4<Double>()
    var sb = SIMD4<Double>()
    var mx = SIMD4<Double>()
    var i = 0
    while i + 4 <= n {
        let x = SIMD4<Double>(d[i], d[i + 1], d[i + 2], d[i + 3])
        let y = SIMD4<Double>(Double(b[i]), Double(b[i + 1]), Double(b[i + 2]), Double(b[i + 3]))
        sd += x * x
        sb += y * y
        mx = pointwiseMax(mx, SIMD4<Double>(x[0].magnitude, x[1].magnitude, x[2].magnitude, x[3].magnitude))
        i += 4
    }
    var tailD = 0.0
    var tailB = 0.0
    var tailM = 0.0
    while i < n {
        tailD += d[i] * d[i]
        tailB += Double(b[i]) * Double(b[i])
        tailM = max(tailM, d[i].magnitude)
        i += 1
    }
    return (sd.sum() + tailD, sb.sum() + tailB, max(mx.max(), tailM))
}

/// The value of `bits` stored as `dtype`.
func decodeBits(_ bits: UInt64, _ dtype: DType) -> Double {
    var b = bits
    return withUnsafeBytes(of: &b) { ElementOps.widenOne($0.baseAddress!, dtype: dtype) }
}

extension DiffEngine {
    /// Counts a rebuilt value `got` that should be `target`: equal, a zero of the other sign (no
    /// addition to +0 gives −0, so it cannot be rebuilt), or a mismatch with its distance in ulps.
    static func classify(got: UInt64, target: UInt64, element: ElementType, stats st: inout ChunkStats) {
        let dtype = element.dtype
        guard got != target else { return }
        if decodeBits(got, dtype) == 0 && decodeBits(target, dtype) == 0 {
            st.signedZeros += 1
        } else {
            st.mismatches += 1
            st.maxULP = max(st.maxULP, ElementOps.ulps(got, target, size: element.size))
        }
    }

    /// The common case, in branch-free loops that vectorize: a bf16, f16 or f32 checkpoint, f32 deltas.
    /// Elements the loop flags (inexact f32 delta, or rebuilt bits that differ) are settled one by
    /// one as the general path does.
    static func fastBlock(
        base b: UnsafeRawPointer, aligned a: UnsafeRawPointer, count n: Int, element: ElementType,
        out o: UnsafeMutableRawPointer,
        scratch s: Scratch, first: Int, checksLoss: Bool, stats st: inout ChunkStats, residuals: inout [(Int, Double)]
    ) {
        let (dtype, size) = (element.dtype, element.size)
        let fb = floatView(dtype, b, count: n, scratch: s.f32)
        let fa = floatView(dtype, a, count: n, scratch: s.f32b)
        let o32 = o.assumingMemoryBound(to: Float.self)
        let d64 = s.accA
        let flags = s.flags
        // Four lanes at a time, with comparisons done as integer bit arithmetic ((x | -x) >> 31 is 1
        // when x ≠ 0): SIMD comparison masks compile to scalar code on the baseline x86-64 target.
        var changedV = SIMD4<UInt32>()
        var flaggedV = SIMD4<UInt32>()
        var lostV = SIMD4<UInt32>()
        var sd = SIMD4<Double>()
        var sb = SIMD4<Double>()
        var mx = SIMD4<Int32>()  // max |Δ| as f32 bits: for non-negative floats integer order is float order
        var i = 0
        let rawB = UnsafeRawPointer(fb)
        let rawA = UnsafeRawPointer(fa)
        while i + 4 <= n {
            let bv = rawB.loadUnaligned(fromByteOffset: 4 * i, as: SIMD4<Float>.self)
            let av = rawA.loadUnaligned(fromByteOffset: 4 * i, as: SIMD4<Float>.self)
            let bd = SIMD4<Double>(Double(bv[0]), Double(bv[1]), Double(bv[2]), Double(bv[3]))
            let ad = SIMD4<Double>(Double(av[0]), Double(av[1]), Double(av[2]), Double(av[3]))
            let d = ad - bd
            let d32 = SIMD4<Float>(Float(d[0]), Float(d[1]), Float(d[2]), Float(d[3]))
            UnsafeMutableRawPointer(o32).storeBytes(of: d32, toByteOffset: 4 * i, as: SIMD4<Float>.self)
            UnsafeMutableRawPointer(d64).storeBytes(of: d, toByteOffset: 8 * i, as: SIMD4<Double>.self)
            let back = SIMD4<Double>(Double(d32[0]), Double(d32[1]), Double(d32[2]), Double(d32[3]))
            let r = bd + back
            let recon = SIMD4<Float>(Float(r[0]), Float(r[1]), Float(r[2]), Float(r[3]))
            let ai = unsafeBitCast(av, to: SIMD4<UInt32>.self)
            let bi = unsafeBitCast(bv, to: SIMD4<UInt32>.self)
            let x = ai ^ bi
            let inexact64 = unsafeBitCast(back, to: SIMD4<UInt64>.self) ^ unsafeBitCast(d, to: SIMD4<UInt64>.self)
            let inexact = SIMD4<UInt32>(truncatingIfNeeded: (inexact64 | (SIMD4<UInt64>() &- inexact64)) &>> 63)
            let mism = unsafeBitCast(recon, to: SIMD4<UInt32>.self) ^ ai
            let bad = inexact | ((mism | (SIMD4<UInt32>() &- mism)) &>> 31)
            UnsafeMutableRawPointer(flags).storeBytes(
                of: SIMD4<UInt8>(truncatingIfNeeded: bad), toByteOffset: i, as: SIMD4<UInt8>.self)
            flaggedV &+= bad
            let changed = (x | (SIMD4<UInt32>() &- x)) &>> 31
            changedV &+= changed
            if checksLoss {
                // bf16(a) == bf16(b) for a changed value: the change is below bf16's resolution.
                let ra = (ai &+ 0x7FFF &+ ((ai &>> 16) & 1)) &>> 16
                let rb = (bi &+ 0x7FFF &+ ((bi &>> 16) & 1)) &>> 16
                let same = ra ^ rb
                lostV &+= changed & (1 &- ((same | (SIMD4<UInt32>() &- same)) &>> 31))
            }
            sd += d * d
            sb += bd * bd
            let magnitude = unsafeBitCast(d32, to: SIMD4<Int32>.self) & 0x7FFF_FFFF
            let greater = (mx &- magnitude) &>> 31  // all ones where magnitude > mx
            mx = (magnitude & greater) | (mx & ~greater)
            i += 4
        }
        var changed = Int(changedV.wrappedSum())
        var flagged = Int(flaggedV.wrappedSum())
        var lost = Int(lostV.wrappedSum())
        var tailD = 0.0
        var tailB = 0.0
        while i < n {
            let bv = fb[i]
            let av = fa[i]
            let d = Double(av) - Double(bv)
            let d32 = Float(d)
            o32[i] = d32
            d64[i] = d
            let bad =
                Double(d32).bitPattern != d.bitPattern || Float(Double(bv) + Double(d32)).bitPattern != av.bitPattern
            flags[i] = bad ? 1 : 0
            flagged += bad ? 1 : 0
            if av.bitPattern != bv.bitPattern {
                changed += 1
                if checksLoss && FloatBits.floatToBF16(av) == FloatBits.floatToBF16(bv) { lost += 1 }
            }
            tailD += d * d
            tailB += Double(bv) * Double(bv)
            i += 1
        }
        st.changed += changed
        st.lost += lost
        st.sumDelta2 += sd.sum() + tailD
        st.sumBase2 += sb.sum() + tailB
        var m = Double(Float(bitPattern: UInt32(mx.max())))
        for k in (n - n % 4)..<n { m = max(m, Double(o32[k].magnitude)) }
        st.maxAbs = max(st.maxAbs, m)
        guard flagged > 0 else { return }
        for i in 0..<n where flags[i] != 0 {
            let target = ElementOps.bits(a, i, size: size)
            let bv = Double(fb[i])
            let stored = Double(o32[i])
            let d = d64[i]
            var got = ElementOps.narrowOne(bv + stored, to: dtype)
            if stored != d && d.isFinite {
                let r = d - stored
                let fixed = ElementOps.narrowOne((bv + stored) + r, to: dtype)
                if fixed == target {
                    residuals.append((first + i, r))
                    st.residuals += 1
                    continue
                }
                got = fixed
            }
            classify(got: got, target: target, element: element, stats: &st)
        }
    }

    /// Deltas of `count` elements into `out` (in `storage`), with the λ = 1 check and statistics.
    static func chunk(
        base: UnsafeRawPointer, aligned: UnsafeRawPointer, count: Int, element: ElementType,
        storage storageElement: ElementType, out: UnsafeMutableRawPointer, scratch s: Scratch, first: Int,
        residuals: inout [(Int, Double)]
    ) -> ChunkStats {
        var st = ChunkStats()
        let (dtype, size) = (element.dtype, element.size)
        let (storage, ssize) = (storageElement.dtype, storageElement.size)
        let checksLoss = dtype == .f32 || dtype == .f16 || dtype == .f64
        let fast = storage == .f32 && (dtype == .bf16 || dtype == .f16 || dtype == .f32)
        var off = 0
        while off < count {
            let n = min(Scratch.block, count - off)
            let b = base + off * size
            let a = aligned + off * size
            let o = out + off * ssize
            if fast {
                fastBlock(
                    base: b, aligned: a, count: n, element: element, out: o, scratch: s, first: first + off,
                    checksLoss: checksLoss, stats: &st,
                    residuals: &residuals)
                off += n
                continue
            }
            let changed = countDiffering(a, b, count: n, size: size)
            st.changed += changed
            Accumulate.widen(dtype, b, count: n, into: s.accB, scratch: s.f32)
            Accumulate.widen(dtype, a, count: n, into: s.accA, scratch: s.f32)
            var sumD = 0.0
            var sumB = 0.0
            var maxAbs = st.maxAbs
            for i in 0..<n {
                let d = s.accA[i] - s.accB[i]
                sumD += d * d
                sumB += s.accB[i] * s.accB[i]
                if d.magnitude > maxAbs { maxAbs = d.magnitude }
                s.accA[i] = d
            }
            st.sumDelta2 += sumD
            st.sumBase2 += sumB
            st.maxAbs = maxAbs
            if changed == 0 {
                // Identical bits: the stored delta is zero (the tensor is dropped if all chunks are).
                memset(o, 0, n * ssize)
                off += n
                continue
            }
            // Store the deltas. An f32 delta that is not exactly aligned − base (they differ by more
            // than a factor of two, or crossed zero) gets its exact f64 remainder kept beside it.
            Accumulate.narrow(s.accA, count: n, to: storage, into: o, scratch: s.f32)
            if checksLoss {
                for i in 0..<n {
                    let x = Float(s.accB[i])
                    if Float(s.accA[i] + s.accB[i]) != x,
                        FloatBits.floatToBF16(Float(s.accA[i] + s.accB[i])) == FloatBits.floatToBF16(x)
                    {
                        st.lost += 1
                    }
                }
            }
            var local: [(Int, Double)] = []
            if storage == .f32 {
                for i in 0..<n where Double(s.f32[i]) != s.accA[i] && s.accA[i].isFinite {
                    let r = s.accA[i] - Double(s.f32[i])
                    local.append((i, r))
                    residuals.append((first + off + i, r))
                }
                st.residuals += local.count
            }
            // Rebuild aligned = base + Δ (+ remainder) exactly as merge does at λ = 1, and compare.
            Accumulate.widen(storage, o, count: n, into: s.accA, scratch: s.f32)
            for i in 0..<n { s.accA[i] += s.accB[i] }
            for (i, r) in local { s.accA[i] += r }
            Accumulate.narrow(s.accA, count: n, to: dtype, into: s.bytes, scratch: s.f32b)
            if countDiffering(s.bytes, a, count: n, size: size) > 0 {
                for i in 0..<n {
                    let target = ElementOps.bits(a, i, size: size)
                    let got = ElementOps.bits(s.bytes, i, size: size)
                    classify(got: got, target: target, element: element, stats: &st)
                }
            }
            off += n
        }
        return st
    }
}

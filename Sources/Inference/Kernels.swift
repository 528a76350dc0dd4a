import Tensors

/// A weight matrix as stored: `rows × cols` elements of `dtype` (F32, BF16 or F16), row-major,
/// usually straight from a memory-mapped checkpoint. Any alignment.
public struct Weight: @unchecked Sendable {
    /// The stored element type.
    public var dtype: DType
    /// Output features (rows).
    public var rows: Int
    /// Input features (columns).
    public var cols: Int
    /// The first element of row 0.
    public var data: UnsafeRawPointer
    /// Bytes of one row.
    let rowBytes: Int

    /// A matrix of `element`s at `data`.
    init(element: ElementType, rows: Int, cols: Int, data: UnsafeRawPointer) {
        dtype = element.dtype
        self.rows = rows
        self.cols = cols
        self.data = data
        rowBytes = cols * element.size
    }

    @inline(__always) func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }
}

/// The matrix kernels of the forward pass: f32 accumulation with SIMD16 accumulators written
/// `acc += w * x` (a fused multiply-add is a library call per lane on the baseline x86-64 target),
/// weights widened from bf16/f16 as they are read, never copied whole.
enum Kernels {
    /// `dot(w, x)` over `n` f32 values.
    @inline(__always)
    static func dot(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD16<Float>()
        var acc1 = SIMD16<Float>()
        let xr = UnsafeRawPointer(x)
        var i = 0
        while i + 32 <= n {
            acc0 +=
                w.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                * xr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            acc1 +=
                w.loadUnaligned(fromByteOffset: 4 * i + 64, as: SIMD16<Float>.self)
                * xr.loadUnaligned(fromByteOffset: 4 * i + 64, as: SIMD16<Float>.self)
            i += 32
        }
        var sum = (acc0 + acc1).sum()
        while i < n {
            sum += w.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) * x[i]
            i += 1
        }
        return sum
    }

    /// `dot(w, x)` with `w` in bf16, given `x` split into its even and odd elements (`xEven`,
    /// `xOdd`, `n / 2` each). Eight 32-bit loads hold sixteen bf16 weights: `v << 16` is the even
    /// ones as f32, `v & 0xFFFF0000` the odd ones, so no widening conversion is needed (a generic
    /// SIMD conversion costs a call on the baseline x86-64 target).
    @inline(__always)
    static func dotBF16(
        _ w: UnsafeRawPointer, even xEven: UnsafePointer<Float>, odd xOdd: UnsafePointer<Float>, _ n: Int
    ) -> Float {
        var accEven0 = SIMD8<Float>()
        var accOdd0 = SIMD8<Float>()
        var accEven1 = SIMD8<Float>()
        var accOdd1 = SIMD8<Float>()
        let e = UnsafeRawPointer(xEven)
        let o = UnsafeRawPointer(xOdd)
        var i = 0  // in pairs of elements
        let pairs = n / 2
        while i + 16 <= pairs {
            let v0 = w.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<UInt32>.self)
            let v1 = w.loadUnaligned(fromByteOffset: 4 * i + 32, as: SIMD8<UInt32>.self)
            accEven0 +=
                unsafeBitCast(v0 &<< 16, to: SIMD8<Float>.self)
                * e.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            accOdd0 +=
                unsafeBitCast(v0 & 0xFFFF_0000, to: SIMD8<Float>.self)
                * o.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            accEven1 +=
                unsafeBitCast(v1 &<< 16, to: SIMD8<Float>.self)
                * e.loadUnaligned(fromByteOffset: 4 * i + 32, as: SIMD8<Float>.self)
            accOdd1 +=
                unsafeBitCast(v1 & 0xFFFF_0000, to: SIMD8<Float>.self)
                * o.loadUnaligned(fromByteOffset: 4 * i + 32, as: SIMD8<Float>.self)
            i += 16
        }
        var sum = (accEven0 + accOdd0 + accEven1 + accOdd1).sum()
        var k = 2 * i
        while k < n {
            let x = k % 2 == 0 ? xEven[k / 2] : xOdd[k / 2]
            sum += FloatBits.bf16ToFloat(w.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self)) * x
            k += 1
        }
        return sum
    }

    /// `y[t][r] = W[r] · x[t]` for `T` vectors: `x` is `T × cols`, `y` is `T × rows`. Rows are spread
    /// over threads; each row is read once for all `T` vectors (prefill reuses it from cache).
    /// With a `level` above portable, f32 and bf16 weights go through the C kernels (at AVX-512, tiles
    /// over packed activations, `PackedActivations`; at AVX2, tiles of rows × vectors); the portable
    /// Swift code serves the rest.
    /// `packed`: `x` already packed for `w` (see `matmuls`), or nil to pack it here (with `hiOnly`,
    /// rounded to bf16 for bf16 weights: `PackedActivations`).
    static func matmul(
        _ w: Weight, _ x: UnsafePointer<Float>, _ T: Int, _ y: UnsafeMutablePointer<Float>, threads: Int,
        scratch: [UnsafeMutablePointer<Float>], level: KernelLevel = .portable, vectorThreads: Int = 1,
        packed: PackedActivations? = nil, hiOnly: Bool = PackedActivations.hiOnlyDefault
    ) {
        if T == 1, vectorThreads > 1,
            level.matvec(w.data, dtype: w.dtype, rows: w.rows, cols: w.cols, x: x, y: y, threads: vectorThreads)
        {
            return
        }
        let cols = w.cols
        let rows = w.rows
        // Prompts at AVX-512: the activations are packed once, the rows split over the persistent
        // pool's threads.
        if T > 1,
            let packed = packed
                ?? PackedActivations(
                    x, tokens: T, cols: cols, weights: w.dtype, level: level, hiOnly: hiOnly, threads: threads),
            level.matmul(w.data, rows: rows, x: packed, y: y, yStride: rows, threads: threads)
        {
            return
        }
        let blocks = min(w.rows, max(threads * 8, 1))
        let per = (w.rows + blocks - 1) / blocks
        Parallel.forEachPooled(blocks, threads: threads) { worker, b in
            let lo = b * per
            let hi = min(rows, lo + per)
            guard lo < hi else { return }
            if level.matmul(
                w.row(lo), dtype: w.dtype, rows: hi - lo, cols: cols, x: x, tokens: T, y: y + lo, yStride: rows)
            {
                return
            }
            let buf = scratch[worker]
            if w.dtype == .bf16 && T == 1 {
                // Split x once into even and odd elements for dotBF16.
                let half = (cols + 1) / 2
                for i in 0..<cols { buf[(i % 2) * half + i / 2] = x[i] }
            }
            for r in lo..<hi {
                let row = w.row(r)
                switch w.dtype {
                case .f32 where T == 1:
                    y[r] = dot(row, x, cols)
                case .bf16 where T == 1:
                    let half = (cols + 1) / 2
                    y[r] = dotBF16(row, even: buf, odd: buf + half, cols)
                case .f32:
                    dots(row, x, T, cols, y + r, stride: rows)
                default:
                    Convert.toFloat(w.dtype, from: row, count: cols, into: buf)
                    dots(UnsafeRawPointer(buf), x, T, cols, y + r, stride: rows)
                }
            }
        }
    }

    /// `matmul` of each weight on the same input `x` into its output (q, k and v; gate and up): for a
    /// prompt at AVX-512, `x` is packed once for all of them.
    static func matmuls(
        _ products: [(Weight, UnsafeMutablePointer<Float>)], _ x: UnsafePointer<Float>, _ T: Int, threads: Int,
        scratch: [UnsafeMutablePointer<Float>], level: KernelLevel = .portable, vectorThreads: Int = 1,
        hiOnly: Bool = PackedActivations.hiOnlyDefault
    ) {
        var packed: PackedActivations?
        for (w, y) in products {
            if T > 1, packed.map({ $0.weights != w.dtype || $0.cols != w.cols }) ?? true {
                packed = PackedActivations(
                    x, tokens: T, cols: w.cols, weights: w.dtype, level: level, hiOnly: hiOnly, threads: threads)
            }
            matmul(
                w, x, T, y, threads: threads, scratch: scratch, level: level, vectorThreads: vectorThreads,
                packed: packed, hiOnly: hiOnly)
        }
    }

    /// `out[t · stride] = w · x[t]` for `T` vectors, four at a time so each weight load serves four
    /// products (prefill is compute-bound, not memory-bound).
    static func dots(
        _ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ T: Int, _ n: Int, _ out: UnsafeMutablePointer<Float>,
        stride: Int
    ) {
        var t = 0
        let xr = UnsafeRawPointer(x)
        while t + 4 <= T {
            var a0 = SIMD16<Float>()
            var a1 = SIMD16<Float>()
            var a2 = SIMD16<Float>()
            var a3 = SIMD16<Float>()
            let b0 = 4 * (t * n)
            let b1 = b0 + 4 * n
            let b2 = b1 + 4 * n
            let b3 = b2 + 4 * n
            var i = 0
            while i + 16 <= n {
                let wv = w.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                a0 += wv * xr.loadUnaligned(fromByteOffset: b0 + 4 * i, as: SIMD16<Float>.self)
                a1 += wv * xr.loadUnaligned(fromByteOffset: b1 + 4 * i, as: SIMD16<Float>.self)
                a2 += wv * xr.loadUnaligned(fromByteOffset: b2 + 4 * i, as: SIMD16<Float>.self)
                a3 += wv * xr.loadUnaligned(fromByteOffset: b3 + 4 * i, as: SIMD16<Float>.self)
                i += 16
            }
            var s0 = a0.sum()
            var s1 = a1.sum()
            var s2 = a2.sum()
            var s3 = a3.sum()
            while i < n {
                let wv = w.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
                s0 += wv * x[t * n + i]
                s1 += wv * x[(t + 1) * n + i]
                s2 += wv * x[(t + 2) * n + i]
                s3 += wv * x[(t + 3) * n + i]
                i += 1
            }
            out[t * stride] = s0
            out[(t + 1) * stride] = s1
            out[(t + 2) * stride] = s2
            out[(t + 3) * stride] = s3
            t += 4
        }
        while t < T {
            out[t * stride] = dot(w, x + t * n, n)
            t += 1
        }
    }

    /// RMSNorm of each of `T` rows of `x` into `y`: x / sqrt(mean(x²) + eps) · weight; the squares
    /// summed in 16 lanes, then across them; rows spread over `threads` (the pool) in a prompt.
    static func rmsNorm(
        _ x: UnsafePointer<Float>, _ weight: [Float], eps: Float, T: Int, n: Int, into y: UnsafeMutablePointer<Float>,
        threads: Int = 1
    ) {
        weight.withUnsafeBufferPointer { wb in
            let w = wb.baseAddress!
            Parallel.forEachPooled(T, threads: T * n < 16_384 ? 1 : threads) { _, t in
                let r = x + t * n
                let row = UnsafeRawPointer(r)
                var lanes = SIMD16<Float>()
                var i = 0
                while i + 16 <= n {
                    let v = row.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                    lanes += v * v
                    i += 16
                }
                var ss = lanes.sum()
                while i < n {
                    let v = row.load(fromByteOffset: 4 * i, as: Float.self)
                    ss += v * v
                    i += 1
                }
                let scale = 1 / (ss / Float(n) + eps).squareRoot()
                for i in 0..<n { y[t * n + i] = r[i] * scale * w[i] }
            }
        }
    }

    @inline(__always) static func silu(_ x: Float) -> Float { x / (1 + Foundation_exp(-x)) }

    /// `gate[i] = silu(gate[i]) · up[i]` for `count` values, in slices over `threads` (an exp each:
    /// in a prompt's MLP this is millions of them), vectorized at AVX-512.
    static func swiGLU(
        _ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int, threads: Int, level: KernelLevel
    ) {
        let slices = count < 16_384 ? 1 : threads * 4
        let per = (count + slices - 1) / slices
        Parallel.forEachPooled(slices, threads: threads) { _, s in
            let lo = min(count, s * per)
            let hi = min(count, lo + per)
            if level.swiGLU(gate: gate + lo, up: up + lo, count: hi - lo) { return }
            for i in lo..<hi { gate[i] = silu(gate[i]) * up[i] }
        }
    }
}

@inline(__always) func Foundation_exp(_ x: Float) -> Float { expf(x) }

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

import Tensors

/// A weight matrix as stored: `rows × cols` elements of `dtype` (F32, BF16 or F16), row-major,
/// usually straight from a memory-mapped checkpoint. Any alignment.
public struct Weight: @unchecked Sendable {
    public var dtype: DType
    public var rows: Int
    public var cols: Int
    public var data: UnsafeRawPointer

    @inline(__always) func row(_ r: Int) -> UnsafeRawPointer { data + r * cols * dtype.byteSize! }
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
            acc0 += w.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) * xr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            acc1 += w.loadUnaligned(fromByteOffset: 4 * i + 64, as: SIMD16<Float>.self) * xr.loadUnaligned(fromByteOffset: 4 * i + 64, as: SIMD16<Float>.self)
            i += 32
        }
        var sum = (acc0 + acc1).sum()
        while i < n {
            sum += w.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) * x[i]
            i += 1
        }
        return sum
    }

    /// `dot(w, x)` with `w` in bf16: each weight widened to f32 (bits << 16) in registers.
    @inline(__always)
    static func dotBF16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD16<Float>()
        var acc1 = SIMD16<Float>()
        let xr = UnsafeRawPointer(x)
        var i = 0
        while i + 32 <= n {
            let h0 = w.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt16>.self)
            let h1 = w.loadUnaligned(fromByteOffset: 2 * i + 32, as: SIMD16<UInt16>.self)
            let w0 = unsafeBitCast(SIMD16<UInt32>(truncatingIfNeeded: h0) &<< 16, to: SIMD16<Float>.self)
            let w1 = unsafeBitCast(SIMD16<UInt32>(truncatingIfNeeded: h1) &<< 16, to: SIMD16<Float>.self)
            acc0 += w0 * xr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            acc1 += w1 * xr.loadUnaligned(fromByteOffset: 4 * i + 64, as: SIMD16<Float>.self)
            i += 32
        }
        var sum = (acc0 + acc1).sum()
        while i < n {
            sum += FloatBits.bf16ToFloat(w.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) * x[i]
            i += 1
        }
        return sum
    }

    /// `y[t][r] = W[r] · x[t]` for `T` vectors: `x` is `T × cols`, `y` is `T × rows`. Rows are spread
    /// over threads; each row is read once for all `T` vectors (prefill reuses it from cache).
    static func matmul(_ w: Weight, _ x: UnsafePointer<Float>, _ T: Int, _ y: UnsafeMutablePointer<Float>, threads: Int, scratch: [UnsafeMutablePointer<Float>])
    {
        let blocks = min(w.rows, max(threads * 8, 1))
        let per = (w.rows + blocks - 1) / blocks
        let cols = w.cols
        let rows = w.rows
        Parallel.forEach(blocks, threads: threads) { worker, b in
            let lo = b * per
            let hi = min(rows, lo + per)
            guard lo < hi else { return }
            let buf = scratch[worker]
            for r in lo..<hi {
                let row = w.row(r)
                switch w.dtype {
                case .f32:
                    for t in 0..<T { y[t * rows + r] = dot(row, x + t * cols, cols) }
                case .bf16 where T == 1:
                    y[r] = dotBF16(row, x, cols)
                default:
                    Convert.toFloat(w.dtype, from: row, count: cols, into: buf)
                    for t in 0..<T { y[t * rows + r] = dot(UnsafeRawPointer(buf), x + t * cols, cols) }
                }
            }
        }
    }

    /// RMSNorm of each of `T` rows of `x` into `y`: x / sqrt(mean(x²) + eps) · weight.
    static func rmsNorm(_ x: UnsafePointer<Float>, _ weight: [Float], eps: Float, T: Int, n: Int, into y: UnsafeMutablePointer<Float>) {
        for t in 0..<T {
            let row = x + t * n
            var ss: Float = 0
            for i in 0..<n { ss += row[i] * row[i] }
            let scale = 1 / (ss / Float(n) + eps).squareRoot()
            for i in 0..<n { y[t * n + i] = row[i] * scale * weight[i] }
        }
    }

    @inline(__always) static func silu(_ x: Float) -> Float { x / (1 + Foundation_exp(-x)) }
}

@inline(__always) func Foundation_exp(_ x: Float) -> Float { expf(x) }

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

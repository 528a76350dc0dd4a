import SafeTensors
import Tensors

/// How `diff --encoding` and `compress` store deltas.
public struct EncodingOptions: Sendable, Equatable {
    /// The encoding to write.
    public var encoding: DeltaEncoding = .dense
    /// Sparse: the share of each tensor's entries kept, in (0, 1].
    public var density = 0.1
    /// Sparse: values in f32 or bf16.
    public var valueDType: DType = .f32
    /// Sparse: scale the kept values so the tensor's L1 norm equals the dense tensor's.
    public var rescale = false
    /// 1-bit: one scale for the whole matrix instead of one per row.
    public var perMatrix = false

    /// Options for `encoding` with the defaults above (density 0.1, f32 values, no rescale, per row).
    public init(encoding: DeltaEncoding = .dense) { self.encoding = encoding }

    /// What `av.encoding_params` records.
    public var json: JSONValue {
        switch encoding {
        case .dense: .object([])
        case .sparse:
            .object([
                ("density", .double(density)), ("values", .string(valueDType.rawValue.lowercased())),
                ("rescale", .bool(rescale)),
            ])
        case .oneBit: .object([("scale", .string(perMatrix ? "matrix" : "row"))])
        }
    }
}

/// One delta tensor in its stored form.
struct EncodedTensor {
    var parts: [(spec: TensorSpec, bytes: [UInt8])]
    var encoding: DeltaEncoding
    var retained: RetainedEnergy
}

/// Turns exact deltas into their stored form.
enum DeltaEncoder {
    /// Encodes `values` (the exact delta of `name`, of `shape`). Tensors of fewer than two
    /// dimensions stay dense (f32) in a 1-bit AV.
    static func encode(_ name: String, shape: [Int], values: [Float], options: EncodingOptions) -> EncodedTensor {
        switch options.encoding {
        case .sparse: sparse(name, values: values, options: options)
        case .oneBit where shape.count >= 2 && values.count > 0: oneBit(name, shape: shape, values: values, options)
        default: dense(name, shape: shape, values: values)
        }
    }

    static func energy(_ values: [Float]) -> Double { values.reduce(0) { $0 + Double($1) * Double($1) } }

    /// `kept` defaults to 1 − error/energy, the share of ‖Δ‖² an optimal reconstruction keeps.
    static func retained(energy: Double, error: Double, kept: Double? = nil) -> RetainedEnergy {
        guard energy > 0 else { return RetainedEnergy(energy: 0, kept: 1, error: 0) }
        return RetainedEnergy(
            energy: energy, kept: kept.map { $0 / energy } ?? 1 - error / energy, error: error / energy)
    }

    static func dense(_ name: String, shape: [Int], values: [Float]) -> EncodedTensor {
        EncodedTensor(
            parts: [(TensorSpec(name: name, dtype: .f32, shape: shape), values.withUnsafeBytes { Array($0) })],
            encoding: .dense, retained: retained(energy: energy(values), error: 0))
    }

    /// The indices of the `k` largest |values|, ties broken by the lower index, in increasing order.
    static func topIndices<T: BinaryFloatingPoint>(_ values: [T], k: Int) -> [Int] {
        guard k < values.count else { return Array(values.indices) }
        guard k > 0 else { return [] }
        var magnitudes = values.map(\.magnitude)
        let threshold = select(&magnitudes, rank: values.count - k)  // the k-th largest
        var above = 0
        for v in values where v.magnitude > threshold { above += 1 }
        var ties = k - above
        var kept: [Int] = []
        kept.reserveCapacity(k)
        for (i, v) in values.enumerated() {
            let m = v.magnitude
            if m > threshold {
                kept.append(i)
            } else if m == threshold && ties > 0 {
                kept.append(i)
                ties -= 1
            }
        }
        return kept
    }

    /// The element of rank `rank` (0 = smallest) of `a`, reordering `a`: quickselect with a
    /// median-of-three pivot, deterministic.
    static func select<T: BinaryFloatingPoint>(_ a: inout [T], rank: Int) -> T {
        var lo = 0
        var hi = a.count - 1
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            let pivot = Swift.max(Swift.min(a[lo], a[mid]), Swift.min(Swift.max(a[lo], a[mid]), a[hi]))
            var i = lo
            var j = hi
            while i <= j {
                while a[i] < pivot { i += 1 }
                while a[j] > pivot { j -= 1 }
                if i <= j {
                    a.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if rank <= j {
                hi = j
            } else if rank >= i {
                lo = i
            } else {
                return a[rank]
            }
        }
        return a[rank]
    }

    static func sparse(_ name: String, values: [Float], options: EncodingOptions) -> EncodedTensor {
        let n = values.count
        let nonZero = values.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
        let k = Swift.min(nonZero, Swift.min(n, Int((options.density * Double(n)).rounded(.up))))
        let kept = topIndices(values, k: k)
        var stored = kept.map { values[$0] }
        if options.valueDType == .bf16 { stored = stored.map { FloatBits.bf16ToFloat(FloatBits.floatToBF16($0)) } }
        if options.rescale {
            let before = values.reduce(0.0) { $0 + Double($1.magnitude) }
            let after = stored.reduce(0.0) { $0 + Double($1.magnitude) }
            if before >= 1e-7 && after >= 1e-7 {
                stored = stored.map { Float(Double($0) * (before / after)) }
                if options.valueDType == .bf16 {
                    stored = stored.map { FloatBits.bf16ToFloat(FloatBits.floatToBF16($0)) }
                }
            }
        }
        let total = energy(values)
        var error = total
        var inKept = 0.0
        for (i, v) in zip(kept, stored) {
            let x = Double(values[i])
            let d = x - Double(v)
            error += d * d - x * x
            inKept += x * x
        }
        let wide = n > Int(Int32.max)
        let indexBytes =
            wide
            ? kept.map { Int64($0).littleEndian }.withUnsafeBytes { Array($0) }
            : kept.map { Int32($0).littleEndian }.withUnsafeBytes { Array($0) }
        let valueBytes =
            options.valueDType == .bf16
            ? stored.map { FloatBits.floatToBF16($0).littleEndian }.withUnsafeBytes { Array($0) }
            : stored.map { $0.bitPattern.littleEndian }.withUnsafeBytes { Array($0) }
        return EncodedTensor(
            parts: [
                (TensorSpec(name: EncodedParts.sparseIndex(name), dtype: wide ? .i64 : .i32, shape: [k]), indexBytes),
                (TensorSpec(name: EncodedParts.sparseValue(name), dtype: options.valueDType, shape: [k]), valueBytes),
            ],
            encoding: .sparse, retained: retained(energy: total, error: Swift.max(0, error), kept: inKept))
    }

    static func oneBit(_ name: String, shape: [Int], values: [Float], _ options: EncodingOptions) -> EncodedTensor {
        let (rows, columns) = DeltaTensor.rowsAndColumns(shape)
        let packed = (columns + 7) / 8
        var signs = [UInt8](repeating: 0, count: rows * packed)
        // α = mean |Δ| of the row (or matrix): the scale that minimises ‖Δ − α·sign(Δ)‖².
        var scales: [Float] = []
        if options.perMatrix {
            scales = [Float(values.reduce(0.0) { $0 + Double($1.magnitude) } / Double(values.count))]
        } else {
            for r in 0..<rows {
                var sum = 0.0
                for c in 0..<columns { sum += Double(values[r * columns + c].magnitude) }
                scales.append(Float(sum / Double(Swift.max(1, columns))))
            }
        }
        var error = 0.0
        for r in 0..<rows {
            let alpha = Double(scales.count == 1 ? scales[0] : scales[r])
            for c in 0..<columns {
                let v = Double(values[r * columns + c])
                let positive = v >= 0
                if positive { signs[r * packed + c >> 3] |= 1 << UInt8(c & 7) }
                let d = v - (positive ? alpha : -alpha)
                error += d * d
            }
        }
        return EncodedTensor(
            parts: [
                (TensorSpec(name: EncodedParts.sign(name), dtype: .u8, shape: [rows, packed]), signs),
                (
                    TensorSpec(name: EncodedParts.scale(name), dtype: .f32, shape: [scales.count]),
                    scales.map { $0.bitPattern.littleEndian }.withUnsafeBytes { Array($0) }
                ),
            ],
            encoding: .oneBit, retained: retained(energy: energy(values), error: error))
    }
}

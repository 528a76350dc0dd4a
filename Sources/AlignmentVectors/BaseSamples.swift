import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A few of the base's own values, recorded in the AV (`av.base_samples`) so that a quantized copy of
/// the base (a llama.cpp GGUF in Q8_0, Q4_K, …), whose bytes and content fingerprint are not the
/// base's, can still be recognized as it: every sampled value must lie within the quantization step
/// of its block, which a different model's values do not.
///
/// What it cannot tell apart is said plainly: a model that differs from the base by less than the
/// quantization step — the base's own fine-tunes, whose changes are ~0.2% of a weight against a Q4
/// step of ~6% — passes as the base. A different pretrained model, or another architecture's
/// weights in the same shapes, fails on most samples.
public struct BaseSamples: Sendable, Equatable {
    /// Values sampled per tensor (fewer for smaller tensors).
    public static let perTensor = 64
    /// Per tensor name, the base's values at `positions(count:)`, widened to f32 (exactly: the base
    /// is f32, bf16 or f16).
    public var values: [String: [Float]]

    /// Samples from their values.
    public init(values: [String: [Float]]) { self.values = values }

    /// The element indices sampled in a tensor of `count` elements: `perTensor` spread evenly, each
    /// in the middle of its stretch.
    public static func positions(count: Int) -> [Int] {
        let k = min(count, perTensor)
        guard k > 0 else { return [] }
        return (0..<k).map { j in (2 * j + 1) * count / (2 * k) }
    }

    /// The samples of every float tensor of `base`.
    public static func of(_ base: Checkpoint) -> BaseSamples {
        var values: [String: [Float]] = [:]
        for t in base.tensors where Convert.supports(t.dtype) && t.elementCount > 0 {
            guard let view = base.view(t.name), let element = ElementType(t.dtype) else { continue }
            values[t.name] = positions(count: t.elementCount).map { p in
                var v: Float = 0
                Convert.toFloat(t.dtype, from: view.bytes.baseAddress! + p * element.size, count: 1, into: &v)
                return v
            }
        }
        return BaseSamples(values: values)
    }

    /// `av.base_samples`: a JSON object of tensor name → the base64 of its samples as little-endian f32.
    public var metadataText: String {
        JSONValue.object(
            values.keys.sorted().map { name in
                let bytes = values[name]!.flatMap { v -> [UInt8] in
                    withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) }
                }
                return (name, .string(Data(bytes).base64EncodedString()))
            }
        ).rendered()
    }

    /// Reads `av.base_samples`; nil when it is malformed.
    public init?(metadataText text: String) {
        guard case .object(let pairs)? = try? JSONParser.parse(text) else { return nil }
        var values: [String: [Float]] = [:]
        for (name, value) in pairs {
            guard let encoded = value.stringValue, let data = Data(base64Encoded: encoded), data.count % 4 == 0,
                data.count / 4 <= Self.perTensor
            else { return nil }
            let bytes = [UInt8](data)
            values[name] = stride(from: 0, to: bytes.count, by: 4).map { (i: Int) -> Float in
                var bits: UInt32 = 0
                for k in 0..<4 { bits |= UInt32(bytes[i + k]) << (8 * k) }
                return Float(bitPattern: bits)
            }
        }
        self.values = values
    }
}

/// How a base that is a quantized copy (`Checkpoint.dequantizedBits`) compares with the samples an AV
/// recorded of its own base.
public struct QuantizedBaseCheck: Sendable, Equatable {
    /// Sampled values within their block's quantization step (or equal, in tensors not quantized).
    public var within: Int
    /// Sampled values compared.
    public var sampled: Int
    /// The bit widths of the copy's quantized tensors (`8-bit`, `4-bit, 6-bit`).
    public var types: String
    /// The share of sampled values that must be within the step: a rare value on a block's clamped
    /// edge may miss it; a different model misses most.
    public static let requiredShare = 0.99

    /// Whether the copy is taken for the vectors' base.
    public var accepted: Bool { sampled > 0 && Double(within) >= Self.requiredShare * Double(sampled) }

    /// Compares `base`, a dequantized copy, with `samples` of the original: a value of a tensor
    /// quantized to b bits passes when it is within 1.5 steps of its block's range / (2^b − 1) (a
    /// step is at most that; 1.5 covers the super-block scales of K-quants) plus half a unit in the
    /// last place of the copy's dtype; a value of a tensor the GGUF kept in float passes when equal
    /// to within that half unit.
    /// `bits`: `base.dequantizedBits`, when the caller has read them already.
    public static func compare(_ base: Checkpoint, with samples: BaseSamples, bits: [String: Int]? = nil)
        -> QuantizedBaseCheck
    {
        let bits = bits ?? base.dequantizedBits
        var within = 0
        var sampled = 0
        for (name, expected) in samples.values {
            guard let info = base.info(name), let view = base.view(name), let element = ElementType(info.dtype),
                Convert.supports(info.dtype)
            else {
                sampled += expected.count
                continue
            }
            let positions = BaseSamples.positions(count: info.elementCount)
            guard positions.count == expected.count else {
                sampled += expected.count
                continue
            }
            func value(_ i: Int) -> Float {
                var v: Float = 0
                Convert.toFloat(info.dtype, from: view.bytes.baseAddress! + i * element.size, count: 1, into: &v)
                return v
            }
            for (p, want) in zip(positions, expected) {
                let got = value(p)
                var bound = halfULP(got, info.dtype)
                if let b = bits[name], b > 0 {
                    let lo = p / 32 * 32
                    let block = (lo..<min(info.elementCount, lo + 32)).map(value)
                    let range = block.max()! - block.min()!
                    bound += 1.5 * range / Float((1 << min(b, 16)) - 1)
                }
                sampled += 1
                if abs(got - want) <= bound { within += 1 }
            }
        }
        let types = Set(bits.values).sorted().map { "\($0)-bit" }.joined(separator: ", ")
        return QuantizedBaseCheck(within: within, sampled: sampled, types: types)
    }

    /// Half a unit in the last place of `v` stored in `dtype`.
    static func halfULP(_ v: Float, _ dtype: DType) -> Float {
        let mantissa: Int =
            switch dtype {
            case .bf16: 7
            case .f16: 10
            default: 23
            }
        let exponent = v == 0 ? -126 : Int(v.exponent)
        return Float(sign: .plus, exponent: exponent - mantissa - 1, significand: 1)
    }
}

extension Checkpoint {
    /// For a checkpoint converted from a quantized GGUF (`av convert`, or a `.gguf` given to a
    /// command), the bits per weight of each tensor the GGUF held quantized, as the conversion
    /// recorded them in the safetensors metadata (`av.dequantized`); empty for any other checkpoint.
    public var dequantizedBits: [String: Int] {
        var bits: [String: Int] = [:]
        for file in store.files {
            guard let text = file.metadata?["av.dequantized"], case .object(let pairs)? = try? JSONParser.parse(text)
            else { continue }
            for (name, value) in pairs {
                if let b = value.doubleValue, b >= 1, b <= 16, b == b.rounded() { bits[name] = Int(b) }
            }
        }
        return bits
    }
}

/// Checks that `base` is the base `vector` was made from: its content fingerprint is the recorded
/// one (nil), or it is a dequantized copy (`Checkpoint.dequantizedBits`) whose values the vector's
/// `BaseSamples` accept (the comparison). Throws `quantizedBaseMismatch` for a dequantized copy the
/// samples refuse or cannot check, `baseMismatch` for any other base, naming both fingerprints.
func verifyBase(_ base: Checkpoint, of vector: AlignmentVector, structure: String, content: String)
    throws(AVError) -> QuantizedBaseCheck?
{
    guard content != vector.header.base.content else { return nil }
    let bits = base.dequantizedBits
    if !bits.isEmpty {
        guard let samples = vector.header.baseSamples else {
            throw .quantizedBaseMismatch(av: vector.path, basePath: base.path, within: 0, sampled: 0)
        }
        let check = QuantizedBaseCheck.compare(base, with: samples, bits: bits)
        guard check.accepted else {
            throw .quantizedBaseMismatch(
                av: vector.path, basePath: base.path, within: check.within, sampled: check.sampled)
        }
        return check
    }
    throw .baseMismatch(
        av: vector.path, recorded: vector.header.base.fingerprint, given: "\(structure):\(content)",
        basePath: base.path)
}

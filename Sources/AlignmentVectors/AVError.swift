import SafeTensors
import Tensors

/// Why a diff or a merge was refused. Each case names the files and tensors involved.
public enum AVError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A file-level problem (malformed, unreadable).
    case file(SafeTensorsError)
    case tensorOnlyIn(tensor: String, presentIn: String, missingFrom: String)
    case shapeMismatch(tensor: String, base: [Int], aligned: [Int], baseFile: String, alignedFile: String)
    case resizedRows(tensors: [String], base: [Int], aligned: [Int])
    case dtypeMismatch(tensor: String, base: DType, aligned: DType, baseFile: String, alignedFile: String)
    case integerTensorDiffers(tensor: String, dtype: DType)
    case unsupportedDType(tensor: String, dtype: DType, file: String)
    case notAnAV(file: String, reason: String)
    case baseMismatch(av: String, recorded: String, given: String, basePath: String)
    case differentBases(first: String, firstBase: String, second: String, secondBase: String)
    /// A dequantized base whose sampled values are not within the quantization step of the vector's
    /// base (`within` of `sampled` are); `sampled` is 0 when the vector records no samples.
    case quantizedBaseMismatch(av: String, basePath: String, within: Int, sampled: Int)
    case vectorShape(av: String, tensor: String, vector: [Int], base: [Int])
    case vectorTensorNotInBase(av: String, tensor: String)
    case outputIsInput(output: String, input: String)
    /// An AV's tensor does not match its recorded digest (a damaged file).
    case corrupt(av: String, tensor: String, reason: String)
    case nonFinite(tensor: String, count: Int, file: String)
    case unknownDomain(name: String, directory: String, found: [String])
    case noBase(reason: String)
    case recipe(file: String, message: String)
    case usage(String)
    /// A PEFT adapter av cannot read or apply: the file and the rule.
    case adapter(file: String, message: String)

    /// One line naming the file, tensor and rule, the form the CLI prints.
    public var description: String {
        switch self {
        case .file(let e):
            return e.description
        case let .tensorOnlyIn(t, present, missing):
            return "tensor \(q(t)) is in \(present) but not in \(missing)"
        case let .shapeMismatch(t, b, a, bf, af):
            return "tensor \(q(t)): shape \(Shape.describe(b)) in \(bf) but \(Shape.describe(a)) in \(af)"
        case let .resizedRows(ts, b, a):
            return
                "\(ts.map(q).joined(separator: ", ")): the aligned model has more rows (\(Shape.describe(a)) against"
                + " the base's \(Shape.describe(b))), as when tokens were added; pass --resized-rows drop to keep"
                + " the base's rows and drop the added ones"
        case let .dtypeMismatch(t, b, a, bf, af):
            return "tensor \(q(t)): dtype \(b.rawValue) in \(bf) but \(a.rawValue) in \(af) (convert one model first)"
        case let .integerTensorDiffers(t, d):
            return
                "tensor \(q(t)) is \(d.rawValue) and differs between the models; integer tensors cannot carry a delta"
        case let .unsupportedDType(t, d, f):
            return "\(f): tensor \(q(t)) is \(d.rawValue), which av cannot do arithmetic on"
        case let .notAnAV(f, reason):
            return "\(f): not an alignment vector: \(reason)"
        case let .baseMismatch(av, recorded, given, path):
            return
                "\(av) was made from a different base: it records base fingerprint \(recorded), but \(path) has"
                + " \(given) (--force merges anyway)"
        case let .quantizedBaseMismatch(av, path, _, sampled) where sampled == 0:
            return
                "\(path) holds quantized weights and \(av) records no samples of its base to compare them with (made"
                + " by an earlier av): make the vector again with av diff, merge with --force (the rounding stays"
                + " in the output), or keep it in float as a llama.cpp adapter (av export-lora NAME.av --base"
                + " ORIGINAL -o NAME.gguf)"
        case let .quantizedBaseMismatch(av, path, within, sampled):
            let share = Int((QuantizedBaseCheck.requiredShare * 100).rounded())
            return
                "\(path) is not a quantized copy of the base \(av) was made from: \(within) of \(sampled) sampled"
                + " values lie within the quantization step (\(share)% must); --force merges anyway"
        case let .differentBases(f1, b1, f2, b2):
            return "\(f1) and \(f2) were made from different bases (\(b1) and \(b2)); --force merges anyway"
        case let .vectorShape(av, t, v, b):
            return "\(av): tensor \(q(t)) has shape \(Shape.describe(v)) but the base's is \(Shape.describe(b))"
        case let .vectorTensorNotInBase(av, t):
            return "\(av): tensor \(q(t)) is not in the base"
        case let .corrupt(av, t, reason):
            return "\(av): tensor \(q(t)) is damaged: \(reason); make the vector again with av diff"
        case let .outputIsInput(o, i):
            return "the output \(o) is also an input (\(i)); inputs are never written"
        case let .nonFinite(t, n, f):
            return
                "\(f): tensor \(q(t)) would hold \(n) non-finite value\(n == 1 ? "" : "s") (NaN or Inf);"
                + " --allow-nonfinite writes it anyway"
        case let .unknownDomain(name, dir, found):
            return "no alignment vector for domain \(q(name)): \(dir)/\(name).av does not exist"
                + (found.isEmpty ? " (no .av files there)" : " (found: \(found.joined(separator: ", ")))")
        case let .noBase(reason):
            return reason
        case let .recipe(f, m):
            return "\(f): \(m)"
        case let .usage(m):
            return m
        case let .adapter(f, m):
            return "\(f): \(m)"
        }
    }

    private func q(_ s: String) -> String { JSONWriter.quoted(s) }
}

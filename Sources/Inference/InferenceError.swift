import AlignmentVectors
import SafeTensors
import Tensors

/// Why a model, a tokenizer or an evaluation input was refused.
public enum InferenceError: Error, Equatable, Sendable, CustomStringConvertible {
    case file(SafeTensorsError)
    case vectors(AVError)
    case config(file: String, message: String)
    case unsupported(file: String, field: String, value: String)
    case missingTensor(name: String, model: String)
    case unusedTensors(names: [String], model: String)
    case tensorShape(name: String, expected: [Int], found: [Int], model: String)
    case tensorDType(name: String, dtype: String, model: String)
    case tokenizer(file: String, message: String)
    case input(file: String, message: String)
    case contextTooLong(tokens: Int, limit: Int)
    /// A computed result is NaN or infinite (the weights or the mix are broken).
    case nonFinite(what: String)

    /// One line naming the file and the problem, the form the CLI prints.
    public var description: String {
        switch self {
        case .file(let e): e.description
        case .vectors(let e): e.description
        case let .config(f, m): "\(f): \(m)"
        case let .unsupported(f, field, value): "\(f): \(field) \(value) is not supported"
        case let .missingTensor(n, m):
            "\(m): the model needs tensor \(JSONWriter.quoted(n)), which is not in the checkpoint"
        case let .unusedTensors(ns, m):
            "\(m): \(ns.count) tensor\(ns.count == 1 ? "" : "s") not used by the architecture:"
                + " \(ns.prefix(5).map { JSONWriter.quoted($0) }.joined(separator: ", "))\(ns.count > 5 ? ", …" : "")"
        case let .tensorShape(n, e, f, m): "\(m): tensor \(JSONWriter.quoted(n)) has shape \(f), expected \(e)"
        case let .tensorDType(n, d, m): "\(m): tensor \(JSONWriter.quoted(n)) is \(d); weights must be F32, BF16 or F16"
        case let .tokenizer(f, m): "\(f): \(m)"
        case let .input(f, m): "\(f): \(m)"
        case let .contextTooLong(t, l): "\(t) tokens do not fit the model's context of \(l)"
        case let .nonFinite(what): "\(what) is not finite (NaN or Inf): the model's weights or the mix are broken"
        }
    }
}

import AlignmentVectors
import Dispatch
import Evaluation
import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

// `av check`'s recipe checks, validated before anything is merged or loaded.
extension CheckCommand {
    /// The keys each check type takes (besides "type" and "name"), and which are required.
    static let checkKeys: [String: (required: [String], optional: [String])] = [
        "pairs": (["file", "min_accuracy"], []),
        "perplexity": (["file", "max"], []),
        "kl": (["prompts", "max"], ["to"]),
        "finite": ([], []),
        "loads": ([], []),
        "tokenizer": ([], ["sample"]),
        "levels": (["file", "level"], ["min_share", "largest", "score"]),
    ]

    /// Refuses, before anything runs, a check with an unknown type or key, a missing or mistyped
    /// value, a threshold out of range, or a file that is missing (exit 4) or empty (exit 3).
    static func validate(_ checks: [JSONValue], recipe: String, place: (String) -> String) throws {
        for (i, check) in checks.enumerated() {
            let label = "\(recipe): check \(i + 1)"
            guard case .object(let fields) = check else {
                throw CLIError(message: "\(label) must be a JSON object", code: .badInput)
            }
            guard let type = check["type"]?.stringValue, let keys = checkKeys[type] else {
                throw CLIError(
                    message:
                        "\(label): unknown or missing \"type\" (one of"
                        + " \(checkKeys.keys.sorted().joined(separator: ", ")))",
                    code: .badInput)
            }
            let known = Set(keys.required + keys.optional + ["type", "name"])
            if let extra = fields.first(where: { !known.contains($0.key) }) {
                throw CLIError(
                    message:
                        "\(label) (\(type)): unknown key \"\(extra.key)\" (known:"
                        + " \(known.sorted().joined(separator: ", ")))",
                    code: .badInput)
            }
            for key in keys.required where check[key] == nil {
                throw CLIError(message: "\(label) (\(type)): needs \"\(key)\"", code: .badInput)
            }
            if type == "levels" {
                guard check["min_share"] != nil || check["largest"] != nil else {
                    throw CLIError(
                        message: "\(label) (levels): needs \"min_share\" (a share from 0 to 1) or \"largest\": true",
                        code: .badInput)
                }
                if let v = check["largest"], case .bool = v {
                } else if check["largest"] != nil {
                    throw CLIError(message: "\(label) (levels): \"largest\" must be true or false", code: .badInput)
                }
                if let s = check["score"], s.stringValue.flatMap(LevelScore.init(rawValue:)) == nil {
                    throw CLIError(message: "\(label) (levels): \"score\" must be \"mean\" or \"sum\"", code: .badInput)
                }
                if let file = check["file"]?.stringValue, let level = check["level"]?.stringValue {
                    let levels = try LevelsFile.load(place(file))
                    guard levels.levels.contains(level) else {
                        throw CLIError(
                            message:
                                "\(label) (levels): \(place(file)) has no level \"\(level)\" (it has"
                                + " \(levels.levels.joined(separator: ", ")))",
                            code: .badInput)
                    }
                }
            }
            for key in ["min_accuracy", "max", "min_share"] where check[key] != nil {
                guard let v = check[key]?.doubleValue, v.isFinite else {
                    throw CLIError(message: "\(label) (\(type)): \"\(key)\" must be a number", code: .badInput)
                }
                if key == "min_share", !(0...1).contains(v) {
                    throw CLIError(
                        message:
                            "\(label) (levels): \"min_share\" is a share from 0 to 1, not \(trimmed(v)) (80% is 0.8)",
                        code: .badInput)
                }
                if key == "min_accuracy", !(0...1).contains(v) {
                    throw CLIError(
                        message:
                            "\(label) (pairs): \"min_accuracy\" is a share from 0 to 1, not \(trimmed(v)) (80% is 0.8)",
                        code: .badInput)
                }
                if key == "max", v < 0 {
                    throw CLIError(message: "\(label) (\(type)): \"max\" must not be negative", code: .badInput)
                }
            }
            for key in ["file", "prompts", "to", "sample", "name", "level"] where check[key] != nil {
                guard let v = check[key]?.stringValue else {
                    throw CLIError(message: "\(label) (\(type)): \"\(key)\" must be a string", code: .badInput)
                }
                if key == "sample", v.isEmpty {
                    throw CLIError(
                        message: "\(label) (tokenizer): \"sample\" is empty; a check with no data proves nothing",
                        code: .badInput)
                }
                if key == "file" || key == "prompts" {
                    let lines = try TextInput.lines(place(v))
                    guard !lines.isEmpty else {
                        throw CLIError(
                            message: "\(place(v)): empty; a check with no data proves nothing (\(label), \(type))",
                            code: .badInput)
                    }
                }
                if key == "to", FileKind(of: place(v), followingLinks: true) == .missing {
                    throw CLIError(message: "\(label) (kl): the model \(place(v)) does not exist", code: .io)
                }
            }
        }
    }
}

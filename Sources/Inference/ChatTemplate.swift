import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The chat formats of the common model families, recognized from `tokenizer_config.json`'s
/// `chat_template` (a Jinja template, which av does not run: it knows the formats it renders).
public enum ChatTemplate: Equatable, Sendable {
    /// ChatML, as SmolLM2 and Qwen2 use; `defaultSystem` is the system prompt the template adds
    /// when none is given (SmolLM2 and Qwen2 templates do).
    case chatML(defaultSystem: String?)
    /// Llama 3: header ids and `<|eot_id|>`.
    case llama3
    /// Mistral: `[INST] … [/INST]`.
    case mistral

    /// The template called `name` (`chatml`, `llama3`, `mistral`; any case), or nil.
    public init?(name: String) {
        switch name.lowercased() {
        case "chatml": self = .chatML(defaultSystem: nil)
        case "llama3": self = .llama3
        case "mistral": self = .mistral
        default: return nil
        }
    }

    /// The template of the model in `directory`, or nil when it has none or an unknown one.
    public static func detect(directory: String) -> ChatTemplate? {
        // transformers 5 saves the template as chat_template.jinja; older versions inside
        // tokenizer_config.json, as a string or a list of named templates.
        if let data = FileManager.default.contents(atPath: Path.join(directory, "chat_template.jinja")) {
            return recognize(String(decoding: data, as: UTF8.self))
        }
        guard let data = FileManager.default.contents(atPath: Path.join(directory, "tokenizer_config.json")),
            let root = try? JSONParser.parse(String(decoding: data, as: UTF8.self)),
            let value = root["chat_template"]
        else { return nil }
        if let template = value.stringValue { return recognize(template) }
        let named = value.arrayValue?.first { $0["name"]?.stringValue == "default" }
        return named?["template"]?.stringValue.flatMap(recognize)
    }

    /// Which known format a Jinja chat template renders, if any.
    public static func recognize(_ template: String) -> ChatTemplate? {
        if template.contains("<|im_start|>") {
            // A default system prompt appears as a literal right after "<|im_start|>system\n".
            var defaultSystem: String?
            // The newline is an escape in some templates and a real newline in others (GGUF).
            for marker in [
                "'<|im_start|>system\\n", "\"<|im_start|>system\\n", "'<|im_start|>system\n", "\"<|im_start|>system\n",
            ] {
                guard let r = template.firstRange(of: marker) else { continue }
                let rest = template[r.upperBound...]
                if let end = rest.firstRange(of: "<|im_end|>") {
                    let text = String(rest[..<end.lowerBound])
                    if !text.contains("{{") && !text.contains("'") {
                        defaultSystem = text.replacingAll("\\n", with: "\n")
                    }
                }
                break
            }
            return .chatML(defaultSystem: defaultSystem)
        }
        if template.contains("<|start_header_id|>") { return .llama3 }
        if template.contains("[INST]") { return .mistral }
        return nil
    }

    /// The prompt text for one user turn (and an optional system prompt), ending where the
    /// assistant's answer begins: what `apply_chat_template(…, add_generation_prompt=True)` renders.
    public func render(user: String, system: String?) -> String {
        switch self {
        case .chatML(let defaultSystem):
            var s = ""
            if let sys = system ?? defaultSystem { s += "<|im_start|>system\n\(sys)<|im_end|>\n" }
            return s + "<|im_start|>user\n\(user)<|im_end|>\n<|im_start|>assistant\n"
        case .llama3:
            var s = "<|begin_of_text|>"
            // The template trims each message's content.
            if let system {
                s += "<|start_header_id|>system<|end_header_id|>\n\n\(system.trimmingWhitespace())<|eot_id|>"
            }
            let u = user.trimmingWhitespace()
            return s
                + "<|start_header_id|>user<|end_header_id|>\n\n\(u)<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\n"
        case .mistral:
            let content = system.map { "\($0)\n\n\(user)" } ?? user
            return "<s>[INST] \(content) [/INST]"
        }
    }

    /// A system turn alone, as this template renders it before the first user turn: what
    /// `--system` puts before every levels prompt. Mistral's template has no system turn (it folds
    /// the system prompt into the first user turn), so there it is the text and a blank line.
    public func systemTurn(_ text: String) -> String {
        switch self {
        case .chatML: "<|im_start|>system\n\(text)<|im_end|>\n"
        case .llama3: "<|start_header_id|>system<|end_header_id|>\n\n\(text.trimmingWhitespace())<|eot_id|>"
        case .mistral: "\(text)\n\n"
        }
    }
}

/// Text put before every prompt a levels file or a pairs file scores: as given, or a system prompt
/// rendered by the model's own chat template (ChatML for a model without one), so that `--system`
/// means the same in every command.
public enum PromptPrefix: Equatable, Sendable {
    /// Text put before each prompt as it is (`--prefix`).
    case text(String)
    /// A system prompt (`--system`), rendered as the model's template renders a system turn.
    case system(String)

    /// The text for a model whose chat template is `template`.
    public func text(for template: ChatTemplate?) -> String {
        switch self {
        case .text(let t): t
        case .system(let t): (template ?? .chatML(defaultSystem: nil)).systemTurn(t)
        }
    }
}

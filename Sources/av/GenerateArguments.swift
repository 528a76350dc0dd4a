import Inference

/// `av generate`'s words, read and checked: the prompt, how it is wrapped, the sampler and the length.
struct GenerateArguments {
    var prompt: String
    var chat: Bool
    var system: String?
    /// `--template NAME`, over the model's own.
    var template: ChatTemplate?
    var sampling: SamplingOptions
    var maxTokens: Int
    var quiet: Bool

    /// Reads and checks every word; the prompt is read (from standard input with `--prompt -`).
    static func parse(_ args: ParsedArguments) throws -> GenerateArguments {
        let prompt = try readPrompt(args)
        var sampling = SamplingOptions()
        sampling.temperature = try number(args, "--temperature", Float(0))
        sampling.topK = try number(args, "--top-k", 0)
        sampling.topP = try number(args, "--top-p", Float(1))
        sampling.seed = try number(args, "--seed", UInt64(0))
        let maxTokens: Int = try number(args, "--max-tokens", 128)
        guard sampling.temperature >= 0, sampling.topK >= 0, sampling.topP > 0, sampling.topP <= 1, maxTokens >= 0
        else {
            throw UsageError(message: "--temperature ≥ 0, --top-k ≥ 0, 0 < --top-p ≤ 1, --max-tokens ≥ 0")
        }
        let template = try args.value("--template").map { name throws -> ChatTemplate in
            guard let t = ChatTemplate(name: name) else {
                throw UsageError(message: "--template must be chatml, llama3 or mistral, not '\(name)'")
            }
            return t
        }
        return GenerateArguments(
            prompt: prompt, chat: args.has("--chat"), system: args.value("--system"), template: template,
            sampling: sampling, maxTokens: maxTokens, quiet: args.has("--quiet"))
    }

    static func number<T: LosslessStringConvertible>(_ args: ParsedArguments, _ key: String, _ fallback: T) throws -> T
    {
        guard let text = args.value(key) else { return fallback }
        guard let v = T(text) else { throw UsageError(message: "\(key) needs a number, not '\(text)'") }
        return v
    }

    /// The prompt from `--prompt TEXT`, `--prompt -` (standard input) or `--prompt-file FILE`.
    static func readPrompt(_ args: ParsedArguments) throws -> String {
        switch (args.value("--prompt"), args.value("--prompt-file")) {
        case (nil, nil): throw UsageError(message: "missing --prompt TEXT (or --prompt -, or --prompt-file FILE)")
        case (_?, _?): throw UsageError(message: "give --prompt or --prompt-file, not both")
        case ("-"?, nil): return try TextInput.readStandardInput()
        case (let text?, nil): return text
        case (nil, let file?): return try TextInput.read(file)
        }
    }

    /// The prompt's ids for `lm`: the chat template's text with `--chat`, the tokenizer's prefix
    /// (BOS) otherwise; refused when empty.
    func promptIDs(_ lm: LanguageModel) throws -> [Int] {
        var ids: [Int]
        if chat {
            guard let template = template ?? lm.chatTemplate else {
                throw CLIError(
                    message: "\(lm.model.path): no chat template av knows in tokenizer_config.json; pass --template"
                        + " chatml|llama3|mistral",
                    code: .badInput)
            }
            ids = lm.tokenizer.encode(template.render(user: prompt, system: system))
        } else {
            ids = lm.tokenizer.encode(prompt, addSpecialTokens: true)
        }
        guard !ids.isEmpty else {
            throw UsageError(
                message: "--prompt is empty and the tokenizer adds no BOS token: there is nothing to generate from")
        }
        return ids
    }
}

import GGUF
import AlignmentVectors
import Dispatch
import Inference
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Options every command that runs a model shares: which model, or which mix.
let modelOptions: [OptionSpec] =
    [
        OptionSpec(
            names: ["--model"], valueName: "PATH",
            help: "a model directory (config.json, safetensors, tokenizer.json)"),
        OptionSpec(
            names: ["--adapter"], valueName: "DIR",
            help: "with --model: a PEFT LoRA/DoRA adapter merged in memory, as merge_and_unload() would"),
        OptionSpec(
            names: ["--base"], valueName: "PATH",
            help: "with --DOMAIN COEF, --vector or --recipe: evaluate base + sum λ·AV without writing it"),
        OptionSpec(
            names: ["--vectors"], valueName: "DIR",
            help: "where --DOMAIN finds DOMAIN.av (default: the current"
                + " directory)"),
        OptionSpec(
            names: ["--vector"], valueName: "PATH=COEF", help: "an AV file with its coefficient (repeatable)",
            repeatable: true),
        OptionSpec(names: ["--recipe"], valueName: "FILE.json", help: "the mix from a recipe (as av merge)"),
        SharedOptions.forceMix,
        OptionSpec(names: ["--transfer"], help: "apply the vectors to another base on purpose (as --force)"),
        SharedOptions.threads, SharedOptions.mix,
    ] + MergeCommand.methodOptions(seed: "--drop-seed")

/// The model the arguments name: `--model PATH`, or a mix of `--base` and vectors.
func loadLanguageModel(_ args: ParsedArguments) throws -> LanguageModel {
    let mixing = !args.dynamic.isEmpty || !args.all("--vector").isEmpty || args.has("--recipe")
    let mode = try args.mixMode()
    if args.has("--mix") && !mixing {
        throw UsageError(message: "--mix goes with vectors to mix (--DOMAIN COEF, --vector)")
    }
    let model: LanguageModel
    if mixing {
        guard !args.has("--adapter") else {
            throw UsageError(message: "--adapter goes with --model; to mix, make the adapter's AV with av diff first")
        }
        guard !args.has("--model") else {
            throw UsageError(message: "give --model PATH, or --base PATH with vectors, not both")
        }
        let plan = try MergeArguments.parse(args, needOutput: false, seedFlag: "--drop-seed")
        model = try LanguageModel(
            directory: plan.base.path, mixing: plan.terms, method: plan.options.method, mix: mode,
            force: plan.options.force || plan.options.transfer, threads: plan.options.threads)
    } else {
        guard let path = args.value("--model") ?? args.value("--base") else {
            throw UsageError(message: "missing --model PATH")
        }
        let adapter = try args.value("--adapter").map { dir throws -> LoRAAdapter in
            guard isAdapterDirectory(dir) else {
                throw UsageError(message: "--adapter \(dir): not a PEFT adapter directory (no adapter_config.json)")
            }
            return try LoRAAdapter(path: dir)
        }
        model = try LanguageModel(directory: try GGUFInput.resolve(path), adapter: adapter, threads: try args.threads())
    }
    model.model.threads = try args.threads()
    return model
}

enum GenerateCommand {
    static let spec = CommandSpec(
        name: "generate",
        summary: "generate text with a model or a mix, streaming tokens to stdout",
        positionals: [],
        options: modelOptions + [
            OptionSpec(
                names: ["--prompt"], valueName: "TEXT",
                help: "the prompt; - reads it from standard input, exactly (this or --prompt-file is required)"),
            OptionSpec(
                names: ["--prompt-file"], valueName: "FILE",
                help: "read the prompt from FILE, exactly: trailing newlines and quotes kept (a BOM dropped)"),
            OptionSpec(names: ["--chat"], help: "wrap the prompt in the model's chat template"),
            OptionSpec(names: ["--system"], valueName: "TEXT", help: "system prompt for --chat"),
            OptionSpec(
                names: ["--template"], valueName: "NAME",
                help: "chatml, llama3 or mistral, overriding tokenizer_config.json"),
            OptionSpec(names: ["--max-tokens"], valueName: "N", help: "most tokens to generate (default 128)"),
            OptionSpec(names: ["--temperature"], valueName: "T", help: "0 (default) is greedy and deterministic"),
            OptionSpec(names: ["--top-k"], valueName: "K", help: "sample from the K most likely tokens"),
            OptionSpec(names: ["--top-p"], valueName: "P", help: "sample from the smallest set reaching probability P"),
            OptionSpec(
                names: ["--seed"], valueName: "S", help: "seed of the sampler: the same seed gives the same text"),
            OptionSpec(names: ["--quiet", "-q"], help: "no speed report on stderr"),
            OptionSpec(names: ["--help", "-h"], help: "show this help"),
        ],
        discussion: "Prints tokens as they are made, then the speed (tokens/s) on stderr.",
        dynamicOptionsHelp: "with --base: the coefficient of domain DOMAIN (DIR/DOMAIN.av)")

    static func number<T: LosslessStringConvertible>(_ args: ParsedArguments, _ key: String, _ fallback: T) throws -> T
    {
        guard let text = args.value(key) else { return fallback }
        guard let v = T(text) else { throw UsageError(message: "\(key) needs a number, not '\(text)'") }
        return v
    }

    static func run(_ args: ParsedArguments) throws -> ExitCode {
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
        let lm = try loadLanguageModel(args)
        let ids = try promptIDs(lm, prompt: prompt, args: args)
        guard !ids.isEmpty else {
            throw UsageError(
                message: "--prompt is empty and the tokenizer adds no BOS token: there is nothing to generate from")
        }
        let limit = lm.model.config.maxPositionEmbeddings
        guard ids.count < limit else {
            throw CLIError(
                message:
                    "the prompt is \(ids.count) tokens; the model's context is \(limit), so no token fits after it",
                code: .badInput)
        }
        let start = DispatchTime.now().uptimeNanoseconds
        var firstToken: UInt64?
        var writeError: (any Error)?
        let out = try lm.generate(prompt: ids, maxTokens: maxTokens, sampling: sampling) { piece in
            if firstToken == nil { firstToken = DispatchTime.now().uptimeNanoseconds }
            guard writeError == nil else { return }
            do { try writeOutput(piece) } catch { writeError = error }
        }
        if let writeError { throw writeError }
        try writeOutput("\n")
        if ids.count + out.count >= limit && out.count < maxTokens {
            printError("note: stopped at the model's context limit of \(limit) tokens (\(out.count) generated)")
        }
        if !args.has("--quiet") {
            let end = DispatchTime.now().uptimeNanoseconds
            let total = Double(end - start) / 1e9
            let prefill = Double((firstToken ?? end) - start) / 1e9
            let decode = total - prefill
            printError(
                String(
                    cFormat: "%ld prompt tokens in %.2f s (%.1f tokens/s); %ld generated in %.2f s (%.1f tokens/s)",
                    ids.count, prefill, Double(ids.count) / max(prefill, 1e-9), out.count, decode,
                    Double(max(out.count - 1, 0)) / max(decode, 1e-9)))
        }
        return .success
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

    /// The prompt's ids: the chat template's text when --chat, the tokenizer's prefix (BOS) otherwise.
    static func promptIDs(_ lm: LanguageModel, prompt: String, args: ParsedArguments) throws -> [Int] {
        guard args.has("--chat") else { return lm.tokenizer.encode(prompt, addSpecialTokens: true) }
        var template = lm.chatTemplate
        if let name = args.value("--template") {
            guard let t = ChatTemplate(name: name) else {
                throw UsageError(message: "--template must be chatml, llama3 or mistral, not '\(name)'")
            }
            template = t
        }
        guard let template else {
            throw CLIError(
                message:
                    "\(lm.model.path): no chat template av knows in tokenizer_config.json; pass --template"
                    + " chatml|llama3|mistral",
                code: .badInput)
        }
        return lm.tokenizer.encode(template.render(user: prompt, system: args.value("--system")))
    }
}

import AlignmentVectors
import Dispatch
import GGUF
import Inference
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

enum GenerateCommand {
    static let spec = CommandSpec(
        name: "generate",
        summary: "generate text with a model or a mix, streaming tokens to stdout",
        positionals: [],
        options: SharedOptions.model + [
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

    /// Parse → load the model → stream the tokens to stdout, the speed to stderr.
    static func run(_ args: ParsedArguments) throws -> ExitCode {
        let a = try GenerateArguments.parse(args)
        let lm = try ModelArguments.parse(args).load()
        let ids = try a.promptIDs(lm)
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
        let out = try lm.generate(prompt: ids, maxTokens: a.maxTokens, sampling: a.sampling) { piece in
            if firstToken == nil { firstToken = DispatchTime.now().uptimeNanoseconds }
            guard writeError == nil else { return }
            do { try writeOutput(piece) } catch { writeError = error }
        }
        if let writeError { throw writeError }
        try writeOutput("\n")
        if ids.count + out.count >= limit && out.count < a.maxTokens {
            printError("note: stopped at the model's context limit of \(limit) tokens (\(out.count) generated)")
        }
        if !a.quiet {
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
}

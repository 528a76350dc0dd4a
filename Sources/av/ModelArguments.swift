import AlignmentVectors
import GGUF
import Inference

/// The model a command runs, from the options every such command shares: `--model PATH` (with an
/// optional PEFT `--adapter`, or a `.gguf`), or a mix of `--base` and vectors (`--DOMAIN COEF`,
/// `--vector`, `--recipe`) evaluated in memory, by its weights or its logits.
struct ModelArguments {
    /// Where the model comes from.
    enum Source {
        /// A model directory or `.gguf`, and an adapter to merge in memory.
        case model(path: String, adapter: LoRAAdapter?)
        /// A mix resolved as `av merge` resolves it, and how it is applied.
        case mix(MergeArguments, MixMode)
    }

    var source: Source
    var threads: Int

    /// Reads the model options; a mix is resolved (its vectors and base opened), nothing is loaded.
    static func parse(_ args: ParsedArguments) throws -> ModelArguments {
        let mixing = !args.dynamic.isEmpty || !args.all("--vector").isEmpty || args.has("--recipe")
        let mode = try args.mixMode()
        if args.has("--mix") && !mixing {
            throw UsageError(message: "--mix goes with vectors to mix (--DOMAIN COEF, --vector)")
        }
        let threads = try args.threads()
        guard !mixing else {
            guard !args.has("--adapter") else {
                throw UsageError(
                    message: "--adapter goes with --model; to mix, make the adapter's AV with av diff first")
            }
            guard !args.has("--model") else {
                throw UsageError(message: "give --model PATH, or --base PATH with vectors, not both")
            }
            let plan = try MergeArguments.parse(args, needOutput: false, seedFlag: "--drop-seed")
            return ModelArguments(source: .mix(plan, mode), threads: threads)
        }
        guard let path = args.value("--model") ?? args.value("--base") else {
            throw UsageError(message: "missing --model PATH")
        }
        let adapter = try args.value("--adapter").map { dir throws -> LoRAAdapter in
            guard isAdapterDirectory(dir) else {
                throw UsageError(message: "--adapter \(dir): not a PEFT adapter directory (no adapter_config.json)")
            }
            return try LoRAAdapter(path: dir)
        }
        return ModelArguments(source: .model(path: path, adapter: adapter), threads: threads)
    }

    /// Loads the model (a `.gguf` converted first) or computes the mix, on `threads` threads.
    func load() throws -> LanguageModel {
        let model: LanguageModel
        switch source {
        case .mix(let plan, let mode):
            model = try LanguageModel(
                directory: plan.base.path, mixing: plan.terms, method: plan.options.method, mix: mode,
                force: plan.options.force || plan.options.transfer, threads: plan.options.threads)
        case .model(let path, let adapter):
            model = try LanguageModel(directory: try GGUFInput.resolve(path), adapter: adapter, threads: threads)
        }
        model.model.threads = threads
        return model
    }
}

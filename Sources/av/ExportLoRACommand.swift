import AlignmentVectors
import Evaluation
import GGUF
import Inference
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#endif

enum ExportLoRACommand {
    static let spec = CommandSpec(
        name: "export-lora",
        summary: "write an alignment vector as a PEFT LoRA adapter (truncated SVD per matrix)",
        positionals: [("NAME.av", "the alignment vector to export")],
        options: [
            OptionSpec(
                names: ["-o", "--output"], valueName: "OUT",
                help: "the adapter directory to write, or a llama.cpp adapter OUT.gguf (needs --base) (required)"),
            OptionSpec(names: ["--rank"], valueName: "R", help: "the same rank R for every matrix"),
            OptionSpec(
                names: ["--energy"], valueName: "E",
                help: "per matrix, the smallest rank keeping share E of ‖Δ‖² (default 0.9; not with --rank)"),
            OptionSpec(names: ["--max-rank"], valueName: "N", help: "no matrix above rank N (default 256)"),
            OptionSpec(
                names: ["--base"], valueName: "PATH",
                help: "the AV's base: embeddings and 1-D tensors are saved whole (modules_to_save)"),
            OptionSpec(names: ["--skip"], help: "leave embeddings and 1-D tensors out instead"),
            OptionSpec(names: ["--force"], help: "use a --base other than the one the vector records"),
            OptionSpec(
                names: ["--prompts"], valueName: "FILE",
                help: "with --base: KL of the exact mix (base + AV) to the mix with the adapter, over these prompts"),
            OptionSpec(names: ["--seed"], valueName: "S", help: "seed of the randomized SVD (default fixed)"),
            OptionSpec(names: ["--threads"], valueName: "N", help: "threads to use (default: all cores)"),
            OptionSpec(names: ["--json"], help: "print the per-tensor report as JSON"),
            OptionSpec(names: ["--help", "-h"], help: "show this help"),
        ],
        discussion: """
            Each 2-D weight becomes lora_A = √S·Vᵀ and lora_B = U·√S of its truncated SVD (randomized subspace
            iteration in f64, seeded: the same adapter for the same input on any thread count), with r = lora_alpha
            per module in rank_pattern/alpha_pattern, so PEFT's scale is 1. PEFT loads the adapter, and av reads it
            back as an aligned model (av diff BASE DIR gives the low-rank AV).

            With -o NAME.gguf the same adapter is written for llama.cpp (as convert_lora_to_gguf.py writes it:
            lora_a/lora_b per module, Q/K rows in llama.cpp's order); embeddings and 1-D tensors cannot be part of
            a llama.cpp adapter and are skipped. Serve one base with one adapter per domain and choose each
            domain's λ per request: llama-server -m base.gguf --lora medical.gguf --lora legal.gguf
            --lora-init-without-apply, then POST /completion with "lora": [{"id": 0, "scale": 0.5}, ...].
            """)

    /// `av export-lora`'s words: the vector, the output, the factorization's settings, the base
    /// (opened; a `.gguf` converted) and the prompts to measure the adapter on.
    struct Arguments {
        var input: String
        /// The vector to factor.
        var vector: AlignmentVector
        var output: String
        var options: LoRAExportOptions
        var basePath: String?
        var prompts: [String]?
        var json: Bool

        /// Reads and checks every word; opens the base and reads the prompts.
        static func parse(_ args: ParsedArguments) throws -> Arguments {
            guard args.positionals.count == 1 else { throw UsageError(message: "expected one NAME.av") }
            guard let output = args.value("-o") else { throw UsageError(message: "missing -o DIR") }
            var options = LoRAExportOptions()
            func number(_ key: String) throws -> Double? {
                guard let text = args.value(key) else { return nil }
                guard let v = Double(text), v.isFinite else {
                    throw UsageError(message: "\(key) needs a number, not '\(text)'")
                }
                return v
            }
            if let r = try number("--rank") {
                guard r >= 1, r == r.rounded(), !args.has("--energy") else {
                    throw UsageError(message: "--rank is a whole number ≥ 1, and goes without --energy")
                }
                options.rank = Int(r)
            }
            if let e = try number("--energy") {
                guard e > 0, e <= 1 else { throw UsageError(message: "--energy is a share in (0, 1]") }
                options.energy = e
            }
            if let m = try number("--max-rank") {
                guard m >= 1, m == m.rounded() else { throw UsageError(message: "--max-rank is a whole number ≥ 1") }
                options.maxRank = Int(m)
            }
            if let s = args.value("--seed") {
                guard let seed = UInt64(s) else { throw UsageError(message: "--seed needs a whole number, not '\(s)'") }
                options.seed = seed
            }
            options.skip = args.has("--skip")
            options.force = args.has("--force")
            options.threads = try args.threads()
            let vector = try AlignmentVector(path: args.positionals[0])
            let basePath = try args.value("--base").map { try resolveBase($0, for: [vector]) }
            if let basePath { options.base = try Checkpoint(path: basePath) }
            let prompts = try args.value("--prompts").map { file throws -> [String] in
                guard basePath != nil else {
                    throw UsageError(message: "--prompts needs --base (the model to mix into)")
                }
                let lines = try TextInput.lines(file).map(\.text)
                guard !lines.isEmpty else {
                    throw InferenceError.input(file: file, message: "no prompts: the file holds no lines")
                }
                return lines
            }
            return Arguments(
                input: args.positionals[0], vector: vector, output: output, options: options, basePath: basePath,
                prompts: prompts,
                json: args.has("--json"))
        }
    }

    /// Parse → factor the vector into an adapter (`exportLoRA`) → measure it → print.
    static func run(_ args: ParsedArguments) throws -> ExitCode {
        let a = try Arguments.parse(args)
        let output = a.output
        var options = a.options
        let basePath = a.basePath
        let prompts = a.prompts
        let vector = a.vector
        // A .gguf adapter: the PEFT adapter in a staging directory beside it, then written for llama.cpp.
        var target = output
        if output.hasSuffix(".gguf") {
            guard basePath != nil else {
                throw UsageError(
                    message: "a .gguf adapter needs --base: its config.json gives llama.cpp's architecture and heads")
            }
            options.skip = true
            try OutputGuard.checkFile(output, inputs: [vector.path, basePath!])
            target = Path.join(
                Path.parent(output).isEmpty ? "." : Path.parent(output),
                ".\(Path.lastComponent(output)).peft-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            TemporaryFiles.register(target, directory: true)
        }
        defer {
            if target != output {
                try? FileManager.default.removeItem(atPath: target)
                TemporaryFiles.unregister(target)
            }
        }
        var r = try exportLoRA(vector: vector, output: target, options: options)
        var kl: KLResult?
        if let prompts, let basePath {
            let exact = try LanguageModel(
                directory: basePath, mixing: [MergeTerm(vector: vector, coefficient: 1)], force: options.force,
                threads: options.threads)
            let approximate = try LanguageModel(
                directory: basePath, adapter: try LoRAAdapter(path: target), threads: options.threads)
            exact.model.threads = options.threads
            approximate.model.threads = options.threads
            kl = try approximate.klDivergence(from: exact, prompts: prompts)
        }
        var gguf: GGUFAdapterExport.Summary?
        if target != output, let basePath {
            gguf = try GGUFAdapterExport.write(
                adapter: target, baseDirectory: basePath, to: output,
                name: String(Path.lastComponent(output).dropLast(".gguf".count)))
            r.output = output
            r.adapterBytes = gguf?.bytes ?? r.adapterBytes
        }
        print(a.json ? json(r, kl: kl).rendered(pretty: true) : text(r, input: a.input, gguf: gguf, kl: kl))
        return .success
    }
}

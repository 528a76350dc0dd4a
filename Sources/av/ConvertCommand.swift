import GGUF
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

enum ConvertCommand {
    static let spec = CommandSpec(
        name: "convert",
        summary: "turn a GGUF model into a Hugging Face model directory, or a model directory into GGUF",
        positionals: [
            (
                "MODEL",
                "a llama or qwen2 GGUF file (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K),"
                    + " or a Hugging Face model directory (Llama, Mistral, SmolLM, Qwen2) with -o OUT.gguf"
            )
        ],
        options: [
            OptionSpec(
                names: ["-o", "--output"], valueName: "OUT",
                help: "the model directory to write, or a .gguf file for a directory (required)"),
            OptionSpec(
                names: ["--dtype"], valueName: "DTYPE",
                help: "weights as f32 (default), bf16 or f16; to GGUF also q8_0 or q4_0; norms stay f32"),
            OptionSpec(names: ["--help", "-h"], help: "show this help"),
        ],
        discussion: """
            Writes safetensors with Hugging Face names and layout (llama.cpp's Q/K permutation undone), config.json,
            tokenizer.json and tokenizer_config.json (with the chat template) from the GGUF metadata. Quantized
            weights are dequantized exactly as ggml does. Tokenizers: byte-level BPE (gpt2) and SentencePiece
            (llama: Llama 2, Mistral), rebuilt as a tokenizer.json that encodes as the model's own.

            A model directory written to a .gguf gets llama.cpp's names, Q/K layout, hyper-parameters, tokenizer
            (byte-level BPE) and chat template, as llama.cpp's convert_hf_to_gguf.py writes them; q8_0 and q4_0
            quantize exactly as ggml's reference quantizers (llama-quantize) do.

            A .gguf given to any other command (generate, eval, merge, diff, ...) is converted on the fly to bf16
            (AV_GGUF_DTYPE=f32 or f16 to choose), into memory (/dev/shm) when it fits, else into $TMPDIR with a
            note on stderr saying where and how large; it is removed when av exits, also on SIGINT/SIGTERM.
            """)

    /// `av convert`'s words: the input, the output, and which way with which type.
    struct Arguments {
        /// What the conversion writes.
        enum Target {
            /// A Hugging Face directory from a `.gguf`, its floats in this dtype.
            case directory(DType)
            /// A `.gguf` from a model directory, its matrices in this type.
            case gguf(GGMLType)
        }

        var input: String
        var output: String
        var target: Target

        /// Reads and checks every word: a directory converts to a `.gguf`, a `.gguf` to a directory.
        static func parse(_ args: ParsedArguments) throws -> Arguments {
            guard args.positionals.count == 1 else { throw UsageError(message: "expected one MODEL") }
            guard let output = args.value("-o") else { throw UsageError(message: "missing -o OUT") }
            let input = args.positionals[0]
            if Path.isDirectory(input) == true {
                guard output.hasSuffix(".gguf") else {
                    throw UsageError(message: "a model directory converts to a .gguf file: -o must end in .gguf")
                }
                let spelling = args.value("--dtype") ?? "f32"
                guard let type = GGUFExport.outputTypes[spelling.lowercased()] else {
                    throw UsageError(message: "--dtype must be f32, f16, bf16, q8_0 or q4_0, not '\(spelling)'")
                }
                return Arguments(input: input, output: output, target: .gguf(type))
            }
            var dtype = DType.f32
            if let text = args.value("--dtype") {
                guard let d = DType(userSpelling: text), [.f32, .bf16, .f16].contains(d) else {
                    throw UsageError(message: "--dtype must be f32, bf16 or f16, not '\(text)'")
                }
                dtype = d
            }
            return Arguments(input: input, output: output, target: .directory(dtype))
        }
    }

    /// Parse → convert → print what was written.
    static func run(_ args: ParsedArguments) throws -> ExitCode {
        let a = try Arguments.parse(args)
        let start = Date()
        func seconds() -> String { String(cFormat: "%.2f", Date().timeIntervalSince(start)) }
        var lines = ["av convert: \(a.input) → \(a.output)"]
        switch a.target {
        case .gguf(let type):
            let summary = try GGUFExport.write(directory: a.input, to: a.output, type: type)
            let types = summary.typeCounts.map { "\($0.value) \($0.key.name)" }.sorted().joined(separator: ", ")
            lines.append(
                "  model     \(summary.architecture), \(summary.typeCounts.values.reduce(0, +)) tensors (\(types))")
            lines.append("  wrote     \(Format.bytes(summary.bytes)) in \(seconds()) s")
        case .directory(let dtype):
            let file = try GGUFFile(path: a.input)
            try GGUFConverter.convert(file, to: a.output, dtype: dtype)
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: a.output)) ?? []).sorted()
            let quant = Dictionary(grouping: file.tensors, by: \.type).map { "\($0.value.count) \($0.key.name)" }
                .sorted().joined(separator: ", ")
            let name = file.metadata["general.name"]?.stringValue ?? "?"
            let architecture = file.metadata["general.architecture"]?.stringValue ?? "?"
            lines.append("  model     \(name) (\(architecture), GGUF v\(file.version))")
            lines.append("  tensors   \(file.tensors.count) (\(quant)) → \(dtype.rawValue)")
            lines.append("  wrote     \(names.joined(separator: ", ")) in \(seconds()) s")
        }
        print(lines.joined(separator: "\n"))
        return .success
    }
}

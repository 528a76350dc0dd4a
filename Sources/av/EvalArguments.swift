import Evaluation
import GGUF
import Inference

/// `av eval`'s words, read and checked: what to measure, from which files, and how to print it.
/// The models are loaded by `measurements()`, after every word has been checked.
struct EvalArguments {
    /// The model as named (`--model`, or the base of a mix).
    var model: String
    var textFile: String?
    /// How `--text` is scored: rolling windows (`--window`, `--stride`) or llama.cpp's chunks (`--chunks`).
    var scoring: TextScoring
    var pairsFile: String?
    var reference: String?
    var levels: LevelsFile?
    var score: LevelScore
    var prefix: PromptPrefix?
    var klTo: String?
    var promptsFile: String?
    var compare: String?
    var json: Bool
    var quiet: Bool

    /// Reads and checks every word; the levels file is read (its errors come before any model loads).
    static func parse(_ args: ParsedArguments) throws -> EvalArguments {
        guard args.has("--text") || args.has("--pairs") || args.has("--kl-to") || args.has("--levels") else {
            throw UsageError(
                message: "nothing to measure: give --text FILE, --pairs FILE.jsonl, --levels FILE.jsonl or --kl-to"
                    + " MODEL --prompts FILE")
        }
        if args.has("--compare") && !(args.has("--text") || args.has("--pairs") || args.has("--levels")) {
            throw UsageError(message: "--compare goes with --text, --pairs or --levels (the measurements it compares)")
        }
        let levels = try args.value("--levels").map { try LevelsFile.load($0) }
        let score = try args.levelScore()
        let prefix = try args.promptPrefix()
        if args.has("--kl-to") != args.has("--prompts") {
            throw UsageError(message: "--kl-to and --prompts go together")
        }
        func count(_ key: String) throws -> Int? {
            try args.value(key).map { text in
                guard let n = Int(text), n >= 1 else { throw UsageError(message: "\(key) needs a whole number ≥ 1") }
                return n
            }
        }
        let window = try count("--window")
        let stride = try count("--stride")
        let chunks = try count("--chunks")
        if (window != nil || stride != nil || chunks != nil) && !args.has("--text") {
            throw UsageError(message: "--window, --stride and --chunks go with --text")
        }
        if chunks != nil && (window != nil || stride != nil) {
            throw UsageError(message: "--chunks is llama.cpp's scoring, --window and --stride av's: give one")
        }
        if let window, let stride, stride > window {
            throw UsageError(
                message: "--stride \(stride) is more than --window \(window): a window scores at most its length")
        }
        return EvalArguments(
            model: args.value("--model") ?? args.value("--base") ?? "", textFile: args.value("--text"),
            scoring: chunks.map { .chunks($0) } ?? .rolling(window: window, stride: stride),
            pairsFile: args.value("--pairs"), reference: args.value("--ref"),
            levels: levels, score: score, prefix: prefix, klTo: args.value("--kl-to"),
            promptsFile: args.value("--prompts"), compare: args.value("--compare"), json: args.has("--json"),
            quiet: args.has("--quiet"))
    }

    /// The measurements these words ask for on `lm`, with their inputs read and their models
    /// loaded; a `--system` prompt rendered by `lm`'s chat template.
    func measurements(for lm: LanguageModel) throws -> Measurements {
        var m = Measurements()
        if let file = textFile { m.text = (try TextInput.read(file), scoring) }
        if let file = pairsFile {
            m.pairs = try PreferencePair.load(file)
            m.reference = try reference.map { try LanguageModel(directory: try GGUFInput.resolve($0)) }
        }
        if let levels { m.levels = (levels, score, prefix?.text(for: lm.chatTemplate) ?? "") }
        if let other = klTo, let file = promptsFile {
            let prompts = try TextInput.lines(file).map(\.text)
            guard !prompts.isEmpty else {
                throw InferenceError.input(file: file, message: "no prompts: the file holds no lines")
            }
            m.kl = (try LanguageModel(directory: try GGUFInput.resolve(other)), prompts)
        }
        m.compare = try compare.map { try LanguageModel(directory: try GGUFInput.resolve($0)) }
        return m
    }
}

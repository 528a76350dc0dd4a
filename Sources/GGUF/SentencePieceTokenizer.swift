import SafeTensors

/// tokenizer.json for a SentencePiece GGUF tokenizer (`tokenizer.ggml.model = "llama"`: Llama 2,
/// Mistral and their fine-tunes): a BPE with byte fallback over the GGUF's tokens, with the merges
/// Hugging Face derives from a SentencePiece model's scores (transformers' `SentencePieceExtractor`),
/// so it encodes as the model's own Hugging Face tokenizer and as llama.cpp's SentencePiece
/// tokenizer do.
enum SentencePieceTokenizer {
    /// GGUF token types (llama.cpp's `llama_token_type`).
    enum TokenType: Int {
        case normal = 1, unknown, control, userDefined, unused, byte
    }

    /// The merges of a SentencePiece BPE vocabulary: for every piece, each split into two pieces of
    /// the vocabulary (ordered by their ids), all ordered by the piece's score, then by the lengths
    /// of the left and right parts (longest first), earlier pieces first among equals.
    static func merges(tokens: [String], scores: [Float]) -> [(String, String)] {
        var ids: [String: Int] = [:]
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = i }
        struct Merge {
            var left: String
            var right: String
            var score: Float
            var leftLength: Int
            var rightLength: Int
            var order: Int
        }
        // A cut is looked up only where both parts have the length of some token.
        let lengths = Set(tokens.map(\.unicodeScalars.count))
        var all: [Merge] = []
        for (i, piece) in tokens.enumerated() where ids[piece] == i {
            let scalars = Array(piece.unicodeScalars)
            guard scalars.count > 1 else { continue }
            var local: [(Int, Int, String, String, Int)] = []
            for cut in 1..<scalars.count where lengths.contains(cut) && lengths.contains(scalars.count - cut) {
                var left = ""
                left.unicodeScalars.append(contentsOf: scalars[..<cut])
                var right = ""
                right.unicodeScalars.append(contentsOf: scalars[cut...])
                if let l = ids[left], let r = ids[right] { local.append((l, r, left, right, cut)) }
            }
            local.sort { ($0.0, $0.1) < ($1.0, $1.1) }
            for m in local {
                all.append(
                    Merge(
                        left: m.2, right: m.3, score: i < scores.count ? scores[i] : 0, leftLength: m.4,
                        rightLength: scalars.count - m.4, order: all.count))
            }
        }
        all.sort {
            if $0.score != $1.score { return $0.score > $1.score }
            if $0.leftLength != $1.leftLength { return $0.leftLength > $1.leftLength }
            if $0.rightLength != $1.rightLength { return $0.rightLength > $1.rightLength }
            return $0.order < $1.order
        }
        return all.map { ($0.left, $0.right) }
    }

    /// The tokenizer.json of the GGUF's SentencePiece vocabulary.
    static func json(_ g: GGUFFile, tokens: [String], types: [Int]) throws(GGUFError) -> JSONValue {
        let scores = (g.metadata["tokenizer.ggml.scores"]?.arrayValue ?? []).map { Float($0.doubleValue ?? 0) }
        guard scores.count == tokens.count else {
            throw GGUFError(
                file: g.path,
                message: "tokenizer.ggml.scores has \(scores.count) entries for \(tokens.count) tokens")
        }
        let spacePrefix = g.metadata["tokenizer.ggml.add_space_prefix"]?.boolValue ?? true
        func id(_ key: String) -> Int? {
            g.metadata["tokenizer.ggml.\(key)"]?.intValue.flatMap { $0 >= 0 && $0 < tokens.count ? $0 : nil }
        }
        var added: [JSONValue] = []
        for (i, t) in tokens.enumerated() {
            let type = i < types.count ? TokenType(rawValue: types[i]) : nil
            guard type == .unknown || type == .control || type == .userDefined else { continue }
            added.append(
                .object([
                    ("id", .int(i)), ("content", .string(t)), ("single_word", .bool(false)), ("lstrip", .bool(false)),
                    ("rstrip", .bool(false)), ("normalized", .bool(false)), ("special", .bool(type != .userDefined)),
                ]))
        }
        // BOS/EOS as the GGUF asks (`add_bos_token`, default true for SentencePiece, as llama.cpp has it).
        var single: [JSONValue] = []
        var special: [(String, JSONValue)] = []
        func token(_ key: String, _ flag: String, default on: Bool) {
            guard g.metadata["tokenizer.ggml.\(flag)"]?.boolValue ?? on, let i = id(key) else { return }
            single.append(.object([("SpecialToken", .object([("id", .string(tokens[i])), ("type_id", .int(0))]))]))
            special.append(
                (
                    tokens[i],
                    .object([
                        ("id", .string(tokens[i])), ("ids", .array([.int(i)])),
                        ("tokens", .array([.string(tokens[i])])),
                    ])
                ))
        }
        token("bos_token_id", "add_bos_token", default: true)
        single.append(.object([("Sequence", .object([("id", .string("A")), ("type_id", .int(0))]))]))
        token("eos_token_id", "add_eos_token", default: false)
        var decoders: [JSONValue] = [
            .object([
                ("type", .string("Replace")), ("pattern", .object([("String", .string("▁"))])),
                ("content", .string(" ")),
            ]),
            .object([("type", .string("ByteFallback"))]), .object([("type", .string("Fuse"))]),
        ]
        if spacePrefix {
            decoders.append(
                .object([("type", .string("Strip")), ("content", .string(" ")), ("start", .int(1)), ("stop", .int(0))]))
        }
        let unknown = id("unknown_token_id").map { JSONValue.string(tokens[$0]) } ?? .null
        return .object([
            ("version", .string("1.0")), ("truncation", .null), ("padding", .null), ("added_tokens", .array(added)),
            ("normalizer", .null),
            (
                "pre_tokenizer",
                .object([
                    ("type", .string("Metaspace")), ("replacement", .string("▁")),
                    ("prepend_scheme", .string(spacePrefix ? "first" : "never")), ("split", .bool(false)),
                ])
            ),
            (
                "post_processor",
                .object([
                    ("type", .string("TemplateProcessing")), ("single", .array(single)), ("pair", .array(single)),
                    ("special_tokens", .object(special)),
                ])
            ),
            ("decoder", .object([("type", .string("Sequence")), ("decoders", .array(decoders))])),
            (
                "model",
                .object([
                    ("type", .string("BPE")), ("dropout", .null), ("unk_token", unknown),
                    ("continuing_subword_prefix", .null), ("end_of_word_suffix", .null), ("fuse_unk", .bool(true)),
                    ("byte_fallback", .bool(true)), ("ignore_merges", .bool(false)),
                    ("vocab", .object(tokens.enumerated().map { ($1, .int($0)) })),
                    (
                        "merges",
                        .array(merges(tokens: tokens, scores: scores).map { .array([.string($0.0), .string($0.1)]) })
                    ),
                ])
            ),
        ])
    }
}

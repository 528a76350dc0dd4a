import SafeTensors

extension GGUFTokenizerMetadata {
    /// The metadata of a SentencePiece-derived tokenizer (a `tokenizer.json` BPE with byte fallback: Llama 2,
    /// Mistral) as llama.cpp's `llama` vocabulary: tokens by id, scores and token types, no merges.
    ///
    /// llama.cpp's SentencePiece tokenizer merges, at each step, the adjacent pair whose joined piece has
    /// the highest score. A `tokenizer.json` carries merges, not scores, so each piece gets the score
    /// `-(rank of the first merge that makes it)`: higher for earlier merges, the priority Hugging Face's
    /// BPE gives them. (llama.cpp's converter, without a `tokenizer.model`, writes −1000 for every piece,
    /// which leaves llama.cpp no priority at all.) Pieces no merge makes (single characters) score below
    /// every merge; byte pieces `<0xNN>`, the unknown token and control tokens score 0, as in a
    /// SentencePiece model. `add_space_prefix` is written (false) only when the Metaspace pre-tokenizer
    /// never prepends `▁`: llama.cpp prepends it by default.
    static func sentencePieceEntries(
        byID: [Int: String], added: [Int: (special: Bool, normalized: Bool)], size: Int, model: JSONValue,
        tokenizer: JSONValue, tokenizerConfig: JSONValue?, config: JSONValue,
        addedContent: [(content: String, id: Int)],
        directory: String, file: String
    ) throws(GGUFError) -> [(key: String, value: GGUFValue)] {
        var ids: [String: Int] = [:]
        for (id, token) in byID where ids[token].map({ id < $0 }) ?? true { ids[token] = id }
        var firstMerge: [Int: Int] = [:]
        let merges = model["merges"]?.arrayValue ?? []
        for (rank, m) in merges.enumerated() {
            let joined: String
            if let text = m.stringValue, let space = text.firstIndex(of: " ") {
                joined = String(text[..<space]) + String(text[text.index(after: space)...])
            } else if let pair = m.arrayValue, pair.count == 2, let a = pair[0].stringValue, let b = pair[1].stringValue
            {
                joined = a + b
            } else {
                throw GGUFError(file: file, message: "model.merges holds neither \"a b\" strings nor [a, b] pairs")
            }
            if let id = ids[joined], firstMerge[id] == nil { firstMerge[id] = rank }
        }
        let unknown = model["unk_token"]?.stringValue
        var tokens: [GGUFValue] = []
        var scores: [GGUFValue] = []
        var types: [GGUFValue] = []
        for i in 0..<size {
            guard let token = byID[i] else {
                tokens.append(.string("[PAD\(i)]"))
                scores.append(.float32(-1000))
                types.append(.int32(5))
                continue
            }
            tokens.append(.string(token))
            let isByte =
                token.utf8.count == 6 && token.hasPrefix("<0x") && token.hasSuffix(">")
                && UInt8(token.dropFirst(3).dropLast(), radix: 16) != nil
            if token == unknown {
                types.append(.int32(2))
                scores.append(.float32(0))
            } else if isByte {
                types.append(.int32(6))
                scores.append(.float32(0))
            } else if let a = added[i] {
                types.append(.int32(a.special ? 3 : 4))
                scores.append(.float32(a.special ? 0 : -1000))
            } else if let rank = firstMerge[i] {
                types.append(.int32(1))
                scores.append(.float32(-Float(rank)))
            } else {
                types.append(.int32(1))
                scores.append(.float32(-Float(merges.count + i)))
            }
        }
        var out: [(key: String, value: GGUFValue)] = []
        let pre = tokenizer["pre_tokenizer"]
        let prepend =
            pre?["prepend_scheme"]?.stringValue ?? (pre?["add_prefix_space"] == .bool(false) ? "never" : "first")
        if prepend == "never" || tokenizerConfig?["add_prefix_space"] == .bool(false) {
            out.append(("tokenizer.ggml.add_space_prefix", .bool(false)))
        }
        out += [
            ("tokenizer.ggml.model", .string("llama")), ("tokenizer.ggml.pre", .string("default")),
            ("tokenizer.ggml.tokens", .array(tokens)), ("tokenizer.ggml.scores", .array(scores)),
            ("tokenizer.ggml.token_type", .array(types)),
        ]
        out += try specialEntries(
            tokenizer: tokenizer, tokenizerConfig: tokenizerConfig, config: config, added: addedContent,
            directory: directory, file: file)
        return out
    }
}

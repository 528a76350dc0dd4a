import SafeTensors

/// The metadata a conversion turns into sizes, divisors and indices, checked before any of it is
/// used: a value from an untrusted file never becomes a crash (a division by zero, an index out of
/// range) or a silently wrong model. Each error names the file and the key.
extension GGUFConverter {
    /// The longest token (in Unicode scalars) whose SentencePiece merges are derived: every cut of a
    /// token is looked up, so the work grows with the square of its length. Real vocabularies stay
    /// far below (Llama 2's longest piece has 16 scalars).
    static let longestMergedToken = 1024

    /// Checks the architecture's dimensions and the tokenizer's lists and ids.
    /// - Throws: `GGUFError` naming the file, the key and the rule.
    static func validate(_ g: GGUFFile, arch: String) throws(GGUFError) {
        func fail(_ m: String) -> GGUFError { GGUFError(file: g.path, message: m) }
        func positive(_ key: String, required: Bool) throws(GGUFError) -> Int? {
            guard let value = g.metadata[key] else {
                if required { throw fail("metadata \(key) is missing") }
                return nil
            }
            guard let v = value.intValue, v >= 1, v <= 1 << 31 else {
                throw fail("metadata \(key) must be a whole number from 1 to 2^31, not \(describe(value))")
            }
            return v
        }
        let heads = try positive("\(arch).attention.head_count", required: true)!
        let kvHeads = try positive("\(arch).attention.head_count_kv", required: false) ?? heads
        guard heads % kvHeads == 0 else {
            throw fail("metadata \(arch).attention.head_count \(heads) is not a multiple of head_count_kv \(kvHeads)")
        }
        let hidden = try positive("\(arch).embedding_length", required: true)!
        for key in ["block_count", "feed_forward_length", "context_length", "vocab_size", "attention.sliding_window"] {
            _ = try positive("\(arch).\(key)", required: key == "block_count")
        }
        let headDim = try positive("\(arch).rope.dimension_count", required: false) ?? hidden / heads
        guard hidden % heads == 0 || g.metadata["\(arch).rope.dimension_count"] != nil else {
            throw fail("metadata \(arch).embedding_length \(hidden) is not a multiple of head_count \(heads)")
        }
        // Rotary embeddings pair the halves of each head.
        guard headDim >= 2, headDim % 2 == 0 else {
            throw fail(
                "the head size is \(headDim) (\(arch).rope.dimension_count or embedding_length / head_count);"
                    + " rotary embeddings need an even size of at least 2")
        }
        for t in g.tensors where t.name.hasSuffix("attn_q.weight") || t.name.hasSuffix("attn_k.weight") {
            let count = t.name.hasSuffix("attn_q.weight") ? heads : kvHeads
            guard t.shape.count == 2, t.shape[0] % count == 0, (t.shape[0] / count) % 2 == 0 else {
                throw fail(
                    "tensor \(JSONWriter.quoted(t.name)) has shape \(t.shape): its rows are not \(count) heads of an"
                        + " even size")
            }
        }
        guard let tokens = g.metadata["tokenizer.ggml.tokens"] else { return }
        guard let list = tokens.arrayValue else { throw fail("metadata tokenizer.ggml.tokens must be an array") }
        for (i, t) in list.enumerated() {
            guard let text = t.stringValue else {
                throw fail("metadata tokenizer.ggml.tokens[\(i)] is \(describe(t)), not a string")
            }
            if g.metadata["tokenizer.ggml.model"]?.stringValue == "llama",
                text.unicodeScalars.count > longestMergedToken
            {
                throw fail(
                    "metadata tokenizer.ggml.tokens[\(i)] is \(text.unicodeScalars.count) characters long; av derives"
                        + " SentencePiece merges for tokens of up to \(longestMergedToken)")
            }
        }
        for key in ["tokenizer.ggml.merges", "tokenizer.ggml.token_type", "tokenizer.ggml.scores"] {
            guard let value = g.metadata[key] else { continue }
            guard let items = value.arrayValue else { throw fail("metadata \(key) must be an array") }
            for (i, item) in items.enumerated() {
                let ok =
                    key.hasSuffix("merges")
                    ? item.stringValue != nil
                    : key.hasSuffix("token_type") ? item.intValue != nil : item.doubleValue != nil
                guard ok else {
                    let want =
                        key.hasSuffix("merges") ? "a string" : key.hasSuffix("token_type") ? "an integer" : "a number"
                    throw fail("metadata \(key)[\(i)] is \(describe(item)), not \(want)")
                }
            }
        }
        for name in ["bos", "eos", "unknown", "padding", "seperator", "cls", "mask"] {
            let key = "tokenizer.ggml.\(name)_token_id"
            guard let value = g.metadata[key] else { continue }
            guard let id = value.intValue, id >= 0, id < list.count else {
                throw fail("metadata \(key) is \(describe(value)); token ids are 0 to \(list.count - 1)")
            }
        }
    }

    /// A metadata value as an error names it: "-1", "a string", "an array of 3".
    static func describe(_ v: GGUFValue) -> String {
        switch v {
        case .string: "a string"
        case .array(let a): "an array of \(a.count)"
        case .bool(let b): "\(b)"
        case .float32(let f): "\(f)"
        case .float64(let d): "\(d)"
        default: v.intValue.map { "\($0)" } ?? "\(v)"
        }
    }
}

import SafeTensors
import Tensors

/// The `tokenizer.*` metadata of a GGUF model, from a Hugging Face directory's `tokenizer.json`,
/// `tokenizer_config.json`, `config.json` and `chat_template.jinja`, as llama.cpp's
/// `convert_hf_to_gguf.py` (`_set_vocab_gpt2`, `get_vocab_base`) and gguf-py's `SpecialVocab` derive it.
///
/// Byte-level BPE tokenizers become `gpt2` vocabularies; SentencePiece-derived ones (a BPE with byte
/// fallback: Llama 2, Mistral) `llama` vocabularies (see `sentencePieceEntries`).
/// The pre-tokenizer's llama.cpp name is read from the structure of `pre_tokenizer`
/// (llama.cpp recognizes it by hashing a tokenization of a test text): `gpt-2` for a plain ByteLevel,
/// `smollm` for Digits + ByteLevel, `llama-bpe` and `qwen2` for their split patterns.
enum GGUFTokenizerMetadata {
    static let specialTypes = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]
    static let idKeys = [
        "bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "sep": "seperator_token_id",
        "pad": "padding_token_id", "cls": "cls_token_id", "mask": "mask_token_id", "eot": "eot_token_id",
        "eom": "eom_token_id",
    ]

    /// The metadata entries, in the order the converter writes them.
    /// - Parameter vocabSize: `config.json`'s `vocab_size`: ids without a token become `[PADn]`, unused.
    static func entries(
        directory: String, config: JSONValue, vocabSize: Int, architecture: String
    ) throws(GGUFError) -> [(key: String, value: GGUFValue)] {
        let path = Path.join(directory, "tokenizer.json")
        let tokenizer = try readJSON(path)
        let tokenizerConfig = try readJSONIfPresent(Path.join(directory, "tokenizer_config.json"))
        func fail(_ m: String) -> GGUFError { GGUFError(file: path, message: m) }
        guard let model = tokenizer["model"], model["type"]?.stringValue == "BPE" else {
            throw fail("model.type must be BPE: av writes BPE tokenizers (byte-level or with byte fallback) to GGUF")
        }
        let sentencePiece = model["byte_fallback"] == .bool(true)
        let pre = sentencePiece ? "default" : try preName(tokenizer["pre_tokenizer"], file: path)
        // The vocabulary: the model's and the added tokens', by id.
        var byID: [Int: String] = [:]
        guard case .object(let vocab)? = model["vocab"] else { throw fail("model.vocab must be an object") }
        for (token, id) in vocab {
            guard let i = intValue(id), i >= 0 else { throw fail("model.vocab[\(JSONWriter.quoted(token))] is no id") }
            byID[i] = token
        }
        var added: [Int: (special: Bool, normalized: Bool)] = [:]
        var addedContent: [(content: String, id: Int)] = []
        for a in tokenizer["added_tokens"]?.arrayValue ?? [] {
            guard let id = a["id"].flatMap(intValue), id >= 0, let content = a["content"]?.stringValue else {
                throw fail("an added token needs an id and a content")
            }
            byID[id] = content
            added[id] = (a["special"] == .bool(true), a["normalized"] == .bool(true))
            addedContent.append((content, id))
        }
        let size = max(vocabSize, (byID.keys.max() ?? -1) + 1)
        guard byID.keys.max().map({ $0 < vocabSize }) ?? true else {
            throw fail("token id \(byID.keys.max()!) is not below config.json's vocab_size \(vocabSize)")
        }
        var tokens: [GGUFValue] = []
        var types: [GGUFValue] = []
        tokens.reserveCapacity(size)
        if sentencePiece {
            return try sentencePieceEntries(
                byID: byID, added: added, size: size, model: model, tokenizer: tokenizer,
                tokenizerConfig: tokenizerConfig, config: config, addedContent: addedContent, directory: directory,
                file: path)
        }
        for i in 0..<size {
            guard let token = byID[i] else {
                tokens.append(.string("[PAD\(i)]"))
                types.append(.int32(5))
                continue
            }
            if let a = added[i] {
                if a.special || looksSpecial(token) {
                    tokens.append(.string(token))
                    types.append(.int32(3))
                } else {
                    // User-defined tokens are stored pre-normalized: SentencePiece's ▁ as a space.
                    tokens.append(.string(token.replacing("\u{2581}", with: " ")))
                    types.append(.int32(4))
                }
            } else {
                tokens.append(.string(token))
                types.append(.int32(1))
            }
        }
        var merges: [GGUFValue] = []
        for m in model["merges"]?.arrayValue ?? [] {
            if let s = m.stringValue {
                merges.append(.string(s))
            } else if let pair = m.arrayValue, pair.count == 2, let a = pair[0].stringValue, let b = pair[1].stringValue
            {
                // A space inside a part is written as U+0120, as gguf-py does for the list form.
                func encoded(_ s: String) -> String { s.replacing(" ", with: "\u{0120}") }
                merges.append(.string(encoded(a) + " " + encoded(b)))
            } else {
                throw fail("model.merges holds neither \"a b\" strings nor [a, b] pairs")
            }
        }
        var out: [(key: String, value: GGUFValue)] = []
        if architecture == "llama", case .bool(let prefix)? = tokenizerConfig?["add_prefix_space"] {
            out.append(("tokenizer.ggml.add_space_prefix", .bool(prefix)))
        }
        out += [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string(pre)),
            ("tokenizer.ggml.tokens", .array(tokens)), ("tokenizer.ggml.token_type", .array(types)),
        ]
        if !merges.isEmpty { out.append(("tokenizer.ggml.merges", .array(merges))) }
        out += try specialEntries(
            tokenizer: tokenizer, tokenizerConfig: tokenizerConfig, config: config, added: addedContent,
            directory: directory, file: path)
        return out
    }

    /// Special token ids, add-token flags and the chat template, as `SpecialVocab.add_to_gguf` writes them.
    static func specialEntries(
        tokenizer: JSONValue, tokenizerConfig: JSONValue?, config: JSONValue, added: [(content: String, id: Int)],
        directory: String, file: String
    ) throws(GGUFError) -> [(key: String, value: GGUFValue)] {
        var out: [(key: String, value: GGUFValue)] = []
        let special = specialTokens(
            tokenizer: tokenizer, tokenizerConfig: tokenizerConfig, config: config, added: added)
        for (typ, id) in special.ids {
            guard let key = idKeys[typ] else { continue }
            guard id >= 0, id < 1 << 32 else {
                throw GGUFError(file: file, message: "special token \(typ) has the invalid id \(id)")
            }
            out.append(("tokenizer.ggml.\(key)", .uint32(UInt32(id))))
        }
        for (typ, flag) in special.add where ["bos", "eos", "sep"].contains(typ) {
            out.append(("tokenizer.ggml.add_\(typ)_token", .bool(flag)))
        }
        if let template = try chatTemplate(directory: directory, tokenizerConfig: tokenizerConfig) {
            out.append(("tokenizer.chat_template", .string(template)))
        }
        return out
    }

    /// llama.cpp's name for the pre-tokenizer, or an error naming what is not recognized.
    static func preName(_ pre: JSONValue?, file: String) throws(GGUFError) -> String {
        func isByteLevel(_ v: JSONValue?, regex: Bool) -> Bool {
            v?["type"]?.stringValue == "ByteLevel" && (v?["use_regex"] ?? .bool(true)) == .bool(regex)
        }
        func splitPattern(_ v: JSONValue?) -> String? {
            guard v?["type"]?.stringValue == "Split" else { return nil }
            return v?["pattern"]?["Regex"]?.stringValue
        }
        if isByteLevel(pre, regex: true) { return "gpt-2" }
        if pre?["type"]?.stringValue == "Sequence", let parts = pre?["pretokenizers"]?.arrayValue, parts.count == 2 {
            if parts[0]["type"]?.stringValue == "Digits", parts[0]["individual_digits"] == .bool(true),
                isByteLevel(parts[1], regex: true)
            {
                return "smollm"
            }
            if isByteLevel(parts[1], regex: false), let pattern = splitPattern(parts[0]) {
                if pattern == GGUFConverter.llama3Regex { return "llama-bpe" }
                if pattern == GGUFConverter.qwen2Regex { return "qwen2" }
                if pattern == GGUFConverter.gpt2Regex { return "gpt-2" }
            }
        }
        throw GGUFError(
            file: file,
            message: "pre_tokenizer \(pre?.rendered() ?? "null") is not one llama.cpp names"
                + " (ByteLevel: gpt-2; Digits + ByteLevel: smollm; Llama 3's and Qwen2's split patterns)")
    }

    /// Added tokens llama.cpp treats as control tokens although they are not marked special.
    static func looksSpecial(_ t: String) -> Bool {
        ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].contains(t) || (t.hasPrefix("<|") && t.hasSuffix("|>"))
            || (t.hasPrefix("<｜") && t.hasSuffix("｜>")) || (t.hasPrefix("<unused") && t.hasSuffix(">"))
    }

    /// Special token ids and add-token flags, in the order and by the precedence of gguf-py's
    /// `SpecialVocab`: the post-processor's flags, then tokenizer_config.json's, its tokens by content
    /// among the added tokens, then config.json's `*_token_id`; the first value found for a type wins.
    static func specialTokens(
        tokenizer: JSONValue, tokenizerConfig: JSONValue?, config: JSONValue, added: [(content: String, id: Int)]
    ) -> (ids: [(String, Int)], add: [(String, Bool)]) {
        var ids: [(String, Int)] = []
        var add: [(String, Bool)] = []
        func setID(_ typ: String, _ id: Int?) {
            guard let id, id >= 0, !ids.contains(where: { $0.0 == typ }) else { return }
            ids.append((typ, id))
        }
        func setAdd(_ typ: String, _ v: Bool, overwrite: Bool) {
            if let i = add.firstIndex(where: { $0.0 == typ }) {
                if overwrite { add[i].1 = v }
            } else {
                add.append((typ, v))
            }
        }
        func content(_ v: JSONValue?) -> String? { v?.stringValue ?? v?["content"]?.stringValue }
        var tokenOf: [String: String] = [:]
        for typ in specialTypes { if let c = content(tokenizerConfig?["\(typ)_token"]) { tokenOf[typ] = c } }
        if tokenOf["bos"] == nil, let cls = tokenOf["cls"] { tokenOf["bos"] = cls }
        if tokenOf["eos"] == nil, let sep = tokenOf["sep"] { tokenOf["eos"] = sep }
        if let post = tokenizer["post_processor"], post != .null {
            for p in post["processors"]?.arrayValue ?? [post] {
                switch p["type"]?.stringValue {
                case "ByteLevel":
                    setAdd("bos", false, overwrite: false)
                    setAdd("eos", false, overwrite: false)
                case "TemplateProcessing":
                    let single = p["single"]?.arrayValue ?? []
                    guard single.count > 1 else { continue }
                    if let first = single.first?["SpecialToken"]?["id"]?.stringValue {
                        if tokenizerConfig == nil || tokenOf["bos"] == nil { tokenOf["bos"] = first }
                        setAdd("bos", first == tokenOf["bos"] || first == tokenOf["cls"], overwrite: true)
                    }
                    let first = single.first?["SpecialToken"]?["id"]?.stringValue
                    let last = single.last?["SpecialToken"]?["id"]?.stringValue
                    if let last {
                        if tokenizerConfig == nil || tokenOf["eos"] == nil { tokenOf["eos"] = last }
                        setAdd("eos", last == tokenOf["eos"], overwrite: true)
                    }
                    // The pair template, A [sep] B between the leading and trailing special tokens.
                    var pair = p["pair"]?.arrayValue ?? []
                    if let first, pair.first?["SpecialToken"]?["id"]?.stringValue == first { pair.removeFirst() }
                    if let last, pair.last?["SpecialToken"]?["id"]?.stringValue == last { pair.removeLast() }
                    if pair.count > 2, pair.first?["Sequence"]?["id"]?.stringValue == "A",
                        pair.last?["Sequence"]?["id"]?.stringValue == "B"
                    {
                        let middle = pair.dropFirst().dropLast().compactMap { $0["SpecialToken"]?["id"]?.stringValue }
                        let separators = [tokenOf["sep"], tokenOf["eos"]].compactMap { $0 }
                        let addSep =
                            (middle.count == 2 && separators.contains(middle[1]))
                            || (middle.first.map(separators.contains) == true && last == nil)
                        setAdd("sep", addSep, overwrite: true)
                    }
                default: continue
                }
            }
        }
        if let tc = tokenizerConfig {
            for typ in specialTypes {
                if case .bool(let flag)? = tc["add_\(typ)_token"] { setAdd(typ, flag, overwrite: false) }
                if let c = tokenOf[typ] { setID(typ, added.first(where: { $0.content == c })?.id) }
            }
        }
        for typ in specialTypes { setID(typ, config["\(typ)_token_id"].flatMap(intValue)) }
        return (ids, add)
    }

    /// tokenizer_config.json's `chat_template` (a string), else `chat_template.jinja`'s text.
    static func chatTemplate(directory: String, tokenizerConfig: JSONValue?) throws(GGUFError) -> String? {
        if let t = tokenizerConfig?["chat_template"]?.stringValue { return t }
        let jinja = Path.join(directory, "chat_template.jinja")
        guard FileKind(of: jinja, followingLinks: true) == .regular else { return nil }
        guard let text = try? MappedFile(path: jinja) else {
            throw GGUFError(file: jinja, message: "cannot be read")
        }
        return String(decoding: text.bytes, as: UTF8.self)
    }

    static func intValue(_ v: JSONValue) -> Int? {
        guard let d = v.doubleValue, d == d.rounded(), abs(d) < 9e15 else { return nil }
        return Int(d)
    }

    static func readJSON(_ path: String) throws(GGUFError) -> JSONValue {
        guard let v = try readJSONIfPresent(path) else {
            throw GGUFError(
                file: path, message: "missing: a model directory written to GGUF needs it", isMissingFile: true)
        }
        return v
    }

    static func readJSONIfPresent(_ path: String) throws(GGUFError) -> JSONValue? {
        guard FileKind(of: path, followingLinks: true) != .missing else { return nil }
        do {
            let file = try MappedFile(path: path)
            return try JSONParser.parse(file.bytes)
        } catch let e as JSONSyntaxError {
            throw GGUFError(file: path, message: "not valid JSON: \(e.message) at byte \(e.offset)")
        } catch {
            throw GGUFError(file: path, message: "cannot be read: \(error)")
        }
    }
}

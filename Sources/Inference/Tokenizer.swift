import SafeTensors
import Tensors

// Follows Hugging Face `tokenizers` (tokenizer.json): normalizers, pre-tokenizers, the BPE model
// with byte-level and byte-fallback variants, added tokens, decoders.
#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A byte-level or SentencePiece-style BPE tokenizer read from `tokenizer.json`.
///
/// Text is compared as Hugging Face compares it: by code points (UTF-8 bytes), never by Swift's
/// canonical equivalence, so U+037E is not ';' and 'e' + U+0301 is not 'é' unless the tokenizer's
/// own normalizer makes them so.
public final class Tokenizer: @unchecked Sendable {
    /// The `tokenizer.json` read.
    public let path: String
    /// Token text by id.
    public let tokens: [Int: String]
    let ids: [[UInt8]: Int]  // token bytes → id
    /// The most UTF-8 bytes one token stands for (at least 1): a text of more than this many bytes
    /// per position cannot fit the context, whatever it encodes to.
    public let longestTokenBytes: Int
    let ranks: [MergePair: Int]
    let byteFallback: Bool
    let fuseUnknown: Bool
    let ignoreMerges: Bool
    let unk: Int?
    let byteTokens: [Int?]  // id of "<0xNN>" for each byte
    let byteTokenIDs: Set<Int>
    let added: [(content: String, id: Int, special: Bool)]  // longest first
    let normalizer: [NormalizerStep]
    let preTokenizer: [PreTokenizerStep]
    let decoder: [DecoderStep]
    var cache: [[UInt8]: [Int]] = [:]
    let lock = Lock()
    /// Ids of the special added tokens (dropped by `decode(_:skipSpecial:)` when asked).
    public let specialIDs: Set<Int>
    /// Tokens the post-processor adds before the text with `addSpecialTokens` (BOS for Llama).
    public let prefixIDs: [Int]

    enum NormalizerStep {
        case nfc, lowercase
        case prepend(String)
        case replace(String, String)
    }

    enum PreTokenizerStep {
        case split(Regex<AnyRegexOutput>, removing: Bool)
        case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
        /// `prepend`: "always" (every segment), "first" (only the segment at the start of the text,
        /// not one after an added token) or "never", as Hugging Face's `prepend_scheme`.
        case metaspace(replacement: String, prepend: String, split: Bool)
        /// Digits apart from the rest: each digit alone (`individual_digits`), or runs of digits.
        case digits(individual: Bool)
    }

    enum DecoderStep {
        case byteLevel
        case replace(String, String)
        case byteFallback
        case fuse
        case strip(String, start: Int, stop: Int)
        case metaspace(replacement: String, prependFirst: Bool)
    }

    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// GPT-2's map of bytes to printable characters, and back.
    static let byteToChar: [Character] = {
        var bs = Array(33...126) + Array(161...172) + Array(174...255)
        var cs = bs
        var n = 0
        for b in 0..<256 where !bs.contains(b) {
            bs.append(b)
            cs.append(256 + n)
            n += 1
        }
        var table = [Character](repeating: " ", count: 256)
        for (b, c) in zip(bs, cs) { table[b] = Character(Unicode.Scalar(c)!) }
        return table
    }()
    static let charToByte: [Unicode.Scalar: UInt8] = {
        var m: [Unicode.Scalar: UInt8] = [:]
        for (b, c) in byteToChar.enumerated() { m[c.unicodeScalars.first!] = UInt8(b) }
        return m
    }()

    /// Two adjacent symbols, by bytes.
    struct MergePair: Hashable {
        var a: [UInt8]
        var b: [UInt8]
    }

    /// The id of a token's exact text, or nil.
    public func id(of token: String) -> Int? { ids[Array(token.utf8)] }

    /// Reads `tokenizer.json` (a file, or the one in a model directory).
    public init(path given: String) throws(InferenceError) {
        let path = Path.isDirectory(given) == true ? Path.join(given, "tokenizer.json") : given
        self.path = path
        func fail(_ m: String) -> InferenceError { .tokenizer(file: path, message: m) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .file(
                SafeTensorsError(
                    file: path, .io(operation: "read", message: "no tokenizer.json here, or it cannot be read")))
        }
        let root: JSONValue
        do {
            root = try JSONParser.parse(String(decoding: data, as: UTF8.self))
        } catch {
            throw fail("not valid JSON: \(error.message) at byte \(error.offset)")
        }
        guard let model = root["model"], model["type"]?.stringValue ?? "BPE" == "BPE" else {
            throw fail("model type \(root["model"]?["type"]?.stringValue ?? "?") is not supported (BPE only)")
        }
        guard case .object(let vocabPairs)? = model["vocab"] else { throw fail("model.vocab is missing") }
        var ids: [[UInt8]: Int] = [:]
        var tokens: [Int: String] = [:]
        for (k, v) in vocabPairs {
            guard let id = v.doubleValue, id >= 0, id < 1e9, id == id.rounded() else {
                throw fail("vocab entry \(JSONWriter.quoted(k)) is not a token id")
            }
            ids[Array(k.utf8)] = Int(id)
            if tokens[Int(id)] == nil { tokens[Int(id)] = k }
        }
        var ranks: [MergePair: Int] = [:]
        for (i, m) in (model["merges"]?.arrayValue ?? []).enumerated() {
            let pair: MergePair
            if let s = m.stringValue, let space = s.utf8.firstIndex(of: 0x20) {
                pair = MergePair(a: Array(s.utf8[..<space]), b: Array(s.utf8[s.utf8.index(after: space)...]))
            } else if let p = m.arrayValue, p.count == 2, let a = p[0].stringValue, let b = p[1].stringValue {
                pair = MergePair(a: Array(a.utf8), b: Array(b.utf8))
            } else {
                throw fail("merge \(i) is neither \"a b\" nor [a, b]")
            }
            // As Hugging Face refuses it: a merge whose parts or result are not tokens would drop text.
            for part in [pair.a, pair.b, pair.a + pair.b] where ids[part] == nil {
                throw fail(
                    "merge \(i) (\(JSONWriter.quoted(String(decoding: pair.a, as: UTF8.self))),"
                        + " \(JSONWriter.quoted(String(decoding: pair.b, as: UTF8.self)))) uses or makes"
                        + " \(JSONWriter.quoted(String(decoding: part, as: UTF8.self))), which is not in the vocabulary"
                )
            }
            ranks[pair] = i
        }
        var added: [(String, Int, Bool)] = []
        for t in root["added_tokens"]?.arrayValue ?? [] {
            guard let content = t["content"]?.stringValue, let id = t["id"]?.doubleValue, id >= 0, id < 1e9 else {
                continue
            }
            added.append(
                (content, Int(id), { if case .bool(let b)? = t["special"] { return b } else { return false } }()))
            ids[Array(content.utf8)] = Int(id)
            tokens[Int(id)] = content
        }
        self.added = added.sorted { $0.0.utf8.count > $1.0.utf8.count }
        specialIDs = Set(added.filter(\.2).map(\.1))
        self.ids = ids
        longestTokenBytes = max(1, ids.keys.map(\.count).max() ?? 1)
        self.tokens = tokens
        self.ranks = ranks
        byteTokens = (0..<256).map { ids[Array(String(cFormat: "<0x%02X>", $0).utf8)] }
        byteTokenIDs = Set(byteTokens.compactMap { $0 })
        byteFallback = { if case .bool(true)? = model["byte_fallback"] { return true } else { return false } }()
        fuseUnknown = { if case .bool(true)? = model["fuse_unk"] { return true } else { return false } }()
        ignoreMerges = { if case .bool(true)? = model["ignore_merges"] { return true } else { return false } }()
        unk = model["unk_token"]?.stringValue.flatMap { ids[Array($0.utf8)] }
        normalizer = try Self.normalizers(root["normalizer"], fail)
        preTokenizer = try Self.preTokenizers(root["pre_tokenizer"], fail)
        decoder = try Self.decoders(root["decoder"], fail)
        var prefix: [Int] = []
        if let post = root["post_processor"], post != .null {
            let single =
                post["single"]?.arrayValue ?? post["processors"]?.arrayValue?.compactMap { $0["single"] }.first?
                .arrayValue ?? []
            for item in single {
                guard let special = item["SpecialToken"]?["id"]?.stringValue else { break }
                if let id = ids[Array(special.utf8)] { prefix.append(id) }
            }
        }
        prefixIDs = prefix
    }

    private static func flatten(_ v: JSONValue?, key: String) -> [JSONValue] {
        guard let v, v != .null else { return [] }
        if v["type"]?.stringValue == "Sequence", let items = v[key]?.arrayValue {
            return items.flatMap { flatten($0, key: key) }
        }
        return [v]
    }

    private static func pattern(_ v: JSONValue?) -> String? {
        v?["String"]?.stringValue ?? v?["Regex"]?.stringValue
    }

    private static func normalizers(_ v: JSONValue?, _ fail: (String) -> InferenceError) throws(InferenceError)
        -> [NormalizerStep]
    {
        var out: [NormalizerStep] = []
        for n in flatten(v, key: "normalizers") {
            switch n["type"]?.stringValue {
            case "NFC": out.append(.nfc)
            case "NFKC", "NFKD", "NFD":
                // The Swift standard library composes (NFC) but offers no decomposition tables, and av
                // links only FoundationEssentials (no ICU) to stay one small binary.
                throw fail(
                    "normalizer \(n["type"]?.stringValue ?? "") is not supported (NFC, Lowercase, Prepend, Replace)")
            case "Lowercase": out.append(.lowercase)
            case "Prepend": out.append(.prepend(n["prepend"]?.stringValue ?? ""))
            case "Replace":
                guard let p = n["pattern"]?["String"]?.stringValue else {
                    throw fail("Replace normalizers with a regex pattern are not supported")
                }
                out.append(.replace(p, n["content"]?.stringValue ?? ""))
            case let t: throw fail("normalizer \(t ?? "?") is not supported")
            }
        }
        return out
    }

    private static func preTokenizers(_ v: JSONValue?, _ fail: (String) -> InferenceError) throws(InferenceError)
        -> [PreTokenizerStep]
    {
        var out: [PreTokenizerStep] = []
        for p in flatten(v, key: "pretokenizers") {
            func flag(_ k: String, _ d: Bool) -> Bool { if case .bool(let b)? = p[k] { return b } else { return d } }
            switch p["type"]?.stringValue {
            case "Split":
                guard let pat = pattern(p["pattern"]) else { throw fail("Split pre-tokenizer without a pattern") }
                let behavior = p["behavior"]?.stringValue ?? "Isolated"
                guard behavior == "Isolated" || behavior == "Removed", !flag("invert", false) else {
                    throw fail("Split behavior \(behavior) is not supported (Isolated, Removed)")
                }
                let source = p["pattern"]?["String"] != nil ? Tokenizer.escapedPattern(pat) : pat
                if let why = catastrophicRepetition(in: source) {
                    throw fail("the Split pattern \(JSONWriter.quoted(source)) is refused: \(why)")
                }
                out.append(.split(try compile(source, fail), removing: behavior == "Removed"))
            case "ByteLevel":
                out.append(
                    .byteLevel(addPrefixSpace: flag("add_prefix_space", false), useRegex: flag("use_regex", true)))
            case "Digits":
                out.append(.digits(individual: flag("individual_digits", false)))
            case "Metaspace":
                let scheme = p["prepend_scheme"]?.stringValue ?? (flag("add_prefix_space", true) ? "always" : "never")
                out.append(
                    .metaspace(
                        replacement: p["replacement"]?.stringValue ?? "▁", prepend: scheme,
                        split: flag("split", true)))
            case let t: throw fail("pre-tokenizer \(t ?? "?") is not supported")
            }
        }
        return out
    }

    private static func decoders(_ v: JSONValue?, _ fail: (String) -> InferenceError) throws(InferenceError)
        -> [DecoderStep]
    {
        var out: [DecoderStep] = []
        for d in flatten(v, key: "decoders") {
            switch d["type"]?.stringValue {
            case "ByteLevel": out.append(.byteLevel)
            case "Replace": out.append(.replace(pattern(d["pattern"]) ?? "", d["content"]?.stringValue ?? ""))
            case "ByteFallback": out.append(.byteFallback)
            case "Fuse": out.append(.fuse)
            case "Strip":
                // Counts are checked as numbers before they become Ints (1e300 would trap).
                func count(_ key: String) throws(InferenceError) -> Int {
                    guard let value = d[key] else { return 0 }
                    guard let v = value.doubleValue, v >= 0, v <= 1e9, v == v.rounded() else {
                        throw fail("Strip decoder: \"\(key)\" must be a whole number from 0 to 10^9")
                    }
                    return Int(v)
                }
                let content = d["content"]?.stringValue ?? " "
                guard !content.isEmpty else { throw fail("Strip decoder: \"content\" is empty") }
                out.append(.strip(content, start: try count("start"), stop: try count("stop")))
            case "Metaspace":
                out.append(
                    .metaspace(
                        replacement: d["replacement"]?.stringValue ?? "▁",
                        prependFirst: (d["prepend_scheme"]?.stringValue ?? "always") != "never"))
            case let t: throw fail("decoder \(t ?? "?") is not supported")
            }
        }
        return out
    }

    /// `text` as a regular expression that matches it literally: every character that is not a
    /// letter, digit, space or underscore is escaped (what `NSRegularExpression.escapedPattern` does).
    static func escapedPattern(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x5F, 0x80...: out.unicodeScalars.append(scalar)
            case 0x21...0x7E: out += "\\" + String(scalar)
            default: out += "\\x{" + String(scalar.value, radix: 16) + "}"
            }
        }
        return out
    }

    private static func compile(_ pattern: String, _ fail: (String) -> InferenceError) throws(InferenceError) -> Regex<
        AnyRegexOutput
    > {
        do {
            // Code points, as the Rust regex crate matches, not grapheme clusters.
            return try Regex(pattern).matchingSemantics(.unicodeScalar)
        } catch {
            throw fail("cannot compile the pre-tokenizer pattern \(JSONWriter.quoted(pattern))")
        }
    }

    nonisolated(unsafe) static let gpt2Regex: Regex<AnyRegexOutput> =
        (try? Regex(gpt2Pattern).matchingSemantics(.unicodeScalar))!
}

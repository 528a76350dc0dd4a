import SafeTensors
import Tensors

// Encoding as Hugging Face `tokenizers` does it: added tokens, normalizers, pre-tokenizers, BPE.
extension Tokenizer {
    /// The ids of `text`. Special and added tokens written in the text are recognized.
    public func encode(_ text: String, addSpecialTokens: Bool = false) -> [Int] {
        var ids = addSpecialTokens ? prefixIDs : []
        for (k, (segment, addedID)) in splitAdded(text).enumerated() {
            if let addedID {
                ids.append(addedID)
            } else {
                ids += encodePlain(segment, atStart: k == 0)
            }
        }
        return ids
    }

    /// Splits around added tokens, leftmost-longest.
    private func splitAdded(_ text: String) -> [(String, Int?)] {
        guard !added.isEmpty else { return [(text, nil)] }
        var out: [(String, Int?)] = []
        var rest = Substring(text)
        var plain = ""
        outer: while !rest.isEmpty {
            for a in added where !a.content.isEmpty && rest.unicodeScalars.starts(with: a.content.unicodeScalars) {
                if !plain.isEmpty { out.append((plain, nil)) }
                plain = ""
                out.append((a.content, a.id))
                rest = Substring(rest.unicodeScalars.dropFirst(a.content.unicodeScalars.count))
                continue outer
            }
            plain.unicodeScalars.append(rest.unicodeScalars.first!)
            rest = Substring(rest.unicodeScalars.dropFirst())
        }
        if !plain.isEmpty { out.append((plain, nil)) }
        return out
    }

    private func normalize(_ s: String) -> String {
        var t = s
        for step in normalizer {
            switch step {
            case .nfc: t = String(decoding: t._nfcCodeUnits, as: UTF8.self)
            case .lowercase: t = t.lowercased()
            case .prepend(let p): if !t.isEmpty { t = p + t }
            case .replace(let a, let b): t = t.replacingScalars(a, with: b)
            }
        }
        return t
    }

    /// Pieces by the pre-tokenizer steps; byte-level pieces come out already mapped to GPT-2 chars.
    private func preTokenize(_ s: String, atStart: Bool) -> [String] {
        var pieces = [s]
        for step in preTokenizer {
            switch step {
            case .split(let regex, let removing):
                pieces = pieces.flatMap { split($0, regex, removing: removing) }
            case .byteLevel(let addPrefixSpace, let useRegex):
                pieces = pieces.enumerated().flatMap { i, p -> [String] in
                    var p = p
                    if addPrefixSpace && i == 0 && p.unicodeScalars.first != " " { p = " " + p }
                    return (useRegex ? split(p, Self.gpt2Regex, removing: false) : [p]).map { piece in
                        String(piece.utf8.map { Self.byteToChar[Int($0)] })
                    }
                }
            case .digits(let individual):
                pieces = pieces.flatMap { p -> [String] in
                    var out: [String] = []
                    var current = ""
                    var currentIsDigit = false
                    for ch in p.unicodeScalars {
                        let isDigit = ch.properties.numericType == .decimal
                        if !current.isEmpty && (isDigit != currentIsDigit || (isDigit && individual)) {
                            out.append(current)
                            current = ""
                        }
                        current.unicodeScalars.append(ch)
                        currentIsDigit = isDigit
                    }
                    if !current.isEmpty { out.append(current) }
                    return out
                }
            case .metaspace(let replacement, let prepend, let splitWords):
                let prependFirst = prepend == "always" || (prepend == "first" && atStart)
                pieces = pieces.enumerated().flatMap { i, p -> [String] in
                    var t = p.replacingScalars(" ", with: replacement)
                    if prependFirst && i == 0 && !t.unicodeScalars.starts(with: replacement.unicodeScalars) {
                        t = replacement + t
                    }
                    guard splitWords else { return [t] }
                    var out: [String] = []
                    var current = ""
                    let marker = replacement.unicodeScalars.count == 1 ? replacement.unicodeScalars.first : nil
                    for ch in t.unicodeScalars {
                        if ch == marker && !current.isEmpty {
                            out.append(current)
                            current = ""
                        }
                        current.unicodeScalars.append(ch)
                    }
                    if !current.isEmpty { out.append(current) }
                    return out
                }
            }
        }
        return pieces
    }

    private func split(_ s: String, _ regex: Regex<AnyRegexOutput>, removing: Bool) -> [String] {
        var out: [String] = []
        var last = s.startIndex
        for m in s.matches(of: regex) where !m.range.isEmpty {
            if last < m.range.lowerBound { out.append(String(s.unicodeScalars[last..<m.range.lowerBound])) }
            if !removing { out.append(String(s.unicodeScalars[m.range])) }
            last = m.range.upperBound
        }
        if last < s.endIndex { out.append(String(s.unicodeScalars[last...])) }
        return out
    }

    private func encodePlain(_ text: String, atStart: Bool) -> [Int] {
        var ids: [Int] = []
        for piece in preTokenize(normalize(text), atStart: atStart) where !piece.isEmpty {
            let key = Array(piece.utf8)
            lock.lock()
            let cached = cache[key]
            lock.unlock()
            if let cached {
                ids += cached
                continue
            }
            let result = bpe(piece)
            lock.lock()
            if cache.count > 100_000 { cache.removeAll() }
            cache[key] = result
            lock.unlock()
            ids += result
        }
        return ids
    }

    /// BPE on one piece, as Hugging Face's `BPE::merge_word`: each code point becomes a symbol (its
    /// byte tokens with byte fallback; the unknown token, fused with a neighbouring one if `fuse_unk`;
    /// or nothing when there is no unknown token), then the lowest-ranked adjacent pair is merged,
    /// every occurrence left to right, until no pair is in the merge list.
    private func bpe(_ piece: String) -> [Int] {
        if ignoreMerges, let id = ids[Array(piece.utf8)] { return [id] }
        // A symbol is its bytes; an empty array stands for the unknown token, which never merges.
        var symbols: [[UInt8]] = []
        for ch in piece.unicodeScalars {
            let bytes = Array(String(ch).utf8)
            if ids[bytes] != nil {
                symbols.append(bytes)
            } else if byteFallback, bytes.allSatisfy({ byteTokens[Int($0)] != nil }) {
                symbols += bytes.map { Array(String(cFormat: "<0x%02X>", $0).utf8) }
            } else if unk != nil {
                if fuseUnknown, symbols.last == [] { continue }
                symbols.append([])
            }
        }
        while symbols.count > 1 {
            var best = Int.max
            var at = -1
            for i in 0..<(symbols.count - 1) where !symbols[i].isEmpty && !symbols[i + 1].isEmpty {
                if let r = ranks[MergePair(a: symbols[i], b: symbols[i + 1])], r < best {
                    best = r
                    at = i
                }
            }
            guard at >= 0 else { break }
            let (a, b) = (symbols[at], symbols[at + 1])
            var next: [[UInt8]] = []
            var i = 0
            while i < symbols.count {
                if i + 1 < symbols.count && symbols[i] == a && symbols[i + 1] == b {
                    next.append(a + b)
                    i += 2
                } else {
                    next.append(symbols[i])
                    i += 1
                }
            }
            symbols = next
        }
        return symbols.flatMap { s -> [Int] in
            if s.isEmpty { return unk.map { [$0] } ?? [] }
            if let id = ids[s] { return [id] }
            if byteFallback { return s.compactMap { byteTokens[Int($0)] } }
            return unk.map { [$0] } ?? []
        }
    }
}

import SafeTensors
import Tensors

// Decoding as Hugging Face `tokenizers` does it: the decoder chain over token texts.
extension Tokenizer {
    /// Whether `id` is a byte-fallback token (`<0x41>`), which decodes together with its neighbours.
    public func isByteFallback(_ id: Int) -> Bool { byteFallback && byteTokenIDs.contains(id) }

    /// The text of `ids`; special tokens are dropped when `skipSpecial`. Invalid UTF-8 (a token
    /// boundary inside a character) becomes U+FFFD, as the reference does.
    public func decode(_ ids: [Int], skipSpecial: Bool = false) -> String {
        // Every token, added ones included, goes through the decoder chain, as the reference does.
        decodeRun(ids.compactMap { id in skipSpecial && specialIDs.contains(id) ? nil : tokens[id] })
    }

    private func decodeRun(_ tokens: [String]) -> String {
        var parts = tokens
        for step in decoder {
            switch step {
            case .byteLevel:
                var bytes: [UInt8] = []
                for p in parts {
                    for ch in p.unicodeScalars {
                        if let b = Self.charToByte[ch] { bytes.append(b) } else { bytes += Array(String(ch).utf8) }
                    }
                }
                parts = [String(decoding: bytes, as: UTF8.self)]
            case .replace(let a, let b):
                parts = parts.map { $0.replacingScalars(a, with: b) }
            case .byteFallback:
                var out: [String] = []
                var pending: [UInt8] = []
                func flushBytes() {
                    if !pending.isEmpty {
                        // Each invalid byte becomes one U+FFFD, as the reference does.
                        if let s = String(validating: pending, as: UTF8.self) {
                            out.append(s)
                        } else {
                            out += Array(repeating: "\u{FFFD}", count: pending.count)
                        }
                        pending = []
                    }
                }
                for p in parts {
                    if p.count == 6, p.hasPrefix("<0x"), p.hasSuffix(">"),
                        let b = UInt8(p.dropFirst(3).dropLast(), radix: 16)
                    {
                        pending.append(b)
                    } else {
                        flushBytes()
                        out.append(p)
                    }
                }
                flushBytes()
                parts = out
            case .fuse:
                parts = [parts.joined()]
            case .strip(let content, let start, let stop):
                // Every piece, as Hugging Face's Strip decoder does: at most `start` (`stop`) copies
                // of `content`, and only while there are any, so a count of 10^9 costs what the text holds.
                let c = content.unicodeScalars
                parts = parts.map { p in
                    var s = Substring(p)
                    var removed = 0
                    while removed < start, s.unicodeScalars.starts(with: c) {
                        s = Substring(s.unicodeScalars.dropFirst(c.count))
                        removed += 1
                    }
                    removed = 0
                    while removed < stop, s.unicodeScalars.reversed().starts(with: c.reversed()) {
                        s = Substring(s.unicodeScalars.dropLast(c.count))
                        removed += 1
                    }
                    return String(s)
                }
            case .metaspace(let replacement, let prependFirst):
                parts = parts.enumerated().map { i, p in
                    var s = p.replacingScalars(replacement, with: " ")
                    if prependFirst && i == 0 && s.unicodeScalars.first == " " { s.unicodeScalars.removeFirst() }
                    return s
                }
            }
        }
        return parts.joined()
    }
}

extension String {
    /// Every occurrence of `target` replaced, comparing code points (not canonical equivalence).
    func replacingScalars(_ target: String, with replacement: String) -> String {
        let t = Array(target.unicodeScalars)
        guard !t.isEmpty else { return self }
        let source = Array(unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < source.count {
            if source[i] == t[0], i + t.count <= source.count, Array(source[i..<(i + t.count)]) == t {
                out.append(contentsOf: replacement.unicodeScalars)
                i += t.count
            } else {
                out.append(source[i])
                i += 1
            }
        }
        return String(out)
    }
}

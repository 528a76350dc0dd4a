/// Pre-tokenizer patterns are matched by a backtracking engine (Swift `Regex`) with no step limit,
/// so a pattern with nested repetition, like `(a|aa)+$` or `(a+)+`, can take exponential time on an
/// ordinary text. Hugging Face's engine (Oniguruma) stops such a match with an error; av refuses
/// the pattern when the tokenizer loads, before any text reaches it.
extension Tokenizer {
    /// The reason `pattern` can take exponential time, or nil: a group repeated without bound (`*`,
    /// `+`, `{n,}`) that holds an alternation or a repetition of its own. Every pre-tokenizer
    /// pattern in use (GPT-2, Llama 3, Qwen2, o200k, DeepSeek) repeats only classes and atoms, or
    /// repeats groups a bounded number of times (`(?i:'s|'t)?`).
    static func catastrophicRepetition(in pattern: String) -> String? {
        let s = Array(pattern.unicodeScalars)
        // Per open group: where it starts and whether it holds an alternation or a quantifier.
        var groups: [(start: Int, complex: Bool)] = []
        var i = 0
        func quantifier(at j: Int) -> (unbounded: Bool, length: Int)? {
            guard j < s.count else { return nil }
            switch s[j] {
            case "*", "+": return (true, 1)
            case "?": return (false, 1)
            case "{":
                var k = j + 1
                var text = ""
                while k < s.count, s[k] != "}" {
                    text.unicodeScalars.append(s[k])
                    k += 1
                }
                guard k < s.count else { return nil }
                let parts = text.split(separator: ",", omittingEmptySubsequences: false)
                guard parts.allSatisfy({ $0.allSatisfy(\.isNumber) }), !parts.isEmpty, parts.count <= 2 else {
                    return nil
                }
                return (parts.count == 2 && parts[1].isEmpty, k - j + 1)
            default: return nil
            }
        }
        func markComplex() { if !groups.isEmpty { groups[groups.count - 1].complex = true } }
        while i < s.count {
            switch s[i] {
            case "\\":
                i += 2
                if let q = quantifier(at: i) {
                    markComplex()
                    i += q.length
                }
                continue
            case "[":
                // A class: skip to its closing bracket (escapes and a leading ] or ^] included).
                var k = i + 1
                if k < s.count, s[k] == "^" { k += 1 }
                if k < s.count, s[k] == "]" { k += 1 }
                var depth = 1
                while k < s.count, depth > 0 {
                    if s[k] == "\\" {
                        k += 2
                        continue
                    }
                    if s[k] == "[" { depth += 1 }
                    if s[k] == "]" { depth -= 1 }
                    k += 1
                }
                i = k
                if let q = quantifier(at: i) {
                    markComplex()
                    i += q.length
                }
                continue
            case "(":
                groups.append((i, false))
            case "|":
                markComplex()
            case ")":
                guard let group = groups.popLast() else { return nil }
                if let q = quantifier(at: i + 1) {
                    if q.unbounded && group.complex {
                        let text = String(String.UnicodeScalarView(s[group.start...(i + q.length)]))
                        return "the group \(text) repeats a repetition or an alternation without bound, which a"
                            + " backtracking matcher can take exponential time on"
                    }
                    i += q.length
                    markComplex()
                } else if group.complex {
                    markComplex()
                }
            default:
                if let q = quantifier(at: i + 1) {
                    markComplex()
                    i += q.length
                }
            }
            i += 1
        }
        return nil
    }
}

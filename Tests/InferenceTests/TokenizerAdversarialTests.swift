import AVTestSupport
import Foundation
import Testing

@testable import Inference

/// A tokenizer.json with the vocabulary a, b, ab, the merge "a b", and the given parts.
private func tokenizerJSON(preTokenizer: String = "null", decoder: String = "null", merges: String = #"["a b"]"#)
    -> String
{
    #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3}, "merges": \#(merges)}, "#
        + #""pre_tokenizer": \#(preTokenizer), "decoder": \#(decoder)}"#
}

private func load(_ text: String, in dir: TemporaryDirectory) throws(InferenceError) -> Tokenizer {
    let path = dir.file("tokenizer-\(UUID().uuidString).json")
    try! Data(text.utf8).write(to: URL(fileURLWithPath: path))
    return try Tokenizer(path: path)
}

@Suite("tokenizer.json from an untrusted source")
struct TokenizerAdversarialTests {
    @Test("Split patterns with unbounded nested repetition are refused; the patterns in use are accepted")
    func patterns() throws {
        let refused = [
            #"(a|aa)+$"#, #"(a+)+"#, #"(?:a*)*b"#, #"(x|y)*z"#, #"(a|b){2,}"#, #"((ab)+c)+"#, #"(\w+\s?)+$"#,
        ]
        for p in refused {
            #expect(Tokenizer.catastrophicRepetition(in: p) != nil, "\(p)")
        }
        let accepted = [
            Tokenizer.gpt2Pattern,
            #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
            #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"#,
            #"\s?[!-/:-~！-／：-～‘-‟　-。]+"#, #"[一-龥ࠀ-一가-퟿]+"#, #"(ab){1,3}"#, #"(a|b)?"#, #"[(]+[)]+"#, #"\(+"#,
        ]
        for p in accepted {
            #expect(Tokenizer.catastrophicRepetition(in: p) == nil, "\(p)")
        }
        let dir = TemporaryDirectory()
        let split = #"{"type": "Split", "pattern": {"Regex": "(a|aa)+$"}, "behavior": "Isolated", "invert": false}"#
        #expect {
            _ = try load(tokenizerJSON(preTokenizer: split), in: dir)
        } throws: { "\($0)".contains("exponential time") }
        // A String pattern is literal, so its parentheses are no repetition.
        let literal = #"{"type": "Split", "pattern": {"String": "(a|aa)+"}, "behavior": "Isolated", "invert": false}"#
        #expect(throws: Never.self) { _ = try load(tokenizerJSON(preTokenizer: literal), in: dir) }
    }

    @Test("Strip counts that are negative, huge or fractional are refused; a large valid count is cheap")
    func strip() throws {
        let dir = TemporaryDirectory()
        for bad in ["-1", "1e300", "1.5", "\"2\""] {
            let decoder = #"{"type": "Strip", "content": "a", "start": \#(bad), "stop": 0}"#
            #expect("\(bad)") {
                _ = try load(tokenizerJSON(decoder: decoder), in: dir)
            } throws: { "\($0)".contains("Strip decoder: \"start\"") }
        }
        let decoder = #"{"type": "Strip", "content": "a", "start": 1000000000, "stop": 1000000000}"#
        let t = try load(tokenizerJSON(decoder: decoder), in: dir)
        let started = Date()
        #expect(t.decode([0, 0, 3, 1, 0]) == "cb")
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test("a merge whose parts or result are not in the vocabulary is refused, as Hugging Face refuses it")
    func merges() throws {
        let dir = TemporaryDirectory()
        for merge in [#"["a c"]"#, #"["a z"]"#, #"[["z", "b"]]"#] {
            #expect("\(merge)") {
                _ = try load(tokenizerJSON(merges: merge), in: dir)
            } throws: { "\($0)".contains("which is not in the vocabulary") }
        }
        #expect(try load(tokenizerJSON(), in: dir).encode("ab") == [2])
    }
}

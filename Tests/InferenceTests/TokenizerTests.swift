import AVTestSupport
import Foundation
import Testing

@testable import Inference

struct TokenizerCase: Decodable {
    var text: String
    var ids: [Int]
    var decoded: String

    static let all: [String: [TokenizerCase]] = {
        let url = URL(fileURLWithPath: modelFixture("tokenizer_cases.json"))
        return (try? JSONDecoder().decode([String: [TokenizerCase]].self, from: Data(contentsOf: url))) ?? [:]
    }()
}

/// One value of a fuzz case: the text, or its ids.
enum FuzzValue: Decodable {
    case text(String)
    case ids([Int])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .text(s) } else { self = .ids(try c.decode([Int].self)) }
    }
}

@Suite("Tokenizers match Hugging Face tokenizers")
struct TokenizerTests {
    static let kinds = ["gpt2", "smollm2", "llama3", "qwen2", "sp"]

    @Test("encode gives the reference ids on every hard string", arguments: kinds)
    func encodes(kind: String) throws {
        let tokenizer = try Tokenizer(path: modelFixture("tokenizer_\(kind).json"))
        let cases = try #require(TokenizerCase.all[kind])
        #expect(cases.count > 20)
        for c in cases {
            let ids = tokenizer.encode(c.text)
            #expect(ids == c.ids, "\(kind) \(c.text.debugDescription): \(ids) != \(c.ids)")
        }
    }

    @Test("decode gives the reference text", arguments: kinds)
    func decodes(kind: String) throws {
        let tokenizer = try Tokenizer(path: modelFixture("tokenizer_\(kind).json"))
        for c in try #require(TokenizerCase.all[kind]) {
            #expect(tokenizer.decode(c.ids) == c.decoded, "\(kind) \(c.text.debugDescription)")
        }
    }

    /// Seeded random strings (canonically equivalent spellings, control characters between symbols,
    /// combining marks, emoji, special tokens inside text) and Hugging Face's ids for them.
    static let fuzz: [String: [[FuzzValue]]] = {
        let url = URL(fileURLWithPath: modelFixture("tokenizer_fuzz.json"))
        return (try? JSONDecoder().decode([String: [[FuzzValue]]].self, from: Data(contentsOf: url))) ?? [:]
    }()

    @Test("encode gives Hugging Face's ids on 600 seeded random strings", arguments: kinds)
    func fuzzed(kind: String) throws {
        let tokenizer = try Tokenizer(path: modelFixture("tokenizer_\(kind).json"))
        let cases = try #require(Self.fuzz[kind])
        #expect(cases.count == 600)
        var wrong: [String] = []
        var compared = 0
        for c in cases {
            guard c.count == 2, case .text(let text) = c[0], case .ids(let ids) = c[1] else { continue }
            compared += 1
            if tokenizer.encode(text) != ids { wrong.append(text.debugDescription) }
        }
        #expect(compared == cases.count)
        #expect(wrong.isEmpty, "\(kind): \(wrong.count) strings differ, e.g. \(wrong.prefix(5))")
    }

    @Test(
        "a symbol missing from the vocabulary (no unk, no byte fallback) is dropped before merging, as Hugging Face does"
    )
    func unknownDroppedBeforeMerges() throws {
        let dir = TemporaryDirectory()
        let json = #"""
            {"model": {"type": "BPE", "vocab": {"-": 0, ".": 1, "-.": 2, "a": 3}, "merges": ["- ."]},
             "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
             "decoder": {"type": "ByteLevel"}}
            """#
        try Data(json.utf8).write(to: URL(fileURLWithPath: dir.file("mini.json")))
        let tokenizer = try Tokenizer(path: dir.file("mini.json"))
        // Ids from Hugging Face tokenizers 0.23 on the same tokenizer.json.
        #expect(tokenizer.encode("-\u{13}.") == [2])
        #expect(tokenizer.encode("a-\u{13}.a") == [3, 2, 3])
        #expect(tokenizer.encode("-\u{13}\u{13}.") == [2])
    }

    @Test("canonically equivalent spellings stay distinct, in either order through the cache")
    func canonicalEquivalents() throws {
        let tokenizer = try Tokenizer(path: modelFixture("tokenizer_sp.json"))
        let first = [
            tokenizer.encode("\u{37E}"), tokenizer.encode(";"), tokenizer.encode("e\u{301}"),
            tokenizer.encode("\u{E9}"),
        ]
        let again = try Tokenizer(path: modelFixture("tokenizer_sp.json"))
        let second = [again.encode(";"), again.encode("\u{37E}"), again.encode("\u{E9}"), again.encode("e\u{301}")]
        #expect(first[0] != first[1] && first[2] != first[3])
        #expect(first[0] == second[1] && first[1] == second[0] && first[2] == second[3] && first[3] == second[2])
    }

    @Test("unsupported tokenizer parts are clear errors naming the file")
    func errors() throws {
        let dir = TemporaryDirectory()
        try Data(#"{"model": {"type": "WordPiece", "vocab": {}}}"#.utf8).write(
            to: URL(fileURLWithPath: dir.file("t.json")))
        #expect(throws: InferenceError.self) { try Tokenizer(path: dir.file("t.json")) }
        do {
            _ = try Tokenizer(path: dir.file("t.json"))
        } catch {
            #expect("\(error)".contains("t.json") && "\(error)".contains("WordPiece"))
        }
    }
}

@Suite("Tokenizer internals")
struct TokenizerInternalsTests {
    @Test("a Split pattern given as a string matches only itself, metacharacters and controls included")
    func escapedPattern() throws {
        for literal in ["a.b*(c)", "[x]+?{2}|^$\\", "tab\there\n", "_under score_", "é→ü"] {
            let regex = try Regex(Tokenizer.escapedPattern(literal))
            #expect(try regex.wholeMatch(in: literal) != nil, "\(literal)")
            #expect(try regex.wholeMatch(in: literal + "x") == nil)
        }
        #expect(try Regex(Tokenizer.escapedPattern("a.b")).wholeMatch(in: "axb") == nil)
    }
}

extension TokenizerInternalsTests {
    /// The chat fixture's tokenizer with `normalizer` set, written to `dir`.
    func tokenizer(normalizer: String, in dir: TemporaryDirectory) throws -> String {
        let source = try String(contentsOfFile: modelFixture("chat") + "/tokenizer.json", encoding: .utf8)
        let edited = source.replacingOccurrences(of: "\"normalizer\": null", with: "\"normalizer\": \(normalizer)")
        #expect(edited != source)
        let path = dir.file("tokenizer-\(normalizer.count).json")
        try edited.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("NFC composes before encoding (the standard library's NFC); NFKC and NFD are refused by name")
    func normalizers() throws {
        let dir = TemporaryDirectory()
        let nfc = try Tokenizer(path: try tokenizer(normalizer: "{\"type\": \"NFC\"}", in: dir))
        #expect(nfc.encode("cafe\u{301} A\u{30A}") == nfc.encode("café Å"))
        let plain = try Tokenizer(path: modelFixture("chat"))
        #expect(plain.encode("cafe\u{301}") != plain.encode("café"))
        for kind in ["NFKC", "NFD"] {
            #expect {
                _ = try Tokenizer(path: try tokenizer(normalizer: "{\"type\": \"\(kind)\"}", in: dir))
            } throws: { error in
                "\(error)".contains("normalizer \(kind) is not supported")
            }
        }
    }
}

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

    @Test("unsupported tokenizer parts are clear errors naming the file")
    func errors() throws {
        let dir = TemporaryDirectory()
        try Data(#"{"model": {"type": "WordPiece", "vocab": {}}}"#.utf8).write(to: URL(fileURLWithPath: dir.file("t.json")))
        #expect(throws: InferenceError.self) { try Tokenizer(path: dir.file("t.json")) }
        do {
            _ = try Tokenizer(path: dir.file("t.json"))
        } catch {
            #expect("\(error)".contains("t.json") && "\(error)".contains("WordPiece"))
        }
    }
}

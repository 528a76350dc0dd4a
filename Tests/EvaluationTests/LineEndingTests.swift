import AVTestSupport
import Foundation
import Testing

@testable import Evaluation
@testable import Inference

/// Swift reads CR LF as one Character; inputs are split on LF bytes so CRLF files read as LF files do.
@Suite("Line endings of text inputs")
struct LineEndingTests {
    @Test("CRLF, LF and a lone CR inside a line: lines split on LF bytes, the CR before LF dropped")
    func split() {
        let got = TextInput.splitLines("a\r\nb\r\n\r\n  \t\r\nc\rd\né\r\n")
        #expect(got.map(\.number) == [1, 2, 5, 6])
        #expect(got.map(\.text) == ["a", "b", "c\rd", "é"])
        #expect(TextInput.splitLines("").isEmpty && TextInput.splitLines("\r\n").isEmpty)
        #expect(TextInput.splitLines("x").map(\.text) == ["x"])
    }

    @Test("levels, pairs and prompt files with CRLF endings read line by line, as their LF versions do")
    func files() throws {
        let dir = TemporaryDirectory()
        let levels = [
            #"{"prompt": "p1", "responses": {"avoid": "a", "expert": "e"}}"#,
            #"{"prompt": "p2", "responses": {"avoid": "b", "expert": "f"}}"#,
            #"{"prompt": "p3", "responses": {"avoid": "c", "expert": "g"}}"#,
        ]
        let pairs = [
            #"{"prompt": "p", "chosen": "c", "rejected": "r"}"#, #"{"prompt": "q", "chosen": "d", "rejected": "s"}"#,
        ]
        for ending in ["\n", "\r\n"] {
            try Data(levels.joined(separator: ending).utf8).write(to: URL(fileURLWithPath: dir.file("l.jsonl")))
            try Data(pairs.joined(separator: ending).utf8).write(to: URL(fileURLWithPath: dir.file("p.jsonl")))
            try Data(["one", "two", "three"].joined(separator: ending).utf8).write(
                to: URL(fileURLWithPath: dir.file("prompts.txt")))
            #expect(try LevelsFile.load(dir.file("l.jsonl")).items.map(\.prompt) == ["p1", "p2", "p3"])
            #expect(try PreferencePair.load(dir.file("p.jsonl")).map(\.prompt) == ["p", "q"])
            #expect(try TextInput.lines(dir.file("prompts.txt")).map(\.text) == ["one", "two", "three"])
        }
    }
}

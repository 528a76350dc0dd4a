import AVTestSupport
import Foundation
import Testing

@testable import Evaluation
@testable import Inference
@testable import Tensors

@Suite("Levels files and level shares")
struct LevelsTests {
    func write(_ dir: TemporaryDirectory, _ name: String, _ text: String) throws -> String {
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir.file(name)))
        return dir.file(name)
    }

    @Test("ties are prompts whose best score another level shares exactly")
    func ties() {
        let r = LevelsResult(
            levels: ["a", "b", "c"], shares: [], meanMargins: [], winners: [0, 0, 1, 2],
            scores: [[1, 1, 0], [2, 1, 2], [0, 3, 1], [-1, -1, 0]], meanPromptTokens: 0)
        #expect(r.ties == 2)
    }

    @Test("a levels file keeps the first line's level order; malformed lines are named")
    func parse() throws {
        let dir = TemporaryDirectory()
        let good = try write(
            dir, "l.jsonl",
            #"{"prompt": "p1", "responses": {"avoid": "a", "generic": "g", "expert": "e"}}"# + "\n\n"
                + #"{"prompt": "p2", "responses": {"expert": "E", "avoid": "A", "generic": "G"}}"# + "\r\n")
        let file = try LevelsFile.load(good)
        #expect(file.levels == ["avoid", "generic", "expert"])
        #expect(file.items.map(\.responses) == [["a", "g", "e"], ["A", "G", "E"]])
        let cases: [(String, String)] = [
            (#"{"prompt": "p", "responses": {"avoid": "a"}}"#, "at least two"),
            (#"{"prompt": "p", "responses": {"avoid": "a", "expert": ""}}"#, "non-empty"),
            (#"{"prompt": "p", "responses": {"a": "x", "b": "y"}, "extra": 1}"#, "unknown key \"extra\""),
            (
                #"{"prompt": "p1", "responses": {"a": "x", "b": "y"}}"# + "\n"
                    + #"{"prompt": "p2", "responses": {"a": "x", "c": "y"}}"#, "line 2: levels"
            ),
            ("", "no prompts"),
            (#"{"prompt": "p", "responses": {"a": "same", "b": "other", "c": "same"}}"#, "are the same text"),
        ]
        for (text, message) in cases {
            let path = try write(dir, "bad.jsonl", text)
            #expect(throws: InferenceError.self) { try LevelsFile.load(path) }
            do { _ = try LevelsFile.load(path) } catch { #expect("\(error)".contains(message), "\(error)") }
        }
    }

    @Test(
        "each score is transformers' at every kernel level; shares and winners follow the scores; sum and mean differ")
    func shares() throws {
        let dir = TemporaryDirectory()
        let lm = try LanguageModel(directory: modelFixture("chat"))
        let path = try write(
            dir, "l.jsonl",
            [
                #"{"prompt": "The court", "responses": {"short": " ruled", "long": " ruled for the plaintiff in the end, as courts often do"}}"#,
                #"{"prompt": "Interest", "responses": {"short": " rates", "long": " rates rose again and again and again this year"}}"#,
            ].joined(separator: "\n"))
        let file = try LevelsFile.load(path)
        // The reference: transformers' scores of the same responses (Fixtures/make_levels_reference.py).
        struct Reference: Decodable {
            struct Score: Decodable {
                var sum: Double
                var tokens: Int
            }
            var prompt: String
            var scores: [Score]
        }
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/levels_reference.json")
        let reference = try JSONDecoder().decode([Reference].self, from: Data(contentsOf: url))
        #expect(reference.map(\.prompt) == file.items.map(\.prompt))
        for level in KernelLevel.supported {
            lm.model.kernels = level
            for score in LevelScore.allCases {
                let r = try lm.evaluate(levels: file, score: score)
                #expect(r.shares.reduce(0, +) == 1)
                for (p, winner) in r.winners.enumerated() {
                    #expect(r.scores[p][winner] == r.scores[p].max())
                    for (k, want) in reference[p].scores.enumerated() {
                        let expected = score == .mean ? want.sum / Double(want.tokens) : want.sum
                        #expect(
                            abs(r.scores[p][k] - expected) < (score == .mean ? 1e-4 : 1e-3),
                            "\(level.name) \(score) prompt \(p) level \(k): \(r.scores[p][k]) vs \(expected)")
                    }
                }
                #expect(abs(r.meanMargins[0] + r.meanMargins[1]) < 1e-9)  // two levels: the margins are opposite
            }
        }
        lm.model.kernels = .current
        // Summed log-probabilities always favour the short answer; the mean need not.
        #expect(try lm.evaluate(levels: file, score: .sum).shares == [1, 0])
        let prefixed = try lm.evaluate(levels: file, prefix: "Answer briefly. ")
        #expect(prefixed.meanPromptTokens > (try lm.evaluate(levels: file)).meanPromptTokens)
    }
}

func modelFixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("InferenceTests/Fixtures/\(name)").path
}

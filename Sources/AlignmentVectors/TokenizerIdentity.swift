import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension Checkpoint {
    /// What differs between this model directory's tokenizer and `other`'s, or nil when they agree
    /// or either has no `tokenizer.json`. Only what gives token ids their meaning is compared: the
    /// model (vocabulary, merges) and the added tokens — not padding, truncation or formatting.
    ///
    /// An alignment vector subtracts weights row by row: with another tokenizer, row i of the
    /// embedding may stand for other text in the two models.
    public func tokenizerDifference(from other: Checkpoint) -> String? {
        guard isDirectory, other.isDirectory else { return nil }
        func parts(_ c: Checkpoint) -> (model: JSONValue?, added: JSONValue?)? {
            guard let data = FileManager.default.contents(atPath: Path.join(c.path, "tokenizer.json")),
                let root = try? JSONParser.parse(String(decoding: data, as: UTF8.self))
            else { return nil }
            let added = root["added_tokens"]?.arrayValue.map { tokens in
                JSONValue.array(tokens.map { .array([$0["id"] ?? .null, $0["content"] ?? .null]) })
            }
            return (root["model"], added)
        }
        guard let mine = parts(self), let theirs = parts(other) else { return nil }
        if mine.model != theirs.model {
            return "\(other.path)/tokenizer.json has another vocabulary or merges than \(path)/tokenizer.json"
        }
        if mine.added != theirs.added {
            return "\(other.path)/tokenizer.json has other added tokens than \(path)/tokenizer.json"
        }
        return nil
    }
}

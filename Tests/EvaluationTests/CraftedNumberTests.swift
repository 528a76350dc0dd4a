import AVTestSupport
import Foundation
import Testing

@testable import AlignmentVectors
@testable import Evaluation
@testable import Inference
@testable import SafeTensors

/// Numbers where an integer is expected, crafted to trap a conversion (1e19, 1e300), to be read
/// as "absent" (a string), or to be silently wrong (0, −1): each is refused, naming the key.
@Suite("Crafted numbers in configs, recipes and shards")
struct CraftedNumberTests {
    let config = #"""
        {"model_type": "mistral", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
         "num_attention_heads": 4, "vocab_size": 100, "rms_norm_eps": 1e-5, "EXTRA"}
        """#

    @Test("config.json: sliding_window, num_key_value_heads, head_dim and token ids in range or refused")
    func configs() throws {
        func parse(_ extra: String) throws(InferenceError) -> LlamaConfig {
            let text = config.replacingOccurrences(of: #", "EXTRA"}"#, with: extra.isEmpty ? "}" : ", \(extra)}")
            return try LlamaConfig(json: try! JSONParser.parse(text), file: "config.json")
        }
        #expect(try parse("").slidingWindow == nil)
        #expect(try parse(#""sliding_window": 16"#).slidingWindow == 16)
        #expect(try parse(#""sliding_window": null"#).slidingWindow == nil)
        #expect(try parse(#""num_key_value_heads": 2"#).kvHeads == 2)
        for (extra, key) in [
            (#""sliding_window": 0"#, "sliding_window"), (#""sliding_window": -1"#, "sliding_window"),
            (#""sliding_window": 1e19"#, "sliding_window"), (#""sliding_window": 1e300"#, "sliding_window"),
            (#""num_key_value_heads": "2""#, "num_key_value_heads"), (#""head_dim": 2.5"#, "head_dim"),
            (#""max_position_embeddings": 0"#, "max_position_embeddings"), (#""bos_token_id": -1"#, "bos_token_id"),
        ] {
            #expect("\(extra)") {
                _ = try parse(extra)
            } throws: { "\($0)".contains("\"\(key)\" must be a whole number") }
        }
    }

    @Test("recipe max_shard_size: 1e19, 1e300, −1 and 0.5 are refused; 2GB and 1000 are sizes")
    func recipes() throws {
        let dir = TemporaryDirectory()
        func load(_ value: String) throws(AVError) -> MixRecipe {
            try! Data(#"{"max_shard_size": \#(value)}"#.utf8).write(to: URL(fileURLWithPath: dir.file("r.json")))
            return try MixRecipe.load(dir.file("r.json"))
        }
        #expect(try load(#""2GB""#).maxShardSize == 2_000_000_000)
        #expect(try load("1000").maxShardSize == 1000)
        for bad in ["1e19", "1e300", "-1", "0.5", #""1e300GB""#, #""0.1B""#] {
            #expect("\(bad)") { _ = try load(bad) } throws: { "\($0)".contains("max_shard_size") }
        }
    }

    @Test("a search shard's count and index are checked before they become integers")
    func shards() throws {
        let dir = TemporaryDirectory()
        for (shard, count) in [("0", "1e19"), ("1e300", "2"), ("-1", "2"), ("2", "2"), ("0.5", "2")] {
            let text =
                #"{"format": "av-grid-shard", "command": "search", "inputs": {}, "grid": [[0]], "shard": \#(shard), "#
                + #""count": \#(count), "rows": []}"#
            try Data(text.utf8).write(to: URL(fileURLWithPath: dir.file("s.json")))
            #expect("\(shard)/\(count)") {
                _ = try GridShard.load(dir.file("s.json"), command: "search")
            } throws: { "\($0)".contains("not a search shard") }
        }
        // The same file with sound numbers loads: the refusals above are the numbers', not the format's.
        let sound =
            #"{"format": "av-grid-shard", "command": "search", "inputs": {}, "grid": [[0]], "shard": 1, "count": 2, "#
            + #""rows": []}"#
        try Data(sound.utf8).write(to: URL(fileURLWithPath: dir.file("s.json")))
        let loaded = try GridShard.load(dir.file("s.json"), command: "search")
        #expect(loaded.shard == 1 && loaded.count == 2)
    }
}

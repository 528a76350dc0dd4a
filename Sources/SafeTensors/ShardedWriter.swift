import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Splits tensors into shards the way `huggingface_hub` does (`split_state_dict_into_shards_factory`):
/// in the given order, a new shard starts when adding a tensor would pass `maxShardSize`; a tensor
/// larger than the limit gets a shard of its own.
public enum ShardPlanner {
    /// Groups of indices into `sizes`, one group a shard.
    public static func split(sizes: [Int], maxShardSize: Int) -> [[Int]] {
        var shards: [[Int]] = []
        var current: [Int] = []
        var currentSize = 0
        for (i, size) in sizes.enumerated() {
            if size > maxShardSize {
                shards.append([i])
                continue
            }
            if !current.isEmpty && currentSize + size > maxShardSize {
                shards.append(current)
                current = []
                currentSize = 0
            }
            current.append(i)
            currentSize += size
        }
        if !current.isEmpty { shards.append(current) }
        return shards
    }

    /// The index file's text, as transformers writes it: `json.dumps(index, indent=2, sort_keys=True) + "\n"`.
    public static func indexJSON(totalSize: Int, weightMap: [String: String]) -> String {
        var out = "{\n  \"metadata\": {\n    \"total_size\": \(totalSize)\n  },\n  \"weight_map\": {"
        let keys = weightMap.keys.sorted { pythonOrder($0, $1) }
        for (i, key) in keys.enumerated() {
            out += (i == 0 ? "\n" : ",\n") + "    " + pythonQuoted(key) + ": " + pythonQuoted(weightMap[key]!)
        }
        out += keys.isEmpty ? "}\n}\n" : "\n  }\n}\n"
        return out
    }

    /// Python sorts str by code point.
    static func pythonOrder(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
    }

    /// `json.dumps` of a string with `ensure_ascii=True`.
    static func pythonQuoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 || u.value > 0x7E {
                    for unit in String(u).utf16 {
                        let hex = String(unit, radix: 16)
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    }
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

import AVTestSupport
import Foundation
import Testing

@testable import GGUF
@testable import SafeTensors

/// A metadata entry: key, GGUF type and value bytes.
private struct KV {
    var key: String
    var type: UInt32
    var value: [UInt8]

    static func string(_ k: String, _ v: String) -> KV { KV(key: k, type: 8, value: str(v)) }
    static func int32(_ k: String, _ v: Int32) -> KV { KV(key: k, type: 5, value: u32(UInt32(bitPattern: v))) }
    static func strings(_ k: String, _ v: [String]) -> KV {
        KV(key: k, type: 9, value: u32(8) + u64(UInt64(v.count)) + v.flatMap(str))
    }
    static func ints(_ k: String, _ v: [Int32]) -> KV {
        KV(key: k, type: 9, value: u32(5) + u64(UInt64(v.count)) + v.flatMap { u32(UInt32(bitPattern: $0)) })
    }
}

private func gguf(_ entries: [KV]) -> [UInt8] {
    header(kv: UInt64(entries.count)) + entries.flatMap { str($0.key) + u32($0.type) + $0.value }
}

private let valid: [KV] = [
    .string("general.architecture", "llama"), .int32("llama.attention.head_count", 4),
    .int32("llama.attention.head_count_kv", 2), .int32("llama.embedding_length", 32),
    .int32("llama.block_count", 1), .string("tokenizer.ggml.model", "gpt2"),
    .strings("tokenizer.ggml.tokens", ["a", "b", "ab"]), .strings("tokenizer.ggml.merges", ["a b"]),
    .int32("tokenizer.ggml.bos_token_id", 0),
]

/// Replaces (or adds) entries of `valid` by key.
private func with(_ changes: [KV]) -> [KV] {
    var out = valid.filter { e in !changes.contains { $0.key == e.key } }
    out += changes
    return out
}

@Suite("GGUF metadata from an untrusted file")
struct GGUFMetadataTests {
    @Test("values that would become a bad index, divisor or size are refused naming the file and key")
    func refused() throws {
        let dir = TemporaryDirectory()
        let cases: [([KV], String)] = [
            (with([.int32("tokenizer.ggml.bos_token_id", -1)]), "tokenizer.ggml.bos_token_id is -1"),
            (with([.int32("tokenizer.ggml.eos_token_id", 3)]), "tokenizer.ggml.eos_token_id is 3"),
            (with([.int32("llama.attention.head_count", 0)]), "llama.attention.head_count must be"),
            (with([.int32("llama.attention.head_count", -4)]), "llama.attention.head_count must be"),
            (with([.int32("llama.attention.head_count_kv", 3)]), "not a multiple of head_count_kv"),
            (
                with([.int32("llama.attention.head_count", 32), .int32("llama.attention.head_count_kv", 32)]),
                "head size is 1"
            ),
            (with([.string("llama.attention.head_count", "4")]), "llama.attention.head_count must be"),
            (with([.int32("llama.attention.sliding_window", 0)]), "llama.attention.sliding_window must be"),
            (with([.ints("tokenizer.ggml.tokens", [1, 2, 3])]), "tokenizer.ggml.tokens[0] is 1, not a string"),
            (with([.ints("tokenizer.ggml.merges", [7])]), "tokenizer.ggml.merges[0] is 7, not a string"),
            (valid.filter { $0.key != "llama.embedding_length" }, "llama.embedding_length is missing"),
            (
                with([
                    .string("tokenizer.ggml.model", "llama"),
                    .strings("tokenizer.ggml.tokens", ["a", String(repeating: "x", count: 30_000)]),
                ]), "30000 characters long"
            ),
        ]
        for (i, (entries, message)) in cases.enumerated() {
            let path = dir.file("bad\(i).gguf")
            FileManager.default.createFile(atPath: path, contents: Data(gguf(entries)))
            let file = try GGUFFile(path: path)
            #expect(throws: GGUFError.self) { try GGUFConverter.convert(file, to: dir.file("out\(i)")) }
            do {
                try GGUFConverter.convert(file, to: dir.file("out\(i)"))
            } catch {
                #expect(error.description.hasPrefix(path) && error.description.contains(message), "\(i): \(error)")
            }
            #expect(!FileManager.default.fileExists(atPath: dir.file("out\(i)")), "\(i): wrote an output")
        }
        // The valid metadata converts (no tensors: a config and tokenizer only).
        let path = dir.file("ok.gguf")
        FileManager.default.createFile(atPath: path, contents: Data(gguf(valid)))
        try GGUFConverter.convert(try GGUFFile(path: path), to: dir.file("ok"))
        #expect(FileManager.default.fileExists(atPath: dir.file("ok/tokenizer.json")))
    }

    @Test("a sparse file whose arrays would take gigabytes of memory is refused before they are read")
    func sparseArrays() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("sparse.gguf")
        // 200 million one-byte elements: 200 MB on the file system's books, 4 KB on disk.
        let bytes = header(kv: 1) + str("a") + u32(9) + u32(0) + u64(200_000_000)
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: 210_000_000)
        try handle.close()
        do {
            _ = try GGUFFile(path: path)
            Issue.record("opened")
        } catch {
            #expect(error.description.contains("metadata arrays hold more than"), "\(error)")
        }
    }
}

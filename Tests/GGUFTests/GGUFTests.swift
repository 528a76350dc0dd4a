import AVTestSupport
import Foundation
import Testing

@testable import GGUF
@testable import SafeTensors

func ggufFixture(_ name: String) -> String {
    Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)!.path
}

func header(version: UInt32 = 3, tensors: UInt64 = 0, kv: UInt64 = 0) -> [UInt8] {
    var b: [UInt8] = Array("GGUF".utf8)
    withUnsafeBytes(of: version.littleEndian) { b += $0 }
    withUnsafeBytes(of: tensors.littleEndian) { b += $0 }
    withUnsafeBytes(of: kv.littleEndian) { b += $0 }
    return b
}
func str(_ s: String) -> [UInt8] {
    withUnsafeBytes(of: UInt64(s.utf8.count).littleEndian) { Array($0) } + Array(s.utf8)
}
func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
func padded(_ b: [UInt8]) -> [UInt8] { b + [UInt8](repeating: 0, count: (32 - b.count % 32) % 32) }
func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

@Suite("GGUF reading and dequantization")
struct GGUFTests {
    @Test("every metadata value type reads back")
    func metadata() throws {
        let f = try GGUFFile(path: ggufFixture("types.gguf"))
        #expect(f.version == 3)
        #expect(f.metadata["general.architecture"] == .string("llama"))
        #expect(f.metadata["test.u8"] == .uint8(200) && f.metadata["test.i8"] == .int8(-100))
        #expect(f.metadata["test.u16"] == .uint16(60000) && f.metadata["test.i16"] == .int16(-30000))
        #expect(f.metadata["test.u32"] == .uint32(4_000_000_000) && f.metadata["test.i32"] == .int32(-2_000_000_000))
        #expect(f.metadata["test.f32"] == .float32(1.5) && f.metadata["test.bool"] == .bool(true))
        #expect(f.metadata["test.string"] == .string("naïve ✓"))
        #expect(f.metadata["test.array"]?.arrayValue?.compactMap(\.intValue) == [1, 2, 3])
        #expect(f.metadata["test.u64"] == .uint64(1 << 63) && f.metadata["test.i64"] == .int64(-(1 << 62)))
        #expect(f.metadata["test.f64"] == .float64(2.718281828459045))
        #expect(f.tensors.count == 11 && f.tensors.allSatisfy { $0.shape == [3, 256] })
    }

    @Test(
        "each type dequantizes to gguf-py's values, bit for bit",
        arguments: ["f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k", "q5_k", "q6_k"])
    func dequantize(type: String) throws {
        let f = try GGUFFile(path: ggufFixture("types.gguf"))
        let reference = try SafeTensorsFile(path: ggufFixture("types_reference.safetensors"))
        let t = try #require(f.info("t.\(type)"))
        let ours = try f.floats(t)
        let want = try reference.floats(named: "t.\(type)")
        #expect(ours.count == want.count)
        let differing = zip(ours, want).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(
            differing == 0,
            "\(type): \(differing) values differ; first \(zip(ours, want).first { $0.bitPattern != $1.bitPattern }.map { "\($0)" } ?? "")"
        )
    }

    static let malformed: [(String, [UInt8], String)] = [
        ("BAD_MAGIC", Array("FUGG".utf8) + [3, 0, 0, 0] + [UInt8](repeating: 0, count: 16), "bad magic"),
        ("BAD_VERSION_0", header(version: 0), "version 0"),
        ("BAD_VERSION_1", header(version: 1), "version 1"),
        ("BAD_VERSION_FUTURE", header(version: 4), "version 4"),
        ("BAD_N_TENSORS", header(tensors: .max), "larger than the file"),
        ("BAD_N_KV", header(kv: .max), "larger than the file"),
        ("KV_BAD_KEY_SIZE", header(kv: 1) + u64(.max), "string length"),
        ("KV_EMPTY_KEY", header(kv: 1) + str("") + u32(4) + u32(1), "empty metadata key"),
        ("KV_BAD_TYPE", header(kv: 1) + str("k") + u32(13) + u32(1), "unknown metadata value type 13"),
        (
            "KV_DUPLICATE_KEY", header(kv: 2) + str("k") + u32(4) + u32(1) + str("k") + u32(4) + u32(2),
            "duplicate metadata key"
        ),
        ("KV_BAD_ALIGN", header(kv: 1) + str("general.alignment") + u32(4) + u32(13), "power of two"),
        ("KV_WRONG_TYPE_ALIGN", header(kv: 1) + str("general.alignment") + u32(5) + u32(32), "must be a u32"),
        (
            "TENSORS_BAD_NAME_SIZE",
            header(tensors: 1) + str(String(repeating: "n", count: 64)) + u32(1) + u64(32) + u32(0) + u64(0), "64 bytes"
        ),
        (
            "TENSORS_BAD_N_DIMS",
            header(tensors: 1) + str("t") + u32(5) + u64(1) + u64(1) + u64(1) + u64(1) + u64(1) + u32(0) + u64(0),
            "5 dimensions"
        ),
        ("TENSORS_BAD_SHAPE", header(tensors: 1) + str("t") + u32(1) + u64(.max) + u32(0) + u64(0), "too large"),
        (
            "TENSORS_NE_TOO_BIG",
            header(tensors: 1) + str("t") + u32(4) + u64(UInt64(Int32.max)) + u64(UInt64(Int32.max))
                + u64(UInt64(Int32.max)) + u64(UInt64(Int32.max)) + u32(0)
                + u64(0), "overflows"
        ),
        (
            "TENSORS_BAD_TYPE", header(tensors: 1) + str("t") + u32(1) + u64(32) + u32(39) + u64(0),
            "unknown ggml type 39"
        ),
        ("TENSORS_BAD_BLOCK", header(tensors: 1) + str("t") + u32(1) + u64(33) + u32(2) + u64(0), "not a multiple"),
        ("TENSORS_BAD_OFFSET", header(tensors: 1) + str("t") + u32(1) + u64(4) + u32(0) + u64(.max), "past the end"),
        (
            "TENSORS_DUPLICATE_NAME",
            header(tensors: 2) + str("t") + u32(1) + u64(1) + u32(0) + u64(0) + str("t") + u32(1) + u64(1) + u32(0)
                + u64(32),
            "duplicate tensor name"
        ),
        (
            "TENSORS_INCONSISTENT_ALIGN",
            header(tensors: 2) + str("a") + u32(1) + u64(1) + u32(0) + u64(0) + str("b") + u32(1) + u64(1) + u32(0)
                + u64(4),
            "expected 32"
        ),
        ("DATA_NOT_ENOUGH_DATA", header(tensors: 1) + str("t") + u32(1) + u64(8) + u32(0) + u64(0), "run past the end"),
        ("TRUNCATED", Array(header(kv: 1).prefix(20)), "end of file"),
        ("EMPTY", [], "too small"),
    ]

    @Test("malformed files are refused with their own error, never a crash")
    func malformedCorpus() throws {
        let dir = TemporaryDirectory()
        for (label, bytes, words) in Self.malformed {
            let path = dir.file("\(label).gguf")
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            do {
                _ = try GGUFFile(path: path)
                Issue.record("\(label): opened")
            } catch {
                #expect(error.description.contains(words) && error.description.hasPrefix(path), "\(label): \(error)")
            }
        }
        // Accepted: no tensors, no keys; a zero-dimension tensor; alignment 1.
        let ok: [[UInt8]] = [
            header(),
            padded(header(tensors: 1) + str("t") + u32(2) + u64(0) + u64(3) + u32(0) + u64(0)),
            header(tensors: 1, kv: 1) + str("general.alignment") + u32(4) + u32(1) + str("t") + u32(1) + u64(2) + u32(0)
                + u64(0) + [0, 0, 0, 0, 0, 0, 0, 0],
        ]
        for (i, bytes) in ok.enumerated() {
            let path = dir.file("ok\(i).gguf")
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            #expect(throws: Never.self) { try GGUFFile(path: path) }
        }
    }

    @Test("seeded mutations of a valid file: each opens consistently or is refused")
    func fuzz() throws {
        let dir = TemporaryDirectory()
        // The whole file: a truncated seed made every mutant invalid, so the check below never ran.
        let seed = [UInt8](try #require(FileManager.default.contents(atPath: ggufFixture("types.gguf"))))
        var opened = 0
        var state: UInt64 = 0xBADC0DE
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        let path = dir.file("fuzz.gguf")
        for _ in 0..<2000 {
            var bytes = seed
            for _ in 0..<(1 + Int(next() % 3)) {
                let at = Int(next() % UInt64(bytes.count))
                switch next() % 3 {
                case 0: bytes[at] = UInt8(truncatingIfNeeded: next())
                case 1: bytes = Array(bytes.prefix(at))
                default: bytes[at] ^= 0x80
                }
            }
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            if let f = try? GGUFFile(path: path) {
                opened += 1
                for t in f.tensors {
                    #expect(f.dataStart + t.offset + t.byteCount <= bytes.count)
                    _ = try? f.floats(t)  // dequantizing what opened never traps
                }
            }
        }
        #expect(opened > 100, "only \(opened) of 2000 mutants opened: the fuzz would not test the accepted path")
    }
}

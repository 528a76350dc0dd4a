import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors
@testable import Tensors

/// `H` and `Z16` of the reference tests: one I32 [2,2] tensor and its 16 bytes.
let referenceHeader = #"{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}"#
let z16 = [UInt8](repeating: 0, count: 16)

struct MalformedCase: CustomTestStringConvertible, Sendable {
    var label: String
    var bytes: [UInt8]
    var rule: String
    /// Words the message must contain: the tensor, the values found.
    var mentions: [String]
    var testDescription: String { label }
}

@Suite("Malformed files: each refused with its own error, never a crash")
struct MalformedTests {
    static let cases: [MalformedCase] = [
        // The reference implementation's rejection tests (formats.md §2).
        .init(label: "test_header_too_small: empty file", bytes: [], rule: "HeaderTooSmall", mentions: ["0 bytes"]),
        .init(label: "7 bytes", bytes: [1, 0, 0, 0, 0, 0, 0], rule: "HeaderTooSmall", mentions: ["7 bytes"]),
        .init(
            label: "test_invalid_header_length: N=60, nothing after", bytes: [0x3C, 0, 0, 0, 0, 0, 0, 0],
            rule: "InvalidHeaderLength", mentions: ["60"]),
        .init(
            label: "test_header_too_large",
            bytes: rawSafetensors(referenceHeader, data: z16, length: 0xFFFF_FF00_0000_003C), rule: "HeaderTooLarge",
            mentions: ["100000000"]),
        .init(
            label: "N = 2^64-1", bytes: rawSafetensors("{}", length: UInt64.max), rule: "HeaderTooLarge",
            mentions: ["18446744073709551615"]),
        .init(
            label: "N just over the cap", bytes: rawSafetensors("{}", length: 100_000_001), rule: "HeaderTooLarge",
            mentions: []),
        .init(
            label: "N larger than the file", bytes: rawSafetensors("{}", length: 1000), rule: "InvalidHeaderLength",
            mentions: ["1000", "10-byte"]),
        .init(
            label: "test_invalid_header_non_utf8", bytes: [1, 0, 0, 0, 0, 0, 0, 0, 0xFF], rule: "InvalidHeader",
            mentions: ["UTF-8"]),
        .init(
            label: "non-UTF-8 tensor name",
            bytes: [UInt8](#"{"a"#.utf8) + [0xC3, 0x28]
                + [UInt8](#"":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#.utf8),
            rule: "InvalidHeader", mentions: []
        ).withLength(),
        .init(
            label: "test_invalid_header_not_json", bytes: rawSafetensors("{"), rule: "InvalidHeaderDeserialization",
            mentions: ["expected a string key"]),
        .init(label: "N=0", bytes: rawSafetensors(""), rule: "InvalidHeaderDeserialization", mentions: []),
        .init(
            label: "top-level array", bytes: rawSafetensors("[]"), rule: "InvalidHeaderDeserialization",
            mentions: ["an array"]),
        .init(
            label: "NUL padding", bytes: rawSafetensors("{}\0\0"), rule: "InvalidHeaderDeserialization",
            mentions: ["trailing characters"]),
        .init(
            label: "UTF-8 BOM", bytes: rawSafetensors("\u{FEFF}{}"), rule: "InvalidHeaderDeserialization", mentions: []),
        .init(
            label: "test_metadata_incomplete_buffer: trailing bytes",
            bytes: rawSafetensors(referenceHeader, data: z16 + Array("extra_bogus_data_for_polyglot_file".utf8)),
            rule: "MetadataIncompleteBuffer",
            mentions: ["84", "118", "34 bytes"]),
        .init(
            label: "test_metadata_incomplete_buffer: 14 of 16 bytes",
            bytes: rawSafetensors(referenceHeader, data: [UInt8](repeating: 0, count: 14)),
            rule: "DataPastEnd", mentions: ["\"test\"", "16", "14"]),
        .init(
            label: "test_invalid_info: [0,4] for I32 [2,2]",
            bytes: rawSafetensors(#"{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,4]}}"#),
            rule: "TensorInvalidInfo", mentions: ["\"test\"", "4 bytes", "needs 16"]),
        .init(
            label: "test_validation_overflow: [2, 2^64-2]",
            bytes: rawSafetensors(
                #"{"test":{"dtype":"I32","shape":[2,18446744073709551614],"data_offsets":[0,16]}}"#, data: z16),
            rule: "ValidationOverflow",
            mentions: ["18446744073709551614"]),
        .init(
            label: "test_validation_overflow: [2, 2^63-1]",
            bytes: rawSafetensors(
                #"{"test":{"dtype":"I32","shape":[2,9223372036854775807],"data_offsets":[0,16]}}"#, data: z16),
            rule: "ValidationOverflow",
            mentions: ["overflows"]),
        .init(
            label: "test_json_attack: ten tensors at [0,16]",
            bytes: rawSafetensors(
                "{"
                    + (0..<10).map { #""t\#($0)":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}"# }.joined(
                        separator: ",") + "}", data: z16),
            rule: "InvalidOffset", mentions: ["[0, 16]", "begin at 16"]),
        .init(
            label: "F4 with an odd element count",
            bytes: rawSafetensors(#"{"t":{"dtype":"F4","shape":[1,3],"data_offsets":[0,2]}}"#, data: [0, 0]),
            rule: "MisalignedSlice", mentions: ["3 elements"]),
        .init(
            label: "F32 [1024,1024] with 1 data byte",
            bytes: rawSafetensors(#"{"t":{"dtype":"F32","shape":[1024,1024],"data_offsets":[0,4194304]}}"#, data: [0]),
            rule: "DataPastEnd",
            mentions: ["4194304"]),
        .init(
            label: "offsets [16, 0]",
            bytes: rawSafetensors(#"{"t":{"dtype":"U8","shape":[16],"data_offsets":[16,0]}}"#, data: z16),
            rule: "InvalidOffset",
            mentions: ["[16, 0]"]),
        .init(
            label: "offsets [0, 2^64-1]",
            bytes: rawSafetensors(
                #"{"t":{"dtype":"U8","shape":[16],"data_offsets":[0,18446744073709551615]}}"#, data: z16),
            rule: "TensorInvalidInfo", mentions: ["18446744073709551615"]),
        .init(
            label: "{} plus one byte", bytes: rawSafetensors("{}", data: [0]), rule: "MetadataIncompleteBuffer",
            mentions: []),
        .init(
            label: "a gap between tensors",
            bytes: rawSafetensors(
                #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}}"#,
                data: [UInt8](repeating: 1, count: 12)), rule: "InvalidOffset", mentions: ["\"b\"", "begin at 4"]),
        .init(
            label: "overlapping tensors",
            bytes: rawSafetensors(
                #"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}}"#,
                data: [UInt8](repeating: 1, count: 12)), rule: "InvalidOffset", mentions: ["\"b\""]),
        .init(
            label: "first tensor not at 0",
            bytes: rawSafetensors(
                #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#, data: [UInt8](repeating: 1, count: 8)),
            rule: "InvalidOffset",
            mentions: ["begin at 0"]),
        .init(
            label: "duplicate tensor names",
            bytes: rawSafetensors(
                #"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#
            ),
            rule: "DuplicateTensorName", mentions: ["\"a\""]),
        .init(
            label: "duplicate field in an entry",
            bytes: rawSafetensors(#"{"a":{"dtype":"U8","dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#),
            rule: "InvalidHeaderDeserialization", mentions: ["duplicate field \"dtype\""]),
        .init(
            label: "duplicate __metadata__", bytes: rawSafetensors(#"{"__metadata__":{},"__metadata__":{}}"#),
            rule: "InvalidHeaderDeserialization",
            mentions: ["duplicate"]),
        .init(
            label: "non-string metadata", bytes: rawSafetensors(#"{"__metadata__":{"n":1}}"#),
            rule: "InvalidHeaderDeserialization",
            mentions: ["\"n\"", "a number"]),
        .init(
            label: "metadata an array", bytes: rawSafetensors(#"{"__metadata__":[]}"#),
            rule: "InvalidHeaderDeserialization", mentions: ["__metadata__"]),
        .init(
            label: "unknown dtype", bytes: rawSafetensors(#"{"a":{"dtype":"i32","shape":[0],"data_offsets":[0,0]}}"#),
            rule: "InvalidHeaderDeserialization",
            mentions: ["\"i32\"", "case-sensitive"]),
        .init(
            label: "missing field", bytes: rawSafetensors(#"{"a":{"dtype":"U8","data_offsets":[0,0]}}"#),
            rule: "InvalidHeaderDeserialization",
            mentions: ["\"a\"", "shape"]),
        .init(
            label: "negative dimension",
            bytes: rawSafetensors(#"{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}"#),
            rule: "InvalidHeaderDeserialization", mentions: ["-1"]),
        .init(
            label: "float dimension",
            bytes: rawSafetensors(#"{"a":{"dtype":"U8","shape":[2.5],"data_offsets":[0,0]}}"#),
            rule: "InvalidHeaderDeserialization",
            mentions: ["2.5"]),
        .init(
            label: "three offsets", bytes: rawSafetensors(#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0,0]}}"#),
            rule: "InvalidHeaderDeserialization",
            mentions: ["2 integers"]),
        .init(
            label: "offsets as strings",
            bytes: rawSafetensors(#"{"a":{"dtype":"U8","shape":[0],"data_offsets":["0","0"]}}"#),
            rule: "InvalidHeaderDeserialization", mentions: ["a string"]),
        .init(
            label: "entry not an object", bytes: rawSafetensors(#"{"a":3}"#), rule: "InvalidHeaderDeserialization",
            mentions: ["\"a\""]),
        .init(
            label: "lone surrogate escape",
            bytes: rawSafetensors(#"{"\ud800":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#),
            rule: "InvalidHeaderDeserialization", mentions: ["surrogate"]),
        .init(
            label: "a shape of 5,001 dimensions (arrays in a header are bounded)",
            bytes: rawSafetensors(
                #"{"a":{"dtype":"U8","data_offsets":[0,0],"shape":["# + String(repeating: "1,", count: 5_000) + "0]}}"),
            rule: "InvalidHeaderDeserialization", mentions: ["more than 4096 elements"]),
        .init(
            label: "nesting bomb", bytes: rawSafetensors(#"{"__metadata__":"# + String(repeating: "[", count: 10_000)),
            rule: "InvalidHeaderDeserialization",
            mentions: []),
    ]

    @Test("refused with the right rule and a message naming what was found", arguments: cases)
    func refused(c: MalformedCase) {
        let dir = TemporaryDirectory()
        guard let error = openError(c.bytes, in: dir) else {
            Issue.record("\(c.label): opened")
            return
        }
        #expect(error.rule == c.rule, "\(c.label): \(error)")
        #expect(error.description.hasPrefix(dir.file("case.safetensors") + ": "))
        for word in c.mentions {
            #expect(error.description.contains(word), "\(c.label): '\(word)' not in: \(error)")
        }
    }

    static let accepted: [(String, [UInt8])] = [
        (
            "test_empty_shapes_allowed: a scalar",
            rawSafetensors(#"{"test":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}"#, data: [1, 0, 0, 0])
        ),
        ("test_zero_sized_tensor", rawSafetensors(#"{"test":{"dtype":"I32","shape":[2,0],"data_offsets":[0,0]}}"#)),
        ("test_whitespace_padded_header", rawSafetensors("{}\r \t\n")),
        ("test_whitespace_leading_padded_header", rawSafetensors("\t\n{}\r ")),
        ("test_deserialization", rawSafetensors(referenceHeader, data: z16)),
        (
            "unsorted but contiguous JSON",
            rawSafetensors(
                #"{"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#,
                data: [1, 2, 3, 4])
        ),
        ("empty name", rawSafetensors(#"{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#, data: [7])),
        ("null metadata", rawSafetensors(#"{"__metadata__":null}"#)),
        (
            "unknown entry fields ignored",
            rawSafetensors(#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":[1,{"x":2}]}}"#, data: [7])
        ),
        (
            "zero-size tensors sharing an offset",
            rawSafetensors(
                #"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}}"#
            )
        ),
        ("data unaligned (N=60)", rawSafetensors(referenceHeader, data: z16)),
    ]

    @Test("inputs the reference accepts open")
    func accepted() throws {
        let dir = TemporaryDirectory()
        for (label, bytes) in Self.accepted {
            let error = openError(bytes, in: dir)
            #expect(error == nil, "\(label): \(String(describing: error))")
        }
        let path = dir.file("scalar.safetensors")
        writeBytes(
            rawSafetensors(#"{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}"#, data: [0, 0, 0x60, 0x40]),
            to: path)
        #expect(try SafeTensorsFile(path: path).floats(named: "s") == [3.5])
    }

    @Test("a directory, a missing file and an unreadable one are I/O errors")
    func ioErrors() throws {
        let dir = TemporaryDirectory()
        #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(path: dir.path) }
        do {
            _ = try SafeTensorsFile(path: dir.file("missing.safetensors"))
            Issue.record("opened a missing file")
        } catch {
            #expect(error.rule == "IOError")
            #expect(error.description.contains("missing.safetensors"))
        }
    }
}

extension MalformedCase {
    /// Puts the right length prefix on bytes given as a bare header.
    func withLength() -> MalformedCase {
        var c = self
        c.bytes = withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { Array($0) } + bytes
        return c
    }
}

import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Text files given as inputs (pairs, levels, prompts, held-out text): read whole, checked to be
/// UTF-8, a leading byte-order mark dropped, lines split on LF with a trailing CR removed.
public enum TextInput {
    /// The file's text. A missing or unreadable file is an I/O error (exit 4); bytes that are not
    /// UTF-8 are named by offset (exit 3).
    public static func read(_ path: String) throws(InferenceError) -> String {
        guard FileKind(of: path, followingLinks: true) != .missing else {
            throw .file(SafeTensorsError(file: path, .io(operation: "read", message: "no such file")))
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .file(
                SafeTensorsError(
                    file: path, .io(operation: "read", message: "cannot read the file (a directory, or no permission)"))
            )
        }
        return try decode([UInt8](data), name: path)
    }

    /// Everything on standard input up to its end, checked as `read` checks a file (named
    /// "standard input" in errors): for `--prompt -`, so a prompt keeps its exact bytes.
    public static func readStandardInput() throws(InferenceError) -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                let message = String(cString: strerror(errno))
                throw .file(SafeTensorsError(file: "standard input", .io(operation: "read", message: message)))
            }
            bytes += chunk[0..<n]
        }
        return try decode(bytes, name: "standard input")
    }

    /// `bytes` as text: a leading byte-order mark dropped, invalid UTF-8 named by offset.
    static func decode(_ bytes: [UInt8], name: String) throws(InferenceError) -> String {
        var bytes = bytes
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .input(file: name, message: "not valid UTF-8 (at byte \(firstInvalidUTF8(bytes)))")
        }
        return text
    }

    /// The file's lines with their 1-based numbers, CR before LF removed; blank lines left out.
    ///
    /// Lines are split on LF bytes, not Characters: Swift reads CR LF as one Character, so a
    /// Character split would leave a CRLF file in one line.
    public static func lines(_ path: String) throws(InferenceError) -> [(number: Int, text: String)] {
        splitLines(try read(path))
    }

    /// `text` split as ``lines(_:)`` splits a file.
    public static func splitLines(_ text: String) -> [(number: Int, text: String)] {
        var out: [(Int, String)] = []
        let bytes = Array(text.utf8)
        var start = 0
        var number = 1
        while start <= bytes.count {
            let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
            var stop = end
            if stop > start && bytes[stop - 1] == 0x0D { stop -= 1 }
            let line = bytes[start..<stop]
            // Splitting at an ASCII byte keeps every line valid UTF-8.
            if !line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) {
                out.append((number, String(decoding: line, as: UTF8.self)))
            }
            start = end + 1
            number += 1
        }
        return out
    }

    /// The offset of the first byte that does not continue valid UTF-8.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        while case .scalarValue(let scalar) = decoder.decode(&iterator) { offset += UTF8.width(scalar) }
        return offset
    }
}

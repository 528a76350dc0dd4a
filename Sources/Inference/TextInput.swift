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
    public static func lines(_ path: String) throws(InferenceError) -> [(number: Int, text: String)] {
        let text = try read(path)
        var out: [(Int, String)] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var s = Substring(line)
            if s.hasSuffix("\r") { s = s.dropLast() }
            if s.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            out.append((i + 1, String(s)))
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

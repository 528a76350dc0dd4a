import Evaluation
import SafeTensors
import Tensors

// Glibc's stdout and stderr are mutable globals to Swift 6; they are only read here.
#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    @preconcurrency import Glibc
#endif

/// Text formatting for tables and numbers.
enum Format {
    /// 1234567 → "1,234,567".
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }

    /// 22713216 → "22.7M".
    static func short(_ n: Int) -> String {
        let v = Double(n)
        if v >= 1e9 { return String(cFormat: "%.1fB", v / 1e9) }
        if v >= 1e6 { return String(cFormat: "%.1fM", v / 1e6) }
        if v >= 1e3 { return String(cFormat: "%.1fK", v / 1e3) }
        return String(n)
    }

    /// Bytes in binary units: "86.7 MiB".
    static func bytes(_ n: Int) -> String { ByteCount.describe(n) }

    /// A share with its interval, in percent: "81.2% [68–90]".
    static func share(_ value: Double, _ interval: Interval, decimals: Int = 1) -> String {
        interval.percent(of: value, decimals: decimals)
    }

    /// A signed mean with its interval: "+0.1234 [+0.0521, +0.1950]".
    static func mean(_ value: Double, _ interval: Interval, format: String = "%+.4f") -> String {
        String(cFormat: format, value) + " [" + String(cFormat: format, interval.lower) + ", "
            + String(cFormat: format, interval.upper) + "]"
    }

    /// An interval as JSON: `[lower, upper]`.
    static func json(_ interval: Interval) -> JSONValue { .array([.double(interval.lower), .double(interval.upper)]) }

    /// Rows padded into columns; columns listed in `rightAligned` are aligned right.
    static func table(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) -> String {
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                let pad = String(repeating: " ", count: widths[i] - c.count)
                return rightAligned.contains(i) ? pad + c : c + pad
            }.joined(separator: "  ").trimmingWhitespace(newlines: false)
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}

/// XML text and attribute values (SVG plots, JUnit reports).
enum XML {
    /// `s` escaped for XML text and attributes: markup characters as entities, and the control
    /// characters XML 1.0 forbids (all below U+0020 but tab, LF and CR) as U+FFFD, so a level,
    /// check or domain name never becomes markup or makes the file invalid.
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            // Characters XML 1.0 does not allow at all: controls but tab, LF and CR; U+FFFE and U+FFFF.
            case _
            where (c.value < 0x20 && ![0x09, 0x0A, 0x0D].contains(c.value)) || c.value >= 0xFFFE && c.value <= 0xFFFF:
                out += "\u{FFFD}"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}

/// The C standard streams, which `print` also writes through.
enum StandardStreams {
    nonisolated(unsafe) static let output: UnsafeMutablePointer<FILE> = stdout
    nonisolated(unsafe) static let error: UnsafeMutablePointer<FILE> = stderr

    /// Flushes standard output; false when anything written to it was lost (a closed pipe, a full disk).
    static func flushOutput() -> Bool { fflush(output) == 0 && ferror(output) == 0 }
}

/// Writes to standard error (errors there have nowhere to be reported, so they are ignored).
func printError(_ text: String) {
    fputs(text + "\n", StandardStreams.error)
}

/// Writes to standard output now, failing with exit 4 when it cannot be written.
func writeOutput(_ text: String) throws {
    fputs(text, StandardStreams.output)
    guard StandardStreams.flushOutput() else {
        throw CLIError(message: "cannot write to standard output: \(String(cString: strerror(errno)))", code: .io)
    }
}

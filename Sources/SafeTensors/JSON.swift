/// A strict JSON reader and the compact writer the safetensors header needs.
///
/// Foundation's JSONSerialization cannot serve here: it turns integers past 2^53 into doubles,
/// keeps one of two duplicate keys silently, and cannot point at the offending byte. This reader
/// parses the grammar of RFC 8259 exactly (as serde_json does), keeps integers as `UInt64` with
/// overflow detected, records duplicate keys, and reports errors by byte offset.
public indirect enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// A number: its text, and its value when it is a non-negative integer that fits `UInt64`.
    case number(text: String, unsigned: UInt64?)
    case string(String)
    case array([JSONValue])
    /// Members in document order; duplicates are kept so that the caller can refuse them.
    case object([(key: String, value: JSONValue)])

    /// Structural equality: numbers compare by their text, objects by their members in order.
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case let (.bool(a), .bool(b)): a == b
        case let (.number(a, _), .number(b, _)): a == b
        case let (.string(a), .string(b)): a == b
        case let (.array(a), .array(b)): a == b
        case let (.object(a), .object(b)):
            a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }

    /// A short name of the value's kind, for error messages.
    public var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// Where and why JSON text is malformed.
public struct JSONSyntaxError: Error, Equatable, Sendable {
    /// The byte offset where parsing stopped.
    public var offset: Int
    /// What was expected or found there.
    public var message: String
}

/// Parses JSON text from raw bytes. Leading and trailing whitespace is allowed, anything else after
/// the value is an error ("trailing characters"), as in serde_json.
public struct JSONParser {
    private let bytes: UnsafeRawBufferPointer
    private var i = 0
    private var depth = 0
    private var maxArrayLength = Int.max
    private static let maxDepth = 128

    /// Parses one JSON value from UTF-8 `bytes` (RFC 8259; nesting at most 128 deep), with arrays of
    /// at most `maxArrayLength` elements: a parsed value takes tens of bytes of memory for each byte
    /// of text, so a reader of a format whose arrays are short bounds them.
    /// - Throws: `JSONSyntaxError` with the byte offset of the first error, trailing text included.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxArrayLength: Int = .max) throws(JSONSyntaxError)
        -> JSONValue
    {
        var parser = JSONParser(bytes: bytes)
        parser.maxArrayLength = maxArrayLength
        parser.skipWhitespace()
        let value = try parser.parseValue()
        parser.skipWhitespace()
        if parser.i != bytes.count { throw parser.error("trailing characters") }
        return value
    }

    /// Parses one JSON value from `text`, as `parse(_:)` does its UTF-8 bytes.
    public static func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue {
        var copy = text
        do {
            return try copy.withUTF8 { buffer in try parse(UnsafeRawBufferPointer(buffer)) }
        } catch let error as JSONSyntaxError {
            throw error
        } catch {
            throw JSONSyntaxError(offset: 0, message: "\(error)")
        }
    }

    private init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    private func error(_ message: String) -> JSONSyntaxError { JSONSyntaxError(offset: i, message: message) }

    private mutating func skipWhitespace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
    }

    private mutating func parseValue() throws(JSONSyntaxError) -> JSONValue {
        guard i < bytes.count else { throw error("unexpected end of input") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("expected a value")
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw error("unexpected end of input") }
        for k in 0..<n where bytes[i + k] != word.utf8Start[k] { throw error("expected a value") }
        i += n
    }

    private mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        if depth > Self.maxDepth { throw error("nesting deeper than \(Self.maxDepth)") }
    }

    private mutating func parseObject() throws(JSONSyntaxError) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        i += 1
        var members: [(key: String, value: JSONValue)] = []
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw error("expected ':'") }
            i += 1
            skipWhitespace()
            let value = try parseValue()
            members.append((key, value))
            skipWhitespace()
            guard i < bytes.count else { throw error("unexpected end of input") }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
            } else if bytes[i] == UInt8(ascii: "}") {
                i += 1
                return .object(members)
            } else {
                throw error("expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray() throws(JSONSyntaxError) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        i += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
            i += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            guard elements.count < maxArrayLength else {
                throw error("an array of more than \(maxArrayLength) elements")
            }
            elements.append(try parseValue())
            skipWhitespace()
            guard i < bytes.count else { throw error("unexpected end of input") }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
            } else if bytes[i] == UInt8(ascii: "]") {
                i += 1
                return .array(elements)
            } else {
                throw error("expected ',' or ']'")
            }
        }
    }

    private mutating func parseNumber() throws(JSONSyntaxError) -> JSONValue {
        let start = i
        var negative = false
        if bytes[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        func digit(_ k: Int) -> Bool { k < bytes.count && bytes[k] >= 0x30 && bytes[k] <= 0x39 }
        guard digit(i) else { throw error("invalid number") }
        var value: UInt64? = 0
        if bytes[i] == 0x30 {
            i += 1
        } else {
            while digit(i) {
                if let v = value {
                    let (m, o1) = v.multipliedReportingOverflow(by: 10)
                    let (s, o2) = m.addingReportingOverflow(UInt64(bytes[i] - 0x30))
                    value = (o1 || o2) ? nil : s
                }
                i += 1
            }
        }
        var integral = true
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            integral = false
            i += 1
            guard digit(i) else { throw error("invalid number") }
            while digit(i) { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            integral = false
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digit(i) else { throw error("invalid number") }
            while digit(i) { i += 1 }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        return .number(text: text, unsigned: (integral && !negative) ? value : nil)
    }

    private mutating func parseString() throws(JSONSyntaxError) -> String {
        i += 1  // opening quote
        var out = [UInt8]()
        while true {
            guard i < bytes.count else { throw error("unterminated string") }
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                i += 1
                break
            }
            if b < 0x20 { throw error("control character in string") }
            if b == UInt8(ascii: "\\") {
                i += 1
                guard i < bytes.count else { throw error("unterminated string") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u")
                        else {
                            throw error("lone leading surrogate in hex escape")
                        }
                        i += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw error("invalid low surrogate in hex escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw error("lone trailing surrogate in hex escape")
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
                default:
                    i -= 1
                    throw error("invalid escape")
                }
                continue
            }
            out.append(b)
            i += 1
        }
        // The bytes were validated as UTF-8 before parsing; decoding cannot repair anything here.
        return String(decoding: out, as: UTF8.self)
    }

    private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw error("unterminated hex escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw error("invalid hex escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }
}

/// Writes JSON the way serde_json's compact formatter does, so headers match Python's byte for byte.
public enum JSONWriter {
    /// `text` as a JSON string literal: `"` and `\` escaped, control characters as `\n`-style or
    /// `\u00xx` escapes, everything else (including non-ASCII) as raw UTF-8.
    public static func quoted(_ text: String, into out: inout [UInt8]) {
        out.append(0x22)
        for b in text.utf8 {
            switch b {
            case 0x22: out += [0x5C, 0x22]
            case 0x5C: out += [0x5C, 0x5C]
            case 0x08: out += [0x5C, UInt8(ascii: "b")]
            case 0x0C: out += [0x5C, UInt8(ascii: "f")]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 15)]]
            default: out.append(b)
            }
        }
        out.append(0x22)
    }

    /// `text` as a JSON string literal: quotes, backslashes and control characters escaped, the rest as it is.
    public static func quoted(_ text: String) -> String {
        var out = [UInt8]()
        quoted(text, into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

extension JSONValue {
    /// A JSON integer.
    public static func int(_ v: Int) -> JSONValue { .number(text: String(v), unsigned: v >= 0 ? UInt64(v) : nil) }
    /// A JSON number from a double: shortest round-trip text; non-finite values become null.
    public static func double(_ v: Double) -> JSONValue { v.isFinite ? .number(text: "\(v)", unsigned: nil) : .null }

    /// The member `key` of an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last(where: { $0.key == key })?.value
    }

    /// The string, when the value is one.
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    /// The number as a Double, when the value is one.
    public var doubleValue: Double? { if case .number(let t, _) = self { Double(t) } else { nil } }
    /// The elements, when the value is an array.
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }

    /// The value as JSON text: compact, or indented by two spaces per level.
    public func rendered(pretty: Bool = false) -> String {
        var out: [UInt8] = []
        render(into: &out, pretty: pretty, level: 0)
        return String(decoding: out, as: UTF8.self)
    }

    private func render(into out: inout [UInt8], pretty: Bool, level: Int) {
        func newline(_ l: Int) {
            guard pretty else { return }
            out.append(0x0A)
            out += [UInt8](repeating: 0x20, count: 2 * l)
        }
        switch self {
        case .null: out += Array("null".utf8)
        case .bool(let b): out += Array((b ? "true" : "false").utf8)
        case .number(let text, _): out += Array(text.utf8)
        case .string(let s): JSONWriter.quoted(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            // Arrays of scalars stay on one line: shapes and offsets read better that way.
            let flat = items.allSatisfy {
                if case .array = $0 { false } else if case .object = $0 { false } else { true }
            }
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")); if flat && pretty { out.append(0x20) } }
                if !flat { newline(level + 1) }
                item.render(into: &out, pretty: pretty, level: level + 1)
            }
            if !flat && !items.isEmpty { newline(level) }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, m) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(level + 1)
                JSONWriter.quoted(m.key, into: &out)
                out.append(UInt8(ascii: ":"))
                if pretty { out.append(0x20) }
                m.value.render(into: &out, pretty: pretty, level: level + 1)
            }
            if !members.isEmpty { newline(level) }
            out.append(UInt8(ascii: "}"))
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing whitespace: spaces and tabs, and newlines too unless
    /// `newlines` is false (Foundation's `.whitespaces` against `.whitespacesAndNewlines`).
    public func trimmingWhitespace(newlines: Bool = true) -> String {
        let drop: (Character) -> Bool = { c in c.isWhitespace && (newlines || !c.isNewline) }
        guard let first = firstIndex(where: { !drop($0) }), let last = lastIndex(where: { !drop($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}

extension String {
    /// The text with every occurrence of `target` replaced, matched byte for byte in UTF-8 (not by
    /// `Character`, so `"\r"` is found inside `"\r\n"`, as Foundation's `replacingOccurrences` finds it).
    public func replacingAll(_ target: String, with replacement: String) -> String {
        let needle = Array(target.utf8)
        guard !needle.isEmpty else { return self }
        let bytes = Array(utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == needle[0], i + needle.count <= bytes.count, bytes[i..<i + needle.count].elementsEqual(needle)
            {
                out += replacement.utf8
                i += needle.count
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The text padded with spaces on the right to `width` characters (unchanged when longer).
    public func padded(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

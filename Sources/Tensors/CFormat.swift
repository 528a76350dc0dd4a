#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension String {
    /// Text formatted by C's `printf` rules (`"%.3f"`, `"%08X"`, `"%-12s"` with a C string):
    /// what Foundation's `String(format:)` gives for the numeric conversions av uses, without
    /// linking full Foundation. `%@` is not supported; pass Swift strings through interpolation.
    public init(cFormat format: String, _ arguments: any CVarArg...) {
        let count = withVaList(arguments) { vsnprintf(nil, 0, format, $0) }
        guard count > 0 else {
            self = ""
            return
        }
        var buffer = [CChar](repeating: 0, count: Int(count) + 1)
        _ = withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) }
        self = String(decoding: buffer.prefix(Int(count)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension String {
    /// A number as a user wrote it in a recipe or on the command line: 0.5 → "0.5", 2.0 → "2".
    public init(trimming x: Double) {
        self = x == x.rounded() && x.magnitude < 1e15 ? String(Int(x)) : "\(x)"
    }
}

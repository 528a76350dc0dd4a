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

/// Byte counts for people.
public enum ByteCount {
    /// "812 B", "3.5 MiB", "12.6 GiB": binary units, one decimal. (Not an initializer of String:
    /// `String.init` passed as a function would pick it for every Int.)
    public static func describe(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var u = 0
        while v >= 1024 && u < units.count - 1 {
            v /= 1024
            u += 1
        }
        return u == 0 ? "\(n) B" : String(cFormat: "%.1f ", v) + units[u]
    }
}

/// The element types a safetensors file can hold, spelled as the format spells them.
///
/// The declaration order is the reference implementation's (`Dtype` in
/// safetensors/src/tensor.rs, "increasing alignment"); the writer sorts tensors by it.
public enum DType: String, CaseIterable, Sendable, Hashable, Codable {
    case bool = "BOOL"
    case f4 = "F4"
    case f6e2m3 = "F6_E2M3"
    case f6e3m2 = "F6_E3M2"
    case u8 = "U8"
    case i8 = "I8"
    case f8e5m2 = "F8_E5M2"
    case f8e4m3 = "F8_E4M3"
    case f8e8m0 = "F8_E8M0"
    case f8e4m3fnuz = "F8_E4M3FNUZ"
    case f8e5m2fnuz = "F8_E5M2FNUZ"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Bits of one element (`Dtype::bitsize`).
    public var bits: Int {
        switch self {
        case .f4: 4
        case .f6e2m3, .f6e3m2: 6
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz: 8
        case .i16, .u16, .f16, .bf16: 16
        case .i32, .u32, .f32: 32
        case .c64, .f64, .i64, .u64: 64
        }
    }

    /// Bytes of one element, or nil for the packed sub-byte types (F4, F6).
    public var byteSize: Int? { bits % 8 == 0 ? bits / 8 : nil }

    /// Position in the reference enum: the writer orders tensors by it, descending.
    public var order: Int { DType.allCases.firstIndex(of: self)! }

    /// True for the real floating-point types that convert to and from f32.
    public var isFloatingPoint: Bool {
        switch self {
        case .f4, .f6e2m3, .f6e3m2, .f8e5m2, .f8e4m3, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz, .f16, .bf16,
            .f32, .f64:
            true
        default: false
        }
    }

    /// Parses a user-facing spelling: the format's own (`BF16`) or a lower-case one (`bf16`, `float32`).
    public init?(userSpelling text: String) {
        if let exact = DType(rawValue: text) {
            self = exact
            return
        }
        switch text.lowercased() {
        case "f32", "float32", "float": self = .f32
        case "bf16", "bfloat16": self = .bf16
        case "f16", "float16", "half": self = .f16
        case "f64", "float64", "double": self = .f64
        default:
            guard let upper = DType(rawValue: text.uppercased()) else { return nil }
            self = upper
        }
    }
}

/// Shape arithmetic with overflow checked, since shapes come from files.
public enum Shape {
    /// The number of elements of `shape`, or nil when the product overflows `Int`.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for dim in shape {
            guard dim >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            if overflow { return nil }
            count = product
        }
        return count
    }

    /// Bytes taken by `elements` elements of `dtype`, or nil when they overflow or do not fill whole bytes.
    public static func byteCount(elements: Int, dtype: DType) -> Int? {
        let (bits, overflow) = elements.multipliedReportingOverflow(by: dtype.bits)
        guard !overflow, bits % 8 == 0 else { return nil }
        return bits / 8
    }

    /// `[2, 3]` as the format prints it.
    public static func describe(_ shape: [Int]) -> String {
        "[" + shape.map(String.init).joined(separator: ", ") + "]"
    }
}

/// A dtype whose elements are whole bytes, with its size: made once, where a tensor's dtype is
/// checked (the packed F4 and F6 have no element to address), so every size after it is a plain
/// `Int` rather than an optional unwrapped on trust.
public struct ElementType: Hashable, Sendable {
    /// The dtype.
    public let dtype: DType
    /// Bytes of one element.
    public let size: Int

    /// The element type of `dtype`; nil for the packed sub-byte types.
    public init?(_ dtype: DType) {
        guard let size = dtype.byteSize else { return nil }
        self.dtype = dtype
        self.size = size
    }

    /// f32, which every decoded delta is.
    public static let f32 = ElementType(.f32)!
    /// f64, which a merge method's combined delta is.
    public static let f64 = ElementType(.f64)!
}

import Tensors

/// Why a safetensors file, a shard index or a write was refused.
///
/// Each case carries the values a user needs to find the problem; `rule` names the rule broken,
/// using the reference implementation's error name where it has one.
public struct SafeTensorsError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file refused, or being written.
    public var file: String
    /// What is wrong, with the values found.
    public var problem: Problem

    /// An error about `file`.
    public init(file: String, _ problem: Problem) {
        self.file = file
        self.problem = problem
    }

    /// Each rule a file or a write can break, with what was found.
    public enum Problem: Equatable, Sendable {
        case headerTooSmall(fileSize: Int)
        case headerTooLarge(length: UInt64, limit: Int)
        case invalidHeaderLength(length: UInt64, fileSize: Int)
        case headerNotUTF8
        case invalidJSON(JSONSyntaxError)
        case invalidSchema(tensor: String?, message: String)
        case unknownDType(tensor: String, dtype: String)
        case duplicateTensor(String)
        case duplicateField(tensor: String, field: String)
        case metadataNotString(key: String, found: String)
        case invalidOffset(tensor: String, begin: UInt64, end: UInt64, expectedBegin: UInt64)
        case shapeOverflow(tensor: String, shape: [UInt64])
        case misalignedSlice(tensor: String, dtype: DType, elements: Int)
        case sizeMismatch(tensor: String, dtype: DType, shape: [Int], expected: Int, found: UInt64)
        case dataPastEnd(tensor: String, end: UInt64, dataSize: Int)
        case incompleteBuffer(dataEnd: Int, fileSize: Int)
        case tensorNotFound(String)
        case notAFile
        case io(operation: String, message: String)
        case index(message: String)
        case write(message: String)
        /// An output path av will not write to (a device, a link, a directory with other files, an input).
        case refusedOutput(message: String)
    }

    /// The rule broken: the reference implementation's error name where there is one.
    public var rule: String {
        switch problem {
        case .headerTooSmall: "HeaderTooSmall"
        case .headerTooLarge: "HeaderTooLarge"
        case .invalidHeaderLength: "InvalidHeaderLength"
        case .headerNotUTF8: "InvalidHeader"
        case .invalidJSON, .invalidSchema, .unknownDType, .duplicateField, .metadataNotString:
            "InvalidHeaderDeserialization"
        case .duplicateTensor: "DuplicateTensorName"
        case .invalidOffset: "InvalidOffset"
        case .shapeOverflow: "ValidationOverflow"
        case .misalignedSlice: "MisalignedSlice"
        case .sizeMismatch: "TensorInvalidInfo"
        case .dataPastEnd: "DataPastEnd"
        case .incompleteBuffer: "MetadataIncompleteBuffer"
        case .tensorNotFound: "TensorNotFound"
        case .notAFile: "NotAFile"
        case .io: "IOError"
        case .index: "InvalidIndex"
        case .write: "WriteError"
        case .refusedOutput: "RefusedOutput"
        }
    }

    /// One line that says what is wrong, with the values found.
    public var message: String {
        switch problem {
        case let .headerTooSmall(size):
            "file is \(size) bytes, too small for the 8-byte header length"
        case let .headerTooLarge(length, limit):
            "header length \(length) is over the limit of \(limit) bytes"
        case let .invalidHeaderLength(length, size):
            "header length \(length) runs past the end of the \(size)-byte file"
        case .headerNotUTF8:
            "header is not valid UTF-8"
        case let .invalidJSON(e):
            "header is not valid JSON: \(e.message) at header byte \(e.offset)"
        case let .invalidSchema(tensor, message):
            tensor.map { "tensor \(JSONWriter.quoted($0)): \(message)" } ?? "header: \(message)"
        case let .unknownDType(tensor, dtype):
            "tensor \(JSONWriter.quoted(tensor)): unknown dtype \(JSONWriter.quoted(dtype)) (dtype names are"
                + " case-sensitive: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))"
        case let .duplicateTensor(name):
            "tensor \(JSONWriter.quoted(name)) appears more than once in the header"
        case let .duplicateField(tensor, field):
            "\(tensor == "__metadata__" ? "__metadata__" : "tensor " + JSONWriter.quoted(tensor)): duplicate field"
                + " \(JSONWriter.quoted(field))"
        case let .metadataNotString(key, found):
            "__metadata__ value of \(JSONWriter.quoted(key)) is \(found), expected a string"
        case let .invalidOffset(tensor, begin, end, expected):
            end < begin
                ? "tensor \(JSONWriter.quoted(tensor)): data_offsets [\(begin), \(end)] end before they begin"
                : "tensor \(JSONWriter.quoted(tensor)): data_offsets [\(begin), \(end)] should begin at \(expected)"
                    + " (tensors must tile the data buffer with no gap or overlap)"
        case let .shapeOverflow(tensor, shape):
            "tensor \(JSONWriter.quoted(tensor)): the element count of shape"
                + " [\(shape.map(String.init).joined(separator: ", "))] overflows"
        case let .misalignedSlice(tensor, dtype, elements):
            "tensor \(JSONWriter.quoted(tensor)): \(elements) elements of \(dtype.rawValue) do not fill whole bytes"
        case let .sizeMismatch(tensor, dtype, shape, expected, found):
            "tensor \(JSONWriter.quoted(tensor)): data_offsets span \(found) bytes, but \(dtype.rawValue)"
                + " \(Shape.describe(shape)) needs \(expected)"
        case let .dataPastEnd(tensor, end, dataSize):
            "tensor \(JSONWriter.quoted(tensor)): data ends at byte \(end) of a \(dataSize)-byte data buffer"
        case let .incompleteBuffer(dataEnd, size):
            "the last tensor ends at file byte \(dataEnd) but the file is \(size) bytes: \(size - dataEnd) bytes"
                + " belong to no tensor (tensors must cover the data buffer exactly)"
        case let .tensorNotFound(name):
            "no tensor named \(JSONWriter.quoted(name))"
        case .notAFile:
            "not a regular file"
        case let .io(operation, message):
            "\(operation): \(message)"
        case let .index(message):
            message
        case let .write(message):
            message
        case let .refusedOutput(message):
            message
        }
    }

    /// `FILE: message [Rule]`, the form the CLI prints.
    public var description: String { "\(file): \(message) [\(rule)]" }

    /// A file that could not be read or written at all (missing, no permission, full disk), as
    /// opposed to one whose contents are wrong.
    public var exitsAsIO: Bool {
        switch problem {
        case .io, .notAFile: true
        default: false
        }
    }
}

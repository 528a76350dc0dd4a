import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors
@testable import Tensors

/// `[u64 LE N][header][data]`, with N given explicitly when a test wants it wrong.
func rawSafetensors(_ header: String, data: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    return withUnsafeBytes(of: (length ?? UInt64(h.count)).littleEndian) { Array($0) } + h + data
}

func writeBytes(_ bytes: [UInt8], to path: String) {
    FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

func readBytes(_ path: String) -> [UInt8] {
    [UInt8](FileManager.default.contents(atPath: path) ?? Data())
}

/// Opens `bytes` as a file and returns the error it is refused with, or nil if it opens.
func openError(_ bytes: [UInt8], in dir: TemporaryDirectory, name: String = "case.safetensors") -> SafeTensorsError? {
    let path = dir.file(name)
    writeBytes(bytes, to: path)
    do {
        _ = try SafeTensorsFile(path: path)
        return nil
    } catch {
        return error
    }
}

func fixturePath(_ name: String) -> String {
    Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)!.path
}

extension [UInt8] {
    init(hex: String) {
        var out: [UInt8] = []
        var it = hex.makeIterator()
        while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
        self = out
    }
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}

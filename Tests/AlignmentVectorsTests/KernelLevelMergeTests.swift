import AVTestSupport
import Foundation
import Testing

@testable import AlignmentVectors
@testable import SafeTensors
@testable import Tensors

/// Library merges at every kernel level this CPU runs (not only the machine's best): the same bytes
/// as the portable Swift path, for f32 and bf16 deltas into bf16 and f32 outputs.
@Suite("Merges at every kernel level")
struct KernelLevelMergeTests {
    @Test("every level writes the bytes the portable path writes: bf16 and f32 deltas, bf16 and f32 outputs")
    func sameBytes() throws {
        let dir = TemporaryDirectory()
        let n = 100_003  // not a multiple of any vector width: tails included
        let b = values(n, seed: 11)
        let a = zip(b, values(n, seed: 12, scale: 0.002)).map { $0 + $1 }
        try writeModel(dir.file("base.safetensors"), [("w", [n], b)])
        try writeModel(dir.file("aligned.safetensors"), [("w", [n], a)])
        _ = try makeAV(dir.file("base.safetensors"), dir.file("aligned.safetensors"), dir.file("f32.av"))
        _ = try makeAV(
            dir.file("base.safetensors"), dir.file("aligned.safetensors"), dir.file("bf16.av"), storage: .bf16)
        #expect(KernelLevel.supported.first == .portable)
        for (av, out) in [("f32.av", DType?.none), ("bf16.av", nil), ("f32.av", .f32), ("bf16.av", .f32)] {
            var bytes: [KernelLevel: [UInt8]] = [:]
            for level in KernelLevel.supported {
                let path = dir.file("\(level.name)-\(av)-\(out?.rawValue ?? "base").safetensors")
                let report = try mix(
                    dir.file("base.safetensors"), [(dir.file(av), 1.3)], path, dtype: out, kernels: level)
                #expect(report.changed > 0)
                bytes[level] = try tensorBytes(path)["w"]!
            }
            for level in KernelLevel.supported {
                #expect(bytes[level] == bytes[.portable], "\(level.name), \(av) into \(out?.rawValue ?? "bf16")")
            }
        }
    }
}

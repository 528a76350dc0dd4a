import CKernels
import Foundation
import Testing

@testable import Tensors

/// Each level's table of C kernels holds the entries of that level and no other: the level is chosen
/// once, by the table a caller holds, not by a branch in each kernel.
@Suite("Kernel tables")
struct KernelTableTests {
    /// Which entries of `level`'s table are set, by name.
    func entries(_ level: KernelLevel) -> Set<String> {
        let t = level.kernels.pointee
        let named: [(String, Bool)] = [
            ("matmul_f32", t.matmul_f32 != nil), ("matmul_bf16", t.matmul_bf16 != nil),
            ("swiglu", t.swiglu != nil), ("log_sum_exp", t.log_sum_exp != nil),
            ("merge_accumulate", t.merge_accumulate != nil), ("merge_store", t.merge_store != nil),
            ("pack_f32", t.panel_pack.0 != nil), ("pack_split", t.panel_pack.1 != nil),
            ("pack_hi", t.panel_pack.2 != nil), ("panel_f32", t.panel_matmul.0 != nil),
            ("panel_split", t.panel_matmul.1 != nil), ("panel_hi", t.panel_matmul.2 != nil),
            ("attend_block", t.attend_block != nil), ("attend", t.attend != nil),
        ]
        #expect(Int(t.level) == level.rawValue)
        return Set(named.filter(\.1).map(\.0))
    }

    @Test("portable has no C kernel; AVX2 the products and the merge; AVX-512 adds the rest; bf16 its panels")
    func levels() {
        #expect(entries(.portable).isEmpty)
        #if arch(x86_64)
            let avx2: Set = ["matmul_f32", "matmul_bf16", "merge_accumulate", "merge_store"]
            let avx512 = avx2.union([
                "swiglu", "log_sum_exp", "pack_f32", "panel_f32", "attend_block", "attend",
            ])
            #expect(entries(.avx2) == avx2)
            #expect(entries(.avx512) == avx512)
            #expect(entries(.avx512bf16) == avx512.union(["pack_split", "pack_hi", "panel_split", "panel_hi"]))
        #else
            for level in KernelLevel.allCases { #expect(entries(level).isEmpty) }
        #endif
    }

    @Test("a level's table is filled once: every call gives the same table")
    func once() {
        for level in KernelLevel.allCases { #expect(level.kernels == level.kernels) }
        #expect(KernelLevel.avx2.kernels != KernelLevel.avx512.kernels)
    }

    /// CI sets `AV_REQUIRE_KERNELS` to the best level its CPU has (`.ci/run`): the tests of that level
    /// must run, so a machine or build that lost it fails here instead of testing fewer levels.
    @Test("the level CI requires is detected and its kernels are filled")
    func required() {
        guard let name = ProcessInfo.processInfo.environment["AV_REQUIRE_KERNELS"], !name.isEmpty else { return }
        guard let level = KernelLevel.allCases.first(where: { $0.name == name }) else {
            Issue.record("AV_REQUIRE_KERNELS=\(name) names no level")
            return
        }
        #expect(
            KernelLevel.supported.contains(level), "\(name) is required but this CPU runs \(KernelLevel.detected.name)")
        #expect(level == .portable || level.kernels.pointee.matmul_f32 != nil)
    }
}

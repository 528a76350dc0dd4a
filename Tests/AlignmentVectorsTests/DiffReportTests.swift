import Testing

@testable import AlignmentVectors

/// What `av diff` reports per block.
@Suite("Diff report")
struct DiffReportTests {
    @Test("blocks are named by layer and listed in natural order, layer 2 before layer 10")
    func blockOrder() {
        let names = [
            "lm_head", "model.layers.10", "model.layers.2", "model.embed_tokens", "model.layers.1", "model.norm",
        ]
        #expect(
            names.sorted(by: DiffReport.naturalOrder) == [
                "lm_head", "model.embed_tokens", "model.layers.1", "model.layers.2", "model.layers.10", "model.norm",
            ])
        #expect(DiffReport.block(of: "model.layers.10.mlp.up_proj.weight") == "model.layers.10")
        #expect(DiffReport.block(of: "model.norm.weight") == "model.norm")
        #expect(DiffReport.naturalOrder("a.b", "a.b.c") && !DiffReport.naturalOrder("a.b.c", "a.b"))
    }
}

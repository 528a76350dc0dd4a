import AVTestSupport
import Foundation
import Testing

@testable import Evaluation
@testable import Inference
@testable import SafeTensors

@Suite("Grids of mixes and their shards")
struct MixGridTests {
    @Test("a grid lists every combination, the first axis slowest; a shard takes every N-th point from I")
    func points() {
        let grid = MixGrid.points([[1, 2], [3, 4, 5]])
        #expect(grid == [[1, 3], [1, 4], [1, 5], [2, 3], [2, 4], [2, 5]])
        #expect(MixGrid.shard(grid, 1, of: 4) == [[1, 4], [2, 5]])
        let shards = (0..<4).flatMap { MixGrid.shard(grid, $0, of: 4) }
        #expect(Set(shards) == Set(grid) && shards.count == grid.count)
        #expect(MixSearch.gridPoints([0, 1], domains: 2) == MixGrid.points([[0, 1], [0, 1]]))
    }

    @Test("a shard file reads back as written; another command's shard is refused")
    func roundTrip() throws {
        let dir = TemporaryDirectory()
        let pairs = PairsResult(
            pairs: 2, accuracy: 0.5, meanMargin: 0.25, rewardAccuracy: nil, meanRewardMargin: nil, margins: [1, -0.5])
        let levels = LevelsResult(
            levels: ["avoid", "expert"], shares: [0.25, 0.75], meanMargins: [], winners: [], scores: [],
            meanPromptTokens: 0)
        let shard = GridShard(
            command: "sweep", inputs: .object([("x", .int(1))]), grid: [[-1, 0.5]], shard: 1, count: 2,
            points: [GridPoint(lambdas: [0.5], pairs: pairs, levels: [levels])])
        let path = dir.file("s.json")
        try Data(shard.json.rendered(pretty: true).utf8).write(to: URL(fileURLWithPath: path))
        #expect(try GridShard.load(path, command: "sweep") == shard)
        #expect { _ = try GridShard.load(path, command: "search") } throws: { "\($0)".contains("not a search shard") }
    }
}

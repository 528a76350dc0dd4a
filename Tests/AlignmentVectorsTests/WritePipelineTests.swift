import Dispatch
import Foundation
import Testing

@testable import AlignmentVectors
@testable import SafeTensors

/// The merge and diff engines' double buffering: a slot can be filled while the other is written,
/// and the first write error reaches the next claim.
@Suite("Write pipeline")
struct WritePipelineTests {
    @Test("claiming a slot does not wait for the other slot's write")
    func slotsOverlap() {
        let pipeline = WritePipeline()
        let release = DispatchSemaphore(value: 0)
        pipeline.submit(0) { () throws(SafeTensorsError) in release.wait() }  // a write that blocks
        let claimed = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            try? pipeline.claim(1)
            claimed.signal()
        }
        // Liveness, not speed: a claim that waited for slot 0 would never return before the release.
        let overlapped = claimed.wait(timeout: .now() + 30) == .success
        release.signal()
        if !overlapped { claimed.wait() }
        #expect(overlapped, "claim(1) waited for slot 0's write")
        #expect(throws: Never.self) { try pipeline.drain() }
    }

    @Test("the first write error is thrown by the next claim and drain; later writes are skipped")
    func firstErrorWins() {
        let pipeline = WritePipeline()
        let first = SafeTensorsError(file: "out", .io(operation: "write", message: "disk full"))
        nonisolated(unsafe) var laterRan = false
        pipeline.submit(0) { () throws(SafeTensorsError) in throw first }
        pipeline.submit(1) { () throws(SafeTensorsError) in laterRan = true }
        #expect(throws: SafeTensorsError.self) { try pipeline.claim(0) }
        #expect(throws: SafeTensorsError.self) { try pipeline.drain() }
        #expect(!laterRan)
    }
}

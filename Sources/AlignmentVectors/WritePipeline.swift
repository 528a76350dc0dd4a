import Dispatch
import SafeTensors
import Tensors

/// Writes finished batches on a background queue while the next batch is computed.
///
/// Two slots (double buffering): a batch computed into slot k may be written while slot 1 − k is
/// filled; `claim` waits until a slot's previous write is done. The first write error is kept
/// and thrown from the next `claim` or `drain`; later writes are skipped.
final class WritePipeline: @unchecked Sendable {
    private let queue = DispatchQueue(label: "av.write-pipeline")
    private let slots = [DispatchGroup(), DispatchGroup()]
    private let lock = Lock()
    private var failure: SafeTensorsError?

    /// Waits until `slot` is free to be filled again. (The first error is read under a lock, not on
    /// the write queue: `queue.sync` would wait for the other slot's write too, and no batch would
    /// be computed while one is written.)
    func claim(_ slot: Int) throws(SafeTensorsError) {
        slots[slot].wait()
        if let failure = lock.withLock({ self.failure }) { throw failure }
    }

    /// Runs `work` (the writes of the batch in `slot`, then whatever must follow them) in order
    /// after the batches submitted before it.
    func submit(_ slot: Int, _ work: @escaping () throws(SafeTensorsError) -> Void) {
        let group = slots[slot]
        group.enter()
        let box = UncheckedSendable(work)
        queue.async {
            defer { group.leave() }
            guard self.lock.withLock({ self.failure == nil }) else { return }
            do throws(SafeTensorsError) {
                try box.value()
            } catch {
                self.lock.withLock { self.failure = error }
            }
        }
    }

    /// Waits for every submitted write.
    func drain() throws(SafeTensorsError) {
        try claim(0)
        try claim(1)
    }
}


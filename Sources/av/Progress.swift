import Dispatch
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A progress bar on standard error: bytes (or items) done, rate, ETA. Shown only when stderr is a
/// terminal and not `--quiet`; redrawn at most ten times a second.
final class ProgressBar {
    let label: String
    let enabled: Bool
    /// Counts items (sweep points) instead of bytes.
    var counting = false
    private let start = DispatchTime.now().uptimeNanoseconds
    private var lastDraw: UInt64 = 0
    private var drawn = false

    init(label: String, quiet: Bool) {
        self.label = label
        enabled = !quiet && isatty(STDERR_FILENO) == 1
    }

    func update(_ done: Int, _ total: Int) {
        guard enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        guard now - lastDraw > 100_000_000 || done >= total else { return }
        lastDraw = now
        let elapsed = Double(now - start) / 1e9
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let line =
            counting
            ? "\r\(label) \(bar) " + String(cFormat: "%3.0f%%  %ld / %ld  ETA %.0fs ", fraction * 100, done, total, eta)
            : "\r\(label) \(bar) " + String(cFormat: "%3.0f%%  ", fraction * 100)
                + "\(Format.bytes(done)) / \(Format.bytes(total))  \(Format.bytes(Int(rate)))/s  "
                + String(cFormat: "ETA %.0fs ", eta)
        fputs(line, StandardStreams.error)
        drawn = true
    }

    /// Clears the bar's line.
    func finish() {
        guard enabled, drawn else { return }
        fputs("\r\u{1B}[K", StandardStreams.error)
    }
}

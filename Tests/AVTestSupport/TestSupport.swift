import Foundation

/// A fresh directory under the system temporary directory, removed when the value is released.
public final class TemporaryDirectory: @unchecked Sendable {
    public let url: URL
    public var path: String { url.path }

    public init() {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("av-test-\(UUID().uuidString)", isDirectory: true)
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// `name` inside the directory.
    public func file(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// The repository's `Checkpoints/` directory (the small model family every suite may use).
public let checkpointsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Checkpoints").path

/// FNV-1a 64, the hash the reference fixtures use.
public func fnv1a64<S: Sequence>(_ bytes: S) -> UInt64 where S.Element == UInt8 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h
}

/// The output of a finished process.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs `executable` with `arguments` and returns its exit status and output.
public func runProcess(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, currentDirectory: String? = nil
) throws
    -> ProcessResult
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    }
    if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes before waiting so a full pipe cannot block the child.
    let group = DispatchGroup()
    nonisolated(unsafe) var errData = Data()
    group.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return ProcessResult(
        status: process.terminationStatus,
        stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self))
}

/// The built `av` executable: `AV_BINARY` if set, else the one beside the test bundle.
public func avBinaryPath() -> String {
    if let explicit = ProcessInfo.processInfo.environment["AV_BINARY"] { return explicit }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("av").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("av").path
}

/// Runs the built `av` binary.
public func runAV(_ arguments: [String], environment: [String: String]? = nil, currentDirectory: String? = nil) throws
    -> ProcessResult
{
    try runProcess(avBinaryPath(), arguments, environment: environment, currentDirectory: currentDirectory)
}

/// A Python interpreter with `modules` importable, as a command prefix (`AV_PYTHON` if set, else
/// `python3` on the PATH), or nil. Tests that need Python skip without it locally; CI installs the
/// modules and sets AV_REQUIRE_PYTHON=1, and the tests then fail instead of skipping.
public func pythonCommand(modules: [String]) -> [String]? {
    let env = ProcessInfo.processInfo.environment
    let command = env["AV_PYTHON"].map { [$0] } ?? ["/usr/bin/env", "python3"]
    let probe = modules.map { "import \($0)" }.joined(separator: "; ")
    guard let r = try? runProcess(command[0], Array(command.dropFirst()) + ["-c", probe]), r.status == 0 else {
        return nil
    }
    return command
}

/// Runs Python `code` with `arguments` through `command` (from `pythonCommand`).
public func runPython(_ command: [String], code: String, arguments: [String]) throws -> ProcessResult {
    try runProcess(command[0], Array(command.dropFirst()) + ["-c", code] + arguments)
}

/// Whether the tests were built optimized (`swift test -c release`): slow numeric tests run only
/// there, and CI runs them there (Tests/run.sh).
#if DEBUG
    public let isReleaseBuild = false
#else
    public let isReleaseBuild = true
#endif

/// Whether the Python interop tests run: Python with safetensors and numpy is here, or CI requires
/// it (AV_REQUIRE_PYTHON=1, and the tests then fail without it). Elsewhere they show as skipped.
public let pythonInteropEnabled: Bool =
    ProcessInfo.processInfo.environment["AV_REQUIRE_PYTHON"] != nil
    || pythonCommand(modules: ["safetensors", "numpy"]) != nil

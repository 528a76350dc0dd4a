import GGUF
import SafeTensors
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

/// The `av` command line: dispatches to subcommands, prints errors, returns exit codes.
@main
enum AV {
    static let version = "0.1.0"

    /// What `av --version` prints: the version, the git commit of the build (stamped by the
    /// BuildInfo plugin), the matrix kernels in use and the platform.
    static var versionLine: String {
        #if arch(x86_64)
            let arch = "x86_64"
        #elseif arch(arm64)
            let arch = "arm64"
        #else
            let arch = "other"
        #endif
        #if os(Linux)
            let system = "Linux"
        #elseif os(macOS)
            let system = "macOS"
        #else
            let system = "other"
        #endif
        let kernels = KernelLevel.current
        let forced = kernels == KernelLevel.detected ? "" : " (AV_KERNELS; the CPU has \(KernelLevel.detected.name))"
        return "av \(version) (commit \(BuildInfo.commit), kernels \(kernels.name)\(forced), \(arch) \(system))"
    }

    static let commands: [(spec: CommandSpec, run: @Sendable (ParsedArguments) throws -> ExitCode)] = [
        (DemoCommand.spec, DemoCommand.run),
        (InspectCommand.spec, InspectCommand.run),
        (DiffCommand.spec, DiffCommand.run),
        (MergeCommand.spec, MergeCommand.run),
        (GenerateCommand.spec, GenerateCommand.run),
        (EvalCommand.spec, EvalCommand.run),
        (SweepCommand.spec, SweepCommand.run),
        (ConvertCommand.spec, ConvertCommand.run),
        (CheckCommand.spec, CheckCommand.run),
        (SearchCommand.spec, SearchCommand.run),
        (ExportLoRACommand.spec, ExportLoRACommand.run),
        (CompressCommand.spec, CompressCommand.run),
        (AnalyzeCommand.spec, AnalyzeCommand.run),
    ]

    static var help: String {
        var lines = [
            "av \(version): alignment vectors for language models (AV = aligned - base; mix = base + sum of lambda"
                + " * AV)",
            "",
            "Usage: av SUBCOMMAND [ARGS] [OPTIONS]",
            "",
            "Subcommands:",
        ]
        for c in commands {
            lines.append("  " + c.spec.name.padded(to: 13) + c.spec.summary)
        }
        lines += [
            "",
            "Run 'av help SUBCOMMAND' or 'av SUBCOMMAND --help' for details.",
            "",
            "Exit codes: 0 success, 1 a check failed, 2 usage error, 3 bad input (malformed file or",
            "inputs that do not fit together), 4 I/O error (missing file, permission, full disk).",
        ]
        return lines.joined(separator: "\n")
    }

    static func main() {
        TemporaryFiles.installSignalCleanup()
        TemporaryFiles.installCrashCleanup()
        var code = run(Array(CommandLine.arguments.dropFirst()))
        GGUFInput.cleanUp()
        // Output that could not be written is a failed run, not a silent success.
        if !StandardStreams.flushOutput(), code == .success || code == .checkFailed {
            printError("av: error: cannot write to standard output: \(String(cString: strerror(errno)))")
            code = .io
        }
        exit(code.rawValue)
    }

    static func run(_ arguments: [String]) -> ExitCode {
        guard let first = arguments.first else {
            printError(help)
            return .usage
        }
        switch first {
        case "--help", "-h":
            print(help)
            return .success
        case "--version":
            print(versionLine)
            return .success
        case "help":
            guard arguments.count > 1 else {
                print(help)
                return .success
            }
            guard let c = commands.first(where: { $0.spec.name == arguments[1] }) else {
                return usageError(
                    "unknown subcommand '\(arguments[1])'",
                    usage: "Usage: av SUBCOMMAND [ARGS] [OPTIONS]\nRun 'av --help' for the list.")
            }
            print(c.spec.help)
            return .success
        default:
            break
        }
        guard let command = commands.first(where: { $0.spec.name == first }) else {
            return usageError(
                "unknown subcommand '\(first)'",
                usage: "Usage: av SUBCOMMAND [ARGS] [OPTIONS]\nRun 'av --help' for the list.")
        }
        let rest = Array(arguments.dropFirst())
        if rest.contains("--help") || rest.contains("-h") {
            print(command.spec.help)
            return .success
        }
        do {
            let parsed = try ParsedArguments.parse(rest, for: command.spec)
            return try command.run(parsed)
        } catch let e as UsageError {
            return usageError(
                e.message, usage: "Usage: \(command.spec.usage)\nRun 'av \(command.spec.name) --help' for more.",
                command: command.spec.name)
        } catch {
            let (message, code) = describe(error)
            printError("av \(command.spec.name): error: \(GGUFInput.originals(in: message))")
            return code
        }
    }

    static func usageError(_ message: String, usage: String, command: String? = nil) -> ExitCode {
        printError("av\(command.map { " " + $0 } ?? ""): error: \(message)\n\(usage)")
        return .usage
    }
}

import AlignmentVectors
import Evaluation
import GGUF
import Inference
import SafeTensors
import Tensors

/// The exit codes av documents (README, `av --help`).
enum ExitCode: Int32 {
    /// Everything asked was done.
    case success = 0
    /// A check ran and failed (a gate said no).
    case checkFailed = 1
    /// The command line was wrong.
    case usage = 2
    /// An input file is malformed or inputs do not fit together.
    case badInput = 3
    /// Reading or writing failed (missing file, permission, full disk).
    case io = 4
}

/// An error the CLI prints as `av: error: …` with its exit code.
struct CLIError: Error {
    var message: String
    var code: ExitCode
}

extension SafeTensorsError {
    var exitCode: ExitCode {
        switch problem {
        case .io, .notAFile: .io
        default: .badInput
        }
    }
}

/// Turns any error into its message and exit code: the one place errors become text.
func describe(_ error: any Error) -> (String, ExitCode) {
    switch error {
    case let e as SafeTensorsError: (e.description, e.exitCode)
    case let e as CLIError: (e.message, e.code)
    case let e as AVError:
        switch e {
        case .file(let f): (f.description, f.exitCode)
        case .usage: (e.description, .usage)
        case .unknownDomain: (e.description, .io)
        default: (e.description, .badInput)
        }
    case let e as UsageError: (e.message, .usage)
    case let e as ReleaseCheckError: (e.description, e.isMissingFile ? .io : .badInput)
    case let e as GGUFError: (e.description, e.isMissingFile ? .io : .badInput)
    case let e as GGUFInput.SettingError: (e.description, .usage)
    case let e as InferenceError:
        switch e {
        case .file(let f): (f.description, f.exitCode)
        case .vectors(let v): describe(v)
        default: (e.description, .badInput)
        }
    default: ("\(error)", .badInput)
    }
}

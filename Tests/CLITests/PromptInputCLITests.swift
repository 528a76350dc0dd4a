import AVTestSupport
import Foundation
import Tensors
import Testing

/// `--prompt-file` and `--prompt -` keep a prompt's exact bytes, which shell substitution loses.
@Suite("Prompts from files and standard input; av --version")
struct PromptInputCLITests {
    /// The prompt-token count from generate's speed report on stderr.
    func promptTokens(_ r: ProcessResult) -> Int? {
        guard let line = r.stderr.split(separator: "\n").first(where: { $0.contains("prompt tokens in") }) else {
            return nil
        }
        return Int(line.prefix { $0.isNumber })
    }

    @Test("--prompt-file and --prompt - give what --prompt gives for the same bytes, trailing newline and quotes kept")
    func exactPrompt() throws {
        let dir = TemporaryDirectory()
        let chat = inferenceFixture("chat")
        let text = "She said \"it's fine\" and left.\n\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir.file("prompt.txt")))
        let common = ["generate", "--model", chat, "--max-tokens", "6"]
        let argument = try runAV(common + ["--prompt", text])
        let file = try runAV(common + ["--prompt-file", dir.file("prompt.txt")])
        let quoted = { (s: String) in "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let stdin = try runProcess(
            "/bin/sh",
            [
                "-c",
                ([avBinaryPath()] + common + ["--prompt", "-"]).map(quoted).joined(separator: " ")
                    + " < " + quoted(dir.file("prompt.txt")),
            ])
        let trimmed = try runAV(common + ["--prompt", String(text.dropLast(2))])
        for r in [argument, file, stdin, trimmed] { #expect(r.status == 0, "\(r.stderr)") }
        #expect(file.stdout == argument.stdout)
        #expect(stdin.stdout == argument.stdout)
        let n = try #require(promptTokens(argument))
        #expect(promptTokens(file) == n)
        #expect(promptTokens(stdin) == n)
        // The two newlines are tokens of their own: dropping them, as $(cat file) does, changes the prompt.
        #expect(try #require(promptTokens(trimmed)) < n)
    }

    @Test("both prompt options, a missing file and invalid UTF-8 on standard input are refused")
    func refusals() throws {
        let dir = TemporaryDirectory()
        let chat = inferenceFixture("chat")
        try Data([0x48, 0x69, 0xFF, 0x0A]).write(to: URL(fileURLWithPath: dir.file("bad.txt")))
        let both = try runAV(["generate", "--model", chat, "--prompt", "Hi", "--prompt-file", dir.file("bad.txt")])
        #expect(both.status == 2)
        #expect(both.stderr.contains("not both"))
        let missing = try runAV(["generate", "--model", chat, "--prompt-file", dir.file("none.txt")])
        #expect(missing.status == 4)
        #expect(missing.stderr.contains("none.txt"))
        let bad = try runProcess(
            "/bin/sh", ["-c", "'\(avBinaryPath())' generate --model '\(chat)' --prompt - < '\(dir.file("bad.txt"))'"])
        #expect(bad.status == 3)
        #expect(bad.stderr.contains("standard input") && bad.stderr.contains("byte 2"))
    }

    @Test("av --version names the version, the commit it was built from and the kernels in use")
    func version() throws {
        // The level in effect is the detected one only without AV_KERNELS: the test sets its own.
        var clean = ProcessInfo.processInfo.environment
        clean["AV_KERNELS"] = nil
        let r = try runAV(["--version"], environment: clean)
        #expect(r.status == 0)
        let line = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(line.hasPrefix("av 0."))
        let commit = try #require(line.firstRange(of: "commit ")).upperBound
        let hash = line[commit...].prefix { $0.isHexDigit }
        // A git checkout stamps 12 hex digits; a source tree without git says "unknown".
        #expect(hash.count == 12 || line[commit...].hasPrefix("unknown"))
        #expect(line.contains("kernels \(KernelLevel.detected.name)"))
        // AV_KERNELS forces a level; the line says so.
        var env = ProcessInfo.processInfo.environment
        env["AV_KERNELS"] = "portable"
        let forced = try runAV(["--version"], environment: env).stdout
        #expect(forced.contains("kernels portable"))
        #expect(KernelLevel.detected == .portable || forced.contains("(AV_KERNELS; the CPU has "))
    }
}

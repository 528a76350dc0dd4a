import Foundation
import PackagePlugin

/// Stamps the `av` executable with the git commit it is built from: before every build, a shell
/// writes `BuildInfo.swift` (`BuildInfo.commit`, `-dirty` when tracked files have changes,
/// `unknown` outside a git checkout), rewriting it only when the text changes so an unchanged
/// commit does not rebuild the target.
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        let script = """
            set -e
            mkdir -p "$2"
            commit=$(git -C "$1" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
            changes=$(git -C "$1" status --porcelain --untracked-files=no 2>/dev/null || true)
            if [ "$commit" != unknown ] && [ -n "$changes" ]; then
              commit="$commit-dirty"
            fi
            text="// Generated before each build by the BuildInfo plugin (Plugins/BuildInfo); not in git.
            enum BuildInfo {
                /// The git commit av was built from (\\`-dirty\\`: with uncommitted changes).
                static let commit = \\"$commit\\"
            }"
            if [ ! -f "$2/BuildInfo.swift" ] || [ "$(cat "$2/BuildInfo.swift")" != "$text" ]; then
              printf '%s\\n' "$text" > "$2/BuildInfo.swift"
            fi
            """
        return [
            .prebuildCommand(
                displayName: "Stamping av with its git commit",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", script, "sh", context.package.directoryURL.path, output.path],
                outputFilesDirectory: output)
        ]
    }
}

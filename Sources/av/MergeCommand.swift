import AlignmentVectors
import GGUF
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

enum MergeCommand {
    static let spec = CommandSpec(
        name: "merge",
        summary: "mix alignment vectors into a base: base + sum of lambda * AV",
        positionals: [],
        options: [
            OptionSpec(
                names: ["-o", "--output"], valueName: "PATH",
                help: "output: a file for a file base, a directory for a directory base, OUT.gguf for llama.cpp"),
            OptionSpec(
                names: ["--base"], valueName: "PATH",
                help: "the base model (default: the base the vectors record, if it exists)"),
            OptionSpec(
                names: ["--vectors"], valueName: "DIR",
                help: "where --DOMAIN finds DOMAIN.av (default: the current directory)"),
            OptionSpec(
                names: ["--vector"], valueName: "PATH=COEF",
                help: "an AV file by path with its coefficient (repeatable)", repeatable: true),
            OptionSpec(
                names: ["--recipe"], valueName: "FILE.json",
                help: "base, vectors, coefficients, output and dtype from a file; flags override it"),
            OptionSpec(
                names: ["--dtype"], valueName: "DTYPE",
                help: "output dtype: f32, bf16, f16 or f64 (default: the base's); to .gguf also q8_0, q4_0"),
            OptionSpec(
                names: ["--max-shard-size"], valueName: "SIZE",
                help: "largest output shard, e.g. 5GB (directories; default: like the base)"),
        ] + methodOptions + [
            OptionSpec(names: ["--force"], help: "merge vectors made from another base anyway"),
            OptionSpec(
                names: ["--transfer"],
                help: "apply the vectors to another base on purpose (recorded in the output's provenance)"),
            OptionSpec(names: ["--allow-nonfinite"], help: "write NaN or Inf results instead of refusing"),
            OptionSpec(names: ["--threads"], valueName: "N", help: "threads to use (default: all cores)"),
            OptionSpec(names: ["--json"], help: "print the report as JSON"),
            OptionSpec(names: ["--quiet", "-q"], help: "no progress bar"),
            OptionSpec(names: ["--help", "-h"], help: "show this help"),
        ],
        discussion: """
            Coefficients are any real numbers: 0 < λ < 1 interpolates, λ > 1 or λ < 0 extrapolates, 0 leaves the
            base as it is. Sums are in f64 per element; the output is rounded once to its dtype, and its
            bytes do not depend on the thread count. The output header records the recipe and the
            fingerprints of every input (see av inspect). Nothing is written when a check fails.

            --method ties|dare-linear|dare-ties combine the vectors per tensor as mergekit does (each λ is the
            mergekit weight): TIES keeps each vector's top ⌊D·n⌋ entries by |Δ|, elects a sign per element
            (the sign of Σ λ·Δ, or --consensus count) and sums the agreeing entries, divided by their Σ λ
            (normalize, TIES's default; then λs are relative weights: --no-normalize keeps them absolute).
            DARE keeps each entry with probability D (seeded, the same on any thread count) and rescales the
            kept ones to the tensor's L1 norm. These hold one tensor per vector in memory; linear streams.

            Recipe (relative paths are relative to the recipe file):
              {"base": "base", "vectors_dir": "vectors", "mix": {"medical": 0.5, "legal": 1.2},
               "vectors": [{"path": "x.av", "coefficient": -0.3}], "output": "merged", "dtype": "bf16",
               "max_shard_size": "5GB", "force": false, "allow_nonfinite": false,
               "method": {"name": "ties", "density": 0.5}}
            """,
        dynamicOptionsHelp: "the coefficient of domain DOMAIN, read from DIR/DOMAIN.av (--medical 0.5)")

    /// The options that choose a merge method, shared by every command that mixes vectors.
    static let methodOptions = SharedOptions.method(seed: "--seed")

    static func run(_ args: ParsedArguments) throws -> ExitCode {
        guard args.positionals.isEmpty else {
            throw UsageError(
                message: "unexpected argument '\(args.positionals[0])' (coefficients follow a --DOMAIN flag)")
        }
        let p = try MergeArguments.parse(args)
        let bar = ProgressBar(label: "merge", quiet: args.has("--quiet") || args.has("--json"))
        var report: MergeReport
        var retention: GGUFRetention?
        if let type = p.ggufType {
            (report, retention) = try MergeToGGUF.run(p, type: type, progress: bar.update)
        } else {
            report = try merge(base: p.base, terms: p.terms, output: p.output, options: p.options, progress: bar.update)
        }
        bar.finish()
        if args.has("--json") {
            print(json(report, dtype: p.options.dtype, gguf: p.ggufType, retention: retention).rendered(pretty: true))
        } else {
            print(GGUFInput.originals(in: text(report, dtype: p.options.dtype, gguf: p.ggufType, retention: retention)))
            for t in p.terms {
                if let rule = t.rule {
                    print("  λ rule   \(t.vector.domain): \(rule.json(value: t.coefficient).rendered())")
                }
            }
        }
        return .success
    }
}

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
    static let methodOptions = methodOptions(seed: "--seed")

    /// A merge fully resolved from the recipe and the flags.
    struct Plan {
        var base: Checkpoint
        var terms: [MergeTerm]
        var output: String
        var options: MergeOptions
        /// For a `.gguf` output: the type its matrices are written as.
        var ggufType: GGMLType? = nil
    }

    /// Resolves recipe and flags (flags win) into a plan; shared with the commands that evaluate mixes.
    static func plan(_ args: ParsedArguments, needOutput: Bool = true, seedFlag: String = "--seed") throws -> Plan {
        var recipe = MixRecipe()
        if let file = args.value("--recipe") { recipe = try MixRecipe.load(file) }
        let vectorsDir = args.value("--vectors") ?? recipe.vectorsDirectory ?? "."
        var mix = recipe.mix
        var rules = recipe.rules
        var flagged: Set<String> = []
        for (name, text) in args.dynamic where name.contains(".") {
            try rule(name, text, into: &rules)
        }
        for (name, text) in args.dynamic where !name.contains(".") {
            guard let c = Double(text), c.isFinite else {
                throw UsageError(message: "--\(name) needs a finite number (its coefficient), not '\(text)'")
            }
            guard flagged.insert(name).inserted else {
                throw UsageError(message: "domain '\(name)' is given twice (--\(name)); give each domain once")
            }
            // A flag overrides the recipe's coefficient for the same domain.
            mix.removeAll { $0.domain == name }
            mix.append((name, c))
        }
        var files = recipe.vectors
        for item in args.all("--vector") {
            guard let eq = item.lastIndex(of: "="), let c = Double(item[item.index(after: eq)...]), c.isFinite else {
                throw UsageError(message: "--vector takes PATH=COEF with a finite coefficient, not '\(item)'")
            }
            files.append((String(item[..<eq]), c))
        }
        // A domain with only a gradient (no plain coefficient) is mixed by its gradient alone.
        for (domain, rule) in rules where rule.gradient != nil && !mix.contains(where: { $0.domain == domain }) {
            mix.append((domain, 0))
        }
        if let missing = rules.keys.sorted().first(where: { d in !mix.contains { $0.domain == d } }) {
            throw UsageError(
                message: "--\(missing).* sets λ per layer or module of a domain not mixed: add --\(missing) COEF")
        }
        guard !mix.isEmpty || !files.isEmpty else {
            throw UsageError(message: "no vectors to mix: give --DOMAIN COEF, --vector PATH=COEF or --recipe FILE")
        }
        var terms: [MergeTerm] = []
        for (domain, c) in mix {
            terms.append(
                MergeTerm(vector: try vector(domain: domain, in: vectorsDir), coefficient: c, rule: rules[domain]))
        }
        for (path, c) in files { terms.append(MergeTerm(vector: try AlignmentVector(path: path), coefficient: c)) }
        // One coefficient per domain: the same domain twice (by name or by file) is ambiguous.
        for (i, t) in terms.enumerated() {
            if let u = terms[..<i].first(where: { $0.vector.domain == t.vector.domain }) {
                let same = u.vector.path == t.vector.path ? "" : " (\(u.vector.path) and \(t.vector.path))"
                throw UsageError(message: "domain '\(t.vector.domain)' is given twice\(same); give each domain once")
            }
        }

        let basePath: String
        if let b = args.value("--base") ?? recipe.base {
            basePath = b
        } else if let recorded = terms.first?.vector.header.base.path, FileManager.default.fileExists(atPath: recorded)
        {
            basePath = recorded
        } else {
            throw AVError.noBase(
                reason:
                    "no base given (--base PATH), and the base the vectors record"
                    + " (\(terms.first?.vector.header.base.path ?? "?")) does not exist here"
            )
        }
        let output = args.value("-o") ?? recipe.output
        if needOutput && output == nil { throw UsageError(message: "missing -o PATH") }
        var options = MergeOptions()
        var ggufType: GGMLType?
        if let output, output.hasSuffix(".gguf") {
            let spelling = args.value("--dtype") ?? recipe.dtype?.rawValue
            (ggufType, options.dtype) = try MergeToGGUF.types(spelling)
        } else if let text = args.value("--dtype") {
            guard let d = DType(userSpelling: text), [.f32, .bf16, .f16, .f64].contains(d) else {
                throw UsageError(message: "--dtype must be f32, bf16, f16 or f64, not '\(text)'")
            }
            options.dtype = d
        } else {
            options.dtype = recipe.dtype
        }
        if let text = args.value("--max-shard-size") {
            guard let n = parseSize(text) else {
                throw UsageError(message: "--max-shard-size takes a size like 5GB, not '\(text)'")
            }
            options.maxShardSize = n
        } else {
            options.maxShardSize = recipe.maxShardSize
        }
        options.force = args.has("--force") || recipe.force
        options.transfer = args.has("--transfer")
        options.allowNonFinite = args.has("--allow-nonfinite") || recipe.allowNonFinite
        options.threads = try args.threads()
        options.method = try method(args, recipe: recipe.method, seedFlag: seedFlag)
        options.protectedPaths = [recipe.file, args.value("--vectors") ?? recipe.vectorsDirectory].compactMap { $0 }
        var resolvedRecipe = recipe
        resolvedRecipe.base = basePath
        resolvedRecipe.vectorsDirectory = vectorsDir
        resolvedRecipe.mix = mix
        resolvedRecipe.rules = rules
        resolvedRecipe.vectors = files
        resolvedRecipe.output = output
        resolvedRecipe.dtype = options.dtype
        resolvedRecipe.maxShardSize = options.maxShardSize
        resolvedRecipe.method = options.method
        options.provenance["recipe"] = resolvedRecipe.json
        return Plan(
            base: try Checkpoint(path: try GGUFPaths.resolve(basePath, like: terms.first?.vector.header.base.dtype)),
            terms: terms, output: output ?? "",
            options: options, ggufType: ggufType)
    }

    /// The AV of `domain`: `DIR/DOMAIN.av`, or an error listing the domains that are there.
    static func vector(domain: String, in dir: String) throws -> AlignmentVector {
        let path = Path.join(dir, domain + ".av")
        guard FileManager.default.fileExists(atPath: path) else {
            let found = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter {
                $0.hasSuffix(".av")
            }.sorted()
            throw AVError.unknownDomain(name: domain, directory: dir, found: found.map { String($0.dropLast(3)) })
        }
        return try AlignmentVector(path: path)
    }

    static func run(_ args: ParsedArguments) throws -> ExitCode {
        guard args.positionals.isEmpty else {
            throw UsageError(
                message: "unexpected argument '\(args.positionals[0])' (coefficients follow a --DOMAIN flag)")
        }
        let p = try plan(args)
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
            print(GGUFPaths.originals(in: text(report, dtype: p.options.dtype, gguf: p.ggufType, retention: retention)))
            for t in p.terms {
                if let rule = t.rule {
                    print("  λ rule   \(t.vector.domain): \(rule.json(value: t.coefficient).rendered())")
                }
            }
        }
        return .success
    }

    static func formula(_ r: MergeReport) -> String {
        "base"
            + r.terms.map { t in
                let c = t.coefficient
                return (c < 0 ? " - " : " + ") + "\(String(trimming: c.magnitude))·\(t.domain)"
            }.joined()
    }

    static func text(_ r: MergeReport, dtype: DType?, gguf: GGMLType? = nil, retention: GGUFRetention? = nil)
        -> String
    {
        var lines = ["av merge: \(formula(r)) → \(r.output)"]
        let changed = r.changed
        let share = changed > 0 ? 100 * Double(r.roundedAway) / Double(changed) : 0
        let outName = dtype?.rawValue ?? r.base.dtype
        var rows: [(String, String)] = [
            (
                "base",
                "\(r.base.path) (\(r.base.dtype), fingerprint \(r.base.fingerprint),"
                    + " \(r.baseVerified ? "matches the vectors" : "NOT the vectors' base: transferred"))"
            ),
            (
                "vectors",
                r.terms.map { "\($0.path) (\($0.domain), λ = \(String(trimming: $0.coefficient)))" }.joined(
                    separator: ", ")
            ),
            ("tensors", "\(r.tensors.count) written, \(r.touchedTensors) changed by the mix"),
        ]
        if let method = r.method, !method.isLinear {
            rows.append(("method", method.json.rendered()))
        }
        rows += [
            (
                "values",
                gguf != nil && outName.uppercased() == "F32"
                    ? "\(Format.grouped(changed)) changed"
                    : "\(Format.grouped(changed)) changed; \(Format.grouped(r.roundedAway))"
                        + " (\(String(cFormat: "%.2f", share))%) rounded back to the base's value in \(outName)"
            )
        ]
        let rate = r.seconds > 0 ? Double(r.bytesRead) / r.seconds : 0
        let names = r.outputFiles.map { URL(fileURLWithPath: $0).lastPathComponent }
        let listed = names.count > 1 || names.first != URL(fileURLWithPath: r.output).lastPathComponent
        let files = listed ? " (" + names.joined(separator: ", ") + ")" : ""
        let timing = String(cFormat: "%.2f", r.seconds) + " s (read \(Format.bytes(Int(rate)))/s)"
        if let gguf {
            rows.append(("gguf", "matrices as \(gguf.name), merged in \(outName) first"))
        }
        if let retention {
            rows.append(
                (
                    "kept",
                    String(cFormat: "%.1f%%", 100 * retention.kept) + " of the mix's change survived"
                        + " \(gguf?.name ?? "") (rounding error "
                        + String(cFormat: "%.2f", retention.errorRatio) + "× the change's energy)"
                ))
        }
        rows.append(("wrote", "\(r.output)\(files): \(Format.bytes(r.bytesWritten)) in " + timing))
        for (k, v) in rows { lines.append("  " + k.padded(to: 9) + v) }
        if changed == 0, r.terms.contains(where: { $0.coefficient != 0 }) {
            lines.append(
                "note: the mix changed no value: every λ·Δ is too small to move a weight even in f64 (the output is"
                    + " the base)"
            )
        }
        if share >= 10, outName != "F32", outName != "F64" {
            lines.append(
                "note: \(String(cFormat: "%.1f", share))% of the changes were smaller than \(outName) can hold next"
                    + " to the base's values and were rounded away; --dtype f32 keeps them"
            )
        }
        return lines.joined(separator: "\n")
    }

    static func json(_ r: MergeReport, dtype: DType?, gguf: GGMLType? = nil, retention: GGUFRetention? = nil)
        -> JSONValue
    {
        .object([
            ("output", .string(r.output)), ("files", .array(r.outputFiles.map { .string($0) })), ("base", r.base.json),
            ("baseVerified", .bool(r.baseVerified)),
            (
                "vectors",
                .array(
                    r.terms.map {
                        .object([
                            ("path", .string($0.path)), ("domain", .string($0.domain)),
                            ("coefficient", .double($0.coefficient)),
                        ])
                    })
            ),
            ("dtype", .string(gguf.map { "gguf:" + $0.name } ?? dtype?.rawValue ?? "base")),
            ("changedValues", .int(r.changed)),
            ("roundedAway", .int(r.roundedAway)),
            (
                "gguf",
                retention.map {
                    .object([("kept", .double($0.kept)), ("errorRatio", .double($0.errorRatio))])
                } ?? .null
            ),
            ("seconds", .double(r.seconds)), ("bytesRead", .int(r.bytesRead)), ("bytesWritten", .int(r.bytesWritten)),
            (
                "tensors",
                .array(
                    r.tensors.map { t in
                        .object([
                            ("name", .string(t.name)), ("dtype", .string(t.dtype.rawValue)), ("terms", .int(t.terms)),
                            ("changed", .int(t.changed)),
                            ("roundedAway", .int(t.roundedAway)),
                        ])
                    })
            ),
        ])
    }
}

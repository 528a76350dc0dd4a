import AlignmentVectors
import GGUF
import SafeTensors
import Tensors

/// A merge's words, read and resolved: the recipe with the flags over it (flags win), its terms,
/// the base, the output and the options; shared by the commands that merge or evaluate a mix.
struct MergeArguments {
    var base: Checkpoint
    var terms: [MergeTerm]
    var output: String
    var options: MergeOptions
    /// For a `.gguf` output: the type its matrices are written as.
    var ggufType: GGMLType? = nil

    /// Reads the recipe (`--recipe`) and the flags, resolves the mix (`MixRecipe.resolved`) and
    /// opens the base. `seedFlag` is DARE's seed where `--seed` means the sampler's.
    static func parse(_ args: ParsedArguments, needOutput: Bool = true, seedFlag: String = "--seed") throws
        -> MergeArguments
    {
        var recipe = MixRecipe()
        if let file = args.value("--recipe") { recipe = try MixRecipe.load(file) }
        if let dir = args.value("--vectors") { recipe.vectorsDirectory = dir }
        if let base = args.value("--base") { recipe.base = base }
        var flagged: Set<String> = []
        for (name, text) in args.dynamic where name.contains(".") {
            try MergeCommand.rule(name, text, into: &recipe.rules)
        }
        for (name, text) in args.dynamic where !name.contains(".") {
            guard let c = Double(text), c.isFinite else {
                throw UsageError(message: "--\(name) needs a finite number (its coefficient), not '\(text)'")
            }
            guard flagged.insert(name).inserted else {
                throw UsageError(message: "domain '\(name)' is given twice (--\(name)); give each domain once")
            }
            // A flag overrides the recipe's coefficient for the same domain.
            recipe.mix.removeAll { $0.domain == name }
            recipe.mix.append((name, c))
        }
        for item in args.all("--vector") {
            guard let eq = item.lastIndex(of: "="), let c = Double(item[item.index(after: eq)...]), c.isFinite else {
                throw UsageError(message: "--vector takes PATH=COEF with a finite coefficient, not '\(item)'")
            }
            recipe.vectors.append((String(item[..<eq]), c))
        }
        let (resolved, terms) = try recipe.resolved()
        var r = resolved
        r.output = args.value("-o") ?? recipe.output
        if needOutput && r.output == nil { throw UsageError(message: "missing -o PATH") }
        var options = MergeOptions()
        var ggufType: GGMLType?
        if let output = r.output, output.hasSuffix(".gguf") {
            (ggufType, options.dtype) = try MergeToGGUF.types(args.value("--dtype") ?? recipe.dtype?.rawValue)
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
        options.method = try MergeCommand.method(args, recipe: recipe.method, seedFlag: seedFlag)
        options.protectedPaths = [recipe.file, args.value("--vectors") ?? recipe.vectorsDirectory].compactMap { $0 }
        r.dtype = options.dtype
        r.maxShardSize = options.maxShardSize
        r.method = options.method
        options.provenance["recipe"] = r.json
        let base = try resolveBase(r.base!, for: terms.map(\.vector))
        if base != r.base! { options.basePath = r.base! }
        return MergeArguments(
            base: try Checkpoint(path: base), terms: terms, output: r.output ?? "", options: options,
            ggufType: ggufType)
    }
}

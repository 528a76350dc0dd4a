import AlignmentVectors

/// How the flags that shape a mix are read (declared in SharedOptions): the merge method and its settings,
/// and a domain's λ per layer and module.
extension MergeCommand {
    /// The merge method from the flags over the recipe's.
    static func method(_ args: ParsedArguments, recipe: MergeMethod?, seedFlag: String) throws -> MergeMethod {
        var m = recipe ?? .linear
        if let text = args.value("--method") {
            guard let kind = MergeMethod.Kind(spelling: text) else {
                throw UsageError(
                    message: "--method must be linear, ties, dare-linear, dare-ties, breadcrumbs, breadcrumbs-ties,"
                        + " della, della-linear, model-stock, sce, slerp, nuslerp or magnitude-prune,"
                        + " not '\(text)'")
            }
            m = MergeMethod(
                kind: kind, density: m.density, seed: m.seed, consensus: m.consensus, gamma: m.gamma, epsilon: m.epsilon
            )
        }
        if let text = args.value("--density") {
            guard let d = Double(text), d > 0, d <= 1 else {
                throw UsageError(message: "--density is a share in (0, 1], not '\(text)'")
            }
            m.density = d
        }
        if let text = args.value(seedFlag) {
            guard let s = UInt64(text) else {
                throw UsageError(message: "\(seedFlag) needs a whole number, not '\(text)'")
            }
            m.seed = s
        }
        if let text = args.value("--consensus") {
            guard let c = MergeMethod.Consensus(rawValue: text) else {
                throw UsageError(message: "--consensus must be sum or count, not '\(text)'")
            }
            m.consensus = c
        }
        if let text = args.value("--gamma") {
            guard let g = Double(text), g >= 0, g < 1 else {
                throw UsageError(message: "--gamma is a share in [0, 1), not '\(text)'")
            }
            guard m.prunesOutliers else { throw UsageError(message: "--gamma applies to --method breadcrumbs") }
            m.gamma = g
        }
        if let text = args.value("--epsilon") {
            guard let e = Double(text), e > 0, e < 1 else {
                throw UsageError(message: "--epsilon is a share in (0, 1), not '\(text)'")
            }
            guard m.kind == .della || m.kind == .dellaLinear else {
                throw UsageError(message: "--epsilon applies to --method della or della-linear")
            }
            m.epsilon = e
        }
        for (flag, on) in [("--normalize", true), ("--no-normalize", false)] where args.has(flag) { m.normalize = on }
        for (flag, on) in [("--rescale", true), ("--no-rescale", false)] where args.has(flag) { m.rescale = on }
        if m.isLinear,
            let flag = [
                "--density", seedFlag, "--consensus", "--normalize", "--no-normalize", "--rescale", "--no-rescale",
            ]
            .first(where: args.has)
        {
            throw UsageError(message: "\(flag) applies to --method ties, dare-linear, dare-ties or breadcrumbs")
        }
        return m
    }

    /// `--DOMAIN.layers 0-9=0.2,20-29=1`, `--DOMAIN.modules mlp=0`, `--DOMAIN.gradient 0,0.5,1` and
    /// `--DOMAIN.outside 0`: the domain's λ per layer and module (flags override the recipe's, field by field).
    static func rule(_ name: String, _ text: String, into rules: inout [String: CoefficientRule]) throws {
        guard let dot = name.lastIndex(of: ".") else { return }
        let domain = String(name[..<dot])
        let field = String(name[name.index(after: dot)...])
        var rule = rules[domain] ?? CoefficientRule()
        func bad(_ form: String) -> UsageError { UsageError(message: "--\(name) takes \(form), not '\(text)'") }
        switch field {
        case "layers":
            guard let v = CoefficientRule.layers(text) else { throw bad("ranges of layers, e.g. 0-9=0.2,20-29=1") }
            rule.layers = v
        case "modules":
            guard let v = CoefficientRule.modules(text) else { throw bad("name parts, e.g. mlp=0,self_attn=0.5") }
            rule.modules = v
        case "gradient":
            guard let v = CoefficientRule.gradient(text) else {
                throw bad("numbers spread over the layers, e.g. 0,0.5,1")
            }
            rule.gradient = v
        case "outside":
            guard let v = Double(text), v.isFinite else { throw bad("the λ of tensors outside the layers, a number") }
            rule.outside = v
        default:
            throw UsageError(
                message: "unknown option '--\(name)' (a domain takes .layers, .modules, .gradient, .outside)")
        }
        rules[domain] = rule
    }
}

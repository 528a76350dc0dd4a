import AlignmentVectors
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Whether a merged model is the mix a recipe describes, by the `av.merge` record `av merge`
/// writes into every output: the gate must not pass a model merged at another λ.
public enum MixProvenance: Sendable, Equatable {
    /// The recipe names no mix: there is nothing to compare.
    case noMix
    /// The model records the recipe's domains, coefficients and method.
    case matches
    /// The model records no av merge (made by another tool, or its metadata stripped).
    case unrecorded
    /// The model records another mix; the message says what differs.
    case differs(String)

    /// Compares the `av.merge` record of the model at `path` with `recipe`'s mix.
    /// - Throws: what opening the model throws.
    public static func of(_ path: String, against recipe: MixRecipe) throws -> MixProvenance {
        guard !recipe.mix.isEmpty || !recipe.vectors.isEmpty else { return .noMix }
        let model = try SafeTensorsModel(path: path)
        return of(record: model.files.first?.metadata?["av.merge"], path: path, against: recipe)
    }

    /// Compares an `av.merge` record (the JSON text `av merge` writes; nil when the model has none)
    /// of the model at `path` (named in messages) with `recipe`'s mix: for models whose record is
    /// read another way, as a GGUF's metadata.
    public static func of(record text: String?, path: String, against recipe: MixRecipe) -> MixProvenance {
        guard !recipe.mix.isEmpty || !recipe.vectors.isEmpty else { return .noMix }
        guard let text, let record = try? JSONParser.parse(text), let vectors = record["vectors"]?.arrayValue
        else { return .unrecorded }
        func describe(_ terms: [(String, Double)]) -> String {
            terms.map { "\($0.0) \(String(trimming: $0.1))" }.joined(separator: ", ")
        }
        let recorded = vectors.map {
            ($0["domain"]?.stringValue ?? "?", $0["coefficient"]?.doubleValue ?? .nan, $0["path"]?.stringValue ?? "")
        }
        // λ per layer and module must be the recipe's too (a model merged without it, or with another).
        for v in vectors {
            let domain = v["domain"]?.stringValue ?? "?"
            let rule = v["rule"].flatMap { $0 == .null ? nil : $0.rendered() }
            let asked = recipe.rules[domain].map { $0.json(value: nil).rendered() }
            if recipe.mix.contains(where: { $0.domain == domain }), rule != asked {
                return .differs(
                    "\(path) was merged with \(domain)'s λ by layer and module \(rule ?? "none"); the recipe asks for"
                        + " \(asked ?? "none")")
            }
        }
        // Domains by name for `mix`; files by name for `vectors` (their path may differ between machines).
        var wanted = recipe.mix.map { ($0.domain, $0.coefficient, "") }
        wanted += recipe.vectors.map { ("", $0.coefficient, Path.lastComponent($0.path)) }
        var left = recorded
        for w in wanted {
            guard
                let i = left.firstIndex(where: { r in
                    (w.0.isEmpty ? Path.lastComponent(r.2) == w.2 : r.0 == w.0) && abs(r.1 - w.1) <= 1e-12
                })
            else {
                return .differs(
                    "\(path) was merged with \(describe(recorded.map { ($0.0, $0.1) })); the recipe asks for"
                        + " \(describe(wanted.map { ($0.0.isEmpty ? $0.2 : $0.0, $0.1) }))")
            }
            left.remove(at: i)
        }
        if !left.isEmpty {
            return .differs(
                "\(path) was merged with \(describe(left.map { ($0.0, $0.1) })) too, which the recipe lacks")
        }
        let method = record["method"] ?? MergeMethod.linear.json
        let asked = (recipe.method ?? .linear).json
        if !(recipe.method ?? .linear).isLinear || record["method"] != nil, method != asked {
            return .differs(
                "\(path) was merged with method \(method.rendered()); the recipe asks for \(asked.rendered())")
        }
        return .matches
    }
}


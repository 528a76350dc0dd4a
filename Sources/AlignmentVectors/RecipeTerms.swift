import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension AlignmentVector {
    /// The AV of `domain`: `DIR/DOMAIN.av`, or an error listing the domains that are there.
    public static func named(_ domain: String, in dir: String) throws(AVError) -> AlignmentVector {
        let path = Path.join(dir, domain + ".av")
        guard FileManager.default.fileExists(atPath: path) else {
            let found = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter {
                $0.hasSuffix(".av")
            }.sorted()
            throw .unknownDomain(name: domain, directory: dir, found: found.map { String($0.dropLast(3)) })
        }
        return try AlignmentVector(path: path)
    }
}

extension MixRecipe {
    /// The recipe with what a merge needs filled in, and its terms: each `mix` domain's vector from
    /// `vectorsDirectory` (`.` when unset) with its λ rule, then each `vectors` file. A domain with
    /// only a gradient is mixed by its gradient alone (λ 0 elsewhere); the base is the recipe's, or
    /// the one the first vector records when that exists here.
    ///
    /// - Throws: `AVError.usage` for a rule of a domain not mixed, nothing to mix, or a domain given
    ///   twice (by name or by file); `.unknownDomain` for a missing `DOMAIN.av`; `.noBase` when no
    ///   base is named or found.
    public func resolved() throws(AVError) -> (recipe: MixRecipe, terms: [MergeTerm]) {
        var r = self
        r.vectorsDirectory = vectorsDirectory ?? "."
        for (domain, rule) in rules where rule.gradient != nil && !r.mix.contains(where: { $0.domain == domain }) {
            r.mix.append((domain, 0))
        }
        if let missing = rules.keys.sorted().first(where: { d in !r.mix.contains { $0.domain == d } }) {
            throw .usage("--\(missing).* sets λ per layer or module of a domain not mixed: add --\(missing) COEF")
        }
        guard !r.mix.isEmpty || !vectors.isEmpty else {
            throw .usage("no vectors to mix: give --DOMAIN COEF, --vector PATH=COEF or --recipe FILE")
        }
        var terms: [MergeTerm] = []
        for (domain, c) in r.mix {
            let vector = try AlignmentVector.named(domain, in: r.vectorsDirectory!)
            terms.append(MergeTerm(vector: vector, coefficient: c, rule: rules[domain]))
        }
        for (path, c) in vectors { terms.append(MergeTerm(vector: try AlignmentVector(path: path), coefficient: c)) }
        // One coefficient per domain: the same domain twice (by name or by file) is ambiguous.
        for (i, t) in terms.enumerated() {
            if let u = terms[..<i].first(where: { $0.vector.domain == t.vector.domain }) {
                let same = u.vector.path == t.vector.path ? "" : " (\(u.vector.path) and \(t.vector.path))"
                throw .usage("domain '\(t.vector.domain)' is given twice\(same); give each domain once")
            }
        }
        if r.base == nil {
            guard let recorded = terms.first?.vector.header.base.path, FileManager.default.fileExists(atPath: recorded)
            else {
                throw .noBase(
                    reason: "no base given (--base PATH), and the base the vectors record"
                        + " (\(terms.first?.vector.header.base.path ?? "?")) does not exist here")
            }
            r.base = recorded
        }
        return (r, terms)
    }
}

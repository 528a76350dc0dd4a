import SafeTensors

extension MergeMethod {
    /// Reads a recipe's `"method"`: a name (`"ties"`) or an object with `name` and any of
    /// `density`, `seed`, `consensus`, `normalize`, `rescale`. Unknown keys are errors.
    public init(recipe value: JSONValue, file: String) throws(AVError) {
        func fail(_ message: String) -> AVError { .recipe(file: file, message: "\"method\": " + message) }
        let names = Kind.allCases.map(\.rawValue).joined(separator: ", ")
        if let text = value.stringValue {
            guard let kind = Kind(spelling: text) else { throw fail("\(text) is not one of \(names)") }
            self.init(kind: kind)
            return
        }
        guard case .object(let members) = value else { throw fail("a method name or an object") }
        guard let text = value["name"]?.stringValue, let kind = Kind(spelling: text) else {
            throw fail("\"name\" must be one of \(names)")
        }
        var normalize: Bool?
        var rescale: Bool?
        var density = 1.0
        var seed: UInt64 = 0
        var consensus = Consensus.sum
        var gamma = 0.01
        var epsilon = 0.15
        for (key, v) in members {
            switch key {
            case "name": break
            case "density":
                guard let d = v.doubleValue else { throw fail("\"density\" must be a number") }
                density = d
            case "seed":
                guard let d = v.doubleValue, d >= 0, d == d.rounded(), d < 9e15 else {
                    throw fail("\"seed\" must be a whole number ≥ 0")
                }
                seed = UInt64(d)
            case "consensus":
                guard let c = v.stringValue.flatMap(Consensus.init(rawValue:)) else {
                    throw fail("\"consensus\" must be sum or count")
                }
                consensus = c
            case "gamma":
                guard let g = v.doubleValue else { throw fail("\"gamma\" must be a number") }
                gamma = g
            case "epsilon":
                guard let e = v.doubleValue else { throw fail("\"epsilon\" must be a number") }
                epsilon = e
            case "normalize", "rescale":
                guard case .bool(let b) = v else { throw fail("\"\(key)\" must be true or false") }
                if key == "normalize" { normalize = b } else { rescale = b }
            default:
                throw fail(
                    "unknown key \"\(key)\" (known: name, density, seed, consensus, normalize, rescale, gamma, epsilon)"
                )
            }
        }
        self.init(
            kind: kind, density: density, seed: seed, consensus: consensus, normalize: normalize, rescale: rescale,
            gamma: gamma, epsilon: epsilon)
        do {
            try validate()
        } catch {
            throw fail("\(error)")
        }
    }

    /// The recipe form, every setting spelled out.
    public var recipeJSON: JSONValue {
        .object([
            ("name", .string(kind.rawValue)), ("density", .double(density)),
            ("seed", .int(Int(truncatingIfNeeded: seed))), ("consensus", .string(consensus.rawValue)),
            ("normalize", .bool(normalize)), ("rescale", .bool(rescale)), ("gamma", .double(gamma)),
            ("epsilon", .double(epsilon)),
        ])
    }
}

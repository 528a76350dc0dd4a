import SafeTensors

/// λ per layer and per module: how a domain's coefficient varies over a model's tensors.
///
/// For a tensor, the first rule that applies decides, in this order:
/// 1. `modules`: the first entry whose key is part of the tensor's name (mergekit's `filter`:
///    `"mlp"`, `"self_attn"`, `"q_proj"`, …) gives its value, in every layer;
/// 2. `outside`: for tensors outside the layers (embeddings, final norm, `lm_head`), when set;
/// 3. `layers`: for a tensor of layer N, the last range that contains N;
/// 4. `gradient`: mergekit's gradient, interpolated over the layers: layer N of L is at
///    t = N / (L − 1) (t = 1 when L = 1), between values ⌊t·(n−1)⌋ and the next, linearly; tensors
///    outside the layers take t = 0, the first value, as mergekit plans them;
/// 5. the domain's plain coefficient.
public struct CoefficientRule: Sendable, Equatable {
    /// Layer ranges (inclusive) and their values; later ranges win where they overlap.
    public var layers: [(range: ClosedRange<Int>, value: Double)] = []
    /// Name parts and their values; the first that matches wins.
    public var modules: [(part: String, value: Double)] = []
    /// mergekit's gradient: values spread evenly over the layers.
    public var gradient: [Double]?
    /// The value of tensors outside the layers.
    public var outside: Double?

    /// An empty rule: every tensor takes the plain coefficient.
    public init() {}

    public static func == (a: CoefficientRule, b: CoefficientRule) -> Bool {
        a.layers.map(\.range) == b.layers.map(\.range) && a.layers.map(\.value) == b.layers.map(\.value)
            && a.modules.map(\.part) == b.modules.map(\.part) && a.modules.map(\.value) == b.modules.map(\.value)
            && a.gradient == b.gradient && a.outside == b.outside
    }

    /// True when the rule changes nothing.
    public var isEmpty: Bool { layers.isEmpty && modules.isEmpty && gradient == nil && outside == nil }

    /// The coefficient of `tensor` in a model of `layerCount` layers, for a plain coefficient `value`.
    public func coefficient(_ value: Double, tensor: String, layerCount: Int) -> Double {
        if let m = modules.first(where: { tensor.contains($0.part) }) { return m.value }
        let layer = VectorAnalysis.layer(of: tensor)
        if layer == nil, let outside { return outside }
        if let layer, let r = layers.last(where: { $0.range.contains(layer) }) { return r.value }
        if let gradient, !gradient.isEmpty {
            var t = 0.0
            if let layer { t = layerCount > 1 ? Double(layer) / Double(layerCount - 1) : 1 }
            let scaled = t * Double(gradient.count - 1)
            let i0 = min(gradient.count - 1, Int(scaled))
            let i1 = min(gradient.count - 1, i0 + 1)
            let frac = scaled - Double(i0)
            return (1 - frac) * gradient[i0] + frac * gradient[i1]
        }
        return value
    }

    /// Parses `"0-9=0.2,20-29=1"` (`--DOMAIN.layers`); a single layer is `"5=0"`.
    public static func layers(_ text: String) -> [(range: ClosedRange<Int>, value: Double)]? {
        var out: [(range: ClosedRange<Int>, value: Double)] = []
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let v = Double(parts[1]), v.isFinite, let r = range(String(parts[0])) else {
                return nil
            }
            out.append((r, v))
        }
        return out.isEmpty ? nil : out
    }

    /// `"N"` or `"A-B"` (A ≤ B, both ≥ 0).
    public static func range(_ text: String) -> ClosedRange<Int>? {
        let ends = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard let a = Int(ends[0]), a >= 0 else { return nil }
        guard ends.count == 2 else { return a...a }
        guard let b = Int(ends[1]), b >= a else { return nil }
        return a...b
    }

    /// Parses `"mlp=0,self_attn=0.5"` (`--DOMAIN.modules`).
    public static func modules(_ text: String) -> [(part: String, value: Double)]? {
        var out: [(part: String, value: Double)] = []
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty, let v = Double(parts[1]), v.isFinite else { return nil }
            out.append((String(parts[0]), v))
        }
        return out.isEmpty ? nil : out
    }

    /// Parses `"0,0.5,1"` (`--DOMAIN.gradient`).
    public static func gradient(_ text: String) -> [Double]? {
        let values = text.split(separator: ",").map { Double($0) }
        guard !values.isEmpty, values.allSatisfy({ $0?.isFinite == true }) else { return nil }
        return values.map { $0! }
    }

    /// The rule in a recipe's form (the object that stands for a domain's number in `"mix"`).
    public func json(value: Double?) -> JSONValue {
        var m: [(key: String, value: JSONValue)] = []
        if let value { m.append(("value", .double(value))) }
        if !layers.isEmpty {
            m.append(
                (
                    "layers",
                    .object(
                        layers.map {
                            (
                                $0.range.count == 1
                                    ? "\($0.range.lowerBound)" : "\($0.range.lowerBound)-\($0.range.upperBound)",
                                .double($0.value)
                            )
                        })
                ))
        }
        if !modules.isEmpty { m.append(("modules", .object(modules.map { ($0.part, .double($0.value)) }))) }
        if let gradient { m.append(("gradient", .array(gradient.map { .double($0) }))) }
        if let outside { m.append(("outside", .double(outside))) }
        return .object(m)
    }

    /// Reads a recipe's object form: `{"value": 0.5, "layers": {"0-9": 0.2}, "modules": {"mlp": 0},
    /// "gradient": [0, 0.5, 1], "outside": 0}`; `value` may be left out when `gradient` is given.
    /// - Returns: the plain value (0 when only a gradient is given) and the rule.
    public static func parse(_ json: JSONValue, domain: String, file: String) throws(AVError) -> (Double, Self) {
        func fail(_ m: String) -> AVError { .recipe(file: file, message: "\"mix\": \"\(domain)\": \(m)") }
        guard case .object(let members) = json else { throw fail("must be a number or an object") }
        var rule = CoefficientRule()
        var value: Double?
        for (key, v) in members {
            func number(_ x: JSONValue, _ what: String) throws(AVError) -> Double {
                guard let d = x.doubleValue, d.isFinite else { throw fail("\(what) must be a number") }
                return d
            }
            switch key {
            case "value": value = try number(v, "\"value\"")
            case "outside": rule.outside = try number(v, "\"outside\"")
            case "layers":
                guard case .object(let items) = v, !items.isEmpty else {
                    throw fail("\"layers\" must map ranges to numbers")
                }
                for (k, x) in items {
                    guard let r = range(k) else { throw fail("\"layers\": \"\(k)\" is not a layer or a range A-B") }
                    rule.layers.append((r, try number(x, "\"layers\": \"\(k)\"")))
                }
            case "modules":
                guard case .object(let items) = v, !items.isEmpty else {
                    throw fail("\"modules\" must map names to numbers")
                }
                for (k, x) in items where !k.isEmpty {
                    rule.modules.append((k, try number(x, "\"modules\": \"\(k)\"")))
                }
            case "gradient":
                guard let items = v.arrayValue, !items.isEmpty, items.count <= 4096 else {
                    throw fail("\"gradient\" must be a list of numbers")
                }
                var g: [Double] = []
                for x in items { g.append(try number(x, "\"gradient\"")) }
                rule.gradient = g
            default:
                throw fail("unknown key \"\(key)\" (known: gradient, layers, modules, outside, value)")
            }
        }
        guard value != nil || rule.gradient != nil else { throw fail("needs \"value\" (or a \"gradient\")") }
        return (value ?? 0, rule)
    }
}

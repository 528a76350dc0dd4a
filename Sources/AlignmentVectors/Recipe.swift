import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A mix pinned in a file, so a pipeline keeps it in its repository: `av merge --recipe FILE`.
///
/// ```json
/// {
///   "base": "Checkpoints/base",
///   "vectors_dir": "vectors",
///   "mix": {"medical": 0.5, "legal": 1.2},
///   "vectors": [{"path": "extra/safety.av", "coefficient": -0.3}],
///   "output": "merged",
///   "dtype": "bf16",
///   "max_shard_size": "2GB",
///   "force": false,
///   "allow_nonfinite": false,
///   "method": {"name": "ties", "density": 0.5, "consensus": "sum", "normalize": true},
///   "checks": [ ... ]
/// }
/// ```
/// Relative paths are relative to the recipe file's directory. `mix` names domains, resolved to
/// `vectors_dir/NAME.av`; `vectors` names files. Unknown keys are errors (a typo must not pass
/// silently in CI); `checks` is read by `av check`.
public struct MixRecipe: Sendable {
    /// The recipe file the values were read from (relative paths resolve against its directory).
    public var file: String?
    /// `base`: the checkpoint the vectors are added to.
    public var base: String?
    /// `vectors_dir`: where `mix` domains are found, as `NAME.av`.
    public var vectorsDirectory: String?
    /// `mix`: domain → λ, in the order written.
    public var mix: [(domain: String, coefficient: Double)] = []
    /// λ per layer and module of the domains that have one (`"mix": {"medical": {"value": 0.5, …}}`).
    public var rules: [String: CoefficientRule] = [:]
    /// `vectors`: AV files with their λ, in the order written.
    public var vectors: [(path: String, coefficient: Double)] = []
    /// `output`: where the merged model goes.
    public var output: String?
    /// `dtype`: the output dtype of floating-point tensors; nil keeps the base's.
    public var dtype: DType?
    /// `max_shard_size`: the largest shard of a directory output, in bytes.
    public var maxShardSize: Int?
    /// `force`: merge vectors whose recorded base differs from the one given.
    public var force = false
    /// `allow_non_finite`: write NaN or Inf results instead of refusing.
    public var allowNonFinite = false
    /// `checks`: the gate `av check` applies to the merged model.
    public var checks: JSONValue?
    /// How the vectors combine (`"method": "ties"` or an object with its settings); nil is linear.
    public var method: MergeMethod?

    /// An empty recipe, filled from flags.
    public init() {}

    static let knownKeys: Set<String> = [
        "base", "vectors_dir", "mix", "vectors", "output", "dtype", "max_shard_size", "force", "allow_nonfinite",
        "checks",
        "description", "name", "method",
    ]

    /// Reads and validates a recipe file.
    public static func load(_ path: String) throws(AVError) -> MixRecipe {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .file(SafeTensorsError(file: path, .io(operation: "read", message: "cannot read the recipe")))
        }
        let root: JSONValue
        do {
            root = try JSONParser.parse(String(decoding: data, as: UTF8.self))
        } catch {
            throw .recipe(file: path, message: "not valid JSON: \(error.message) at byte \(error.offset)")
        }
        guard case .object(let members) = root else { throw .recipe(file: path, message: "expected a JSON object") }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
        func place(_ p: String) -> String {
            p.hasPrefix("/") ? p : dir.appendingPathComponent(p).standardizedFileURL.path
        }
        var r = MixRecipe()
        r.file = path
        var seen: Set<String> = []
        for (key, value) in members {
            guard seen.insert(key).inserted else { throw .recipe(file: path, message: "key \"\(key)\" appears twice") }
            guard knownKeys.contains(key) else {
                throw .recipe(
                    file: path, message: "unknown key \"\(key)\" (known: \(knownKeys.sorted().joined(separator: ", ")))"
                )
            }
            func string() throws(AVError) -> String {
                guard let s = value.stringValue else {
                    throw .recipe(file: path, message: "\"\(key)\" must be a string")
                }
                return s
            }
            func bool() throws(AVError) -> Bool {
                guard case .bool(let b) = value else {
                    throw .recipe(file: path, message: "\"\(key)\" must be true or false")
                }
                return b
            }
            switch key {
            case "base": r.base = place(try string())
            case "vectors_dir": r.vectorsDirectory = place(try string())
            case "output": r.output = place(try string())
            case "dtype":
                let text = try string()
                guard let d = DType(userSpelling: text), [.f32, .bf16, .f16, .f64].contains(d) else {
                    throw .recipe(file: path, message: "\"dtype\": \(text) is not one of f32, bf16, f16, f64")
                }
                r.dtype = d
            case "max_shard_size":
                let text: String
                // A number is checked before it becomes an Int: 1e19 or 1e300 would trap the conversion.
                if let n = value.doubleValue {
                    guard n >= 1, n < 9e18, n == n.rounded() else {
                        throw .recipe(
                            file: path,
                            message: "\"max_shard_size\": \(n) is not a whole number of bytes from 1 to 9e18")
                    }
                    text = String(Int(n))
                } else {
                    text = try string()
                }
                guard let n = parseSize(text) else {
                    throw .recipe(file: path, message: "\"max_shard_size\": \(text) is not a size like 5GB")
                }
                r.maxShardSize = n
            case "force": r.force = try bool()
            case "allow_nonfinite": r.allowNonFinite = try bool()
            case "checks": r.checks = value
            case "method": r.method = try MergeMethod(recipe: value, file: path)
            case "mix":
                guard case .object(let pairs) = value else {
                    throw .recipe(file: path, message: "\"mix\" must map domain names to numbers")
                }
                var domains: Set<String> = []
                for (domain, v) in pairs {
                    guard domains.insert(domain).inserted else {
                        throw .recipe(
                            file: path, message: "\"mix\": domain \"\(domain)\" appears twice; give each domain once")
                    }
                    if case .object = v {
                        let (c, rule) = try CoefficientRule.parse(v, domain: domain, file: path)
                        r.mix.append((domain, c))
                        r.rules[domain] = rule
                        continue
                    }
                    guard let c = v.doubleValue, c.isFinite else {
                        throw .recipe(
                            file: path,
                            message: "\"mix\": the coefficient of \"\(domain)\" must be a number or an object")
                    }
                    r.mix.append((domain, c))
                }
            case "vectors":
                guard let items = value.arrayValue else {
                    throw .recipe(file: path, message: "\"vectors\" must be an array")
                }
                for item in items {
                    if case .object(let fields) = item,
                        let extra = fields.first(where: { !["path", "coefficient"].contains($0.key) })
                    {
                        throw .recipe(
                            file: path, message: "\"vectors\": unknown key \"\(extra.key)\" (known: coefficient, path)")
                    }
                    guard let p = item["path"]?.stringValue, let c = item["coefficient"]?.doubleValue, c.isFinite else {
                        throw .recipe(
                            file: path,
                            message: "each of \"vectors\" needs \"path\" (a string) and \"coefficient\" (a number)")
                    }
                    r.vectors.append((place(p), c))
                }
            default:
                break
            }
        }
        return r
    }

    /// The recipe with everything resolved, as recorded in a merged model's provenance.
    public var json: JSONValue {
        var m: [(key: String, value: JSONValue)] = []
        if let file { m.append(("file", .string(file))) }
        if let base { m.append(("base", .string(base))) }
        if let vectorsDirectory { m.append(("vectors_dir", .string(vectorsDirectory))) }
        m.append(
            (
                "mix",
                .object(
                    mix.map { ($0.domain, rules[$0.domain]?.json(value: $0.coefficient) ?? .double($0.coefficient)) })
            ))
        m.append(
            (
                "vectors",
                .array(vectors.map { .object([("path", .string($0.path)), ("coefficient", .double($0.coefficient))]) })
            ))
        if let output { m.append(("output", .string(output))) }
        if let dtype { m.append(("dtype", .string(dtype.rawValue))) }
        if let maxShardSize { m.append(("max_shard_size", .int(maxShardSize))) }
        if let method, !method.isLinear { m.append(("method", method.recipeJSON)) }
        return .object(m)
    }
}

/// "5GB" → 5_000_000_000 (decimal, as Hugging Face writes sizes), "2GiB" → 2·2³⁰, "123" → 123.
public func parseSize(_ text: String) -> Int? {
    let t = text.trimmingWhitespace(newlines: false).uppercased()
    let units: [(String, Double)] = [
        ("KIB", 1024), ("MIB", 1_048_576), ("GIB", 1_073_741_824), ("TIB", 1_099_511_627_776), ("KB", 1e3), ("MB", 1e6),
        ("GB", 1e9), ("TB", 1e12), ("B", 1),
    ]
    for (suffix, scale) in units where t.hasSuffix(suffix) {
        guard let v = Double(t.dropLast(suffix.count).trimmingWhitespace(newlines: false)), v > 0, v * scale < 9e18,
            v * scale >= 1
        else { return nil }
        return Int(v * scale)
    }
    guard let v = Int(t), v > 0 else { return nil }
    return v
}

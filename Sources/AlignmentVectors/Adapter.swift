import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A PEFT LoRA adapter directory (`adapter_config.json` + `adapter_model.safetensors`), read as
/// what it does to a base: per base tensor, the change PEFT's `merge_and_unload()` makes.
///
/// Supported: linear LoRA (`ΔW = B·A·s`, `s = lora_alpha / r`, or `/ √r` with `use_rslora`),
/// transposed with `fan_in_fan_out`; per-module `rank_pattern` / `alpha_pattern`, resolved as PEFT
/// resolves them (the first key `K` for which the module name matches `(.*\.)?(K)$`); `lora_B.bias`
/// with `lora_bias`; embedding LoRA (`ΔW = (B·A)ᵀ·s`); DoRA (`lora_magnitude_vector`); and tensors
/// the adapter saves whole (`modules_to_save`, or an embedding's `base_layer`), which replace the
/// base's. Anything else is refused by name, never ignored.
public struct LoRAAdapter: Sendable {
    /// The adapter directory as given.
    public let path: String
    /// The safetensors file of the adapter's weights.
    public let weightsPath: String
    /// The adapter's own tensors.
    public let file: SafeTensorsFile
    /// `r`, `lora_alpha` and the switches of the config.
    public let rank: Int
    /// `lora_alpha`: the scale numerator (α/r, or α/√r with rsLoRA).
    public let alpha: Double
    /// `use_rslora`: scale by α/√r instead of α/r.
    public let useRSLoRA: Bool
    /// `fan_in_fan_out` as the config says it. PEFT follows the module instead (true for GPT-2's
    /// Conv1D, false for `nn.Linear`, whatever the config says), and so does av where the base's
    /// `config.json` tells which it is: see `targets(in:)`.
    public let fanInFanOut: Bool
    /// `use_dora`: the adapter also carries a magnitude vector per module.
    public let useDoRA: Bool
    /// `init_lora_weights` left at its default (true, or "gaussian"): the B matrices started at zero,
    /// which is what a DoRA magnitude missing from the file was initialized with (PEFT's rule).
    public let zeroInitializedB: Bool
    /// `lora_bias`: the B matrices carry a bias, trained with the pair.
    public let loraBias: Bool
    /// `rank_pattern` and `alpha_pattern`, in the config's order.
    public let rankPattern: [(key: String, value: Int)]
    /// `alpha_pattern`: module pattern → α, overriding `alpha` where it matches.
    public let alphaPattern: [(key: String, value: Double)]
    /// What the AV's provenance records (`av.adapter`).
    public let provenance: JSONValue
    /// The modules the adapter changes, by base tensor name.
    public let modules: [String: Module]

    /// One module the adapter changes: a LoRA pair, or a tensor saved whole, or both.
    public struct Module: Sendable {
        /// The module's name in the base (`model.layers.0.self_attn.q_proj`).
        public var name: String
        /// `lora_A` / `lora_embedding_A` and `lora_B` / `lora_embedding_B` tensor names in the adapter file.
        public var loraA: String?
        /// The B tensor's name.
        public var loraB: String?
        /// The B bias's name, when the adapter trains one.
        public var loraBBias: String?
        /// The DoRA magnitude vector's name, when there is one.
        public var magnitude: String?
        /// Whether the pair is an embedding's (`lora_embedding_A/B`, stored transposed).
        public var embedding = false
        /// Tensors saved whole: base tensor name → adapter tensor name.
        public var saved: [String: String] = [:]
    }

    /// Reads and checks the adapter in `path` (a directory).
    public init(path: String) throws(AVError) {
        self.path = path
        let configPath = Path.join(path, "adapter_config.json")
        weightsPath = Path.join(path, "adapter_model.safetensors")
        func fail(_ message: String) -> AVError { .adapter(file: configPath, message: message) }
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw .file(SafeTensorsError(file: configPath, .io(operation: "read", message: "no such file")))
        }
        let config: JSONValue
        do {
            config = try JSONParser.parse(String(decoding: data, as: UTF8.self))
        } catch {
            throw fail("not valid JSON: \(error.message) at byte \(error.offset)")
        }
        guard case .object = config else { throw fail("the config is not a JSON object") }
        let type = config["peft_type"]?.stringValue ?? "missing"
        guard type == "LORA" else { throw fail("peft_type \(type) is not supported (LORA)") }
        try Self.refuseUnsupported(config, fail)

        func int(_ key: String) throws(AVError) -> Int {
            guard let v = config[key]?.doubleValue, v == v.rounded(), v >= 1, v < 1e9 else {
                throw fail("\"\(key)\" must be a positive integer")
            }
            return Int(v)
        }
        rank = try int("r")
        guard let a = config["lora_alpha"]?.doubleValue, a.isFinite else { throw fail("\"lora_alpha\" is missing") }
        alpha = a
        func flag(_ key: String) -> Bool { if case .bool(true)? = config[key] { true } else { false } }
        useRSLoRA = flag("use_rslora")
        fanInFanOut = flag("fan_in_fan_out")
        useDoRA = flag("use_dora")
        switch config["init_lora_weights"] {
        case nil, .null?, .bool(true)?, .string("gaussian")?: zeroInitializedB = true
        default: zeroInitializedB = false
        }
        loraBias = flag("lora_bias")
        func pattern(_ key: String) throws(AVError) -> [(key: String, value: Double)] {
            guard let v = config[key], v != .null else { return [] }
            guard case .object(let pairs) = v else { throw fail("\"\(key)\" must be an object") }
            var out: [(key: String, value: Double)] = []
            for (k, value) in pairs {
                guard let d = value.doubleValue, d.isFinite else { throw fail("\"\(key)\".\(k) must be a number") }
                out.append((k, d))
            }
            return out
        }
        let ranks = try pattern("rank_pattern")
        // Checked as numbers before they become Ints: 1e19 would trap the conversion.
        for (k, r) in ranks where r != r.rounded() || r < 1 || r >= 1e9 {
            throw fail("rank_pattern.\(k) must be a positive integer below 10^9, not \(r)")
        }
        rankPattern = ranks.map { ($0.key, Int($0.value)) }
        alphaPattern = try pattern("alpha_pattern")
        for (k, _) in rankPattern + alphaPattern.map({ ($0.key, 0) }) {
            guard (try? Regex("(.*\\.)?(\(k))")) != nil else {
                throw fail("pattern key \(k) is not a regular expression")
            }
        }

        do {
            file = try SafeTensorsFile(path: weightsPath)
        } catch {
            throw .file(error)
        }
        modules = try Self.mapTensors(file, weights: weightsPath)
        let digest = data.withUnsafeBytes { XXHash64.hex(XXHash64.hash($0)) }
        provenance = .object([
            ("path", .string(path)), ("peft_type", .string("LORA")), ("config_digest", .string(digest)),
            ("r", .int(rank)), ("lora_alpha", .double(alpha)), ("use_rslora", .bool(useRSLoRA)),
            ("use_dora", .bool(useDoRA)), ("target_modules", config["target_modules"] ?? .null),
            ("modules_to_save", config["modules_to_save"] ?? .null),
        ])
    }

    /// Config features that change what a merge does and that av does not do.
    static func refuseUnsupported(_ config: JSONValue, _ fail: (String) -> AVError) throws(AVError) {
        let bias = config["bias"]?.stringValue ?? "none"
        guard bias == "none" else {
            throw fail(
                "bias \"\(bias)\" is not supported (\"none\"; lora_bias is): the adapter trains the base's biases")
        }
        let mustBeUnset = [
            "layer_replication", "target_parameters", "trainable_token_indices", "alora_invocation_tokens",
            "arrow_config", "megatron_config", "use_qalora", "use_bdlora",
        ]
        for key in mustBeUnset {
            switch config[key] {
            case nil, .null?, .bool(false)?: continue
            case .array(let a)? where a.isEmpty: continue
            case .object(let o)? where o.isEmpty: continue
            default: throw fail("\"\(key)\" is set: that PEFT feature is not supported")
            }
        }
    }

    /// Groups the adapter's tensors by the base module they change.
    static func mapTensors(_ file: SafeTensorsFile, weights: String) throws(AVError) -> [String: Module] {
        var modules: [String: Module] = [:]
        let suffixes: [(String, WritableKeyPath<Module, String?>, Bool)] = [
            (".lora_A.weight", \.loraA, false), (".lora_B.weight", \.loraB, false),
            (".lora_B.bias", \.loraBBias, false),
            (".lora_embedding_A", \.loraA, true), (".lora_embedding_B", \.loraB, true),
            (".lora_magnitude_vector", \.magnitude, false), (".lora_magnitude_vector.weight", \.magnitude, false),
        ]
        for t in file.tensors {
            var name = t.name
            if name.hasPrefix("base_model.model.") { name.removeFirst("base_model.model.".count) }
            guard Convert.supports(t.dtype) else {
                throw .adapter(
                    file: weights, message: "tensor \(JSONWriter.quoted(t.name)) is \(t.dtype.rawValue), not a float")
            }
            if let (suffix, key, embedding) = suffixes.first(where: { name.hasSuffix($0.0) }) {
                let module = String(name.dropLast(suffix.count))
                var m = modules[module] ?? Module(name: module)
                m[keyPath: key] = t.name
                if embedding { m.embedding = true }
                modules[module] = m
            } else if name.contains(".lora_") {
                throw .adapter(
                    file: weights, message: "tensor \(JSONWriter.quoted(t.name)) is not a LoRA tensor av knows")
            } else {
                // Saved whole: modules_to_save, or an adapted layer's base weight (`X.base_layer.weight`).
                let target = name.replacingAll(".base_layer.", with: ".")
                let module =
                    target.hasSuffix(".weight") || target.hasSuffix(".bias")
                    ? String(target[..<target.lastIndex(of: ".")!]) : target
                var m = modules[module] ?? Module(name: module)
                m.saved[target] = t.name
                modules[module] = m
            }
        }
        for m in modules.values where (m.loraA == nil) != (m.loraB == nil) {
            let (has, lacks) = m.loraA == nil ? ("B", "A") : ("A", "B")
            throw .adapter(
                file: weights,
                message: "module \(JSONWriter.quoted(m.name)) has lora_\(has) but no"
                    + " lora_\(lacks)")
        }
        return modules
    }

    /// The key of `pattern` PEFT picks for `module`: the first `K` with `(.*\.)?(K)$` matching it.
    static func patternKey<V>(_ pattern: [(key: String, value: V)], _ module: String) -> V? {
        for (key, value) in pattern {
            guard let regex = try? Regex("(.*\\.)?(\(key))") else { continue }
            if (try? regex.wholeMatch(in: module)) != nil { return value }
        }
        return nil
    }

    /// `r` and the scale `s` of `module` (`lora_alpha / r`, or `/ √r` with rsLoRA).
    public func rankAndScale(of module: String) -> (rank: Int, scale: Double) {
        let r = Self.patternKey(rankPattern, module) ?? rank
        let a = Self.patternKey(alphaPattern, module) ?? alpha
        return (r, useRSLoRA ? a / Double(r).squareRoot() : a / Double(r))
    }
}

import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The configuration of a Llama-family decoder (Llama 2/3, SmolLM, TinyLlama, Mistral, Qwen2), read
/// from `config.json`, validated whole, defaults resolved (as candle's `LlamaConfig::into_config`).
public struct LlamaConfig: Equatable, Sendable {
    /// The architecture variant, from `model_type`: it decides the defaults and the options read.
    public enum Family: String, Sendable { case llama, mistral, qwen2 }

    /// `rope_scaling` of type `llama3`.
    public struct Llama3Scaling: Equatable, Sendable {
        /// `factor`: how much the context is stretched.
        public var factor: Double
        /// `low_freq_factor`: wavelengths above original context / this are scaled by `factor`.
        public var lowFreqFactor: Double
        /// `high_freq_factor`: wavelengths below original context / this are left alone.
        public var highFreqFactor: Double
        /// `original_max_position_embeddings`: the context the model was trained at.
        public var originalMaxPositionEmbeddings: Int
    }

    /// The architecture variant.
    public var family: Family
    /// `hidden_size`: the width of the residual stream.
    public var hiddenSize: Int
    /// `intermediate_size`: the width of the MLP's hidden layer.
    public var intermediateSize: Int
    /// `num_hidden_layers`.
    public var layers: Int
    /// `num_attention_heads`: query heads.
    public var heads: Int
    /// `num_key_value_heads`: key/value heads (fewer than `heads` for grouped-query attention).
    public var kvHeads: Int
    /// `head_dim`, or hidden size / heads when absent.
    public var headDim: Int
    /// `vocab_size`: rows of the embedding and the LM head.
    public var vocabSize: Int
    /// `rms_norm_eps`.
    public var rmsNormEps: Float
    /// `rope_theta`: the base of the rotary frequencies.
    public var ropeTheta: Double
    /// `rope_scaling` of type `llama3`, when present (other types are refused).
    public var ropeScaling: Llama3Scaling?
    /// `tie_word_embeddings`: the LM head is the embedding matrix.
    public var tieWordEmbeddings: Bool
    /// `max_position_embeddings`: the longest context the model supports.
    public var maxPositionEmbeddings: Int
    /// q/k/v projections with biases (Qwen2; Llama's `attention_bias`).
    public var qkvBias: Bool
    /// Attention to at most this many previous positions (Mistral's `sliding_window`), nil = all.
    public var slidingWindow: Int?
    /// `bos_token_id`, when the config gives one.
    public var bosTokenID: Int?
    /// `eos_token_id` (one or several): generation stops at any of them.
    public var eosTokenIDs: [Int]

    /// Reads `config.json` in `directory`.
    public static func load(directory: String) throws(InferenceError) -> LlamaConfig {
        let path = Path.join(directory, "config.json")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .file(
                SafeTensorsError(
                    file: path, .io(operation: "read", message: "no config.json here (a model directory needs one)")))
        }
        let root: JSONValue
        do {
            root = try JSONParser.parse(String(decoding: data, as: UTF8.self))
        } catch {
            throw .config(file: path, message: "not valid JSON: \(error.message) at byte \(error.offset)")
        }
        return try LlamaConfig(json: root, file: path)
    }

    /// Reads and validates a parsed `config.json` (`file` names it in errors).
    /// - Throws: `InferenceError.config` naming the key and the rule it breaks.
    public init(json c: JSONValue, file: String) throws(InferenceError) {
        // Sizes beyond 2^31 are no model's; bounding them keeps every product of sizes in range.
        func int(_ key: String) throws(InferenceError) -> Int {
            guard let v = c[key]?.doubleValue, v == v.rounded(), v > 0, v < 2_147_483_648 else {
                throw .config(file: file, message: "\"\(key)\" must be a positive whole number below 2^31")
            }
            return Int(v)
        }
        // Absent or null: nil. Present: a whole number in range, or the config is refused — a value of
        // the wrong type or sign must not read as "absent" (a string "2" for num_key_value_heads).
        func optionalInt(_ key: String, minimum: Int = 1) throws(InferenceError) -> Int? {
            guard let value = c[key], value != .null else { return nil }
            guard let v = value.doubleValue, v == v.rounded(), v >= Double(minimum), v < 2_147_483_648 else {
                throw .config(
                    file: file, message: "\"\(key)\" must be a whole number from \(minimum) to 2^31, not \(value.rendered())")
            }
            return Int(v)
        }
        func positive(_ key: String, _ value: Double) throws(InferenceError) -> Double {
            guard value.isFinite, value > 0 else {
                throw .config(file: file, message: "\"\(key)\" must be a finite number above 0, not \(value)")
            }
            return value
        }
        let type = c["model_type"]?.stringValue ?? "?"
        guard let family = Family(rawValue: type) else {
            throw .unsupported(file: file, field: "model_type", value: "\"\(type)\" (supported: llama, mistral, qwen2)")
        }
        self.family = family
        if let act = c["hidden_act"]?.stringValue, act != "silu" {
            throw .unsupported(file: file, field: "hidden_act", value: "\"\(act)\" (Llama-family models use silu)")
        }
        hiddenSize = try int("hidden_size")
        intermediateSize = try int("intermediate_size")
        layers = try int("num_hidden_layers")
        heads = try int("num_attention_heads")
        kvHeads = try optionalInt("num_key_value_heads") ?? heads
        headDim = try optionalInt("head_dim") ?? hiddenSize / heads
        vocabSize = try int("vocab_size")
        guard kvHeads > 0, headDim > 0 else {
            throw .config(file: file, message: "num_key_value_heads and head_dim must be positive whole numbers")
        }
        guard heads % kvHeads == 0 else {
            throw .config(
                file: file, message: "num_attention_heads \(heads) is not a multiple of num_key_value_heads \(kvHeads)")
        }
        guard headDim % 2 == 0, c["head_dim"] != nil || hiddenSize % heads == 0 else {
            throw .config(
                file: file, message: "hidden_size \(hiddenSize) does not split into \(heads) heads of an even size")
        }
        rmsNormEps = Float(try positive("rms_norm_eps", c["rms_norm_eps"]?.doubleValue ?? 1e-6))
        // transformers 4 writes rope_theta and rope_scaling; transformers 5 writes rope_parameters.
        let ropeParameters = c["rope_parameters"].flatMap { $0 == .null ? nil : $0 }
        ropeTheta = try positive(
            "rope_theta", ropeParameters?["rope_theta"]?.doubleValue ?? c["rope_theta"]?.doubleValue ?? 10_000)
        maxPositionEmbeddings = try optionalInt("max_position_embeddings") ?? 2048
        tieWordEmbeddings = { if case .bool(let b)? = c["tie_word_embeddings"] { return b } else { return false } }()
        let biasFlag: Bool = { if case .bool(let b)? = c["attention_bias"] { return b } else { return false } }()
        qkvBias = family == .qwen2 || biasFlag
        if family == .mistral, let w = try optionalInt("sliding_window") {
            slidingWindow = w
        } else if family == .qwen2, case .bool(true)? = c["use_sliding_window"], let w = try optionalInt("sliding_window") {
            slidingWindow = w
        } else {
            slidingWindow = nil
        }
        if let scaling = ropeParameters ?? c["rope_scaling"].flatMap({ $0 == .null ? nil : $0 }) {
            let kind = scaling["rope_type"]?.stringValue ?? scaling["type"]?.stringValue ?? "?"
            switch kind {
            case "default":
                ropeScaling = nil
            case "llama3":
                guard let f = scaling["factor"]?.doubleValue, let lo = scaling["low_freq_factor"]?.doubleValue,
                    let hi = scaling["high_freq_factor"]?.doubleValue,
                    let orig = scaling["original_max_position_embeddings"]?.doubleValue
                else {
                    throw .config(
                        file: file,
                        message:
                            "rope_scaling of type llama3 needs factor, low_freq_factor, high_freq_factor and"
                            + " original_max_position_embeddings"
                    )
                }
                for (key, v) in [
                    ("factor", f), ("low_freq_factor", lo), ("high_freq_factor", hi),
                    ("original_max_position_embeddings", orig),
                ] {
                    _ = try positive("rope_scaling." + key, v)
                }
                guard hi > lo, orig < 2_147_483_648 else {
                    throw .config(file: file, message: "rope_scaling: high_freq_factor must be above low_freq_factor")
                }
                ropeScaling = Llama3Scaling(
                    factor: f, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositionEmbeddings: Int(orig))
            default:
                throw .unsupported(file: file, field: "rope_scaling type", value: "\"\(kind)\" (supported: llama3)")
            }
        } else {
            ropeScaling = nil
        }
        bosTokenID = try optionalInt("bos_token_id", minimum: 0)
        if let list = c["eos_token_id"]?.arrayValue {
            eosTokenIDs = list.compactMap { v in v.doubleValue.flatMap { $0.magnitude < 2_147_483_648 ? Int($0) : nil }
            }
        } else {
            eosTokenIDs = try optionalInt("eos_token_id", minimum: 0).map { [$0] } ?? []
        }
    }

    /// The rotary inverse frequencies, llama3 scaling applied.
    public var inverseFrequencies: [Double] {
        let half = headDim / 2
        var freqs = (0..<half).map { 1 / pow(ropeTheta, Double(2 * $0) / Double(headDim)) }
        if let s = ropeScaling {
            let old = Double(s.originalMaxPositionEmbeddings)
            let lowWavelen = old / s.lowFreqFactor
            let highWavelen = old / s.highFreqFactor
            freqs = freqs.map { f in
                let wavelen = 2 * Double.pi / f
                if wavelen < highWavelen { return f }
                if wavelen > lowWavelen { return f / s.factor }
                let smooth = (old / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
                return (1 - smooth) * f / s.factor + smooth * f
            }
        }
        return freqs
    }
}

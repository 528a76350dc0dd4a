import SafeTensors

#if canImport(Glibc)
    import Glibc
#endif

extension GGUFExport {
    /// The hyper-parameters of a Hugging Face `config.json` that llama.cpp's metadata carries, checked.
    struct HyperParameters {
        var architecture: String
        var layers: Int
        var context: Int
        var hidden: Int
        var feedForward: Int
        var heads: Int
        var kvHeads: Int
        var headDim: Int?
        var ropeTheta: Double
        var rmsEps: Double
        var vocabSize: Int
        var ropeScaling: (type: String, factor: Double)?
        /// Llama 3.1's RoPE scaling: the per-frequency factors llama.cpp reads from `rope_freqs.weight`.
        var ropeFactors: [Float]?

        /// Reads `config`; `file` names it in errors.
        init(_ config: JSONValue, file: String) throws(GGUFError) {
            func fail(_ m: String) -> GGUFError { GGUFError(file: file, message: m) }
            let names = config["architectures"]?.arrayValue?.compactMap(\.stringValue) ?? []
            switch names.first {
            case "LlamaForCausalLM", "MistralForCausalLM": architecture = "llama"
            case "Qwen2ForCausalLM": architecture = "qwen2"
            default:
                throw fail(
                    "architectures \(names) cannot be written to GGUF (LlamaForCausalLM, MistralForCausalLM,"
                        + " Qwen2ForCausalLM)")
            }
            func int(_ key: String, _ fallback: Int? = nil) throws(GGUFError) -> Int {
                guard let v = config[key], v != .null else {
                    if let fallback { return fallback }
                    throw fail("\"\(key)\" is missing")
                }
                guard let d = v.doubleValue, d == d.rounded(), d > 0, d < 4_294_967_296 else {
                    throw fail("\"\(key)\" must be a positive whole number below 2^32")
                }
                return Int(d)
            }
            layers = try int("num_hidden_layers")
            context = try int("max_position_embeddings", 2048)
            hidden = try int("hidden_size")
            feedForward = try int("intermediate_size")
            heads = try int("num_attention_heads")
            kvHeads = try int("num_key_value_heads", heads)
            headDim = config["head_dim"] == nil || config["head_dim"] == .null ? nil : try int("head_dim")
            vocabSize = try int("vocab_size")
            let dim = headDim ?? hidden / heads
            guard heads % kvHeads == 0, dim % 2 == 0, hidden % heads == 0 || headDim != nil else {
                throw fail("heads \(heads), key-value heads \(kvHeads) and head size \(dim) do not divide")
            }
            let rope = config["rope_parameters"] ?? config["rope_scaling"]
            let theta = config["rope_theta"]?.doubleValue ?? rope?["rope_theta"]?.doubleValue ?? 10_000
            let eps = config["rms_norm_eps"]?.doubleValue ?? 1e-6
            guard theta.isFinite, theta > 0, eps.isFinite, eps > 0 else {
                throw fail("rope_theta and rms_norm_eps must be positive numbers")
            }
            ropeTheta = theta
            rmsEps = eps
            let kind = rope?["rope_type"]?.stringValue ?? rope?["type"]?.stringValue ?? "default"
            switch kind {
            case "default": ropeScaling = nil
            case "linear":
                guard let f = rope?["factor"]?.doubleValue, f.isFinite, f > 0 else {
                    throw fail("linear RoPE scaling needs a positive \"factor\"")
                }
                ropeScaling = ("linear", f)
            case "llama3":
                ropeScaling = nil
                func number(_ key: String, _ fallback: Double) throws(GGUFError) -> Double {
                    guard let v = rope?[key], v != .null else { return fallback }
                    guard let d = v.doubleValue, d.isFinite, d > 0 else {
                        throw fail("llama3 RoPE scaling: \"\(key)\" must be a positive number")
                    }
                    return d
                }
                ropeFactors = Self.llama3Factors(
                    theta: theta, dim: dim, factor: try number("factor", 8), low: try number("low_freq_factor", 1),
                    high: try number("high_freq_factor", 4),
                    context: try number("original_max_position_embeddings", 8192))
            default:
                throw fail("RoPE scaling \"\(kind)\" is not written to GGUF yet (default, linear, llama3)")
            }
        }

        /// The `general.*` and architecture keys, in the order llama.cpp's converter writes them.
        func metadata(name: String, fileType: UInt32) -> [(key: String, value: GGUFValue)] {
            let a = architecture
            var m: [(key: String, value: GGUFValue)] = [
                ("general.architecture", .string(a)), ("general.type", .string("model")),
                ("general.name", .string(name)),
                ("\(a).block_count", .uint32(UInt32(layers))), ("\(a).context_length", .uint32(UInt32(context))),
                ("\(a).embedding_length", .uint32(UInt32(hidden))),
                ("\(a).feed_forward_length", .uint32(UInt32(feedForward))),
                ("\(a).attention.head_count", .uint32(UInt32(heads))),
                ("\(a).attention.head_count_kv", .uint32(UInt32(kvHeads))),
            ]
            if let (type, factor) = ropeScaling {
                m.append(("\(a).rope.scaling.type", .string(type)))
                m.append(("\(a).rope.scaling.factor", .float32(Float(factor))))
            }
            m.append(("\(a).rope.freq_base", .float32(Float(ropeTheta))))
            m.append(("\(a).attention.layer_norm_rms_epsilon", .float32(Float(rmsEps))))
            if let headDim {
                m.append(("\(a).attention.key_length", .uint32(UInt32(headDim))))
                m.append(("\(a).attention.value_length", .uint32(UInt32(headDim))))
            }
            m.append(("general.file_type", .uint32(fileType)))
            if a == "llama" {
                m.append(("llama.vocab_size", .uint32(UInt32(vocabSize))))
                m.append(("llama.rope.dimension_count", .uint32(UInt32(headDim ?? hidden / heads))))
            }
            m.append(("general.quantization_version", .uint32(2)))
            return m
        }

        /// Llama 3.1's per-frequency RoPE factors, in f32 operation for operation as llama.cpp's converter
        /// computes them: 1 for wavelengths under `context / high`, `factor` over `context / low`, and
        /// between them `1 / ((1 − s) / factor + s)` with `s = (context / wavelength − low) / (high − low)`.
        static func llama3Factors(theta: Double, dim: Int, factor: Double, low: Double, high: Double, context: Double)
            -> [Float]
        {
            let lowWavelength = context / low
            let highWavelength = context / high
            return stride(from: 0, to: dim, by: 2).map { i in
                let freq = 1 / Float(pow(theta, Double(Float(i) / Float(dim))))
                let wavelength = Float(2 * Double.pi) / freq
                if Double(wavelength) < highWavelength { return 1 }
                if Double(wavelength) > lowWavelength { return Float(factor) }
                let smooth = (Float(context) / wavelength - Float(low)) / (Float(high) - Float(low))
                return 1 / ((1 - smooth) / Float(factor) + smooth)
            }
        }
    }
}

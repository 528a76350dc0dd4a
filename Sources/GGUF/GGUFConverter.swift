import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Turns a GGUF model (llama or qwen2 architecture) into a Hugging Face model directory:
/// safetensors with Hugging Face names and layout (llama.cpp's Q/K row permutation undone),
/// `config.json` from the metadata, `tokenizer.json` and `tokenizer_config.json` (with the chat
/// template) from the tokenizer metadata. transformers' GGUF loader
/// (modeling_gguf_pytorch_utils.py) and llama.cpp's convert_hf_to_gguf.py are the references.
public enum GGUFConverter {
    static let blockNames: [String: String] = [
        "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
        "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
    ]

    /// The Hugging Face name of a GGUF tensor, or nil for tensors Hugging Face has no place for.
    public static func hfName(_ name: String) -> String? {
        switch name {
        case "token_embd.weight": return "model.embed_tokens.weight"
        case "output_norm.weight": return "model.norm.weight"
        case "output.weight": return "lm_head.weight"
        case "rope_freqs.weight": return nil
        default: break
        }
        let parts = name.split(separator: ".").map(String.init)
        guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]), let mapped = blockNames[parts[2]] else {
            return nil
        }
        return "model.layers.\(layer).\(mapped).\(parts[3])"
    }

    /// The bytes of the safetensors `convert` writes for `gguf` in `dtype` (1-D tensors stay f32).
    public static func convertedBytes(_ gguf: GGUFFile, dtype: DType) -> Int {
        gguf.tensors.reduce(0) { sum, t in
            guard hfName(t.name) != nil else { return sum }
            let elements = t.shape.reduce(1, *)
            return sum + elements * (t.dims.count == 1 ? 4 : dtype.byteSize ?? 4)
        }
    }

    /// Writes the converted model to `directory` with weights in `dtype` (f32, bf16 or f16).
    ///
    /// Norms and other 1-D tensors stay f32, as transformers keeps them, unless `vectors` names another
    /// dtype: then each one that converts to it exactly (every value round-trips) is written in it. That
    /// recovers a model converted to GGUF from `vectors` weights bit for bit (llama.cpp's converter widens
    /// 1-D tensors to F32), so that alignment vectors made from the original recognize it.
    public static func convert(_ gguf: GGUFFile, to directory: String, dtype: DType = .f32, vectors: DType? = nil)
        throws(GGUFError)
    {
        func fail(_ m: String) -> GGUFError { GGUFError(file: gguf.path, message: m) }
        let arch = gguf.metadata["general.architecture"]?.stringValue ?? "?"
        guard arch == "llama" || arch == "qwen2" else {
            throw fail("architecture \(arch) is not supported (llama, qwen2)")
        }
        try validate(gguf, arch: arch)
        let heads = gguf.metadata["\(arch).attention.head_count"]!.intValue!
        let kvHeads = gguf.metadata["\(arch).attention.head_count_kv"]?.intValue ?? heads
        var specs: [TensorSpec] = []
        var sources: [String: GGUFTensorInfo] = [:]
        // The bits of every quantized tensor, recorded in the output (`av.dequantized`): alignment vectors
        // recognize their base in a quantized copy by it (`BaseSamples`).
        var dequantized: [(String, JSONValue)] = []
        for t in gguf.tensors {
            guard let name = hfName(t.name) else { continue }
            if let bits = t.type.quantizedBits { dequantized.append((name, .int(bits))) }
            guard Dequantize.supports(t.type) else {
                throw fail("tensor \(JSONWriter.quoted(t.name)): \(t.type.name) cannot be dequantized yet")
            }
            // Norms and biases stay f32, as transformers keeps them when it dequantizes a GGUF (or `vectors`).
            var d = dtype
            if t.dims.count == 1 {
                d = .f32
                if let vectors, vectors != .f32, Dequantize.supports(t.type) {
                    let values = try gguf.floats(t)
                    if values.allSatisfy({ Self.roundTrips($0, vectors) }) { d = vectors }
                }
            }
            specs.append(TensorSpec(name: name, dtype: d, shape: t.shape))
            sources[name] = t
        }
        let tied = gguf.info("output.weight") == nil
        let writer: ModelDirectoryWriter
        do {
            var metadata = ["format": "pt"]
            if !dequantized.isEmpty { metadata["av.dequantized"] = JSONValue.object(dequantized).rendered() }
            writer = try ModelDirectoryWriter(
                path: directory, tensors: specs, metadata: metadata, protecting: [gguf.path])
        } catch {
            throw fail(error.description)
        }
        do {
            while let next = writer.nextTensor {
                let t = sources[next.name]!
                var values = try gguf.floats(t)
                if arch == "llama",
                    next.name.hasSuffix("self_attn.q_proj.weight") || next.name.hasSuffix("self_attn.k_proj.weight")
                {
                    values = unpermute(
                        values, rows: t.shape[0], cols: t.shape.count > 1 ? t.shape[1] : 1,
                        heads: next.name.contains("q_proj") ? heads : kvHeads)
                }
                guard let element = ElementType(next.dtype) else {
                    throw fail("\(next.name): no \(next.dtype.rawValue) output")
                }
                var bytes = [UInt8](repeating: 0, count: values.count * element.size)
                bytes.withUnsafeMutableBytes { b in
                    values.withUnsafeBufferPointer {
                        Convert.fromFloat(next.dtype, from: $0.baseAddress!, count: values.count, into: b.baseAddress!)
                    }
                }
                try writer.write(bytes)
                // One tensor of the GGUF resident at a time.
                gguf.mapping.release((gguf.dataStart + t.offset)..<(gguf.dataStart + t.offset + t.byteCount))
            }
            var texts = [
                "config.json": config(gguf, arch: arch, heads: heads, kvHeads: kvHeads, tied: tied, dtype: dtype)
                    .rendered(pretty: true) + "\n",
                "tokenizer_config.json": tokenizerConfig(gguf).rendered(pretty: true) + "\n",
            ]
            if let tokenizer = try tokenizerJSON(gguf) { texts["tokenizer.json"] = tokenizer.rendered() + "\n" }
            try writer.finish(writing: texts)
        } catch let error as GGUFError {
            writer.abort()
            throw error
        } catch {
            writer.abort()
            throw fail("\(error)")
        }
    }

    /// Whether `v` is exactly representable in `dtype` (bf16 or f16).
    static func roundTrips(_ v: Float, _ dtype: DType) -> Bool {
        switch dtype {
        case .bf16: FloatBits.bf16ToFloat(FloatBits.floatToBF16(v)).bitPattern == v.bitPattern
        case .f16: FloatBits.f16ToFloat(FloatBits.floatToF16(v)).bitPattern == v.bitPattern
        default: true
        }
    }

    /// Undoes llama.cpp's permutation of Q and K rows: within each head of `rows / heads` rows,
    /// Hugging Face row r is GGUF row 2·(r mod half) + r / half.
    static func unpermute(_ w: [Float], rows: Int, cols: Int, heads: Int) -> [Float] {
        let hd = rows / heads
        let half = hd / 2
        var out = [Float](repeating: 0, count: w.count)
        for h in 0..<heads {
            for r in 0..<hd {
                let src = h * hd + 2 * (r % half) + r / half
                let dst = h * hd + r
                for c in 0..<cols { out[dst * cols + c] = w[src * cols + c] }
            }
        }
        return out
    }

    static func config(_ g: GGUFFile, arch: String, heads: Int, kvHeads: Int, tied: Bool, dtype: DType) -> JSONValue {
        func v(_ key: String) -> GGUFValue? { g.metadata["\(arch).\(key)"] }
        let hidden = v("embedding_length")?.intValue ?? 0
        let vocab = v("vocab_size")?.intValue ?? g.metadata["tokenizer.ggml.tokens"]?.arrayValue?.count ?? 0
        // llama.cpp writes Mistral models as architecture llama; a sliding window says Mistral.
        let window = v("attention.sliding_window")?.intValue
        let mistral = arch == "llama" && window != nil
        let architecture = arch == "qwen2" ? "Qwen2ForCausalLM" : mistral ? "MistralForCausalLM" : "LlamaForCausalLM"
        var c: [(key: String, value: JSONValue)] = [
            ("architectures", .array([.string(architecture)])),
            ("model_type", .string(mistral ? "mistral" : arch)),
            ("hidden_size", .int(hidden)),
            ("intermediate_size", .int(v("feed_forward_length")?.intValue ?? 0)),
            ("num_hidden_layers", .int(v("block_count")?.intValue ?? 0)),
            ("num_attention_heads", .int(heads)),
            ("num_key_value_heads", .int(kvHeads)),
            ("head_dim", .int(v("rope.dimension_count")?.intValue ?? hidden / max(heads, 1))),
            ("rms_norm_eps", .double(Double(Float(v("attention.layer_norm_rms_epsilon")?.doubleValue ?? 1e-6)))),
            ("rope_theta", .double(Double(Float(v("rope.freq_base")?.doubleValue ?? 10_000)))),
            ("max_position_embeddings", .int(v("context_length")?.intValue ?? 2048)),
            ("vocab_size", .int(vocab)),
            ("tie_word_embeddings", .bool(tied)),
            ("hidden_act", .string("silu")),
            ("torch_dtype", .string(dtype == .bf16 ? "bfloat16" : dtype == .f16 ? "float16" : "float32")),
        ]
        if mistral, let window { c.append(("sliding_window", .int(window))) }
        if let bos = g.metadata["tokenizer.ggml.bos_token_id"]?.intValue { c.append(("bos_token_id", .int(bos))) }
        if let eos = g.metadata["tokenizer.ggml.eos_token_id"]?.intValue { c.append(("eos_token_id", .int(eos))) }
        return .object(c)
    }

    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Regex =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"#
        + #" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Regex =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"#
        + #" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// tokenizer.json for a byte-level BPE ("gpt2") GGUF tokenizer, with the pre-tokenizer its
    /// `tokenizer.ggml.pre` names (as llama.cpp splits text for it), or for a SentencePiece one
    /// ("llama", see ``SentencePieceTokenizer``).
    static func tokenizerJSON(_ g: GGUFFile) throws(GGUFError) -> JSONValue? {
        guard let model = g.metadata["tokenizer.ggml.model"]?.stringValue else { return nil }
        let tokens = (g.metadata["tokenizer.ggml.tokens"]?.arrayValue ?? []).map { $0.stringValue ?? "" }
        let types = (g.metadata["tokenizer.ggml.token_type"]?.arrayValue ?? []).map { $0.intValue ?? 1 }
        if model == "llama" { return try SentencePieceTokenizer.json(g, tokens: tokens, types: types) }
        guard model == "gpt2" else {
            throw GGUFError(
                file: g.path,
                message: "tokenizer model \(model) is not supported (gpt2: byte-level BPE; llama: SentencePiece)")
        }
        let merges = (g.metadata["tokenizer.ggml.merges"]?.arrayValue ?? []).map {
            JSONValue.string($0.stringValue ?? "")
        }
        var added: [JSONValue] = []
        for (id, t) in tokens.enumerated() where id < types.count && (types[id] == 3 || types[id] == 4) {
            added.append(
                .object([
                    ("id", .int(id)), ("content", .string(t)), ("single_word", .bool(false)), ("lstrip", .bool(false)),
                    ("rstrip", .bool(false)), ("normalized", .bool(types[id] == 4)), ("special", .bool(types[id] == 3)),
                ]))
        }
        func byteLevel(regex: Bool) -> JSONValue {
            .object([
                ("type", .string("ByteLevel")), ("add_prefix_space", .bool(false)), ("trim_offsets", .bool(true)),
                ("use_regex", .bool(regex)),
            ])
        }
        func split(_ pattern: String) -> JSONValue {
            .object([
                ("type", .string("Split")), ("pattern", .object([("Regex", .string(pattern))])),
                ("behavior", .string("Isolated")), ("invert", .bool(false)),
            ])
        }
        let pre: JSONValue
        switch g.metadata["tokenizer.ggml.pre"]?.stringValue ?? "default" {
        case "smollm":
            pre = .object([
                ("type", .string("Sequence")),
                (
                    "pretokenizers",
                    .array([
                        .object([("type", .string("Digits")), ("individual_digits", .bool(true))]),
                        byteLevel(regex: true),
                    ])
                ),
            ])
        case "llama-bpe", "llama3":
            pre = .object([
                ("type", .string("Sequence")),
                ("pretokenizers", .array([split(llama3Regex), byteLevel(regex: false)])),
            ])
        case "qwen2":
            pre = .object([
                ("type", .string("Sequence")), ("pretokenizers", .array([split(qwen2Regex), byteLevel(regex: false)])),
            ])
        default:
            pre = byteLevel(regex: true)
        }
        return .object([
            ("version", .string("1.0")), ("truncation", .null), ("padding", .null), ("added_tokens", .array(added)),
            ("normalizer", .null), ("pre_tokenizer", pre), ("post_processor", .null),
            (
                "decoder",
                .object([
                    ("type", .string("ByteLevel")), ("add_prefix_space", .bool(true)), ("trim_offsets", .bool(true)),
                    ("use_regex", .bool(true)),
                ])
            ),
            (
                "model",
                .object([
                    ("type", .string("BPE")), ("dropout", .null), ("unk_token", .null),
                    ("continuing_subword_prefix", .null),
                    ("end_of_word_suffix", .null), ("fuse_unk", .bool(false)), ("byte_fallback", .bool(false)),
                    ("ignore_merges", .bool(false)),
                    ("vocab", .object(tokens.enumerated().map { ($1, .int($0)) })), ("merges", .array(merges)),
                ])
            ),
        ])
    }

    static func tokenizerConfig(_ g: GGUFFile) -> JSONValue {
        let tokens = (g.metadata["tokenizer.ggml.tokens"]?.arrayValue ?? []).map { $0.stringValue ?? "" }
        func token(_ key: String) -> JSONValue {
            guard let id = g.metadata["tokenizer.ggml.\(key)"]?.intValue, id < tokens.count else { return .null }
            return .string(tokens[id])
        }
        var c: [(key: String, value: JSONValue)] = [
            ("tokenizer_class", .string("PreTrainedTokenizerFast")), ("bos_token", token("bos_token_id")),
            ("eos_token", token("eos_token_id")), ("unk_token", token("unknown_token_id")),
            ("pad_token", token("padding_token_id")),
            ("add_bos_token", .bool(g.metadata["tokenizer.ggml.add_bos_token"]?.boolValue ?? false)),
        ]
        if let t = g.metadata["tokenizer.chat_template"]?.stringValue { c.append(("chat_template", .string(t))) }
        return .object(c)
    }
}

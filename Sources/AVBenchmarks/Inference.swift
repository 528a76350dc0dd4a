import Foundation
import Inference
import SafeTensors
import Tensors

/// SmolLM2-135M's config.json (shapes and rope of the real model; the weights are random).
let smolConfig = """
    {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
     "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
     "rms_norm_eps": 1e-05, "rope_theta": 100000, "max_position_embeddings": 8192, "tie_word_embeddings": true,
     "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2}
    """

/// Decode and prefill speed on a SmolLM2-135M-shaped model, f32 and bf16, 1 and 2 threads.
func benchInference(workDir: String, transformersScript: String?) throws {
    print("\n== inference: SmolLM2-135M shapes (random weights), prompt 128 tokens, 64 generated ==")
    let shapes = llamaShapes(hidden: 576, intermediate: 1536, layers: 30, vocab: 49152, kvDim: 192, tied: true)
    for dtype in [DType.f32, .bf16] {
        let dir = workDir + "/smol-model-\(dtype.rawValue.lowercased())"
        if !FileManager.default.fileExists(atPath: dir + "/config.json") {
            try writeSynthetic(dir, shapes: shapes, dtype: dtype, noiseSeed: 0, maxShardSize: 5_000_000_000)
            try Data(smolConfig.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        }
        let model = try LlamaModel(directory: dir)
        let prompt = (0..<128).map { ($0 * 7919) % 49152 }
        for (level, threads) in KernelLevel.supported.flatMap({ l in [1, 2].map { (l, $0) } }) {
            model.threads = threads
            model.kernels = level
            var bestPrefill = Double.infinity
            var bestDecode = Double.infinity
            for _ in 0..<2 {
                let cache = model.makeCache(capacity: 256)
                let t0 = Date()
                var logits = try model.forward(prompt, cache: cache)
                let t1 = Date()
                for _ in 0..<64 {
                    let next = Sampler.argmax(logits)
                    logits = try model.forward([next], cache: cache)
                }
                let t2 = Date()
                bestPrefill = min(bestPrefill, t1.timeIntervalSince(t0))
                bestDecode = min(bestDecode, t2.timeIntervalSince(t1))
            }
            print(
                String(
                    format: "av %@, kernels %@, %d thread%@: prefill %.1f tokens/s, decode %.1f tokens/s",
                    dtype.rawValue, level.name, threads, threads == 1 ? "" : "s", 128 / bestPrefill, 64 / bestDecode))
        }
    }
    if let transformersScript {
        let python = ProcessInfo.processInfo.environment["AV_PYTHON"] ?? "/usr/bin/python3"
        let r = runChild(python, [transformersScript])
        print(
            r.status == 0
                ? r.output.trimmingCharacters(in: .whitespacesAndNewlines)
                : "transformers script failed (needs torch, transformers): \(r.output)")
    }
}

/// Prompt passes on a real model directory, in one process (after one warm-up pass): `tokens`
/// tokens a pass, logits for the last only, as `generate` runs a prompt. Prints the median rate, the
/// load and first pass apart (the first faults the model's pages in, from disk when they are not
/// cached), then `decode` greedy tokens after the last pass (llama-bench's tg). A loop long enough to
/// profile the prompt path alone (`perf record av-bench prefill …`).
func benchPrefill(directory: String, tokens: Int, passes: Int, threads: Int, decode: Int) throws {
    let loadStart = Date()
    let model = try LlamaModel(directory: directory)
    let load = Date().timeIntervalSince(loadStart)
    model.threads = threads
    let prompt = (0..<tokens).map { ($0 * 7919) % model.config.vocabSize }
    var seconds: [Double] = []
    var last: (cache: KVCache, logits: [Float])?
    for _ in 0...max(passes, 1) {
        let cache = model.makeCache(capacity: tokens + decode + 1)
        let t0 = Date()
        last = (cache, try model.forward(prompt, cache: cache))
        seconds.append(Date().timeIntervalSince(t0))
    }
    let median = seconds.dropFirst().sorted()[(seconds.count - 1) / 2]
    print(
        String(
            format: "%@: %d tokens × %d passes, kernels %@, %d threads: median %.1f ms a pass, %.1f tokens/s"
                + " (load %.1f ms, first pass %.1f ms)",
            directory, tokens, passes, model.kernels.name, threads, median * 1e3, Double(tokens) / median,
            load * 1e3, seconds[0] * 1e3))
    guard decode > 0, var (cache, logits) = last else { return }
    let t0 = Date()
    for _ in 0..<decode { logits = try model.forward([Sampler.argmax(logits)], cache: cache) }
    let elapsed = Date().timeIntervalSince(t0)
    print(String(format: "decode: %d tokens in %.2f s, %.2f tokens/s", decode, elapsed, Double(decode) / elapsed))
}

/// A model with Llama-2-7B's shapes (hidden 4096, MLP 11008, 32 heads, `layers` layers, untied head)
/// and the vocabulary of a real model directory (its tokenizer files copied, its vocabulary size and
/// special tokens in config.json): seeded random bf16 weights, for timing a gate (`av check`) on
/// real text at the paper's size. Written once: an existing `out/config.json` is kept.
func writeGateModel(out: String, tokenizerFrom source: String, layers: Int) throws {
    let fm = FileManager.default
    if fm.fileExists(atPath: out + "/config.json") {
        print("\(out): exists, kept")
        return
    }
    let sourceConfig = try LlamaConfig.load(directory: source)
    let vocab = sourceConfig.vocabSize
    let shapes = llamaShapes(
        hidden: 4096, intermediate: 11008, layers: layers, vocab: vocab, kvDim: 4096, tied: false)
    let start = Date()
    try writeSynthetic(out, shapes: shapes, dtype: .bf16, noiseSeed: 0, maxShardSize: 5_000_000_000)
    for file in ["tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json"]
    where fm.fileExists(atPath: source + "/" + file) {
        try fm.copyItem(atPath: source + "/" + file, toPath: out + "/" + file)
    }
    let raw = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source + "/config.json")))
    var config = raw as? [String: Any] ?? [:]
    let shapesConfig: [String: Any] = [
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
        "num_hidden_layers": layers, "num_attention_heads": 32, "num_key_value_heads": 32, "head_dim": 128,
        "vocab_size": vocab, "tie_word_embeddings": false, "max_position_embeddings": 4096, "torch_dtype": "bfloat16",
    ]
    config.merge(shapesConfig) { $1 }
    try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        .write(to: URL(fileURLWithPath: out + "/config.json"))
    let params = shapes.reduce(0) { $0 + $1.1.reduce(1, *) }
    print(
        String(
            format: "%@: %.2fB parameters (bf16, vocabulary %d from %@) in %.0f s", out, Double(params) / 1e9, vocab,
            source, Date().timeIntervalSince(start)))
}

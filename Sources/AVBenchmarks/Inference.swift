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
/// tokens a pass, logits for the last only, as `generate` runs a prompt. Prints the median rate; a
/// loop long enough to profile the prompt path alone (`perf record av-bench prefill …`).
func benchPrefill(directory: String, tokens: Int, passes: Int, threads: Int) throws {
    let model = try LlamaModel(directory: directory)
    model.threads = threads
    let prompt = (0..<tokens).map { ($0 * 7919) % model.config.vocabSize }
    var seconds: [Double] = []
    for pass in 0...passes {
        let cache = model.makeCache(capacity: tokens + 1)
        let t0 = Date()
        _ = try model.forward(prompt, cache: cache)
        if pass > 0 { seconds.append(Date().timeIntervalSince(t0)) }
    }
    let median = seconds.sorted()[seconds.count / 2]
    print(
        String(
            format: "%@: %d tokens × %d passes, kernels %@, %d threads: median %.1f ms a pass, %.1f tokens/s",
            directory, tokens, passes, model.kernels.name, threads, median * 1e3, Double(tokens) / median))
}

import Dispatch
import Foundation
import Tensors

/// Benchmarks for the kernels and commands, run in a release build:
///     swift run -c release av-bench [convert]
/// Each figure is compared with a baseline measured in the same run (memcpy of the same bytes),
/// since these machines drift by up to 30% between time windows.

func seconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// Best of `repeats` runs: the least disturbed by other work on the machine.
func best(_ repeats: Int = 7, _ body: () -> Void) -> Double {
    (0..<repeats).map { _ in seconds(body) }.min()!
}

func benchConvert() {
    let count = 64 << 20  // 64 Mi elements: 128 MiB of bf16, 256 MiB of f32
    let f32 = UnsafeMutablePointer<Float>.allocate(capacity: count)
    let bf16 = UnsafeMutableRawPointer.allocate(byteCount: count * 2, alignment: 64)
    let copyTarget = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
    defer {
        f32.deallocate()
        bf16.deallocate()
        copyTarget.deallocate()
    }
    var state: UInt32 = 12345
    for i in 0..<count {
        state = state &* 1_664_525 &+ 1_013_904_223
        f32[i] = Float(Int32(bitPattern: state)) * 1e-9
    }
    // Touch every page once so first-touch faults are not measured.
    memset(copyTarget, 0, count * 4)
    Convert.floatToBF16(f32, count: count, into: bf16)

    let gb = 1e9
    let toF32 = best { Convert.bf16ToFloat(bf16, count: count, into: f32) }
    let toBF16 = best { Convert.floatToBF16(f32, count: count, into: bf16) }
    let copyBF16 = best { copyTarget.copyMemory(from: bf16, byteCount: count * 2) }
    let copyF32 = best { copyTarget.copyMemory(from: f32, byteCount: count * 4) }
    let f16ToF32 = best(3) { Convert.f16ToFloat(bf16, count: count, into: f32) }
    let toF16 = best(3) { Convert.fromFloat(.f16, from: f32, count: count, into: bf16) }
    print("conversion, 1 thread, \(count >> 20) Mi elements, GB/s of input (best of 7):")
    print(
        String(
            format: "  bf16 -> f32   %6.2f GB/s   (memcpy of the same input: %6.2f GB/s, ratio %.2f)", Double(count * 2) / toF32 / gb,
            Double(count * 2) / copyBF16 / gb, copyBF16 / toF32))
    print(
        String(
            format: "  f32 -> bf16   %6.2f GB/s   (memcpy of the same input: %6.2f GB/s, ratio %.2f)", Double(count * 4) / toBF16 / gb,
            Double(count * 4) / copyF32 / gb, copyF32 / toBF16))
    print(String(format: "  f16 -> f32    %6.2f GB/s", Double(count * 2) / f16ToF32 / gb))
    print(String(format: "  f32 -> f16    %6.2f GB/s", Double(count * 4) / toF16 / gb))
}

let args = Array(CommandLine.arguments.dropFirst())
let which = args.first ?? "all"
/// `AV_BENCH_COLD=1`: empty the page cache before every timed run of the large model (needs root).
let cold = ProcessInfo.processInfo.environment["AV_BENCH_COLD"] == "1"
let workDir = ProcessInfo.processInfo.environment["AV_BENCH_DIR"] ?? "/tmp/av-bench"
let transformersScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Benchmarks/transformers_decode.py").path
let numpyScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Benchmarks/numpy_merge.py").path
/// SmolLM2-135M's shapes (tied embeddings), f32: 540 MB a checkpoint.
let smol = llamaShapes(hidden: 576, intermediate: 1536, layers: 30, vocab: 49152, kvDim: 192, tied: true)
/// A 7B Llama's layer shapes with 9 of its 32 layers: 4.2 GB in bf16.
let llama7b = llamaShapes(hidden: 4096, intermediate: 11008, layers: 9, vocab: 32000, kvDim: 4096, tied: false)
do {
    switch which {
    case "convert":
        benchConvert()
    case "smol":
        try benchEngine(
            name: "smollm2-135m-f32", shapes: smol, dtype: .f32, maxShardSize: 5_000_000_000, workDir: workDir, repeats: 3, numpyScript: numpyScript,
            cold: false)
    case "inference":
        try benchInference(workDir: workDir, transformersScript: transformersScript)
    case "prefill":
        guard args.count >= 2 else {
            print("usage: av-bench prefill MODEL_DIR [TOKENS=64] [PASSES=50] [THREADS=2] [DECODE=0]")
            exit(2)
        }
        let numbers = args.dropFirst(2).compactMap { Int($0) }
        try benchPrefill(
            directory: args[1], tokens: numbers.first ?? 64, passes: numbers.dropFirst().first ?? 50,
            threads: numbers.dropFirst(2).first ?? 2, decode: numbers.dropFirst(3).first ?? 0)
    case "gate-model":
        guard args.count >= 3 else {
            print("usage: av-bench gate-model OUT_DIR TOKENIZER_MODEL_DIR [LAYERS=32]")
            exit(2)
        }
        let layers = args.dropFirst(3).first.flatMap { Int($0) } ?? 32
        try writeGateModel(out: args[1], tokenizerFrom: args[2], layers: layers)
    case "7b":
        try benchEngine(
            name: "llama7b-9layers-bf16", shapes: llama7b, dtype: .bf16, maxShardSize: 2_000_000_000, workDir: workDir, repeats: 2, numpyScript: numpyScript,
            cold: cold)
    case "all":
        benchConvert()
        try benchEngine(
            name: "smollm2-135m-f32", shapes: smol, dtype: .f32, maxShardSize: 5_000_000_000, workDir: workDir, repeats: 3, numpyScript: numpyScript,
            cold: false)
        try benchEngine(
            name: "llama7b-9layers-bf16", shapes: llama7b, dtype: .bf16, maxShardSize: 2_000_000_000, workDir: workDir, repeats: 2, numpyScript: numpyScript,
            cold: cold)
    default:
        print(
            "usage: av-bench [convert|smol|7b|inference|prefill MODEL_DIR|gate-model OUT TOKENIZER_DIR|all]"
                + "   (AV_BENCH_DIR: where models are generated, default /tmp/av-bench)")
        exit(2)
    }
} catch {
    print("error: \(error)")
    exit(1)
}

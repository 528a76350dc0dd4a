import AlignmentVectors
import Foundation
import SafeTensors

/// Computes an alignment vector from two checkpoints, mixes it back at three strengths, and prints
/// what changed: the library calls behind `av diff` and `av merge`.
let args = CommandLine.arguments
guard args.count == 4 else {
    print("usage: mix-from-code BASE ALIGNED OUT_DIR")
    exit(2)
}
let (basePath, alignedPath, outDir) = (args[1], args[2], args[3])
do {
    try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
    let base = try Checkpoint(path: basePath)
    let vectorPath = outDir + "/domain.av"
    let report = try diff(base: base, aligned: Checkpoint(path: alignedPath), output: vectorPath, options: DiffOptions(domain: "domain"))
    print("diff: \(report.changedTensors) of \(report.tensors.count) tensors changed; exact at λ=1: \(report.mismatches == 0)")
    let vector = try AlignmentVector(path: vectorPath)
    for lambda in [0.0, 0.5, 1.5] {
        let out = outDir + "/mix-\(lambda).safetensors"
        let merged = try merge(base: base, terms: [MergeTerm(vector: vector, coefficient: lambda)], output: out, options: MergeOptions())
        let file = try SafeTensorsFile(path: out)
        print("λ = \(lambda): \(merged.changed) values changed, \(file.tensors.count) tensors in \(out)")
    }
} catch {
    print("error: \(error)")
    exit(1)
}

// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "av",
    products: [
        .library(name: "Tensors", targets: ["Tensors"]),
        .library(name: "SafeTensors", targets: ["SafeTensors"]),
        .library(name: "GGUF", targets: ["GGUF"]),
        .library(name: "AlignmentVectors", targets: ["AlignmentVectors"]),
        .library(name: "Inference", targets: ["Inference"]),
        .library(name: "Evaluation", targets: ["Evaluation"]),
        .executable(name: "av", targets: ["av"]),
    ],
    targets: [
        // The innermost SIMD kernels, compiled per instruction set (AVX-512, AVX2+FMA) and picked at
        // run time; Tensors wraps them.
        .target(name: "CKernels"),
        .target(name: "Tensors", dependencies: ["CKernels"]),
        .target(name: "SafeTensors", dependencies: ["Tensors"]),
        .target(name: "GGUF", dependencies: ["Tensors", "SafeTensors"]),
        .target(name: "AlignmentVectors", dependencies: ["Tensors", "SafeTensors"]),
        .target(name: "Inference", dependencies: ["Tensors", "SafeTensors", "AlignmentVectors"]),
        .target(name: "Evaluation", dependencies: ["Tensors", "SafeTensors", "AlignmentVectors", "Inference"]),
        .executableTarget(
            name: "av",
            dependencies: ["Tensors", "SafeTensors", "GGUF", "AlignmentVectors", "Inference", "Evaluation"],
            plugins: ["BuildInfo"]),
        // Writes BuildInfo.swift (the git commit) into av's build before each build.
        .plugin(name: "BuildInfo", capability: .buildTool()),
        // Release-build benchmarks: `swift run -c release av-bench`. Never part of `swift test`.
        .executableTarget(
            name: "av-bench", dependencies: ["Tensors", "SafeTensors", "Inference"], path: "Sources/AVBenchmarks"),
        // Shared helpers for every test target: temporary directories, running the built binary.
        .target(name: "AVTestSupport", path: "Tests/AVTestSupport"),
        .testTarget(
            name: "TensorsTests", dependencies: ["Tensors", "AVTestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "SafeTensorsTests", dependencies: ["SafeTensors", "AVTestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "AlignmentVectorsTests", dependencies: ["AlignmentVectors", "SafeTensors", "AVTestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "InferenceTests", dependencies: ["Inference", "AlignmentVectors", "SafeTensors", "AVTestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "GGUFTests", dependencies: ["GGUF", "SafeTensors", "Inference", "AVTestSupport"],
            resources: [.copy("Fixtures")]),
        // The end-to-end check on a real model (SmolLM2-135M-Instruct, from pip): run in a release
        // build (`swift test -c release -Xswiftc -enable-testing --filter EndToEndTests`).
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["GGUF", "Inference", "AlignmentVectors", "SafeTensors", "AVTestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "EvaluationTests",
            dependencies: ["Evaluation", "Inference", "AlignmentVectors", "SafeTensors", "AVTestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "CLITests",
            dependencies: ["av", "SafeTensors", "Tensors", "Inference", "Evaluation", "AVTestSupport"]),
    ]
)

// swift-tools-version:6.0
// libFuzzer targets for every parser of outside input (Tests/fuzz.sh builds and runs them with
// -sanitize=fuzzer,address; they are not part of `swift test` or CI's time budget).
import PackageDescription

let package = Package(
    name: "AVFuzz",
    dependencies: [.package(name: "av", path: "../..")],
    targets: [
        .executableTarget(
            name: "AVFuzz",
            dependencies: [
                .product(name: "Tensors", package: "av"), .product(name: "SafeTensors", package: "av"),
                .product(name: "GGUF", package: "av"), .product(name: "AlignmentVectors", package: "av"),
                .product(name: "Inference", package: "av"), .product(name: "Evaluation", package: "av"),
            ])
    ]
)

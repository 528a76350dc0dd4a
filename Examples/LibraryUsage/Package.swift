// swift-tools-version:6.0
// A package that depends on av and uses its libraries to diff and merge from code.
// Build and run from this folder: swift run mix-from-code BASE ALIGNED OUT_DIR
import PackageDescription

let package = Package(
    name: "LibraryUsage",
    dependencies: [.package(name: "av", path: "../..")],
    targets: [
        .executableTarget(
            name: "mix-from-code",
            dependencies: [.product(name: "AlignmentVectors", package: "av"), .product(name: "SafeTensors", package: "av")])
    ]
)

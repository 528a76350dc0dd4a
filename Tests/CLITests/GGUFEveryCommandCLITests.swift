import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors
@testable import Tensors

/// "Every command that takes a model takes a `.gguf`" (docs/convert.md), for the commands no other
/// test gave one (issue 26, section 2): diff, merge, sweep, search and export-lora give what they
/// give on the model `av convert` makes of the file.
@Suite("a .gguf given to diff, merge, sweep, search and export-lora")
struct GGUFEveryCommandCLITests {
    /// The tensors of every safetensors file in `path` (a file or a directory), by name.
    static func tensors(_ path: String) throws -> [String: [UInt8]] {
        let files =
            path.hasSuffix(".safetensors") || path.hasSuffix(".av")
            ? [path]
            : try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".safetensors") }
                .map { path + "/" + $0 }
        var out: [String: [UInt8]] = [:]
        for file in files {
            let f = try SafeTensorsFile(path: file)
            for t in f.tensors { out[t.name] = [UInt8](f.bytes(of: t)) }
        }
        return out
    }

    @Test("each command's result from the .gguf is its result from the converted directory")
    func everyCommand() throws {
        let dir = TemporaryDirectory()
        let fm = FileManager.default
        // Search exits 1 when no λ reaches the target: the random model here reaches none.
        func run(_ arguments: [String]) throws -> ProcessResult {
            let r = try runAV(arguments)
            #expect(r.status == 0 || (arguments[0] == "search" && r.status == 1), "\(arguments.prefix(2)): \(r.stderr)")
            return r
        }
        // B: a bf16 model, as on the Hub (its norms bf16 too), and B.gguf made of it, as llama.cpp users
        // have it; A: B with other weights, and A.gguf.
        _ = try run(["convert", ggufTestFixture("spm/llama2.gguf"), "-o", dir.file("B0"), "--dtype", "bf16"])
        let converted = try SafeTensorsFile(path: dir.file("B0/model.safetensors"))
        func model(_ name: String, flipping flip: Bool) throws {
            try fm.copyItem(atPath: dir.file("B0"), toPath: dir.file(name))
            try fm.removeItem(atPath: dir.file(name + "/model.safetensors"))
            let tensors = try converted.tensors.map { t -> (TensorSpec, [UInt8]) in
                var values = try converted.floats(named: t.name)
                var bytes = [UInt8](repeating: 0, count: values.count * 2)
                bytes.withUnsafeMutableBytes {
                    Convert.fromFloat(.bf16, from: &values, count: values.count, into: $0.baseAddress!)
                }
                // A low bit of every third value.
                if flip { for i in stride(from: 0, to: bytes.count, by: 6) { bytes[i] ^= 1 } }
                return (TensorSpec(name: t.name, dtype: .bf16, shape: t.shape), bytes)
            }
            try SafeTensorsWriter.write(path: dir.file(name + "/model.safetensors"), tensors: tensors)
            _ = try run(["convert", dir.file(name), "-o", dir.file(name + ".gguf"), "--dtype", "bf16"])
        }
        try model("B", flipping: false)
        try model("A", flipping: true)
        let gguf = dir.file("B.gguf")

        // diff: from the two .gguf files, the vector of the two directories.
        try fm.createDirectory(atPath: dir.file("g"), withIntermediateDirectories: true)
        try fm.createDirectory(atPath: dir.file("d"), withIntermediateDirectories: true)
        _ = try run(["diff", gguf, dir.file("A.gguf"), "-o", dir.file("g/style.av"), "-q"])
        _ = try run(["diff", dir.file("B"), dir.file("A"), "-o", dir.file("d/style.av"), "-q"])
        let vector = try Self.tensors(dir.file("d/style.av"))
        let fromGGUF = try Self.tensors(dir.file("g/style.av"))
        #expect(!vector.isEmpty && fromGGUF == vector)

        // merge: the base as a .gguf.
        _ = try run(["merge", "--base", gguf, "--vectors", dir.file("d"), "--style", "0.5", "-o", dir.file("mg"), "-q"])
        _ = try run([
            "merge", "--base", dir.file("B"), "--vectors", dir.file("d"), "--style", "0.5", "-o", dir.file("md"), "-q",
        ])
        let merged = try Self.tensors(dir.file("md"))
        let mergedFromGGUF = try Self.tensors(dir.file("mg"))
        #expect(!merged.isEmpty && mergedFromGGUF == merged)

        // sweep and search: the same table from either base (the base's name aside).
        try Data(
            """
            {"prompt": "The patient", "chosen": " should rest", "rejected": " must run"}
            {"prompt": "A contract", "chosen": " binds", "rejected": " breaks"}

            """.utf8
        ).write(to: URL(fileURLWithPath: dir.file("pairs.jsonl")))
        try Data(
            """
            {"prompt": "The patient", "responses": {"plain": " should rest", "formal": " ought to rest"}}
            {"prompt": "A contract", "responses": {"plain": " binds", "formal": " is binding"}}

            """.utf8
        ).write(to: URL(fileURLWithPath: dir.file("levels.jsonl")))
        for (command, flags) in [
            ("sweep", ["--style", "0:1:3", "--pairs", dir.file("pairs.jsonl"), "--json"]),
            (
                "search",
                [
                    "--levels", "style=" + dir.file("levels.jsonl"), "--target", "style=formal", "--range", "0:1:3",
                    "--json",
                ]
            ),
        ] {
            let fromGGUF = try run([command, "--base", gguf, "--vectors", dir.file("d")] + flags)
            let fromDirectory = try run([command, "--base", dir.file("B"), "--vectors", dir.file("d")] + flags)
            #expect(!fromGGUF.stdout.isEmpty && fromGGUF.status == fromDirectory.status)
            #expect(
                fromGGUF.stdout.replacingOccurrences(of: gguf, with: "BASE")
                    == fromDirectory.stdout.replacingOccurrences(of: dir.file("B"), with: "BASE"), "\(command)")
        }

        // export-lora: --base as a .gguf (its content is checked against the vector's base).
        _ = try run(["export-lora", dir.file("d/style.av"), "--base", gguf, "--rank", "2", "-o", dir.file("lg")])
        _ = try run([
            "export-lora", dir.file("d/style.av"), "--base", dir.file("B"), "--rank", "2", "-o", dir.file("ld"),
        ])
        let adapter = try Self.tensors(dir.file("ld"))
        let adapterFromGGUF = try Self.tensors(dir.file("lg"))
        #expect(!adapter.isEmpty && adapterFromGGUF == adapter)
        // Another model's .gguf as --base is refused as another directory would be.
        let other = try runAV([
            "export-lora", dir.file("d/style.av"), "--base", ggufTestFixture("spm/mistral.gguf"), "-o", dir.file("lx"),
        ])
        #expect(other.status != 0 && !fm.fileExists(atPath: dir.file("lx")), "\(other.stderr)")
    }
}

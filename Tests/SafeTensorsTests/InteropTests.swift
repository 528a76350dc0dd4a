import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors
@testable import Tensors

struct ManifestFile: Decodable {
    struct Tensor: Decodable {
        var name: String
        var dtype: String
        var shape: [Int]
        var hex: String
    }
    var metadata: [String: String]?
    var tensors: [Tensor]

    static let all: [String: ManifestFile] = {
        let data = FileManager.default.contents(atPath: fixturePath("interop_manifest.json"))!
        return (try? JSONDecoder().decode([String: ManifestFile].self, from: data)) ?? [:]
    }()

    var specs: [(TensorSpec, [UInt8])] {
        tensors.map {
            (TensorSpec(name: $0.name, dtype: DType(rawValue: $0.dtype)!, shape: $0.shape), [UInt8](hex: $0.hex))
        }
    }
}

@Suite("Interop with Python safetensors")
struct InteropTests {
    static let fixtures = ["all_dtypes", "empty", "metadata_only", "shapes", "unicode_names"]

    @Test("files Python wrote read back exactly", arguments: fixtures)
    func readsPythonFiles(name: String) throws {
        let manifest = try #require(ManifestFile.all[name])
        let file = try SafeTensorsFile(path: fixturePath("\(name).safetensors"))
        #expect(file.metadata == manifest.metadata)
        #expect(file.tensors.count == manifest.tensors.count)
        for t in manifest.tensors {
            let info = try #require(file.info(t.name), "missing \(t.name)")
            #expect(info.dtype.rawValue == t.dtype)
            #expect(info.shape == t.shape)
            #expect([UInt8](file.bytes(of: info)) == [UInt8](hex: t.hex), "\(t.name)")
        }
    }

    @Test("av writes the same bytes as Python for the same tensors and metadata", arguments: fixtures)
    func writesIdenticalBytes(name: String) throws {
        let manifest = try #require(ManifestFile.all[name])
        let dir = TemporaryDirectory()
        let out = dir.file("\(name).safetensors")
        try SafeTensorsWriter.write(path: out, tensors: manifest.specs, metadata: manifest.metadata)
        let ours = readBytes(out)
        let theirs = readBytes(fixturePath("\(name).safetensors"))
        let firstDifference =
            zip(ours, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            ?? Swift.min(ours.count, theirs.count)
        #expect(ours == theirs, "first difference at byte \(firstDifference)")
    }

    @Test("the shard index is written as transformers writes it")
    func indexText() throws {
        let expected = String(decoding: readBytes(fixturePath("index_expected.json")), as: UTF8.self)
        let map = [
            "model.layers.0.mlp.weight": "model-00001-of-00002.safetensors",
            "lm_head.weight": "model-00002-of-00002.safetensors",
            "naïve": "model-00002-of-00002.safetensors",
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        ]
        #expect(ShardPlanner.indexJSON(totalSize: 1234, weightMap: map) == expected)
    }

    /// Python `safetensors` reads what av wrote: raw bytes through `deserialize`, numpy arrays
    /// through `safe_open` and `load_file`. CI installs the modules and sets AV_REQUIRE_PYTHON=1.
    @Test("Python safetensors reads files av wrote", .enabled(if: pythonInteropEnabled))
    func pythonReadsOurFiles() throws {
        let python = try #require(
            pythonCommand(modules: ["safetensors", "numpy"]), "python3 with safetensors and numpy is required")
        let dir = TemporaryDirectory()
        var expected: [String: (dtype: String, shape: [Int], hex: String)] = [:]
        var tensors: [(TensorSpec, [UInt8])] = []
        for name in Self.fixtures {
            for (spec, bytes) in try #require(ManifestFile.all[name]).specs where expected[spec.name] == nil {
                tensors.append((spec, bytes))
                expected[spec.name] = (spec.dtype.rawValue, spec.shape, bytes.hex)
            }
        }
        let all = dir.file("all.safetensors")
        try SafeTensorsWriter.write(path: all, tensors: tensors, metadata: ["format": "pt", "made.by": "av"])
        let numpyOnly = dir.file("numpy.safetensors")
        let values: [Float] = [1.5, -2.25, 0, 3e-5, .infinity, 7]
        let floats = values.withUnsafeBytes { Array($0) }
        try SafeTensorsWriter.write(
            path: numpyOnly, tensors: [(TensorSpec(name: "w", dtype: .f32, shape: [2, 3]), floats)],
            metadata: ["format": "pt"])
        let script = """
            import json, sys
            import numpy as np
            from safetensors import deserialize, safe_open
            from safetensors.numpy import load_file
            raw = open(sys.argv[1], "rb").read()
            out = {"tensors": {n: {"dtype": t["dtype"], "shape": list(t["shape"]), "hex": bytes(t["data"]).hex()} for n, t in deserialize(raw)}}
            with safe_open(sys.argv[1], framework="np") as f:
                out["metadata"] = f.metadata()
                out["f32"] = f.get_tensor("matrix.f32").tolist()
            w = load_file(sys.argv[2])["w"]
            out["w"] = [str(x) for x in w.reshape(-1).tolist()]
            out["w_shape"] = list(w.shape)
            print(json.dumps(out))
            """
        let result = try runPython(python, code: script, arguments: [all, numpyOnly])
        #expect(result.status == 0, "\(result.stderr)")
        let parsed = try JSONParser.parse(result.stdout)
        for (name, e) in expected {
            let t = try #require(parsed["tensors"]?[name], "Python did not see \(name)")
            #expect(
                t["dtype"]?.stringValue?.uppercased() == e.dtype || pythonDType(t["dtype"]?.stringValue) == e.dtype,
                "\(name)")
            #expect(t["hex"]?.stringValue == e.hex, "\(name)")
            #expect(t["shape"]?.arrayValue?.compactMap(\.doubleValue).map { Int($0) } == e.shape, "\(name)")
        }
        #expect(parsed["metadata"]?["made.by"]?.stringValue == "av")
        #expect(
            parsed["w"]?.arrayValue?.compactMap(\.stringValue) == [
                "1.5", "-2.25", "0.0", "2.9999999242136255e-05", "inf", "7.0",
            ])
        #expect(parsed["w_shape"]?.arrayValue?.count == 2)
    }

    private func pythonDType(_ s: String?) -> String? {
        let map = [
            "bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "uint16": "U16", "int32": "I32",
            "uint32": "U32",
            "int64": "I64", "uint64": "U64", "float16": "F16", "float32": "F32", "float64": "F64", "bfloat16": "BF16",
            "float8_e4m3fn": "F8_E4M3", "float8_e4m3fnuz": "F8_E4M3FNUZ", "float8_e5m2": "F8_E5M2",
            "float8_e5m2fnuz": "F8_E5M2FNUZ", "float8_e8m0fnu": "F8_E8M0", "float4_e2m1fn_x2": "F4", "complex64": "C64",
        ]
        return s.flatMap { map[$0] }
    }
}

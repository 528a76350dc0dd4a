import AVTestSupport
import Foundation
import Testing

@testable import SafeTensors
@testable import Tensors

@Suite("Writer: round trips, streaming, atomicity")
struct WriterTests {
    @Test("every dtype round trips, with scalars, zero-size shapes and no tensors at all")
    func roundTripEveryDType() throws {
        let dir = TemporaryDirectory()
        var tensors: [(TensorSpec, [UInt8])] = []
        for (k, dtype) in DType.allCases.enumerated() {
            for shape in [[], [0], [3, 0], [1], [2, 4], [3, 5, 2]] as [[Int]] {
                let spec = TensorSpec(name: "\(dtype.rawValue)/\(shape)", dtype: dtype, shape: shape)
                guard let n = spec.byteCount else { continue }  // F4/F6 with an element count that is not whole bytes
                tensors.append((spec, (0..<n).map { UInt8(truncatingIfNeeded: $0 * 31 + k) }))
            }
        }
        let path = dir.file("all.safetensors")
        try SafeTensorsWriter.write(path: path, tensors: tensors, metadata: ["a": "1", "b": "two"])
        let file = try SafeTensorsFile(path: path)
        #expect(file.metadata == ["a": "1", "b": "two"])
        #expect(file.tensors.count == tensors.count)
        for (spec, bytes) in tensors {
            let info = try #require(file.info(spec.name))
            #expect(info.dtype == spec.dtype && info.shape == spec.shape)
            #expect([UInt8](file.bytes(of: info)) == bytes, "\(spec.name)")
        }
        let empty = dir.file("empty.safetensors")
        try SafeTensorsWriter.write(path: empty, tensors: [])
        #expect(readBytes(empty) == rawSafetensors("{}      "))  // N = 8, padded with 6 spaces
        #expect(try SafeTensorsFile(path: empty).tensors.isEmpty)
    }

    @Test("golden header lengths and padding from the reference tests")
    func goldenHeaders() throws {
        func n(_ specs: [TensorSpec], _ metadata: [String: String]? = nil) throws -> Int {
            try SafeTensorsLayout(specs, metadata: metadata).headerBytes.count - 8
        }
        #expect(try n([]) == 8)
        #expect(try n([], ["framework": "pt"]) == 40)
        #expect(try n([TensorSpec(name: "attn.0", dtype: .f32, shape: [1, 2, 3])]) == 64)
        #expect(try n([TensorSpec(name: "attn0", dtype: .f32, shape: [1, 1, 2, 3])]) == 72)
        #expect(try n([TensorSpec(name: "attn.0", dtype: .f4, shape: [1, 2])]) == 64)
        #expect(try n([TensorSpec(name: "test", dtype: .i32, shape: [2, 2])]) == 64)
        let two = try SafeTensorsLayout([
            TensorSpec(name: "test2", dtype: .f16, shape: [2, 2]),
            TensorSpec(name: "test1", dtype: .i32, shape: [2, 2]),
        ])
        #expect(two.headerBytes.count - 8 == 128)
        #expect(two.tensors.map(\.name) == ["test1", "test2"] && two.tensors[1].dataRange == 16..<24)
        #expect(try n([TensorSpec(name: "test1", dtype: .i32, shape: [2, 2])], ["framework": "pt"]) == 96)
    }

    @Test("streams in chunks of any size; the header is complete before the first data byte")
    func streamsChunks() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("stream.safetensors")
        let specs = [
            TensorSpec(name: "big", dtype: .f32, shape: [1000, 3]), TensorSpec(name: "small", dtype: .bf16, shape: [7]),
        ]
        let writer = try SafeTensorsWriter(path: path, tensors: specs)
        #expect(!FileManager.default.fileExists(atPath: path))  // nothing at the destination until finish
        var expected: [String: [UInt8]] = [:]
        while let t = writer.nextTensor {
            let bytes = (0..<t.byteCount).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ t.name.count) }
            expected[t.name] = bytes
            var offset = 0
            var chunk = 1
            while offset < bytes.count {
                let end = min(bytes.count, offset + chunk)
                try writer.write(Array(bytes[offset..<end]))
                offset = end
                chunk = chunk * 3 + 1
            }
        }
        try writer.finish()
        let file = try SafeTensorsFile(path: path)
        for (name, bytes) in expected { #expect([UInt8](try file.bytes(named: name)) == bytes) }
    }

    @Test("errors leave the destination untouched and no temporary behind")
    func atomicOnError() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("out.safetensors")
        writeBytes(Array("old contents".utf8), to: path)
        let spec = TensorSpec(name: "t", dtype: .f32, shape: [4])
        // Too many bytes.
        let w1 = try SafeTensorsWriter(path: path, tensors: [spec])
        #expect(throws: SafeTensorsError.self) { try w1.write([UInt8](repeating: 0, count: 20)) }
        // Too few, then finish.
        let w2 = try SafeTensorsWriter(path: path, tensors: [spec])
        try w2.write([UInt8](repeating: 0, count: 8))
        do {
            try w2.finish()
            Issue.record("finished a short tensor")
        } catch {
            #expect(error.description.contains("\"t\" got 8 of its 16 bytes"))
        }
        // Released unfinished.
        do { _ = try SafeTensorsWriter(path: path, tensors: [spec]) }
        #expect(readBytes(path) == Array("old contents".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.safetensors"])
        // Bad specs are refused before anything is created.
        #expect(throws: SafeTensorsError.self) { try SafeTensorsLayout([spec, spec]) }
        #expect(throws: SafeTensorsError.self) {
            try SafeTensorsLayout([TensorSpec(name: "f4", dtype: .f4, shape: [3])])
        }
        #expect(throws: SafeTensorsError.self) {
            try SafeTensorsLayout([], metadata: ["big": String(repeating: "x", count: 100_000_001)])
        }
        // A directory that does not exist is an I/O error naming the path.
        do {
            try SafeTensorsWriter.write(path: dir.file("no/such/dir.safetensors"), tensors: [])
            Issue.record("wrote into a missing directory")
        } catch {
            #expect(error.rule == "IOError" && error.description.contains("no/such/dir.safetensors"))
        }
    }
}

@Suite("Sharded model directories")
struct ShardTests {
    @Test("shards split as huggingface_hub splits them")
    func planner() {
        #expect(ShardPlanner.split(sizes: [], maxShardSize: 10) == [])
        #expect(ShardPlanner.split(sizes: [4, 4, 4], maxShardSize: 10) == [[0, 1], [2]])
        #expect(ShardPlanner.split(sizes: [5, 5, 5], maxShardSize: 10) == [[0, 1], [2]])
        #expect(ShardPlanner.split(sizes: [3, 20, 3, 3], maxShardSize: 10) == [[1], [0, 2, 3]])
        #expect(HFNames.shardName(0, of: 3) == "model-00001-of-00003.safetensors")
    }

    static func writeModel(_ dir: String, maxShardSize: Int, count: Int = 6) throws -> [String: [UInt8]] {
        let specs = (0..<count).map {
            TensorSpec(name: "model.layers.\($0).weight", dtype: .bf16, shape: [10, $0 + 1])
        }
        let writer = try ModelDirectoryWriter(path: dir, tensors: specs, maxShardSize: maxShardSize)
        var data: [String: [UInt8]] = [:]
        while let t = writer.nextTensor {
            let bytes = (0..<t.byteCount).map { UInt8(truncatingIfNeeded: $0 + t.byteCount) }
            data[t.name] = bytes
            try writer.write(bytes)
        }
        try writer.finish()
        return data
    }

    @Test("written shards and index read back as one model; one shard means no index")
    func roundTrip() throws {
        let tmp = TemporaryDirectory()
        let dir = tmp.file("model")
        let data = try Self.writeModel(dir, maxShardSize: 60)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(files.contains(HFNames.indexFile))
        #expect(files.filter { $0.hasSuffix(".safetensors") }.count > 2)
        let model = try SafeTensorsModel(path: dir)
        #expect(model.count == 6)
        for (name, bytes) in data { #expect([UInt8](try model.bytes(named: name)) == bytes) }
        #expect(model.metadata == ["format": "pt"])
        let index = try SafeTensorsModel.readIndex(dir + "/" + HFNames.indexFile)
        #expect(index.count == 6)

        let single = tmp.file("single")
        _ = try Self.writeModel(single, maxShardSize: 1 << 30)
        #expect(try FileManager.default.contentsOfDirectory(atPath: single) == [HFNames.singleFile])
        // Writing again over an existing directory replaces it whole.
        _ = try Self.writeModel(single, maxShardSize: 60, count: 3)
        #expect(try SafeTensorsModel(path: single).count == 3)
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: single)).contains(HFNames.singleFile))
    }

    @Test("a broken index is an error naming the shard or tensor")
    func brokenIndex() throws {
        let tmp = TemporaryDirectory()
        let dir = tmp.file("model")
        _ = try Self.writeModel(dir, maxShardSize: 60)
        let indexPath = dir + "/" + HFNames.indexFile
        let original = String(decoding: readBytes(indexPath), as: UTF8.self)
        func expectError(_ text: String, _ words: [String]) {
            writeBytes(Array(text.utf8), to: indexPath)
            do {
                _ = try SafeTensorsModel(path: dir)
                Issue.record("opened with index \(text)")
            } catch {
                for w in words { #expect(error.description.contains(w), "\(error)") }
            }
        }
        expectError(
            original.replacingOccurrences(of: "model-00001-of", with: "model-00009-of"),
            ["model-00009-of", "does not exist"])
        expectError(
            original.replacingOccurrences(of: "\"model.layers.0.weight\"", with: "\"ghost\""),
            ["model.layers.0.weight", "does not list"])
        let firstShard = try #require(
            try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasPrefix("model-00001-of-") })
        expectError(
            original.replacingOccurrences(
                of: "\"weight_map\": {", with: "\"weight_map\": {\n    \"extra.weight\": \"\(firstShard)\","),
            ["extra.weight", "does not hold it"])
        expectError("{", ["not valid JSON"])
        expectError("{\"metadata\": {}}", ["weight_map"])
        writeBytes(Array(original.utf8), to: indexPath)
        #expect(try SafeTensorsModel(path: dir).count == 6)
        // A model.safetensors beside the index: transformers loads it, av would load the shards. Refused.
        let single = dir + "/model.safetensors"
        try SafeTensorsWriter.write(
            path: single, tensors: [(TensorSpec(name: "w", dtype: .f32, shape: [1]), [0, 0, 0, 0])])
        do {
            _ = try SafeTensorsModel(path: dir)
            Issue.record("opened a directory with both model.safetensors and an index of shards")
        } catch {
            #expect(error.description.contains("transformers would load it and av the shards"), "\(error)")
        }
        try FileManager.default.removeItem(atPath: single)
        // Several weight files and no index: ambiguous.
        try FileManager.default.removeItem(atPath: indexPath)
        do {
            _ = try SafeTensorsModel(path: dir)
            Issue.record("opened shards without an index")
        } catch {
            #expect(error.description.contains("no model.safetensors.index.json"))
        }
    }
}

@Suite("Header parser fuzzing")
struct FuzzTests {
    /// Seeded mutations of valid headers: bytes flipped, inserted, deleted, digits changed,
    /// lengths and data truncated. Every input must either open with a self-consistent layout or
    /// be refused with a typed error: no crash, no hang.
    @Test("20,000 mutated files: each opens consistently or is refused")
    func mutations() throws {
        let dir = TemporaryDirectory()
        let seeds: [[UInt8]] = [
            rawSafetensors(referenceHeader, data: z16),
            try SafeTensorsLayout(
                [
                    TensorSpec(name: "a.weight", dtype: .bf16, shape: [2, 3]),
                    TensorSpec(name: "b", dtype: .f32, shape: []),
                ], metadata: ["format": "pt"]
            ).headerBytes + [UInt8](repeating: 1, count: 16),
            readBytes(fixturePath("unicode_names.safetensors")),
        ]
        var rng = SplitMix(seed: 0xA11CE)
        let path = dir.file("fuzz.safetensors")
        var opened = 0
        let iterations = Int(ProcessInfo.processInfo.environment["AV_FUZZ_ITERATIONS"] ?? "") ?? 20_000
        for _ in 0..<iterations {
            var bytes = seeds[Int(rng.next() % UInt64(seeds.count))]
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let at = Int(rng.next() % UInt64(bytes.count + 1))
                switch rng.next() % 6 {
                case 0 where at < bytes.count: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes.insert(Array("{}[],:\"0123456789-e.".utf8)[Int(rng.next() % 20)], at: at)
                case 2 where at < bytes.count: bytes.remove(at: at)
                case 3 where at < bytes.count && bytes[at] >= 0x30 && bytes[at] <= 0x39:
                    bytes[at] = 0x30 + UInt8(rng.next() % 10)
                case 4: bytes = Array(bytes.prefix(at))
                case 5 where bytes.count >= 8: bytes[Int(rng.next() % 8)] = UInt8(truncatingIfNeeded: rng.next())
                default: break
                }
            }
            writeBytes(bytes, to: path)
            if let file = try? SafeTensorsFile(path: path) {
                opened += 1
                var end = 0
                for t in file.tensors {
                    #expect(
                        t.dataRange.lowerBound == end
                            && t.byteCount == Shape.byteCount(elements: t.elementCount, dtype: t.dtype))
                    end = t.dataRange.upperBound
                }
                #expect(file.header.dataStart + end == bytes.count)
            }
        }
        #expect(opened > 0)  // the mutations are not all fatal: the check above ran
    }
}

/// A small deterministic generator (SplitMix64).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

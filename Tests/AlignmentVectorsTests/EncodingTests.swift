import AVTestSupport
import Foundation
import Testing

@testable import AlignmentVectors
@testable import SafeTensors
@testable import Tensors

/// Sparse and 1-bit AVs: what they keep, that every reader decodes them the same, and that the
/// validating reader refuses malformed ones.
@Suite("Sparse and 1-bit encodings")
struct EncodingTests {
    /// A base and an aligned f32 model (a matrix past one merge chunk, a small matrix, a norm) and
    /// their exact AV.
    func fixtureAV(_ dir: TemporaryDirectory, rows: Int = 40, columns: Int = 60) throws -> String {
        let n = rows * columns
        let tensors: [(String, [Int], [Float])] = [
            ("w", [rows, columns], values(n, seed: 1)), ("q", [4, 9], values(36, seed: 3)),
            ("norm", [7], values(7, seed: 5)),
        ]
        let aligned = tensors.enumerated().map { (i, t) in
            (t.0, t.1, zip(t.2, values(t.2.count, seed: 10 + i, scale: 0.01)).map { $0 + $1 })
        }
        try writeModel(dir.file("base.safetensors"), tensors, dtype: .f32)
        try writeModel(dir.file("aligned.safetensors"), aligned, dtype: .f32)
        _ = try makeAV(dir.file("base.safetensors"), dir.file("aligned.safetensors"), dir.file("d.av"))
        return dir.file("d.av")
    }

    func encode(_ av: String, _ out: String, _ configure: (inout EncodingOptions) -> Void) throws -> CompressReport {
        var options = EncodingOptions()
        configure(&options)
        return try compress(vector: AlignmentVector(path: av), output: out, options: options)
    }

    @Test("top-k picks the largest |Δ|, ties to the lower index, like a full sort")
    func topK() {
        var x: UInt64 = 7
        let data = (0..<5000).map { _ -> Double in
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(Int(x >> 58) - 32) / 8  // many ties, both signs
        }
        for k in [0, 1, 7, 100, 2500, 4999, 5000] {
            let reference = data.indices.sorted {
                data[$0].magnitude != data[$1].magnitude ? data[$0].magnitude > data[$1].magnitude : $0 < $1
            }.prefix(k).sorted()
            #expect(DeltaEncoder.topIndices(data, k: k) == Array(reference), "k = \(k)")
        }
    }

    @Test("sparse keeps ⌈D·n⌉ exact values, decodes them in merge, and reports the energy kept")
    func sparse() throws {
        let dir = TemporaryDirectory()
        let av = try fixtureAV(dir)
        let dense = try AlignmentVector(path: av)
        let report = try encode(av, dir.file("s.av")) {
            $0.encoding = .sparse
            $0.density = 0.25
        }
        let sparse = try AlignmentVector(path: dir.file("s.av"))
        #expect(sparse.header.encoding == .sparse)
        for d in dense.deltas {
            let exact = try dense.deltaValues(d)
            let got = try sparse.deltaValues(sparse.delta(d.name)!)
            let k = Int((0.25 * Double(exact.count)).rounded(.up))
            let kept = Set(DeltaEncoder.topIndices(exact, k: k))
            #expect(got.filter { $0 != 0 }.count == k, "\(d.name)")
            for i in exact.indices {
                #expect(got[i] == (kept.contains(i) ? Double(Float(exact[i])) : 0), "\(d.name)[\(i)]")
            }
            let energy = exact.reduce(0) { $0 + $1 * $1 }
            let keptEnergy = kept.reduce(0) { $0 + exact[$1] * exact[$1] }
            let r = report.tensors.first { $0.name == d.name }!
            #expect(abs(r.kept - keptEnergy / energy) < 1e-6)
            #expect(sparse.header.retained[d.name]?.kept == r.kept)
        }
        // merge decodes it: base + λ·Δ̂, rounded once to f32.
        let out = dir.file("m.safetensors")
        _ = try mix(dir.file("base.safetensors"), [(dir.file("s.av"), 0.7)], out)
        let merged = try SafeTensorsFile(path: out)
        let base = try SafeTensorsFile(path: dir.file("base.safetensors"))
        for d in sparse.deltas {
            let delta = try sparse.deltaValues(d)
            let b = ElementOps.widen(.f32, base.bytes(of: base.info(d.name)!), count: delta.count)
            let m = ElementOps.widen(.f32, merged.bytes(of: merged.info(d.name)!), count: delta.count)
            for i in delta.indices { #expect(m[i] == Double(Float(b[i] + 0.7 * delta[i])), "\(d.name)[\(i)]") }
        }
    }

    @Test("sparse --rescale keeps each tensor's L1 norm; bf16 values halve the value bytes")
    func sparseOptions() throws {
        let dir = TemporaryDirectory()
        let av = try fixtureAV(dir)
        let dense = try AlignmentVector(path: av)
        _ = try encode(av, dir.file("r.av")) {
            $0.encoding = .sparse
            $0.density = 0.1
            $0.rescale = true
            $0.valueDType = .bf16
        }
        let r = try AlignmentVector(path: dir.file("r.av"))
        for d in dense.deltas {
            let l1 = try dense.deltaValues(d).reduce(0) { $0 + $1.magnitude }
            let got = try r.deltaValues(r.delta(d.name)!).reduce(0) { $0 + $1.magnitude }
            #expect(abs(got - l1) / l1 < 0.01, "\(d.name)")  // bf16 rounding of the rescaled values
            guard case .sparse(let index, let value) = r.delta(d.name)!.storage else {
                Issue.record("not sparse")
                continue
            }
            #expect(value.dtype == .bf16 && index.dtype == .i32 && value.byteCount == 2 * index.elementCount)
        }
    }

    @Test("1-bit: sign per element, mean |Δ| per row (or matrix), 1-D tensors dense")
    func oneBit() throws {
        let dir = TemporaryDirectory()
        let av = try fixtureAV(dir)
        let dense = try AlignmentVector(path: av)
        for perMatrix in [false, true] {
            let out = dir.file("b\(perMatrix).av")
            let report = try encode(av, out) {
                $0.encoding = .oneBit
                $0.perMatrix = perMatrix
            }
            let b = try AlignmentVector(path: out)
            for d in dense.deltas {
                let exact = try dense.deltaFloats(d).map(Double.init)  // what the encoder reads
                let got = try b.deltaValues(b.delta(d.name)!)
                if d.shape.count < 2 {
                    #expect(b.delta(d.name)!.encoding == .dense)
                    #expect(got == exact.map { Double(Float($0)) })
                    continue
                }
                let columns = d.shape[1]
                let rows = d.shape[0]
                var error = 0.0
                for r in 0..<rows {
                    let span = perMatrix ? 0..<exact.count : (r * columns)..<((r + 1) * columns)
                    let alpha = Double(Float(exact[span].reduce(0) { $0 + $1.magnitude } / Double(span.count)))
                    for c in 0..<columns {
                        let e = exact[r * columns + c]
                        #expect(got[r * columns + c] == (e >= 0 ? alpha : -alpha))
                        error += (e - got[r * columns + c]) * (e - got[r * columns + c])
                    }
                }
                let energy = exact.reduce(0) { $0 + $1 * $1 }
                let kept = report.tensors.first { $0.name == d.name }!.kept
                #expect(abs(kept - (1 - error / energy)) < 1e-9)
                // Every matrix here is stored 1-bit: any other storage is a failure, not a skip.
                guard case .oneBit(let sign, let scale) = b.delta(d.name)!.storage else {
                    Issue.record("\(d.name) is not stored 1-bit")
                    continue
                }
                #expect(sign.shape == [rows, (columns + 7) / 8] && scale.elementCount == (perMatrix ? 1 : rows))
            }
        }
    }

    @Test("encoded merges: bytes independent of threads, in-memory mixes equal merge, compress of compress")
    func readersAgree() throws {
        let dir = TemporaryDirectory()
        let av = try fixtureAV(dir, rows: 1200, columns: 1000)  // 4.8 MB of f32: two merge chunks
        _ = try encode(av, dir.file("s.av")) {
            $0.encoding = .sparse
            $0.density = 0.05
        }
        _ = try encode(av, dir.file("b.av")) { $0.encoding = .oneBit }
        let terms = [(dir.file("s.av"), 0.6), (dir.file("b.av"), -0.4)]
        var outputs: [[UInt8]] = []
        for threads in [1, 3] {
            let out = dir.file("m\(threads).safetensors")
            _ = try mix(dir.file("base.safetensors"), terms, out, threads: threads)
            outputs.append(readFile(out))
        }
        #expect(outputs[0] == outputs[1])
        let merged = try tensorBytes(dir.file("m1.safetensors"))
        let inMemory = try mixTensors(
            base: Checkpoint(path: dir.file("base.safetensors")),
            terms: terms.map { MergeTerm(vector: try AlignmentVector(path: $0.0), coefficient: $0.1) }, threads: 2)
        for (name, buffer) in inMemory {
            #expect([UInt8](UnsafeRawBufferPointer(start: buffer.pointer, count: buffer.count)) == merged[name]!)
        }
        // A sparse AV re-encoded at a lower density keeps the top of what it had.
        _ = try encode(dir.file("s.av"), dir.file("s2.av")) {
            $0.encoding = .sparse
            $0.density = 0.02
        }
        let s = try AlignmentVector(path: dir.file("s.av"))
        let s2 = try AlignmentVector(path: dir.file("s2.av"))
        let w = try s.deltaValues(s.delta("w")!)
        let k = Int((0.02 * Double(w.count)).rounded(.up))
        let expected = DeltaEncoder.topIndices(w, k: k)
        let got = try s2.deltaValues(s2.delta("w")!)
        #expect(got.indices.filter { got[$0] != 0 } == expected)
    }

    /// Rewrites `av` with `change` applied to its tensors and metadata, digests recomputed, so only
    /// the broken rule can refuse it.
    func tamper(
        _ av: String, _ out: String, _ change: (inout [(TensorSpec, [UInt8])], inout [String: String]) -> Void
    ) throws {
        let file = try SafeTensorsFile(path: av)
        var tensors = file.tensors.map {
            (TensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape), [UInt8](file.bytes(of: $0)))
        }
        var metadata = file.metadata!
        change(&tensors, &metadata)
        let digests = JSONValue.object(
            tensors.map { t in
                (
                    t.0.name,
                    .string(XXHash64.hex(t.1.withUnsafeBytes { AVDigest.digest($0, elementSize: t.0.dtype.byteSize!) }))
                )
            })
        metadata["av.digests"] = digests.rendered()
        if let shapes = metadata["av.shapes"] { metadata["av.shapes_digest"] = AVHeader.digest(of: shapes) }
        try SafeTensorsWriter.write(path: out, tensors: tensors, metadata: metadata)
    }

    @Test("malformed sparse and 1-bit AVs are refused, naming the tensor and the rule")
    func malformed() throws {
        let dir = TemporaryDirectory()
        let av = try fixtureAV(dir)
        _ = try encode(av, dir.file("s.av")) {
            $0.encoding = .sparse
            $0.density = 0.5
        }
        _ = try encode(av, dir.file("b.av")) { $0.encoding = .oneBit }
        func refusal(_ source: String, _ change: (inout [(TensorSpec, [UInt8])], inout [String: String]) -> Void)
            throws -> String
        {
            let out = dir.file("bad.av")
            try tamper(dir.file(source), out, change)
            do {
                let v = try AlignmentVector(path: out)
                _ = try mix(dir.file("base.safetensors"), [(out, 1)], dir.file("never.safetensors"))
                _ = v
            } catch let e as AVError {
                #expect(!FileManager.default.fileExists(atPath: dir.file("never.safetensors")))
                return e.description
            }
            Issue.record("accepted")
            return ""
        }
        func index(_ t: inout [(TensorSpec, [UInt8])], _ name: String) -> Int { t.firstIndex { $0.0.name == name }! }
        // Indices out of order.
        var message = try refusal("s.av") { t, _ in
            let i = index(&t, "av.sparse/w/index")
            t[i].1.withUnsafeMutableBytes { b in
                let first = b.load(fromByteOffset: 0, as: Int32.self)
                b.storeBytes(of: b.load(fromByteOffset: 4, as: Int32.self), toByteOffset: 0, as: Int32.self)
                b.storeBytes(of: first, toByteOffset: 4, as: Int32.self)
            }
        }
        #expect(message.contains("\"w\"") || message.contains(" w"))
        #expect(message.contains("indices must increase strictly"))
        // An index past the tensor.
        message = try refusal("s.av") { t, _ in
            let i = index(&t, "av.sparse/q/index")
            t[i].1.withUnsafeMutableBytes { b in
                b.storeBytes(of: Int32(36).littleEndian, toByteOffset: b.count - 4, as: Int32.self)
            }
        }
        #expect(message.contains("past the tensor's 36 elements"))
        // Fewer values than indices.
        message = try refusal("s.av") { t, _ in
            let i = index(&t, "av.sparse/q/value")
            t[i] = (TensorSpec(name: t[i].0.name, dtype: .f32, shape: [t[i].0.shape[0] - 1]), Array(t[i].1.dropLast(4)))
        }
        #expect(message.contains("one value per index"))
        // A wrong packed length.
        message = try refusal("b.av") { t, _ in
            let i = index(&t, "av.1bit/w/sign")
            t[i] = (TensorSpec(name: t[i].0.name, dtype: .u8, shape: [40, 7]), [UInt8](repeating: 0, count: 280))
        }
        #expect(message.contains("packed signs must be U8 of shape [40, 8]"))
        // A scale count that is neither one per row nor one.
        message = try refusal("b.av") { t, _ in
            let i = index(&t, "av.1bit/w/scale")
            t[i] = (TensorSpec(name: t[i].0.name, dtype: .f32, shape: [2]), [UInt8](repeating: 0, count: 8))
        }
        #expect(message.contains("one per row ([40]) or one for the matrix ([1])"))
        // A negative scale.
        message = try refusal("b.av") { t, _ in
            let i = index(&t, "av.1bit/q/scale")
            t[i].1.withUnsafeMutableBytes { $0.storeBytes(of: Float(-1).bitPattern.littleEndian, as: UInt32.self) }
        }
        #expect(message.contains("is not a finite number ≥ 0"))
        // A part without its shape, and a shape without its parts.
        message = try refusal("b.av") { _, m in m["av.shapes"] = #"{"q": [4, 9]}"# }
        #expect(message.contains("records no shape"))
        message = try refusal("s.av") { t, _ in t.removeAll { $0.0.name.hasPrefix("av.sparse/norm/") } }
        #expect(message.contains("holds no encoded parts"))
        // A flipped bit in a sparse value: the digest (left as recorded) refuses it.
        try tamper(dir.file("s.av"), dir.file("flip.av")) { _, _ in }
        var bytes = readFile(dir.file("flip.av"))
        bytes[bytes.count - 3] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: dir.file("flip.av")))
        #expect(throws: AVError.self) {
            _ = try mix(dir.file("base.safetensors"), [(dir.file("flip.av"), 1)], dir.file("never.safetensors"))
        }
    }

    @Test("metadata that sizes allocations is covered: av.digests required, av.shapes digested and bounded by memory")
    func sizedMetadata() throws {
        let dir = TemporaryDirectory()
        let av = try fixtureAV(dir)
        _ = try encode(av, dir.file("s.av")) {
            $0.encoding = .sparse
            $0.density = 0.5
        }
        func refused(_ path: String, _ words: String) {
            do {
                _ = try AlignmentVector(path: path)
                Issue.record("\(path): accepted")
            } catch {
                #expect(error.description.contains(words), "\(error)")
            }
        }
        // No digests at all: refused, as one missing digest is.
        let file = try SafeTensorsFile(path: av)
        var metadata = file.metadata!
        metadata["av.digests"] = nil
        let tensors = file.tensors.map {
            (TensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape), [UInt8](file.bytes(of: $0)))
        }
        try SafeTensorsWriter.write(path: dir.file("nodigests.av"), tensors: tensors, metadata: metadata)
        refused(dir.file("nodigests.av"), "\"av.digests\" is missing")
        // av.shapes edited, its digest not: refused.
        let sparse = try SafeTensorsFile(path: dir.file("s.av"))
        var edited = sparse.metadata!
        edited["av.shapes"] = edited["av.shapes"]!.replacingOccurrences(of: "[40,60]", with: "[4000,60]")
        try #require(edited["av.shapes"] != sparse.metadata!["av.shapes"])
        let parts = sparse.tensors.map {
            (TensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape), [UInt8](sparse.bytes(of: $0)))
        }
        try SafeTensorsWriter.write(path: dir.file("edited.av"), tensors: parts, metadata: edited)
        refused(dir.file("edited.av"), "does not match \"av.shapes_digest\"")
        // A declared shape of terabytes, digests recomputed: refused before any allocation.
        try tamper(dir.file("s.av"), dir.file("huge.av")) { _, m in
            m["av.shapes"] = m["av.shapes"]!.replacingOccurrences(of: "[40,60]", with: "[1000000000,60000]")
        }
        refused(dir.file("huge.av"), "more than this machine's memory holds as f32")
    }
}

import AVTestSupport
import Foundation
import Testing

@testable import AlignmentVectors
@testable import SafeTensors
@testable import Tensors

func fixture(_ name: String) -> String {
    Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)!.path
}

/// Every tensor's bytes, by name.
func tensorBytes(_ path: String) throws -> [String: [UInt8]] {
    let model = try SafeTensorsModel(path: path)
    var out: [String: [UInt8]] = [:]
    for e in model.entries { out[e.info.name] = [UInt8](try model.bytes(named: e.info.name)) }
    return out
}

func makeAV(_ base: String, _ aligned: String, _ out: String, storage: DType = .f32, threads: Int = 2) throws
    -> DiffReport
{
    var options = DiffOptions(domain: URL(fileURLWithPath: out).deletingPathExtension().lastPathComponent)
    options.storage = storage
    options.threads = threads
    return try diff(base: Checkpoint(path: base), aligned: Checkpoint(path: aligned), output: out, options: options)
}

func mix(
    _ base: String, _ terms: [(String, Double)], _ out: String, dtype: DType? = nil, threads: Int = 2,
    force: Bool = false, kernels: KernelLevel = .current
) throws -> MergeReport {
    var options = MergeOptions()
    options.kernels = kernels
    options.dtype = dtype
    options.threads = threads
    options.force = force
    return try merge(
        base: Checkpoint(path: base),
        terms: terms.map { MergeTerm(vector: try AlignmentVector(path: $0.0), coefficient: $0.1) },
        output: out, options: options)
}

@Suite("Exactness of diff and merge")
struct ExactnessTests {
    static let dtypes = ["F32", "BF16", "F16"]

    @Test(
        "λ = 0 gives the base bit for bit; λ = 1 with an f32 AV gives the aligned model bit for bit", arguments: dtypes)
    func identities(dtype: String) throws {
        let dir = TemporaryDirectory()
        let base = fixture("base_\(dtype).safetensors")
        let aligned = fixture("medical_\(dtype).safetensors")
        let av = dir.file("medical.av")
        let report = try makeAV(base, aligned, av)
        #expect(report.mismatches == 0 && report.signedZeros == 0)
        #expect(report.changedTensors == 3)
        let zero = dir.file("zero.safetensors")
        _ = try mix(base, [(av, 0)], zero)
        #expect(try tensorBytes(zero) == tensorBytes(base))
        let one = dir.file("one.safetensors")
        let merged = try mix(base, [(av, 1)], one)
        #expect(merged.baseVerified)
        #expect(try tensorBytes(one) == tensorBytes(aligned))
    }

    @Test("bf16 AVs: the λ = 1 mismatch diff reports is the mismatch merge produces", arguments: dtypes)
    func lossyStorageIsReported(dtype: String) throws {
        let dir = TemporaryDirectory()
        let base = fixture("base_\(dtype).safetensors")
        let aligned = fixture("medical_\(dtype).safetensors")
        let av = dir.file("medical.av")
        let report = try makeAV(base, aligned, av, storage: .bf16)
        #expect(report.mismatches > 0)
        #expect(try AlignmentVector(path: av).header.dtype == .bf16)
        let one = dir.file("one.safetensors")
        _ = try mix(base, [(av, 1)], one)
        let got = try tensorBytes(one)
        let want = try tensorBytes(aligned)
        var differing = 0
        let size = DType(rawValue: dtype)!.byteSize!
        for (name, bytes) in want {
            let g = got[name]!
            for i in stride(from: 0, to: bytes.count, by: size) where g[i..<(i + size)] != bytes[i..<(i + size)] {
                differing += 1
            }
        }
        #expect(differing == report.mismatches)
    }

    @Test("several domains, negative and > 1 coefficients match numpy's float64 within one rounding", arguments: dtypes)
    func matchesFloat64Reference(dtype: String) throws {
        let dir = TemporaryDirectory()
        let base = fixture("base_\(dtype).safetensors")
        let med = dir.file("medical.av")
        let leg = dir.file("legal.av")
        _ = try makeAV(base, fixture("medical_\(dtype).safetensors"), med)
        _ = try makeAV(base, fixture("legal_\(dtype).safetensors"), leg)
        let coefficients = try JSONDecoder().decode(
            [[Double]].self, from: Data(contentsOf: URL(fileURLWithPath: fixture("coefficients.json"))))
        let reference = try SafeTensorsFile(path: fixture("reference_\(dtype).safetensors"))
        for outDType in [DType(rawValue: dtype)!, .f32] {
            for (k, c) in coefficients.enumerated() {
                let out = dir.file("mix\(k).safetensors")
                _ = try mix(base, [(med, c[0]), (leg, c[1])], out, dtype: outDType)
                let merged = try SafeTensorsFile(path: out)
                for t in merged.tensors {
                    let got = try merged.floats(named: t.name)
                    let ref = try reference.bytes(named: "\(k)/\(t.name)")
                    for i in 0..<got.count {
                        let r = ref.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)
                        // One rounding of the output dtype (half its ulp at the reference), plus the f32
                        // step merge rounds through.
                        let ulp = Self.ulp(of: r, in: outDType)
                        let err = (Double(got[i]) - r).magnitude
                        if err > 0.5 * ulp + r.magnitude * 0x1p-24 + 1e-45 {
                            Issue.record(
                                "\(dtype)→\(outDType.rawValue) set \(k) \(t.name)[\(i)]: got \(got[i]), reference \(r), error \(err / ulp) ulp"
                            )
                        }
                    }
                }
            }
        }
    }

    /// The spacing of `dtype` values at `x`.
    static func ulp(of x: Double, in dtype: DType) -> Double {
        let (mantissa, minExp): (Int, Int) =
            switch dtype {
            case .bf16: (7, -126)
            case .f16: (10, -14)
            default: (23, -126)
            }
        let e = x == 0 ? minExp : max(minExp, Int(floor(log2(x.magnitude))))
        return pow(2.0, Double(e - mantissa))
    }

    @Test(
        "output bytes are the same with 1, 2 and 5 threads and across runs, over tensors of many chunks",
        .enabled(if: isReleaseBuild))
    func deterministic() throws {
        let dir = TemporaryDirectory()
        // 5M bf16 elements: three 4 MiB chunks, and merge batches them with the small tensor, so up
        // to four workers really run at once.
        let n = 5_000_000
        let b = values(n, seed: 21)
        try writeModel(dir.file("base.safetensors"), [("w", [n / 1000, 1000], b), ("small", [7], values(7, seed: 1))])
        let a = zip(b, values(n, seed: 22, scale: 0.003)).map { $0 + $1 }
        try writeModel(
            dir.file("aligned.safetensors"), [("w", [n / 1000, 1000], a), ("small", [7], values(7, seed: 2))])
        var avBytes: [[UInt8]] = []
        var mixBytes: [[UInt8]] = []
        for (run, threads) in [1, 2, 5, 2].enumerated() {
            try FileManager.default.createDirectory(atPath: dir.file("\(run)"), withIntermediateDirectories: true)
            let av = dir.file("\(run)/medical.av")
            let out = dir.file("\(run)/mix.safetensors")
            let (_, workers) = try Parallel.countingWorkers {
                _ = try makeAV(dir.file("base.safetensors"), dir.file("aligned.safetensors"), av, threads: threads)
                _ = try mix(dir.file("base.safetensors"), [(av, 0.37), (av, -1.3)], out, threads: threads)
            }
            avBytes.append(readFile(av))
            mixBytes.append(try tensorBytes(out).sorted { $0.key < $1.key }.flatMap(\.value))
            #expect(workers == min(threads, 4), "\(threads) threads")
        }
        #expect(Set(avBytes.map { $0.hashValue }).count == 1)
        #expect(Set(mixBytes.map { $0.hashValue }).count == 1)
    }
}

func readFile(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path) ?? Data()) }

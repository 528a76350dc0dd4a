import AlignmentVectors
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

enum CompressCommand {
    /// The options that choose an encoding, shared by `diff` and `compress`.
    static let encodingOptions = [
        OptionSpec(
            names: ["--encoding"], valueName: "ENC",
            help: "dense (default for diff), sparse (top entries by |Δ|) or 1bit (signs + a scale per row)"),
        OptionSpec(names: ["--density"], valueName: "D", help: "sparse: share of each tensor's entries kept (0.1)"),
        OptionSpec(names: ["--rescale"], help: "sparse: scale kept values so each tensor keeps its L1 norm"),
        OptionSpec(
            names: ["--scale"], valueName: "row|matrix", help: "1bit: one scale per row (default) or per matrix"),
    ]

    static let spec = CommandSpec(
        name: "compress",
        summary: "store an alignment vector smaller: sparse (top-k) or 1-bit (BitDelta)",
        positionals: [("IN.av", "the alignment vector to re-encode")],
        options: [OptionSpec(names: ["-o", "--output"], valueName: "OUT.av", help: "the AV file to write (required)")]
            + encodingOptions + [
                OptionSpec(names: ["--dtype"], valueName: "DTYPE", help: "sparse values: f32 (default) or bf16"),
                OptionSpec(names: ["--top"], valueName: "N", help: "how many of the worst-kept tensors to list (10)"),
                OptionSpec(names: ["--json"], help: "print the per-tensor report as JSON"),
                OptionSpec(names: ["--quiet", "-q"], help: "no progress bar"),
                OptionSpec(names: ["--help", "-h"], help: "show this help"),
            ],
        discussion: """
            sparse keeps, per tensor, the ⌈D·n⌉ entries largest in |Δ| (ties to the lower index) as sorted
            indices and values. 1bit keeps sign(Δ) packed 8 per byte and α = mean|Δ| per row (the scale that
            minimises ‖Δ − α·sign(Δ)‖²); 1-D tensors stay dense. Both are lossy: the report gives each tensor's
            reconstruction error ‖Δ − Δ̂‖/‖Δ‖ and the share of ‖Δ‖² kept, which av inspect shows later. Every
            command that reads an AV reads every encoding. One tensor is in memory at a time.
            """)

    /// The encoding the flags ask for; nil when they name none.
    static func encoding(_ args: ParsedArguments, default fallback: DeltaEncoding?) throws -> EncodingOptions? {
        guard let text = args.value("--encoding") ?? fallback?.rawValue else {
            for flag in ["--density", "--rescale", "--scale"] where args.has(flag) {
                throw UsageError(message: "\(flag) needs --encoding")
            }
            return nil
        }
        guard let encoding = DeltaEncoding(rawValue: text) else {
            throw UsageError(message: "--encoding must be dense, sparse or 1bit, not '\(text)'")
        }
        var options = EncodingOptions(encoding: encoding)
        if encoding != .sparse, let flag = ["--density", "--rescale"].first(where: args.has) {
            throw UsageError(message: "\(flag) applies to --encoding sparse")
        }
        if encoding != .oneBit, args.has("--scale") { throw UsageError(message: "--scale applies to --encoding 1bit") }
        if let d = args.value("--density") {
            guard let v = Double(d), v > 0, v <= 1 else {
                throw UsageError(message: "--density is a share in (0, 1], not '\(d)'")
            }
            options.density = v
        }
        options.rescale = args.has("--rescale")
        if let s = args.value("--scale") {
            guard s == "row" || s == "matrix" else {
                throw UsageError(message: "--scale must be row or matrix, not '\(s)'")
            }
            options.perMatrix = s == "matrix"
        }
        if let text = args.value("--dtype") {
            guard let d = DType(userSpelling: text), [.f32, .bf16].contains(d), encoding == .sparse || d == .f32 else {
                throw UsageError(
                    message: "--dtype with --encoding \(encoding.rawValue) must be "
                        + (encoding == .sparse ? "f32 or bf16" : "f32") + ", not '\(text)'")
            }
            options.valueDType = d
        }
        return options
    }

    /// `av compress`'s words: the vector in, the file out, the encoding, and what to print.
    struct Arguments {
        var input: String
        var output: String
        var options: EncodingOptions
        var top: Int
        var json: Bool
        var quiet: Bool

        /// Reads and checks every word.
        static func parse(_ args: ParsedArguments) throws -> Arguments {
            guard args.positionals.count == 1 else { throw UsageError(message: "expected one IN.av") }
            guard let output = args.value("-o") else { throw UsageError(message: "missing -o OUT.av") }
            guard let options = try encoding(args, default: nil) else {
                throw UsageError(message: "missing --encoding sparse|1bit|dense")
            }
            return Arguments(
                input: args.positionals[0], output: output, options: options, top: try count(args, "--top") ?? 10,
                json: args.has("--json"), quiet: args.has("--quiet"))
        }
    }

    /// Parse → encode the vector → print the report.
    static func run(_ args: ParsedArguments) throws -> ExitCode {
        let a = try Arguments.parse(args)
        let vector = try AlignmentVector(path: a.input)
        let bar = ProgressBar(label: "compress", quiet: a.quiet || a.json)
        let report = try compress(vector: vector, output: a.output, options: a.options, progress: bar.update)
        bar.finish()
        print(a.json ? json(report).rendered(pretty: true) : text(report, top: a.top))
        return .success
    }

    static func count(_ args: ParsedArguments, _ key: String) throws -> Int? {
        try args.value(key).map { text -> Int in
            guard let n = Int(text), n >= 0 else { throw UsageError(message: "\(key) must be a whole number") }
            return n
        }
    }

    /// The summary: sizes, the share of ‖Δ‖² kept, and the tensors kept worst.
    static func text(_ r: CompressReport, top: Int) -> String {
        let encoding = r.header.encoding.rawValue
        let params = r.header.encodingParameters.map { " " + $0.rendered() } ?? ""
        var lines = ["av compress: \(r.header.domain) → \(r.output) (\(encoding)\(params))"]
        let ratio = r.inputBytes > 0 ? Double(r.bytesWritten) / Double(r.inputBytes) : 0
        let worst = r.tensors.sorted { $0.kept < $1.kept }.prefix(top)
        let rows: [(String, String)] = [
            (
                "size",
                "\(Format.bytes(r.inputBytes)) → \(Format.bytes(r.bytesWritten))"
                    + " (\(String(cFormat: "%.1f", 100 * ratio))% of the input)"
            ),
            (
                "kept",
                String(cFormat: "%.2f", 100 * r.kept) + "% of ‖Δ‖² over \(r.tensors.count) tensors,"
                    + " ‖Δ − Δ̂‖/‖Δ‖ = " + String(cFormat: "%.3f", r.relativeError)
                    + (r.header.encodingParameters?["rescale"] == .bool(true)
                        ? " (values rescaled to the L1 norm)" : "")
            ),
            ("time", String(cFormat: "%.2f", r.seconds) + " s"),
        ]
        for (k, v) in rows { lines.append("  " + k.padded(to: 6) + v) }
        if !worst.isEmpty {
            lines.append("tensors kept worst:")
            lines.append(
                Format.table(
                    ["tensor", "encoding", "shape", "bytes", "kept ‖Δ‖²", "‖Δ−Δ̂‖/‖Δ‖"],
                    worst.map {
                        [
                            $0.name, $0.encoding.rawValue, Shape.describe($0.shape), Format.bytes($0.storedBytes),
                            String(cFormat: "%.2f%%", 100 * $0.kept), String(cFormat: "%.3f", $0.relativeError),
                        ]
                    }, rightAligned: [3, 4, 5]))
        }
        return lines.joined(separator: "\n")
    }

    static func json(_ r: CompressReport) -> JSONValue {
        .object([
            ("output", .string(r.output)), ("encoding", .string(r.header.encoding.rawValue)),
            ("parameters", r.header.encodingParameters ?? .null), ("inputBytes", .int(r.inputBytes)),
            ("bytesWritten", .int(r.bytesWritten)), ("kept", .double(r.kept)),
            ("relativeError", .double(r.relativeError)), ("seconds", .double(r.seconds)),
            (
                "tensors",
                .array(
                    r.tensors.map {
                        .object([
                            ("name", .string($0.name)), ("encoding", .string($0.encoding.rawValue)),
                            ("shape", .array($0.shape.map { .int($0) })), ("inputBytes", .int($0.inputBytes)),
                            ("storedBytes", .int($0.storedBytes)), ("energy", .double($0.energy)),
                            ("kept", .double($0.kept)), ("relativeError", .double($0.relativeError)),
                        ])
                    })
            ),
        ])
    }
}

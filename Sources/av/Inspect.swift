import AlignmentVectors
import SafeTensors
import Tensors

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

enum InspectCommand {
    static let spec = CommandSpec(
        name: "inspect",
        summary: "summarize a safetensors file, an .av file or a model directory",
        positionals: [("PATH", "a .safetensors or .av file, or a model directory (sharded or not)")],
        options: [
            OptionSpec(names: ["--tensors"], valueName: "REGEX", help: "list only tensors whose name matches REGEX"),
            OptionSpec(names: ["--json"], help: "print the summary and tensor table as JSON"),
            OptionSpec(names: ["--help", "-h"], help: "show this help"),
        ],
        discussion: "Reads only headers (the files are memory-mapped), so it is instant on any size.")

    /// `av inspect`'s words: the file or directory, which tensors, and the form.
    struct Arguments {
        var path: String
        var filter: Regex<AnyRegexOutput>?
        var json: Bool

        /// Reads and checks every word (the `--tensors` expression compiles).
        static func parse(_ args: ParsedArguments) throws -> Arguments {
            guard args.positionals.count == 1 else {
                throw UsageError(
                    message: args.positionals.isEmpty
                        ? "missing PATH" : "expected one PATH, got \(args.positionals.count)")
            }
            var filter: Regex<AnyRegexOutput>?
            if let pattern = args.value("--tensors") {
                do { filter = try Regex(pattern) } catch {
                    throw UsageError(message: "--tensors: invalid regular expression '\(pattern)'")
                }
            }
            return Arguments(path: args.positionals[0], filter: filter, json: args.has("--json"))
        }
    }

    /// Parse → read the headers → print the summary and the tensor table.
    static func run(_ args: ParsedArguments) throws -> ExitCode {
        let a = try Arguments.parse(args)
        let path = a.path
        let filter = a.filter
        let model = try SafeTensorsModel(path: path)
        let shown = model.entries.filter { e in filter.map { (try? $0.firstMatch(in: e.info.name)) != nil } ?? true }

        let params = model.parameterCount
        let dtypes = model.countsByDType
        let fileBytes = model.files.reduce(0) { $0 + $1.fileSize }
        let metadata = model.metadata ?? [:]
        let isAV = metadata["format"] == "av"
        let adapter = model.isDirectory && isAdapterDirectory(path) ? try? LoRAAdapter(path: path) : nil
        let kind =
            isAV
            ? "alignment vector"
            : adapter != nil ? "PEFT adapter" : model.isDirectory ? "model directory" : "safetensors file"
        let multiFile = model.files.count > 1

        if a.json {
            var top: [(key: String, value: JSONValue)] = [
                ("path", .string(path)),
                ("kind", .string(isAV ? "av" : model.isDirectory ? "directory" : "safetensors")),
                ("files", .array(model.files.map { .string($0.path) })),
                ("tensorCount", .int(model.count)), ("parameterCount", .int(params)),
                ("dataBytes", .int(model.totalDataSize)), ("fileBytes", .int(fileBytes)),
                (
                    "dtypes",
                    .object(
                        dtypes.keys.sorted { $0.order > $1.order }.map { d in
                            (
                                d.rawValue,
                                .object([
                                    ("tensors", .int(dtypes[d]!.tensors)), ("parameters", .int(dtypes[d]!.params)),
                                ])
                            )
                        })
                ),
                ("metadata", .object(metadata.keys.sorted().map { ($0, .string(metadata[$0]!)) })),
            ]
            top.append(
                (
                    "tensors",
                    .array(
                        shown.map { e in
                            let f = model.files[e.file]
                            return .object([
                                ("name", .string(e.info.name)), ("dtype", .string(e.info.dtype.rawValue)),
                                ("shape", .array(e.info.shape.map { .int($0) })), ("bytes", .int(e.info.byteCount)),
                                (
                                    "dataOffsets",
                                    .array([.int(e.info.dataRange.lowerBound), .int(e.info.dataRange.upperBound)])
                                ),
                                ("fileOffset", .int(f.fileOffset(of: e.info))), ("file", .string(splitName(f.path))),
                            ])
                        })
                ))
            print(JSONValue.object(top).rendered(pretty: true))
            return .success
        }

        var lines: [String] = []
        lines.append("\(path)  (\(kind), \(model.files.count) file\(model.files.count == 1 ? "" : "s"))")
        var summary: [(String, String)] = [
            ("tensors", Format.grouped(model.count)),
            ("parameters", "\(Format.grouped(params)) (\(Format.short(params)))"),
            (
                "bytes",
                "\(Format.grouped(model.totalDataSize)) of data, \(Format.grouped(fileBytes)) on disk"
                    + " (\(Format.bytes(fileBytes)))"
            ),
        ]
        for d in dtypes.keys.sorted(by: { $0.order > $1.order }) {
            summary.append(
                (
                    summary.count == 3 ? "dtypes" : "",
                    "\(d.rawValue): \(dtypes[d]!.tensors) tensor\(dtypes[d]!.tensors == 1 ? "" : "s"),"
                        + " \(Format.grouped(dtypes[d]!.params)) parameters"
                ))
        }
        if let adapter {
            let loras = adapter.modules.values.filter { $0.loraA != nil }.count
            let saved = adapter.modules.values.reduce(0) { $0 + $1.saved.count }
            let kind = adapter.useDoRA ? "DoRA" : adapter.useRSLoRA ? "rsLoRA" : "LoRA"
            summary.append(
                (
                    "adapter",
                    "\(kind) r \(adapter.rank), lora_alpha \(String(cFormat: "%g", adapter.alpha)): \(loras) modules"
                        + (saved > 0 ? ", \(saved) tensors saved whole" : "")
                        + (adapter.rankPattern.isEmpty ? "" : ", \(adapter.rankPattern.count) ranks by pattern")
                ))
        }
        if isAV {
            summary.append(("domain", metadata["av.domain"] ?? "?"))
            summary.append(("encoding", "\(metadata["av.encoding"] ?? "?"), deltas in \(metadata["av.dtype"] ?? "?")"))
            if let vector = try? AlignmentVector(path: path) { summary += encodingSummary(vector) }
            for role in ["base", "aligned"] {
                if let text = metadata["av.\(role)"], let info = try? JSONParser.parse(text) {
                    let fp = info["structure"]?.stringValue.map { " structure \($0)" } ?? ""
                    summary.append(
                        (role, "\(info["path"]?.stringValue ?? "?") (\(info["dtype"]?.stringValue ?? "?"),\(fp))"))
                }
            }
            if let text = metadata["av.adapter"], let a = try? JSONParser.parse(text) {
                let kind = a["use_dora"] == .bool(true) ? "DoRA" : (a["use_rslora"] == .bool(true) ? "rsLoRA" : "LoRA")
                let targets = a["target_modules"]?.arrayValue?.compactMap(\.stringValue).joined(separator: ", ") ?? "?"
                let r = a["r"]?.doubleValue.map { String(Int($0)) } ?? "?"
                let alpha = a["lora_alpha"]?.doubleValue.map { String(cFormat: "%g", $0) } ?? "?"
                summary.append(("adapter", "PEFT \(kind), r \(r), lora_alpha \(alpha), on \(targets)"))
                summary.append(("", "config digest \(a["config_digest"]?.stringValue ?? "?")"))
            }
        }
        if isAV, let text = metadata["av.digests"], case .object(let digests)? = try? JSONParser.parse(text) {
            summary.append(
                ("checksums", "\(digests.count) tensor digests (av.digests), verified by every read of the deltas"))
        }
        let shownKeys = metadata.keys.sorted().filter {
            !isAV || !["av.base", "av.aligned", "av.digests", "av.adapter", "av.shapes", "av.retained"].contains($0)
        }
        for (i, key) in shownKeys.enumerated() {
            summary.append((i == 0 ? "metadata" : "", "\(key) = \(metadata[key]!)"))
        }
        for (k, v) in summary { lines.append("  " + k.padded(to: 12) + v) }
        lines.append("")
        var header = ["name", "dtype", "shape", "bytes", "offset"]
        if multiFile { header.append("file") }
        let rows = shown.map { e -> [String] in
            var r = [
                e.info.name, e.info.dtype.rawValue, Shape.describe(e.info.shape), Format.grouped(e.info.byteCount),
                Format.grouped(e.info.dataRange.lowerBound),
            ]
            if multiFile { r.append(splitName(model.files[e.file].path)) }
            return r
        }
        lines.append(Format.table(header, rows, rightAligned: [3, 4]))
        if filter != nil { lines.append("(\(shown.count) of \(model.count) tensors match)") }
        print(lines.joined(separator: "\n"))
        return .success
    }
}

import Tensors

/// A command-line option a subcommand accepts.
struct OptionSpec: Sendable {
    var names: [String]
    var valueName: String?
    var help: String
    var repeatable = false

    var takesValue: Bool { valueName != nil }
    var key: String { names[0] }
}

/// A subcommand: its name, what it is for, and the words it accepts.
struct CommandSpec: Sendable {
    var name: String
    var summary: String
    var positionals: [(name: String, help: String)]
    var options: [OptionSpec]
    var discussion: String = ""
    /// Accepts `--NAME VALUE` for any NAME not otherwise known (merge's `--medical 0.5`).
    var dynamicOptionsHelp: String?

    var usage: String {
        var parts = ["av", name] + positionals.map(\.name)
        if dynamicOptionsHelp != nil { parts.append("[--DOMAIN COEF ...]") }
        for o in options where o.key != "--help" {
            parts.append("[\(o.key)\(o.valueName.map { " " + $0 } ?? "")]")
        }
        return parts.joined(separator: " ")
    }

    var help: String {
        var lines = ["av \(name): \(summary)", "", "Usage: \(usage)"]
        if !positionals.isEmpty {
            lines += ["", "Arguments:"]
            for p in positionals { lines.append(Self.row(p.name, p.help)) }
        }
        lines += ["", "Options:"]
        if let d = dynamicOptionsHelp { lines.append(Self.row("--DOMAIN COEF", d)) }
        for o in options {
            lines.append(Self.row(o.names.joined(separator: ", ") + (o.valueName.map { " " + $0 } ?? ""), o.help))
        }
        if !discussion.isEmpty { lines += ["", discussion] }
        return lines.joined(separator: "\n")
    }

    private static func row(_ left: String, _ right: String) -> String {
        let pad = max(1, 26 - left.count)
        return "  " + left + String(repeating: " ", count: pad) + right
    }
}

/// What the user typed wrong; printed as one line plus the usage, exit code 2.
struct UsageError: Error {
    var message: String
}

/// The words of one invocation, sorted into options, flags and positionals.
struct ParsedArguments {
    var values: [String: [String]] = [:]
    var flags: Set<String> = []
    var positionals: [String] = []
    /// `--NAME VALUE` pairs not declared by the command, in order.
    var dynamic: [(name: String, value: String)] = []

    func value(_ key: String) -> String? { values[key]?.last }
    func all(_ key: String) -> [String] { values[key] ?? [] }
    func has(_ key: String) -> Bool { flags.contains(key) || values[key] != nil }

    static func parse(_ args: [String], for spec: CommandSpec) throws(UsageError) -> ParsedArguments {
        var out = ParsedArguments()
        var i = 0
        var onlyPositionals = false
        func find(_ name: String) -> OptionSpec? { spec.options.first { $0.names.contains(name) } }
        while i < args.count {
            let arg = args[i]
            i += 1
            if onlyPositionals || !arg.hasPrefix("-") || arg == "-" || Double(arg) != nil {
                out.positionals.append(arg)
                continue
            }
            if arg == "--" {
                onlyPositionals = true
                continue
            }
            var name = arg
            var inline: String?
            if let eq = arg.firstIndex(of: "="), arg.hasPrefix("--") {
                name = String(arg[..<eq])
                inline = String(arg[arg.index(after: eq)...])
            }
            if let option = find(name) {
                if option.takesValue {
                    guard let value = inline ?? (i < args.count ? args[i] : nil) else {
                        throw UsageError(message: "option '\(name)' needs a value (\(option.valueName!))")
                    }
                    if inline == nil { i += 1 }
                    // An empty path or number is a slip (an unset shell variable): refused before any work,
                    // not found after it. Texts may be empty.
                    guard !value.isEmpty || ["--prompt", "--prefix", "--system"].contains(option.key) else {
                        throw UsageError(
                            message: "option '\(name)' needs a value (\(option.valueName!)), not an empty string")
                    }
                    if !option.repeatable && out.values[option.key] != nil {
                        throw UsageError(message: "option '\(name)' given twice")
                    }
                    out.values[option.key, default: []].append(value)
                } else {
                    guard inline == nil else { throw UsageError(message: "option '\(name)' takes no value") }
                    out.flags.insert(option.key)
                }
            } else if spec.dynamicOptionsHelp != nil, name.hasPrefix("--"), name.count > 2 {
                guard let value = inline ?? (i < args.count ? args[i] : nil) else {
                    throw UsageError(message: "option '\(name)' needs a value (a coefficient)")
                }
                if inline == nil { i += 1 }
                out.dynamic.append((String(name.dropFirst(2)), value))
            } else {
                throw UsageError(message: "unknown option '\(name)'")
            }
        }
        return out
    }
}

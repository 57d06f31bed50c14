// Entry points: load a file, or check text, into a `Config` or a list of `ConfigError`s.
//
// Order of checks: the bytes must be UTF-8 text without NUL (a binary file gets one clear
// error, not a parser message), then `ConfigPrescan` checks `Config.FileLimits` (size, line
// length, nesting depth, numbers of tables and values), then the line index is built and guards toml++ against the
// inputs known to crash it (see `TOMLLineIndex.malformed`), then TOMLKit parses
// (syntax errors carry its line/column), then `ConfigBuilder` validates everything it can
// and reports all problems, sorted by line.

import TOMLKit

extension Config {
    /// The largest config file accepted.
    public static let maxFileSize = FileLimits.fileSize

    /// At most this many errors are listed; when there are more, a last line with line 0
    /// says how many were left out.
    public static let maxListedErrors = 100

    /// Reads and validates the config file at `path`. Errors name the file as `path` was given.
    public static func load(path: String) throws(ConfigErrors) -> Config {
        try loadWithWarnings(path: path).config
    }

    /// Reads and validates the config file at `path`; also returns the settings in it that
    /// svrd does not act on yet (`ConfigWarning`, in line order), which do not make it invalid.
    public static func loadWithWarnings(path: String) throws(ConfigErrors) -> (config: Config, warnings: [ConfigWarning]) {
        let bytes: [UInt8]
        do {
            bytes = try ConfigFile.read(path, limit: maxFileSize).bytes
        } catch {
            throw ConfigErrors([ConfigError(file: path, line: 0, path: .root, kind: error.kind, message: error.message)])
        }
        if let problem = textProblem(bytes, fileName: path) { throw ConfigErrors([problem]) }
        let result = validate(text: String(decoding: bytes, as: UTF8.self), fileName: path)
        guard let config = result.config, result.errors.isEmpty else { throw ConfigErrors(result.errors) }
        return (config, result.warnings)
    }

    /// Validates `text`, returning the config or throwing every problem found.
    public static func parse(text: String, fileName: String) throws(ConfigErrors) -> Config {
        let (config, errors, _) = validate(text: text, fileName: fileName)
        guard let config, errors.isEmpty else { throw ConfigErrors(errors) }
        return config
    }

    /// Every problem in `text`, in line order; empty when the config is valid.
    public static func check(text: String, fileName: String) -> [ConfigError] {
        validate(text: text, fileName: fileName).errors
    }

    /// The settings in the valid config `text` that svrd does not act on yet, in line order
    /// (empty when there are none, or when `text` has errors).
    public static func warnings(text: String, fileName: String) -> [ConfigWarning] {
        validate(text: text, fileName: fileName).warnings
    }

    /// One line for `svrd check`: what the config holds.
    public var summary: String {
        func count(_ n: Int, _ one: String, _ many: String? = nil) -> String { "\(n) \(n == 1 ? one : many ?? one + "s")" }
        return "router '\(router.name)': " + [
            count(interfaces.count, "interface"), count(peers.count, "peer"), count(tenants.count, "tenant"),
            count(services.count, "service"), count(serviceRoutes.count, "service route"),
            count(servicePolicies.count, "service policy", "service policies"),
        ].joined(separator: ", ")
    }

    static func validate(text: String, fileName: String) -> (config: Config?, errors: [ConfigError], warnings: [ConfigWarning]) {
        if let problem = textProblem(Array(text.utf8), fileName: fileName) { return (nil, [problem], []) }
        if text.utf8.allSatisfy(ConfigValues.isSpace) {
            return (nil, [ConfigError(file: fileName, line: 1, path: .root, kind: .missingKey,
                                      message: "the file is empty; a config needs at least a [router] table")], [])
        }
        if let (line, path, message) = ConfigPrescan(Array(text.utf8)).problem {
            return (nil, [ConfigError(file: fileName, line: line, path: path, kind: .limit, message: message)], [])
        }
        let index = TOMLLineIndex(text: text)
        if let (line, column, message) = index.malformed {
            return (nil, [ConfigError(file: fileName, line: line, column: column, path: .root, kind: .syntax,
                                      message: "syntax error at column \(column): \(message)")], [])
        }
        let document: TOMLTable
        do {
            document = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            let begin = error.source.begin
            return (nil, [ConfigError(file: fileName, line: max(1, begin.line), column: begin.column, path: .root,
                                      kind: .syntax, message: "syntax error at column \(begin.column): \(error.description)")], [])
        } catch {
            return (nil, [ConfigError(file: fileName, line: 1, path: .root, kind: .syntax, message: "\(error)")], [])
        }
        let diagnostics = ConfigDiagnostics(fileName: fileName, index: index)
        let config = ConfigBuilder(document: document, diagnostics: diagnostics).build()
        let sorted = diagnostics.errors.enumerated().sorted { a, b in
            a.element.line != b.element.line ? a.element.line < b.element.line : a.offset < b.offset
        }.map(\.element)
        if diagnostics.dropped > 0 {
            let more = ConfigError(file: fileName, line: 0, path: .root, kind: .limit,
                                   message: "\(diagnostics.dropped) more errors not shown (at most \(ConfigDiagnostics.maxErrors) are listed)")
            return (nil, sorted + [more], [])
        }
        guard sorted.isEmpty, let config else { return (nil, sorted, []) }
        let warnings = diagnostics.warnings.enumerated().sorted { a, b in
            a.element.line != b.element.line ? a.element.line < b.element.line : a.offset < b.offset
        }.map(\.element)
        return (config, [], warnings)
    }

    /// A NUL byte or invalid UTF-8 makes the file "not text"; reported with its line.
    static func textProblem(_ bytes: [UInt8], fileName: String) -> ConfigError? {
        if !bytes.contains(0), String(validating: bytes, as: UTF8.self) != nil { return nil }
        var line = 1
        var lineStart = 0
        for (offset, byte) in bytes.enumerated() {
            if byte == 0 {
                return ConfigError(file: fileName, line: line, path: .root, kind: .notText,
                                   message: "not a text file: NUL byte at offset \(offset)")
            }
            if byte == 0x0A {
                if String(validating: bytes[lineStart..<offset], as: UTF8.self) == nil { break }
                line += 1
                lineStart = offset + 1
            }
        }
        if String(validating: bytes[lineStart...], as: UTF8.self) == nil {
            return ConfigError(file: fileName, line: line, path: .root, kind: .notText,
                               message: "not a text file: invalid UTF-8")
        }
        return nil
    }
}

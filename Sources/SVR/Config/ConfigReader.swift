// Typed access to the TOMLKit tree that records every problem instead of stopping at the
// first: each accessor returns nil (or the default) when the value is absent or wrong and
// adds a `ConfigError` with the line from `TOMLLineIndex`.

import TOMLKit

/// Collects the errors of one file.
final class ConfigDiagnostics {
    let fileName: String
    let index: TOMLLineIndex
    private(set) var errors: [ConfigError] = []
    /// Errors found beyond `maxErrors` (counted, not kept: a file of thousands of mistakes
    /// costs no more than one of a hundred).
    private(set) var dropped = 0
    static let maxErrors = Config.maxListedErrors

    var isFull: Bool { errors.count >= Self.maxErrors }

    init(fileName: String, index: TOMLLineIndex) {
        self.fileName = fileName
        self.index = index
    }

    func report(_ path: ConfigPath, _ kind: ConfigError.Kind, _ message: String) {
        guard !isFull else {
            dropped += 1
            return
        }
        errors.append(ConfigError(file: fileName, line: index.line(of: path), path: path, kind: kind, message: message))
    }

    func line(of path: ConfigPath) -> Int { index.line(of: path) }

    /// Settings of a valid config that svrd does not act on (see `ConfigWarning`).
    private(set) var warnings: [ConfigWarning] = []

    func warn(_ path: ConfigPath, _ kind: ConfigWarning.Kind, _ message: String) {
        warnings.append(ConfigWarning(file: fileName, line: index.line(of: path), path: path, kind: kind, message: message))
    }
}

/// One TOML table being read, with the keys it may contain.
struct TableReader {
    let table: TOMLTable
    let path: ConfigPath
    let diagnostics: ConfigDiagnostics

    /// Reports every key of `table` that is not in `allowed`, with a suggestion when one is close.
    init(_ table: TOMLTable, at path: ConfigPath, allowed: [String], diagnostics: ConfigDiagnostics) {
        self.table = table
        self.path = path
        self.diagnostics = diagnostics
        for key in table.keys where !allowed.contains(key) {
            let hint = diagnostics.isFull ? "" : Self.suggestion(for: key, among: allowed).map { "; did you mean '\($0)'?" } ?? ""
            let what = path.segments.isEmpty ? "table" : "key"
            diagnostics.report(path.appending(key), .unknownKey, "unknown \(what) '\(key)'\(hint)")
        }
    }

    func report(_ key: String, _ kind: ConfigError.Kind, _ message: String) {
        diagnostics.report(path.appending(key), kind, message)
    }

    func has(_ key: String) -> Bool { table[key] != nil }

    /// The raw value, with a type check.
    func value(_ key: String, _ type: TOMLType, required: Bool = false) -> TOMLValueConvertible? {
        guard let v = table[key] else {
            if required { diagnostics.report(path, .missingKey, "missing required key '\(key)'") }
            return nil
        }
        guard Self.matches(v, type) else {
            report(key, .wrongType, "expected \(Self.name(of: type)), found \(Self.name(of: v.type))")
            return nil
        }
        return v
    }

    func string(_ key: String, required: Bool = false) -> String? {
        value(key, .string, required: required)?.string
    }

    func bool(_ key: String, default def: Bool) -> Bool {
        value(key, .bool)?.bool ?? def
    }

    func int(_ key: String, range: ClosedRange<Int>, required: Bool = false) -> Int? {
        guard let v = value(key, .int, required: required)?.int else { return nil }
        guard range.contains(v) else {
            report(key, .outOfRange, "\(v) is out of range (\(range.lowerBound)...\(range.upperBound))")
            return nil
        }
        return v
    }

    /// A floating-point number; integers are accepted too.
    func double(_ key: String, range: ClosedRange<Double>) -> Double? {
        guard let raw = value(key, .double), let v = raw.double ?? raw.int.map(Double.init) else { return nil }
        guard range.contains(v) else {
            report(key, .outOfRange, "\(Self.format(v)) is out of range (\(Self.format(range.lowerBound))...\(Self.format(range.upperBound)))")
            return nil
        }
        return v
    }

    /// A string that must be one of `E`'s raw values.
    func word<E: RawRepresentable & CaseIterable>(_ key: String, as: E.Type) -> E? where E.RawValue == String {
        guard let s = string(key) else { return nil }
        if let e = E(rawValue: s) { return e }
        let words = E.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
        let hint = Self.suggestion(for: s, among: E.allCases.map(\.rawValue)).map { "; did you mean '\($0)'?" } ?? ""
        report(key, .invalidValue, "'\(s)' is not one of \(words)\(hint)")
        return nil
    }

    /// An array of strings: each element with its path; wrong elements are reported and skipped.
    func strings(_ key: String, required: Bool = false) -> [(path: ConfigPath, value: String)]? {
        guard let array = value(key, .array, required: required)?.array else { return nil }
        var out: [(ConfigPath, String)] = []
        for (n, element) in array.enumerated() {
            let p = path.appending(key).appending(index: n)
            if let s = element.string, element.type == .string {
                out.append((p, s))
            } else {
                diagnostics.report(p, .wrongType, "expected a string, found \(Self.name(of: element.type))")
            }
        }
        return out
    }

    /// A nested table `[path.key]` or inline table.
    func table(_ key: String, allowed: [String], required: Bool = false) -> TableReader? {
        guard let v = table[key] else {
            if required { diagnostics.report(path, .missingKey, "missing required table [\(path.appending(key))]") }
            return nil
        }
        guard let t = v.table, v.type == .table else {
            let hint = v.type == .array ? " (write [\(key)], not [[\(key)]])" : ""
            report(key, .wrongType, "expected a table, found \(Self.name(of: v.type))\(hint)")
            return nil
        }
        return TableReader(t, at: path.appending(key), allowed: allowed, diagnostics: diagnostics)
    }

    /// An array of tables `[[path.key]]`; elements that are not tables are reported.
    func tables(_ key: String, allowed: [String]) -> [TableReader] {
        guard let v = table[key] else { return [] }
        guard let array = v.array, v.type == .array else {
            let hint = v.type == .table ? " (write [[\(key)]] for each one, not [\(key)])" : ""
            report(key, .wrongType, "expected an array of tables, found \(Self.name(of: v.type))\(hint)")
            return []
        }
        var out: [TableReader] = []
        for (n, element) in array.enumerated() {
            let p = path.appending(key).appending(index: n)
            guard let t = element.table, element.type == .table else {
                diagnostics.report(p, .wrongType, "expected a table, found \(Self.name(of: element.type))")
                continue
            }
            out.append(TableReader(t, at: p, allowed: allowed, diagnostics: diagnostics))
        }
        return out
    }

    // MARK: - helpers

    private static func matches(_ v: TOMLValueConvertible, _ type: TOMLType) -> Bool {
        v.type == type || (type == .double && v.type == .int)
    }

    static func name(of type: TOMLType) -> String {
        switch type {
        case .table: "a table"
        case .array: "an array"
        case .string: "a string"
        case .int: "an integer"
        case .double: "a number"
        case .bool: "a boolean"
        case .date: "a date"
        case .time: "a time"
        case .dateTime: "a date-time"
        }
    }

    static func format(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
    }

    /// The closest of `candidates` to `word`, if it is close enough to be a plausible typo.
    /// Long words and long lists get none (the work is bounded: at most 64 × 64 steps per candidate).
    static func suggestion(for word: String, among candidates: [String]) -> String? {
        guard word.utf8.count <= 64, candidates.count <= 1000 else { return nil }
        let normalized = String(word.lowercased().map { $0 == "_" || $0 == " " ? "-" : $0 })
        var best: (String, Int)?
        for c in candidates {
            let d = normalized == c ? 0 : editDistance(Array(normalized.utf8), Array(c.utf8))
            if best == nil || d < best!.1 { best = (c, d) }
        }
        guard let (candidate, distance) = best else { return nil }
        return distance <= max(2, candidate.utf8.count / 4) ? candidate : nil
    }

    /// Levenshtein distance (words are short; O(n·m) is fine).
    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var row = previous
        for i in 1...a.count {
            row[0] = i
            for j in 1...b.count {
                row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &row)
        }
        return previous[b.count]
    }
}

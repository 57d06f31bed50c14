// TOMLKit reports positions only for syntax errors, so semantic errors find their line here:
// a small scanner over the (already parsed, hence valid) TOML text that records the line of
// every table header (`[x]`, the n-th `[[x]]`), every `key =`, every inline-table key and every
// array element, under the same `ConfigPath` the validator uses (`peer[1].public-key`).
// It only has to understand valid TOML, but it must never trap or loop on any input: every
// step either consumes a byte or returns.

struct TOMLLineIndex {
    private let lines: [ConfigPath: Int]
    /// The first spot where the text is invalid TOML in a way toml++ 3 does not report but
    /// trips over: an assertion in debug builds, an assumption (undefined behaviour) in
    /// release builds. So these must be caught before TOMLKit sees the text:
    /// - a table header with no key after its `[` or `[[` (`[` then newline, `#`, `=`...):
    ///   `parse_key` assumes a key character;
    /// - an array element starting with `}` or a non-ASCII character (U+2028...):
    ///   `parse_value` assumes it is not a value terminator;
    /// - a date, a space and one digit, then the value's end (`1979-05-27 0]`): `parse_value`
    ///   takes it for the start of a date-time and assumes more of the time follows (found by
    ///   the config fuzz target). A real date-time has `HH:MM` there, so this is never TOML.
    let malformed: (line: Int, column: Int, message: String)?

    /// Scans `text`. On valid TOML the scanner follows the structure exactly, so every header
    /// it sees is a real one; that makes it safe to run before the parser as a guard.
    init(text: String) {
        var scanner = Scanner(Array(text.utf8))
        scanner.run()
        lines = scanner.lines
        malformed = scanner.malformed
    }

    /// The line of `path`, else of its nearest ancestor that has one, else 1.
    func line(of path: ConfigPath) -> Int {
        var p = path
        while true {
            if let l = lines[p] { return l }
            if p.segments.isEmpty { return 1 }
            p = p.parent
        }
    }
}

private struct Scanner {
    let bytes: [UInt8]
    var i = 0
    var line = 1
    var lines: [ConfigPath: Int] = [:]
    /// How many `[[x]]` tables have been seen per array path.
    var arrayCounts: [ConfigPath: Int] = [:]
    var current = ConfigPath.root
    var lineStart = 0
    var malformed: (line: Int, column: Int, message: String)?

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    private static let newline = UInt8(ascii: "\n")
    private static let hash = UInt8(ascii: "#")
    private static let quote = UInt8(ascii: "\"")
    private static let apostrophe = UInt8(ascii: "'")
    private static let backslash = UInt8(ascii: "\\")

    func peek(_ k: Int = 0) -> UInt8? { i + k < bytes.count ? bytes[i + k] : nil }

    mutating func advance() {
        guard i < bytes.count else { return }
        if bytes[i] == Self.newline {
            line += 1
            lineStart = i + 1
        }
        i += 1
    }

    mutating func flag(_ message: String) {
        if malformed == nil { malformed = (line, i - lineStart + 1, message) }
    }

    mutating func record(_ path: ConfigPath, _ l: Int) {
        if lines[path] == nil { lines[path] = l }
    }

    mutating func run() {
        // toml++ skips a UTF-8 byte order mark; so must the scanner, or it would not see a
        // malformed header on the first line (found by Fuzz/run.sh config).
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
        while i < bytes.count {
            let start = i
            skipTrivia(newlines: true)
            guard let c = peek() else { break }
            if c == UInt8(ascii: "[") { header() } else { keyValue(base: current) }
            while let c = peek(), c != Self.newline { advance() }  // rest of line: comment, `]`
            if i == start { advance() }
        }
    }

    /// Spaces, tabs, CRs, comments and (optionally) newlines.
    mutating func skipTrivia(newlines: Bool) {
        while let c = peek() {
            if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") || (newlines && c == Self.newline) {
                advance()
            } else if c == Self.hash {
                while let d = peek(), d != Self.newline { advance() }
            } else {
                return
            }
        }
    }

    mutating func header() {
        let l = line
        advance()
        let isArray = peek() == UInt8(ascii: "[")
        if isArray { advance() }
        while peek() == UInt8(ascii: " ") || peek() == UInt8(ascii: "\t") { advance() }
        if let c = peek(), c != UInt8(ascii: "]"), c != Self.quote, c != Self.apostrophe, !ConfigPath.isBareKeyByte(c) {
            flag("expected a table name after '['")
        }
        let keys = key()
        guard !keys.isEmpty else { return }
        var p = ConfigPath.root
        for (n, k) in keys.enumerated() {
            p = p.appending(k)
            if n == keys.count - 1 && isArray {
                let count = arrayCounts[p, default: 0]
                arrayCounts[p] = count + 1
                record(p, l)
                p = p.appending(index: count)
            } else if let count = arrayCounts[p] {
                p = p.appending(index: count - 1)
            }
            record(p, l)
        }
        current = p
    }

    mutating func keyValue(base: ConfigPath) {
        let l = line
        let keys = key()
        guard !keys.isEmpty else { return }
        let path = ConfigPath(base.segments + keys.map { .key($0) })
        record(path, l)
        skipTrivia(newlines: false)
        guard peek() == UInt8(ascii: "=") else { return }
        advance()
        skipTrivia(newlines: false)
        value(path)
    }

    /// A dotted key: bare, "basic" or 'literal' parts separated by dots.
    mutating func key() -> [String] {
        var parts: [String] = []
        while true {
            skipTrivia(newlines: false)
            guard let c = peek() else { return parts }
            var part: [UInt8] = []
            if c == Self.quote || c == Self.apostrophe {
                advance()
                while let d = peek(), d != c, d != Self.newline {
                    if c == Self.quote && d == Self.backslash {
                        advance()
                        if let e = peek() { part.append(Self.unescape(e)) }
                    } else {
                        part.append(d)
                    }
                    advance()
                }
                advance()
            } else {
                while let d = peek(), ConfigPath.isBareKeyByte(d) {
                    part.append(d)
                    advance()
                }
                if part.isEmpty { return parts }
            }
            parts.append(String(decoding: part, as: UTF8.self))
            skipTrivia(newlines: false)
            guard peek() == UInt8(ascii: ".") else { return parts }
            advance()
        }
    }

    private static func unescape(_ e: UInt8) -> UInt8 {
        switch e {
        case UInt8(ascii: "n"): Self.newline
        case UInt8(ascii: "t"): UInt8(ascii: "\t")
        default: e
        }
    }

    /// Nesting depth of the value being scanned. toml++ rejects more than 256 levels; the
    /// scanner stops descending there too, so a hostile `[[[[...` cannot exhaust the stack.
    var depth = 0
    static let maxDepth = 256

    mutating func value(_ path: ConfigPath) {
        guard let c = peek(), depth < Self.maxDepth else { return }
        depth += 1
        defer { depth -= 1 }
        switch c {
        case Self.quote, Self.apostrophe:
            if peek(1) == c && peek(2) == c {
                advance(); advance(); advance()
                while let d = peek() {
                    if d == Self.backslash && c == Self.quote {
                        advance()
                        advance()
                    } else if d == c && peek(1) == c && peek(2) == c {
                        advance(); advance(); advance()
                        // Up to two more quotes belong to the string (`""""` ends with a quote).
                        if peek() == c { advance() }
                        if peek() == c { advance() }
                        return
                    } else {
                        advance()
                    }
                }
            } else {
                advance()
                while let d = peek(), d != c, d != Self.newline {
                    if d == Self.backslash && c == Self.quote { advance() }
                    advance()
                }
                advance()
            }
        case UInt8(ascii: "["):
            advance()
            var index = 0
            while true {
                skipTrivia(newlines: true)
                guard let d = peek() else { return }
                if d == UInt8(ascii: "]") { advance(); return }
                if d == UInt8(ascii: "}") || d >= 0x80 { flag("expected a value or ']' in the array") }
                let element = path.appending(index: index)
                record(element, line)
                let before = i
                value(element)
                skipTrivia(newlines: true)
                if peek() == UInt8(ascii: ",") {
                    advance()
                    index += 1
                } else {
                    if peek() == UInt8(ascii: "]") { advance() }
                    return
                }
                if i == before { return }
            }
        case UInt8(ascii: "{"):
            advance()
            while true {
                skipTrivia(newlines: true)
                guard let d = peek() else { return }
                if d == UInt8(ascii: "}") { advance(); return }
                let before = i
                keyValue(base: path)
                skipTrivia(newlines: true)
                if peek() == UInt8(ascii: ",") {
                    advance()
                } else {
                    if peek() == UInt8(ascii: "}") { advance() }
                    return
                }
                if i == before { return }
            }
        default:
            if Self.isCutDateTime(bytes, at: i) { flag("expected a time (HH:MM:SS) after the date and the space") }
            while let d = peek(), d != UInt8(ascii: ","), d != UInt8(ascii: "]"), d != UInt8(ascii: "}"),
                d != Self.newline, d != Self.hash
            {
                advance()
            }
        }
    }

    /// ASCII characters that end a value for toml++ (whitespace, `]`, `}`, `,`, `#`).
    static func endsValue(_ c: UInt8) -> Bool {
        c == 0x20 || (c >= 0x09 && c <= 0x0D) || c == UInt8(ascii: "]") || c == UInt8(ascii: "}")
            || c == UInt8(ascii: ",") || c == UInt8(ascii: "#")
    }

    /// Whether the value at `start` is what toml++'s number/date scan mistakes for a date-time
    /// cut short: ten characters (underscores aside) with `-` at the fifth and eighth, a space,
    /// one digit, then the end of the value. toml++ counts code points and takes non-ASCII
    /// whitespace as a value end; both readings of a non-ASCII character are tried.
    static func isCutDateTime(_ bytes: [UInt8], at start: Int) -> Bool {
        guard start < bytes.count else { return false }
        // Cheap first: the first ASCII value end must be the space.
        var j = start
        while j < bytes.count, j - start < 600, !endsValue(bytes[j]) { j += 1 }
        guard j < bytes.count, bytes[j] == 0x20 else { return false }
        let scalars = Array(String(decoding: bytes[start..<min(bytes.count, j + 8)], as: UTF8.self).unicodeScalars)
        return [false, true].contains { nonASCIIEnds in
            func ends(_ c: Unicode.Scalar) -> Bool { c.isASCII ? endsValue(UInt8(c.value)) : nonASCIIEnds }
            var chars: [Unicode.Scalar] = []
            var k = 0
            while k < scalars.count, !ends(scalars[k]), chars.count <= 10 {
                if scalars[k] != "_" { chars.append(scalars[k]) }
                k += 1
            }
            guard chars.count == 10, chars[4] == "-", chars[7] == "-", k + 1 < scalars.count, scalars[k] == " ",
                  ("0"..."9").contains(scalars[k + 1]) else { return false }
            return k + 2 >= scalars.count || ends(scalars[k + 2])
        }
    }
}

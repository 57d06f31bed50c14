// Bounds on a config file, checked by a linear pre-scan before the TOML library sees the text.
//
// toml++ (under TOMLKit) and the conversion of its tree into Swift values recurse once per
// level of the document tree, and a level is made by a table header segment (`[a.b.c]`), a
// dotted key segment (`a.b.c = 1`), an array or an inline table. Dotted keys and headers are
// not bounded by toml++ at all: `a.a.a...= 1` with 100,000 segments overflows the stack
// (SIGSEGV), and headers of thousands of segments take seconds. Many small tables or keys
// make the validator's work grow too. A real config needs at most 5 levels
// (`[[peer]]` → `waypoints` → `[` → `{` → `address`) and a few thousand tables, so the limits
// below are far above any real file and far below what hurts. Each limit is reported as
// `FILE:LINE: key: message` with the line where it was crossed.

extension Config {
    /// The bounds `Config.load` and `Config.check` enforce before parsing.
    public enum FileLimits {
        /// Bytes in the file (1 MiB).
        public static let fileSize = 1 << 20
        /// Bytes in one line, without its line end.
        public static let lineLength = 4096
        /// Levels of the document tree: table header segments, dotted key segments, arrays and
        /// inline tables together.
        public static let depth = 16
        /// Tables: `[x]` and `[[x]]` headers and inline tables `{ ... }`.
        public static let tables = 2048
        /// Values: each `key = value` and each array element.
        public static let values = 16384
        /// Elements of one array.
        public static let arrayElements = 1024
    }
}

/// The linear pre-scan behind `Config.FileLimits`. It tracks just enough TOML to know what is a
/// string, a comment, a key and a bracket; on text that is not TOML it still ends (every step
/// consumes a byte) and finds no false limit on valid TOML. It does not recurse.
struct ConfigPrescan {
    /// The first limit crossed, or nil.
    let problem: (line: Int, path: ConfigPath, message: String)?

    init(_ bytes: [UInt8]) {
        var scan = PrescanState(bytes)
        scan.run()
        problem = scan.problem
    }
}

private struct PrescanState {
    let bytes: [UInt8]
    var i = 0
    var line = 1
    var lineStart = 0
    var problem: (line: Int, path: ConfigPath, message: String)?
    var tables = 0
    var values = 0
    /// Depth of the current header (`[a.b]` is 2, `[[a]]` is 1).
    var headerDepth = 0
    /// Open arrays and inline tables of the value being scanned: the tree depth inside each
    /// and, for arrays, the elements counted so far.
    var open: [(bracket: UInt8, depth: Int, elements: Int, path: ConfigPath)] = []
    /// The key path of the value being scanned (for messages; at most `FileLimits.depth + 1`
    /// segments, as the scan stops deeper).
    var path = ConfigPath.root
    /// The path of the current header (`service[3]`), and how many `[[x]]` were seen per name.
    var headerPath = ConfigPath.root
    var arrayCounts: [ConfigPath: Int] = [:]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    static let newline = UInt8(ascii: "\n")

    func peek(_ k: Int = 0) -> UInt8? { i + k < bytes.count ? bytes[i + k] : nil }

    mutating func fail(_ message: String, at path: ConfigPath = .root) {
        if problem == nil { problem = (line, path, message) }
    }

    mutating func advance() {
        guard i < bytes.count else { return }
        if bytes[i] == Self.newline {
            let length = i - lineStart - (i > lineStart && bytes[i - 1] == 0x0D ? 1 : 0)
            if length > Config.FileLimits.lineLength {
                fail("line is \(length) bytes long; at most \(Config.FileLimits.lineLength)")
            }
            line += 1
            lineStart = i + 1
        }
        i += 1
    }

    mutating func run() {
        if bytes.count > Config.FileLimits.fileSize {
            fail("the file is \(bytes.count) bytes; at most \(Config.FileLimits.fileSize)")
            return
        }
        while i < bytes.count && problem == nil {
            let start = i
            skipTrivia()
            guard let c = peek() else { break }
            if open.isEmpty {
                if c == UInt8(ascii: "[") {
                    header()
                } else if isKeyStart(c) {
                    keyValue(base: headerDepth)
                } else {
                    advance()  // not TOML; the parser reports it
                }
            } else {
                insideValue(c)
            }
            if i == start { advance() }
        }
        if problem == nil {
            let length = bytes.count - lineStart
            if length > Config.FileLimits.lineLength {
                fail("line is \(length) bytes long; at most \(Config.FileLimits.lineLength)")
            }
        }
    }

    /// Where the text stops being TOML in a way that would make the rest look nested (a key
    /// inside an array after a missing `]`, a line end inside an inline table), the open
    /// brackets are dropped and the scan goes on at the top level: the parser reports the
    /// syntax error, not a misleading limit, and the rest of the file is still bounded.
    mutating func resync() {
        open.removeAll()
        path = headerPath
    }

    func isKeyStart(_ c: UInt8) -> Bool {
        ConfigPath.isBareKeyByte(c) || c == UInt8(ascii: "\"") || c == UInt8(ascii: "'")
    }

    /// Spaces, tabs, CRs, newlines and comments.
    mutating func skipTrivia() {
        while let c = peek() {
            if c == Self.newline, open.last?.bracket == UInt8(ascii: "{") {
                resync()  // inline tables are one line
            }
            if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") || c == Self.newline {
                advance()
            } else if c == UInt8(ascii: "#") {
                while let d = peek(), d != Self.newline { advance() }
            } else {
                return
            }
        }
    }

    mutating func countTable() {
        tables += 1
        if tables > Config.FileLimits.tables {
            fail("more than \(Config.FileLimits.tables) tables ([x], [[x]] and { ... }); at most \(Config.FileLimits.tables) in a file")
        }
    }

    mutating func countValue() {
        values += 1
        if values > Config.FileLimits.values {
            fail("more than \(Config.FileLimits.values) values (keys and array elements); at most \(Config.FileLimits.values) in a file")
        }
    }

    mutating func checkDepth(_ depth: Int) {
        if depth > Config.FileLimits.depth {
            fail("nested more than \(Config.FileLimits.depth) levels deep (table names, dotted keys, arrays and inline tables together)",
                 at: path)
        }
    }

    /// `[a.b]` or `[[a.b]]`.
    mutating func header() {
        advance()
        let isArray = peek() == UInt8(ascii: "[")
        if isArray { advance() }
        path = .root
        headerDepth = keyParts(depth: 0)
        countTable()
        guard problem == nil else { return }
        if isArray {
            let n = arrayCounts[path, default: 0]
            arrayCounts[path] = n + 1
            path = path.appending(index: n)
        }
        headerPath = path
        while let c = peek(), c != Self.newline, c != UInt8(ascii: "#") { advance() }
    }

    /// A dotted key: returns `depth` plus its number of parts, extending `path`.
    mutating func keyParts(depth: Int) -> Int {
        var depth = depth
        while problem == nil {
            while peek() == UInt8(ascii: " ") || peek() == UInt8(ascii: "\t") { advance() }
            guard let c = peek() else { return depth }
            var part: [UInt8] = []
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                advance()
                while let d = peek(), d != c, d != Self.newline {
                    if c == UInt8(ascii: "\"") && d == UInt8(ascii: "\\") { advance() }
                    if part.count < 64, let e = peek() { part.append(e) }
                    advance()
                }
                advance()
            } else {
                while let d = peek(), ConfigPath.isBareKeyByte(d) {
                    if part.count < 64 { part.append(d) }
                    advance()
                }
                if part.isEmpty { return depth }
            }
            depth += 1
            path = path.appending(String(decoding: part, as: UTF8.self))
            checkDepth(depth)
            while peek() == UInt8(ascii: " ") || peek() == UInt8(ascii: "\t") { advance() }
            guard peek() == UInt8(ascii: ".") else { return depth }
            advance()
        }
        return depth
    }

    /// `key = value` at `base` depth (the header's, or an inline table's).
    mutating func keyValue(base: Int) {
        if open.isEmpty { path = headerPath }
        let depth = keyParts(depth: base)
        countValue()
        while peek() == UInt8(ascii: " ") || peek() == UInt8(ascii: "\t") { advance() }
        guard peek() == UInt8(ascii: "=") else { return }
        advance()
        while peek() == UInt8(ascii: " ") || peek() == UInt8(ascii: "\t") { advance() }
        value(depth: depth)
    }

    /// The start of a value at tree depth `depth`: a string is skipped whole, a bracket opens.
    mutating func value(depth: Int) {
        guard let c = peek() else { return }
        switch c {
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
            string(c)
        case UInt8(ascii: "["), UInt8(ascii: "{"):
            advance()
            checkDepth(depth + 1)
            if c == UInt8(ascii: "{") { countTable() }
            open.append((c, depth + 1, 0, path))
        default:
            // A number, boolean or date: up to a separator.
            while let d = peek(), d != UInt8(ascii: ","), d != UInt8(ascii: "]"), d != UInt8(ascii: "}"),
                d != Self.newline, d != UInt8(ascii: "#"), d != UInt8(ascii: "["), d != UInt8(ascii: "{"),
                d != UInt8(ascii: "=")
            {
                advance()
            }
            // `key =` where a value belongs: an array left open above.
            if peek() == UInt8(ascii: "="), !open.isEmpty {
                resync()
                advance()
            }
        }
    }

    /// One step inside an open array or inline table.
    mutating func insideValue(_ c: UInt8) {
        let top = open[open.count - 1]
        switch c {
        case UInt8(ascii: "]"), UInt8(ascii: "}"):
            advance()
            open.removeLast()
        case UInt8(ascii: ","):
            advance()
        default:
            if top.bracket == UInt8(ascii: "{") {
                if isKeyStart(c) {
                    path = top.path
                    keyValue(base: top.depth)
                } else {
                    advance()
                }
            } else {
                open[open.count - 1].elements += 1
                if top.elements + 1 > Config.FileLimits.arrayElements {
                    fail("an array of more than \(Config.FileLimits.arrayElements) elements; at most \(Config.FileLimits.arrayElements)",
                         at: path)
                }
                countValue()
                path = top.path
                value(depth: top.depth)
            }
        }
    }

    /// A basic, literal or multi-line string starting at `q`.
    mutating func string(_ q: UInt8) {
        let escapes = q == UInt8(ascii: "\"")
        if peek(1) == q && peek(2) == q {
            advance(); advance(); advance()
            while let d = peek() {
                if escapes && d == UInt8(ascii: "\\") {
                    advance()
                    advance()
                } else if d == q && peek(1) == q && peek(2) == q {
                    advance(); advance(); advance()
                    if peek() == q { advance() }
                    if peek() == q { advance() }
                    return
                } else {
                    advance()
                }
            }
        } else {
            advance()
            while let d = peek(), d != q, d != Self.newline {
                if escapes && d == UInt8(ascii: "\\") { advance() }
                advance()
            }
            if peek() == q { advance() }
        }
    }
}

// Configuration errors. Every problem found in a config file is a `ConfigError` carrying the
// file, the 1-based line, the key path ("peer[1].public-key") and a message; its description
// is the one-line form operators see: `FILE:LINE: key.path: what is wrong`.

/// Where in the config tree a value sits: table keys and array indices, printed as
/// `service[2].ports[0]` (indices are 0-based, in file order).
public struct ConfigPath: Hashable, Sendable, CustomStringConvertible {
    public enum Segment: Hashable, Sendable {
        case key(String)
        case index(Int)
    }

    public var segments: [Segment]

    public init(_ segments: [Segment] = []) { self.segments = segments }

    /// The root of the document.
    public static let root = ConfigPath()

    public func appending(_ key: String) -> ConfigPath { ConfigPath(segments + [.key(key)]) }
    public func appending(index: Int) -> ConfigPath { ConfigPath(segments + [.index(index)]) }

    /// The path without its last segment (the root stays the root).
    public var parent: ConfigPath { ConfigPath(Array(segments.dropLast())) }

    public var description: String {
        var out = ""
        for segment in segments {
            switch segment {
            case .index(let i): out += "[\(i)]"
            case .key(let k):
                if !out.isEmpty { out += "." }
                out += Self.isBare(k) ? k : Self.quoted(k)
            }
        }
        return out
    }

    /// Whether `key` can be written without quotes in TOML (`A-Za-z0-9_-`).
    static func isBare(_ key: String) -> Bool { !key.isEmpty && key.utf8.allSatisfy(isBareKeyByte) }

    /// A TOML basic string for `key` (quotes and backslashes escaped).
    static func quoted(_ key: String) -> String {
        var out = "\""
        for c in key.unicodeScalars {
            switch c {
            case "\"", "\\": out += "\\\(c)"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }

    static func isBareKeyByte(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
    }
}

/// One problem in a configuration file.
public struct ConfigError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem it is (tests and tools match on this, people read `message`).
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        /// The file cannot be opened or read, or is not a regular file.
        case unreadable
        /// The bytes are not UTF-8 text (NUL bytes, invalid sequences).
        case notText
        /// The file is beyond a bound of `Config.FileLimits` (size, line length, nesting
        /// depth, number of tables, values or array elements); checked before parsing.
        case limit
        /// TOML syntax error reported by the parser (line and column are the parser's).
        case syntax
        /// A value has the wrong TOML type (a string where an integer belongs, `[x]` for `[[x]]`).
        case wrongType
        /// A key or table that svrd does not know.
        case unknownKey
        /// A required key or table is absent.
        case missingKey
        /// Two objects of one kind share a name, or a unique value repeats.
        case duplicate
        /// A name refers to an object that is not defined.
        case unknownReference
        /// A malformed IP address.
        case invalidAddress
        /// A malformed address prefix ("10.0.0.0/33", host bits in a member prefix are fine).
        case invalidPrefix
        /// A malformed port or port range.
        case invalidPort
        /// A key that is not strict base64 of 32 bytes, or a private key file that is unsafe.
        case invalidKey
        /// A number outside its allowed range.
        case outOfRange
        /// A string that is not one of the allowed words, or a malformed name.
        case invalidValue
        /// Keys that cannot be combined, or a combination that cannot work.
        case conflict
        /// Two services that would match the same packet with the same priority.
        case ambiguousService
        /// Two tenants claiming the same source prefix.
        case ambiguousTenant
    }

    public var file: String
    /// 1-based line; 0 when the problem concerns the file as a whole (it could not be read).
    public var line: Int
    /// 1-based column when known (syntax errors only).
    public var column: Int?
    public var path: ConfigPath
    public var kind: Kind
    public var message: String

    public init(file: String, line: Int, column: Int? = nil, path: ConfigPath, kind: Kind, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        self.kind = kind
        self.message = message
    }

    /// `FILE:LINE: key.path: message` (the key path is left out when the error has none).
    public var description: String { Self.line(file: file, line: line, path: path, label: "", message: message) }

    /// One printable report line, `FILE:LINE: LABELkey.path: message` (no line number when
    /// `line` is 0, no key path when `path` is empty): errors and warnings share it.
    static func line(file: String, line: Int, path: ConfigPath, label: String, message: String) -> String {
        let location = line > 0 ? "\(file):\(line)" : file
        let key = path.segments.isEmpty ? "" : "\(path): "
        return printable("\(location): \(label)\(key)\(message)")
    }

    /// Keeps the error on one line and the terminal sane: control characters (which can only
    /// come from the file's own strings) are shown escaped.
    static func printable(_ text: String) -> String {
        var out = ""
        for c in text.unicodeScalars {
            if c.value < 0x20 || c.value == 0x7F {
                out += "\\u{\(String(c.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(c)
            }
        }
        return out
    }
}

/// All the problems found in one configuration file, in line order; thrown by `Config.load`.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public let errors: [ConfigError]

    public init(_ errors: [ConfigError]) { self.errors = errors }

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

import Testing

@testable import SVR

// `Config.FileLimits`, checked by `ConfigPrescan` before toml++ sees the text. Before these
// bounds a dotted key of 100,000 segments killed `svrd check` with SIGSEGV (toml++ and the
// conversion of its tree recurse per level) and headers of 10,000 segments or files of
// 50,000 tables took more than 5 s. Each limit is one error naming its line (and the key
// where there is one); a file right at a limit is accepted.

func limitErrors(_ text: String) -> [ConfigError] {
    // (line 0 is the "more errors not shown" note, not a limit of the file)
    Config.check(text: text, fileName: "l.toml").filter { $0.kind == .limit && $0.line > 0 }
}

let depth = Config.FileLimits.depth

func repeated(_ s: String, _ n: Int, separator: String = "") -> String {
    Array(repeating: s, count: n).joined(separator: separator)
}

/// (text at the limit, text one level deeper, key path of the error)
let nestingCases: [(String, String, String)] = [
    ("a = " + repeated("[", depth - 1) + repeated("]", depth - 1),
     "a = " + repeated("[", depth) + repeated("]", depth), "a"),
    (repeated("a", depth, separator: ".") + " = 1", repeated("a", depth + 1, separator: ".") + " = 1",
     repeated("a", depth + 1, separator: ".")),
    ("[" + repeated("h", depth, separator: ".") + "]", "[" + repeated("h", depth + 1, separator: ".") + "]",
     repeated("h", depth + 1, separator: ".")),
    ("[[t]]\nx = " + repeated("{b = ", 7) + "1" + repeated("}", 7),
     "[[t]]\nx = " + repeated("{b = ", 8) + "1" + repeated("}", 8), "t[0].x.b.b.b.b.b.b.b"),
]

@Test(arguments: nestingCases)
func nestingDepthIsBounded(_ within: String, _ beyond: String, _ key: String) throws {
    #expect(limitErrors(within).isEmpty, "\(limitErrors(within))")
    let text = "# a comment\n" + beyond
    let errors = limitErrors(text)
    let error = try #require(errors.first)
    let line = text.split(separator: "\n").count
    #expect(errors.count == 1 && error.line == line && error.path.description == key, "\(error)")
    #expect(error.description.hasPrefix("l.toml:\(line): \(key): nested more than \(depth) levels deep"))
}

@Test func hugeNestingEndsWithAnErrorNotASignal() {
    // These crashed (SIGSEGV) or hung toml++ or the line index before the pre-scan.
    var texts: [String] = []
    texts.append("a = " + repeated("[", 200_000))
    texts.append(repeated("a", 100_000, separator: ".") + " = 1")
    texts.append("[" + repeated("a", 100_000, separator: ".") + "]")
    texts.append("x = " + repeated("{a=", 100_000))
    texts.append((1...3000).map { "[" + repeated("a", $0, separator: ".") + "]" }.joined(separator: "\n"))
    // After an array or inline table left open (the pre-scan resynchronises there).
    texts.append("a = [\nx = 1\n[" + repeated("a", 100_000, separator: ".") + "]")
    texts.append("a = {b = 1\n" + repeated("a", 100_000, separator: ".") + " = 1")
    for text in texts {
        let errors = Config.check(text: text, fileName: "l.toml")
        let first = errors.first.map { "\($0)" } ?? ""
        #expect(errors.count == 1, "\(first)")
        #expect(errors.first?.kind == ConfigError.Kind.limit, "\(first)")
        #expect((1...depth + 1).contains(errors.first?.line ?? 0), "\(first)")
    }
}

@Test func numbersOfTablesValuesAndElementsAreBounded() throws {
    let tables = Config.FileLimits.tables
    let t = (0..<tables + 1).map { "[t\($0)]" }.joined(separator: "\n")
    let tableError = try #require(limitErrors(t).first)
    #expect(tableError.line == tables + 1 && tableError.message.contains("more than \(tables) tables"))
    #expect(limitErrors((0..<tables).map { "[t\($0)]" }.joined(separator: "\n")).isEmpty)
    // Inline tables count as tables.
    #expect(limitErrors("x = [" + Array(repeating: "{}", count: tables + 1).joined(separator: ",") + "]").count == 1)

    let values = Config.FileLimits.values
    let v = (0..<values + 1).map { "k\($0) = 1" }.joined(separator: "\n")
    let valueError = try #require(limitErrors(v).first)
    #expect(valueError.line == values + 1 && valueError.message.contains("more than \(values) values"))

    let elements = Config.FileLimits.arrayElements
    let array = "[[service]]\nports = [\n" + (0..<elements + 1).map { "  \($0 + 1)," }.joined(separator: "\n") + "\n]"
    let arrayError = try #require(limitErrors(array).first)
    #expect(arrayError.line == elements + 3 && arrayError.path.description == "service[0].ports", "\(arrayError)")
    #expect(limitErrors("a = [" + Array(repeating: "1", count: elements).joined(separator: ",") + "]").isEmpty)
}

@Test func lineLengthAndFileSizeAreBounded() throws {
    let max = Config.FileLimits.lineLength
    let ok = "a = \"" + String(repeating: "x", count: max - 6) + "\""
    #expect(ok.utf8.count == max && limitErrors(ok + "\n").isEmpty)
    let long = "name = \"r\"\nkey = \"" + String(repeating: "x", count: max) + "\"\n"
    let error = try #require(limitErrors(long).first)
    #expect(error.line == 2 && error.message == "line is \(max + 8) bytes long; at most \(max)")
    // The last line, without a line end, counts too; CRLF line ends do not.
    #expect(limitErrors(long.dropLast() + "").count == 1)
    #expect(limitErrors(ok + "\r\n").isEmpty)
    // A whole file above 1 MiB, made of short lines.
    let big = String(repeating: "# a comment line of a reasonable length\n", count: Config.FileLimits.fileSize / 40 + 1)
    let sizeError = try #require(limitErrors(big).first)
    #expect(sizeError.line == 1 && sizeError.message.hasPrefix("the file is \(big.utf8.count) bytes"))
}

@Test func stringsAndCommentsDoNotCount() {
    // Brackets, braces, dots and `=` inside strings and comments are not structure.
    let text = """
        [router]   # [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
        name = "[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{{a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r"
        lan-device = '{{{{{{{{{{{{{{{{{{{{{{{{{'
        x = \"\"\"
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
        \"\"\"
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s" = 1
        """
    #expect(limitErrors(text).isEmpty, "\(limitErrors(text))")
}

/// A missing `]` or `}` makes the rest of the file look nested; the parser's syntax error is
/// the right report, not a limit.
@Test func unclosedBracketsGiveTheSyntaxError() {
    let services = repeated("[[service]]\nname = \"s\"\nprefixes = [\"10.0.0.0/8\"]\n", 40)
    for text in ["[[service]]\nports = [\"80\", \"443\"\n" + services,
                 "[[peer]]\nwaypoints = [{ address = \"192.0.2.1\"\n" + services,
                 "a = [[[[[[[[\n" + services] {
        let errors = Config.check(text: text, fileName: "s.toml")
        #expect(errors.count == 1 && errors[0].kind == .syntax, "\(errors)")
    }
}

/// Invalid UTF-8 is reported with its line before anything parses it, wherever the
/// sequence is cut.
@Test func truncatedUTF8IsAnErrorWithItsLine() {
    let good = Array("[router]\nname = \"caf\u{e9} \u{1F600} \u{2028}\"\n".utf8)
    for cut in 0..<good.count {
        for insert in [[0xC3], [0xE2, 0x80], [0xF0, 0x9F, 0x98], [0xFF], [0xED, 0xA0, 0x80]] as [[UInt8]] {
            let bytes = Array(good[..<cut]) + insert + Array(good[cut...])
            let error = Config.textProblem(bytes, fileName: "u.toml")
            let line = bytes[..<cut].filter { $0 == 0x0A }.count + 1
            if String(validating: bytes, as: UTF8.self) == nil {
                #expect(error?.kind == .notText && error?.line == line, "cut \(cut) \(insert)")
            }
        }
    }
}

@Test func errorsAreListedUpToAHundred() {
    let text = minimalConfig + (0..<300).map { "[[tenant]]\nname = \"t\($0)\"\nprefixes = [\"10.0.0.1/8\"]\n" }.joined()
    let errors = Config.check(text: text, fileName: "e.toml")
    #expect(errors.count == ConfigDiagnostics.maxErrors + 1)
    #expect(errors.last?.line == 0 && errors.last?.message.hasSuffix("more errors not shown (at most 100 are listed)") == true)
}

// `svrd check` on hostile config files, in a subprocess: deep nesting, huge inputs, many
// tables, long lines, truncated UTF-8 and random mutations of the examples. Every input must
// end with "ok" (exit 0) or errors (exit 1) within 1 s of CPU time: never a signal (before the
// pre-scan of `Config.FileLimits`, dotted keys of 100,000 segments were killed by SIGSEGV and
// headers of 10,000 segments, or 50,000 tables, ran longer than 5 s), never a hang.

import Glibc
import TestSupport
import Testing

@Suite struct ConfigCorpusTests {
    static let examples: [[UInt8]] = ["branch.toml", "cloud-onramp.toml", "hub.toml"].map {
        Array(DeployFilesTests.read("deploy/examples/\($0)").utf8)
    }

    static func repeated(_ s: String, _ n: Int, separator: String = "") -> String {
        Array(repeating: s, count: n).joined(separator: separator)
    }

    /// Structural extremes: each is (name, bytes).
    static func structural() -> [(String, [UInt8])] {
        var out: [(String, String)] = []
        for n in [100, 257, 10_000, 300_000] {
            out.append(("arr-\(n)", "a = " + repeated("[", n) + repeated("]", n)))
            out.append(("arr-open-\(n)", "a = " + repeated("[", n)))
            out.append(("itab-\(n)", "a = " + repeated("{b=", n) + "1" + repeated("}", n)))
            out.append(("mix-\(n)", "a = " + repeated("[{b=", n) + "1" + repeated("}]", n)))
            out.append(("dotkey-\(n)", repeated("a", n, separator: ".") + " = 1"))
            out.append(("header-\(n)", "[" + repeated("a", n, separator: ".") + "]"))
            out.append(("aheader-\(n)", "[[" + repeated("a", n, separator: ".") + "]]"))
            out.append(("itabdot-\(n)", "x = {" + repeated("a", n, separator: ".") + " = 1}"))
        }
        out.append(("hdr-chain", (1...1000).map { "[" + repeated("a", $0, separator: ".") + "]" }.joined(separator: "\n")))
        for n in [2_000, 50_000] {
            out.append(("tables-\(n)", (0..<n).map { "[t\($0)]\nk = \($0)" }.joined(separator: "\n")))
            out.append(("keys-\(n)", (0..<n).map { "k\($0) = \($0)" }.joined(separator: "\n")))
            out.append(("aot-\(n)", repeated("[[a]]\n", n)))
            out.append(("ports-\(n)", "[[service]]\nports = [" + (0..<n).map { "\"\($0 % 65535 + 1)\"" }.joined(separator: ",") + "]"))
        }
        let base = String(decoding: examples[0], as: UTF8.self)
        out.append(("services-1000", base + (0..<1000).map {
            "[[service]]\nname = \"s\($0)\"\nprefixes = [\"10.9.0.0/16\"]\nprotocol = \"tcp\"\nports = [\($0 + 1000)]\ntenants = [\"staff\"]\n[[service-route]]\nservice = \"s\($0)\"\npeer = \"hub\"\n"
        }.joined()))
        out.append(("same-services", base + (0..<1500).map {
            "[[service]]\nname = \"s\($0)\"\nprefixes = [\"10.9.0.0/16\"]\ntenants = [\"staff\"]\n"
        }.joined()))
        out.append(("unknown-peers", base + "[[service-route]]\nservice = \"x\"\npeers = ["
            + (0..<1000).map { "\"peer-unknown-\($0)-\(repeated("x", 40))\"" }.joined(separator: ",") + "]"))
        out.append(("long-line", "a = \"" + repeated("x", 1_000_000) + "\""))
        out.append(("long-key", repeated("x", 1_000_000) + " = 1"))
        out.append(("many-errors", base + repeated("[[tenant]]\nname = \"t\"\nprefixes = [\"10.0.0.1/8\"]\n", 5000)))
        out.append(("bom-header", "\u{FEFF} [[, 2[1\n"))
        return out.map { ($0.0, Array($0.1.utf8)) }
    }

    /// Examples cut anywhere, with a multi-byte character cut short spliced in.
    static func truncated(_ rng: inout SeededGenerator) -> [(String, [UInt8])] {
        let pieces: [[UInt8]] = ["\u{e9}", "\u{20AC}", "\u{1F600}", "\u{2028}"].map { Array($0.utf8) }
        return (0..<40).map { n in
            var b = examples[n % examples.count]
            b = Array(b[..<Int.random(in: 0..<b.count, using: &rng)])
            let piece = pieces[n % pieces.count]
            let at = Int.random(in: 0...b.count, using: &rng)
            b.insert(contentsOf: piece[..<Int.random(in: 1..<piece.count, using: &rng)], at: at)
            return ("trunc-\(n)", b)
        }
    }

    /// Examples with TOML tokens inserted (some repeated thousands of times), bytes deleted,
    /// replaced or copied.
    static func mutated(_ rng: inout SeededGenerator) -> [(String, [UInt8])] {
        let tokens: [String] = ["[", "]", "{", "}", "[[", "]]", "\"", "'", "\"\"\"", "=", ".", ",", "\n", "#", "\\",
                                "\u{2028}", "\u{FEFF}", "1e999", "0x", "1979-05-27T07:32:00Z", "inf", "a.b.c = "]
        return (0..<60).map { n in
            var b = examples[n % examples.count]
            for _ in 0..<Int.random(in: 1...12, using: &rng) {
                let at = Int.random(in: 0...b.count, using: &rng)
                switch Int.random(in: 0..<5, using: &rng) {
                case 0: b.insert(contentsOf: Array(tokens.randomElement(using: &rng)!.utf8), at: at)
                case 1: b.removeSubrange(at..<min(b.count, at + Int.random(in: 1...10, using: &rng)))
                case 2: b.insert(contentsOf: Array(repeated(tokens.randomElement(using: &rng)!, Int.random(in: 1...3000, using: &rng)).utf8), at: at)
                case 3 where at < b.count: b[at] = UInt8.random(in: 0...255, using: &rng)
                default:
                    let from = Int.random(in: 0..<b.count, using: &rng)
                    b.insert(contentsOf: b[from..<min(b.count, from + Int.random(in: 1...200, using: &rng))], at: at)
                }
            }
            return ("mut-\(n)", b)
        }
    }

    static func write(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw TestSupportError("cannot write \(path)") }
        defer { close(fd) }
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw TestSupportError("short write \(path)") }
    }

    @Test func hostileConfigsEndWithinASecondWithoutASignal() throws {
        let dir = try ScratchDirectory()
        defer { dir.close() }
        var rng = SeededGenerator(seed: 2026)
        let corpus = Self.structural() + Self.truncated(&rng) + Self.mutated(&rng)
        for (name, bytes) in corpus { try Self.write("\(dir.path)/\(name)", bytes) }
        // One shell runs them all: 1 s of CPU each (SIGXCPU after it), 10 s of wall time at
        // most (SIGKILL), so a loaded machine does not fail the test but a hang does.
        let r = shell("""
            cd \(dir.path) && for f in *; do
              ( ulimit -t 1; exec timeout -s KILL 10 \(svrdBinary) check --config "$f" ) >/dev/null 2>&1
              echo "$f $?"
            done
            """)
        let results = r.output.split(separator: "\n").map { $0.split(separator: " ") }
        #expect(results.count == corpus.count, "\(r.output)")
        for result in results where result.count == 2 {
            #expect(result[1] == "0" || result[1] == "1", "svrd check --config \(result[0]) exited with \(result[1])")
        }
        #expect(results.contains { $0.last == "1" })
    }
}

/// Reading a config is bounded in time (10 s by default; the limits keep real reading far
/// below): past the deadline svrd says so and exits 1. Shown with a 0 ms deadline.
@Test func configReadingHasADeadline() throws {
    let dir = try ScratchDirectory()
    defer { dir.close() }
    let file = try dir.write("big.toml", (0..<2000).map { "[t\($0)]\nk = \($0)" }.joined(separator: "\n"))
    let r = shell("\(svrdBinary) check --config \(file) --config-deadline-ms 0")
    #expect(r.status == 1)
    #expect(r.output == "\(file): reading the config took longer than 0 s; stopped\n", "\(r.output)")
    #expect(shell("\(svrdBinary) check --config \(file)").status == 1)  // unknown tables, in time
}

/// `svrd check` and `svrd run` print a setting that is not in effect as a labelled warning
/// line and carry on: check exits 0, run goes on to its preconditions.
@Suite struct ConfigWarningOutputTests {
    static let config = """
        [router]
        name = "r1"
        private-key = "kLIz5DZPDegt0GV4WTmv8sw1u5JMrnv0v/ytlSLCC0k="

        [[service-policy]]
        name = "p"
        max-latency-ms = 150
        """

    @Test func checkPrintsWarningsAndSucceeds() throws {
        let dir = try ScratchDirectory()
        defer { dir.close() }
        let file = try dir.write("w.toml", Self.config)
        let out = shell("{ \(svrdBinary) check --config \(file) 2>\(dir.path)/err; }")
        let err = shell("cat \(dir.path)/err").output
        #expect(out.status == 0, "\(out.output)\(err)")
        #expect(out.output.hasPrefix("\(file): ok\n"))
        #expect(err == """
            \(file):7: warning: service-policy[0].max-latency-ms: not yet in effect: svrd does not measure its paths, so no SLA selects or drops them
            \(file): 1 warning: a setting not in effect yet

            """)
    }

    @Test func runPrintsTheSameWarningsBeforeStarting() throws {
        let dir = try ScratchDirectory()
        defer { dir.close() }
        let file = try dir.write("w.toml", Self.config)
        // No TUN clone device: run stops at its preconditions (exit 4) having created nothing.
        let run = shell("\(svrdBinary) run --config \(file) --tun-clone-path \(dir.path)/no-tun 2>&1")
        #expect(run.status == 4, "\(run.output)")
        #expect(run.output.hasPrefix("\(file):7: warning: service-policy[0].max-latency-ms: not yet in effect"), "\(run.output)")
    }
}

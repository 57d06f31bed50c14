import Glibc
import Testing

@testable import SVR

/// A config with one mistake of each kind; the line numbers in `expected` are the lines of
/// this literal (line 1 is the comment).
let brokenConfig = """
    # deliberately broken: one mistake per marked line
    [router]
    name = "branch-1"
    private-key = "kLIz5DZPDegt0GV4WTmv8sw1u5JMrnv0v/ytlSLCC0k="
    mtu = 70000
    lan-adress = "10.1.0.1/16"

    [[interface]]
    name = "wan0"
    address = "203.0.113.10/24"
    neighborhood = "internet"

    [[interface]]
    name = "wan0"
    address = "203.0.113.70"
    neighborhood = "lte"
    max-waypoints = "many"

    [[peer]]
    name = "cloud-gw"
    public-key = "uY6OwaFhbPxdEGH4b7TFgwYsU90unh9F8hiVPxaryk0="
    waypoints = ["198.51.100.10"]

    [[peer]]
    name = "hub"
    public-key = "X++bW0CCBzYCGiQEiy/b1gESv88rxjc5x4iaR3RShT"
    waypoints = ["192.0.2.1"]
    transport = "tcp"

    [[tenant]]
    name = "staff"
    prefixes = ["10.1.0.0/16", "10.1.0.0/33"]

    [[tenant]]
    name = "contractors"
    prefixes = ["10.1.0.0/16"]

    [[service]]
    name = "web"
    prefixes = ["10.100.0.0/16"]
    protocol = "tcp"
    ports = ["80", "443"]
    tenants = ["staff", "visitors"]

    [[service]]
    name = "web-alt"
    prefixes = ["10.100.0.0/16"]
    protocol = "tcp"
    ports = ["443", "0-10"]
    tenants = ["staff"]

    [[service-route]]
    service = "web"
    peer = "cloud-gw"
    source-nat = true

    [[service-route]]
    service = "web-alt"

    [timeouts]
    udp = 0
    """

@Test func brokenConfigReportsEveryErrorWithLineAndPath() {
    let errors = Config.check(text: brokenConfig, fileName: "broken.toml")
    let expected: [(Int, String, ConfigError.Kind)] = [
        (5, "router.mtu", .outOfRange),
        (6, "router.lan-adress", .unknownKey),
        (10, "interface[0].address", .invalidAddress),
        (14, "interface[1].name", .duplicate),
        (17, "interface[1].max-waypoints", .wrongType),
        (26, "peer[1].public-key", .invalidKey),
        (28, "peer[1].transport", .invalidValue),
        (32, "tenant[0].prefixes[1]", .invalidPrefix),
        (36, "tenant[1].prefixes[0]", .ambiguousTenant),
        (43, "service[0].tenants[1]", .unknownReference),
        (47, "service[1].prefixes[0]", .ambiguousService),
        (49, "service[1].ports[1]", .invalidPort),
        (55, "service-route[0].source-nat", .conflict),
        (57, "service-route[1]", .missingKey),
        (61, "timeouts.udp", .outOfRange),
    ]
    #expect(errors.count == expected.count, "\(errors)")
    for (error, (line, path, kind)) in zip(errors, expected) {
        #expect(error.line == line, "\(error)")
        #expect(error.path.description == path, "\(error)")
        #expect(error.kind == kind, "\(error)")
        #expect(error.file == "broken.toml")
    }
    #expect(Set(errors.map(\.kind)).count >= 12)
    #expect(errors.map(\.description).contains(
        "broken.toml:26: peer[1].public-key: not a valid base64 X25519 public key (32 bytes)"))
    #expect(errors.map(\.description).contains(
        "broken.toml:14: interface[1].name: duplicate interface 'wan0' (first on line 9)"))
    #expect(errors.map(\.description).contains(
        "broken.toml:6: router.lan-adress: unknown key 'lan-adress'; did you mean 'lan-address'?"))
    #expect(throws: ConfigErrors.self) { try Config.parse(text: brokenConfig, fileName: "broken.toml") }
}

@Test func syntaxErrorCarriesParserLineAndColumn() {
    let errors = Config.check(text: "[router]\nname = \"r1\"\nmtu = = 3\n", fileName: "s.toml")
    #expect(errors.count == 1)
    #expect(errors.first?.kind == .syntax)
    #expect(errors.first?.line == 3)
    #expect(errors.first?.column != nil)
    #expect(errors.first?.description.hasPrefix("s.toml:3: syntax error at column") == true)
}

@Test func unknownKeysGetSuggestions() {
    let text = minimalConfig + """
        nmae = "x"
        private_key_file = "/x"

        [[servce]]
        name = "s"

        [timeouts]
        tcp-establshed = 10
        zzzzzzzzzz = 1
        """
    let messages = Config.check(text: text, fileName: "u.toml").map(\.description)
    #expect(messages == [
        "u.toml:4: router.nmae: unknown key 'nmae'; did you mean 'name'?",
        "u.toml:5: router.private_key_file: unknown key 'private_key_file'; did you mean 'private-key-file'?",
        "u.toml:7: servce: unknown table 'servce'; did you mean 'service'?",
        "u.toml:11: timeouts.tcp-establshed: unknown key 'tcp-establshed'; did you mean 'tcp-established'?",
        "u.toml:12: timeouts.zzzzzzzzzz: unknown key 'zzzzzzzzzz'",
    ])
}

@Test func tableWrittenAsSingleOrArrayIsReported() {
    let errors = Config.check(text: minimalConfig + "[peer]\nname = \"p\"\n[[limits]]\nmax-sessions = 5\n", fileName: "t.toml")
    #expect(errors.map(\.kind) == [.wrongType, .wrongType])
    #expect(errors.first?.message.contains("write [[peer]]") == true)
    #expect(errors.last?.message.contains("write [limits]") == true)
}

/// Services checked in pairs: (first service, second service, ambiguous?).
@Test(arguments: [
    ("prefixes=['10.0.0.0/24']\nprotocol='tcp'\nports=['443']", "prefixes=['10.0.0.0/24']\nprotocol='tcp'\nports=['400-500']", true),
    ("prefixes=['10.0.0.0/24']\nprotocol='tcp'", "prefixes=['10.0.0.0/24']\nprotocol='tcp'\nports=['22']", true),
    ("prefixes=['10.0.0.0/24']\nprotocol='icmp'", "prefixes=['10.0.0.0/24']\nprotocol='icmp'", true),
    ("prefixes=['10.0.0.0/24']", "prefixes=['10.0.0.0/24']", true),
    ("prefixes=['2001:db8::/64']\nprotocol='udp'", "prefixes=['10.0.0.0/8','2001:db8::/64']\nprotocol='udp'", true),
    ("prefixes=['10.0.0.0/24']\nprotocol='tcp'\nports=['443']", "prefixes=['10.0.0.0/25']\nprotocol='tcp'\nports=['443']", false),
    ("prefixes=['10.0.0.0/24']\nprotocol='tcp'\nports=['443']", "prefixes=['10.0.0.0/24']\nprotocol='udp'\nports=['443']", false),
    ("prefixes=['10.0.0.0/24']\nprotocol='tcp'\nports=['443']", "prefixes=['10.0.0.0/24']\nprotocol='any'", false),
    ("prefixes=['10.0.0.0/24']\nprotocol='tcp'\nports=['443']", "prefixes=['10.0.0.0/24']\nprotocol='tcp'\nports=['80', 8443]", false),
    ("prefixes=['10.0.0.0/24']\nprotocol='tcp'", "prefixes=['10.0.1.0/24']\nprotocol='tcp'", false),
])
func overlappingServicesAreDetected(first: String, second: String, ambiguous: Bool) {
    var text = minimalConfig
    for (name, body) in [("a", first), ("b", second)] {
        text += "[[service]]\nname = '\(name)'\ntenants = []\n\(body)\n[[service-route]]\nservice = '\(name)'\nlocal = true\n"
    }
    let errors = Config.check(text: text, fileName: "o.toml")
    #expect(errors.map(\.kind) == (ambiguous ? [.ambiguousService] : []), "\(errors)")
    if ambiguous { #expect(errors.first?.path.description.hasPrefix("service[1].prefixes[") == true) }
    if first == "prefixes=['10.0.0.0/24']" && second == first {
        #expect(errors.first?.message.contains("both match any on every port to 10.0.0.0/24") == true, "\(errors)")
    }
}

/// `minimalConfig` with one IPv4 WAN interface in the "internet" neighborhood (lines 4-7).
let minimalConfigWithWAN = minimalConfig + """
    [[interface]]
    name = "wan0"
    address = "203.0.113.10"
    neighborhood = "internet"


    """

@Test func missingReferencesAreReported() {
    let text = minimalConfigWithWAN + """
        [[peer]]
        name = "hub"
        public-key = "X++bW0CCBzYCGiQEiy/b1gESv88rxjc5x4iaR3RShTY="
        waypoints = [{ address = "192.0.2.1", neighborhood = "mpls" }, "2001:db8::1"]

        [[tenant]]
        name = "staff"
        interfaces = ["lan7"]

        [[service]]
        name = "web"
        prefixes = ["10.100.0.0/16"]
        tenants = ["staff", "guests"]
        service-policy = "gold"

        [[service-route]]
        service = "webb"
        peers = ["hub", "cloud"]
        """
    let errors = Config.check(text: text, fileName: "r.toml").map(\.description)
    #expect(errors == [
        "r.toml:12: peer[0].waypoints[0].neighborhood: no local interface in a neighborhood named 'mpls'",
        "r.toml:12: peer[0].waypoints[1]: no [[interface]] can reach 2001:db8::1 (needs an IPv6 interface)",
        "r.toml:16: tenant[0].interfaces[0]: no LAN interface named 'lan7' (this router's LAN device is 'svr0')",
        "r.toml:18: service[0]: no [[service-route]] for service 'web'; add one with 'peer', 'peers' or 'local = true'",
        "r.toml:21: service[0].tenants[1]: no tenant named 'guests'",
        "r.toml:22: service[0].service-policy: no service-policy named 'gold'",
        "r.toml:25: service-route[0].service: no service named 'webb'; did you mean 'web'?",
        "r.toml:26: service-route[0].peers[1]: no peer named 'cloud'",
    ])
}

@Test func duplicatesAndConflicts() {
    let text = minimalConfig + """
        lan-address = "10.1.0.1/24"
        private-key-file = "/etc/svrd/private.key"

        [[interface]]
        name = "svr0"
        address = "203.0.113.10"
        neighborhood = "internet"

        [[peer]]
        name = "a"
        public-key = "X++bW0CCBzYCGiQEiy/b1gESv88rxjc5x4iaR3RShTY="
        waypoints = ["203.0.113.10"]

        [[peer]]
        name = "b"
        public-key = "X++bW0CCBzYCGiQEiy/b1gESv88rxjc5x4iaR3RShTY="
        waypoints = ["192.0.2.1"]

        [[service]]
        name = "s"
        prefixes = ["10.9.0.0/16"]
        protocol = "icmp"
        ports = [7]

        [[service-route]]
        service = "s"
        local = true
        nat-address = "10.1.0.1"
        """
    let errors = Config.check(text: text, fileName: "d.toml")
    let got = errors.map { "\($0.line) \($0.path) \($0.kind)" }
    #expect(got == [
        "3 router.private-key conflict",
        "8 interface[0].name conflict",
        "15 peer[0].waypoints[0] conflict",
        "19 peer[1].public-key duplicate",
        "26 service[0].ports conflict",
        "31 service-route[0].nat-address conflict",
    ], "\(errors)")
}

/// The line index must not be fooled by table headers inside multi-line strings, arrays that
/// span lines, or inline tables.
@Test func lineIndexFollowsTOMLStructure() {
    let text = #"""
        [router]
        name = "r1"
        private-key = "kLIz5DZPDegt0GV4WTmv8sw1u5JMrnv0v/ytlSLCC0k="
        notes = """
        [[peer]]
        name = "fake"
        """

        [[service]]
        name = "s"
        prefixes = [
            "10.0.0.0/8",   # comment, with ] and [ in it
            'x',
        ]
        tenants = ["t"]
        "ser\"vice-policy" = 'p'

        [[service]]
        name = "s2"
        prefixes = [ { a = 1 }, "10.1.0.0/16" ]
        """#
    let errors = Config.check(text: text, fileName: "l.toml").map { "\($0.line) \($0.path)" }
    #expect(errors == [
        "4 router.notes",
        "9 service[0]",  // no route for s
        "13 service[0].prefixes[1]",
        "15 service[0].tenants[0]",
        "16 service[0].\"ser\\\"vice-policy\"",
        "18 service[1]",  // no route for s2
        "20 service[1].prefixes[0]",
    ])
}

@Test func garbageGivesErrorsNotCrashes() throws {
    let cases: [(String, ConfigError.Kind)] = [
        ("", .missingKey),
        ("   \n\n", .missingKey),
        ("[router]\nmtu = 999999999999999999999999999\n", .syntax),
        ("[router]\nmtu = 9223372036854775807\nname = \"r\"\nprivate-key = \"kLIz5DZPDegt0GV4WTmv8sw1u5JMrnv0v/ytlSLCC0k=\"", .outOfRange),
        ("a = " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000), .limit),
        (String(repeating: "[[x]]\n", count: 2000), .unknownKey),
        ("\u{0}\u{1}binary", .notText),
        ("[router]\nname = \"\u{7}\"\nkey = 1.0e999\n", .syntax),
        ("}}}{{{", .syntax),
        ("[router]\nname = 42\nprivate-key = [1, 2]\nmtu = 1.5\n", .wrongType),
        // toml++ 3 asserts (debug) or has undefined behaviour (release) on these headers.
        ("[\nname = \"x\"\n", .syntax),
        ("x = 1\n  [ # comment\n", .syntax),
        ("[[\t=]]", .syntax),
        ("[[[a]]]", .syntax),
        ("\u{FEFF} [[, 2[1\n", .syntax),  // after a byte order mark (found by the config fuzz target)
        ("\u{FEFF}[\n", .syntax),
        // A date, a space, one digit: toml++ asserts (found by the config fuzz target).
        ("Y=  1[1n-an-YA 1]x", .syntax),
        ("d = 1979-05-27 0\n", .syntax),
        ("d = [1979-05-27 0]\n", .syntax),
        ("d = {a = 1979-05-27 0}\n", .syntax),
        ("d = 1_979-05-27 0,\n", .syntax),
        ("d = 1979-05-27 0\u{3000}\n", .syntax),
        ("[ [a]]", .syntax),
        ("[\u{e9}]", .syntax),
        ("a = [}]", .syntax),
        ("a = [1,\n  }]", .syntax),
        ("a = [\u{2028}]", .syntax),
        ("a = { b = [ {}, }", .syntax),
        ("[router]\nname = 1979-05-27T07:32:00Z\nmtu = 07:32:00\nlan-device = 1979-05-27\n", .wrongType),
        ("[[service]]\nname = \"s\"\nports = [1979-05-27, [1], {a = 1}, 1.5, true]\nprefixes = [[\"10.0.0.0/8\"]]", .missingKey),
    ]
    for (text, kind) in cases {
        let errors = Config.check(text: text, fileName: "g.toml")
        #expect(!errors.isEmpty, "\(text.prefix(40))")
        #expect(errors.contains { $0.kind == kind }, "\(text.prefix(40)): \(errors)")
        #expect(errors.allSatisfy { $0.line >= 1 })
    }
}

@Test func malformedHeaderIsASyntaxErrorWithItsPosition() {
    let errors = Config.check(text: "[router]\nname = \"r\"\n\n  [[ =\n", fileName: "h.toml")
    #expect(errors.map(\.description) == ["h.toml:4: syntax error at column 6: expected a table name after '['"])
    // Inside a value, a line starting with "[" is an inner array, not a header.
    let nested = minimalConfig + "[[service]]\nname = \"s\"\nprefixes = [\n  \"10.0.0.0/8\",\n]\nports = [\n  [\n 1]]\n"
    #expect(Config.check(text: nested, fileName: "h.toml").map(\.kind) == [.missingKey, .wrongType])
}

@Test func unreadableAndBinaryFiles() throws {
    let missing = #expect(throws: ConfigErrors.self) { try Config.load(path: "/nonexistent/svrd.toml") }
    #expect(missing?.errors.map(\.description) == ["/nonexistent/svrd.toml: '/nonexistent/svrd.toml' does not exist"])
    let directory = #expect(throws: ConfigErrors.self) { try Config.load(path: "/tmp") }
    #expect(directory?.errors.first?.kind == .unreadable)

    let path = try makeTemporaryFile(Array("[router]\nname = \"r\"\n".utf8) + [0x00, 0x13, 0x0A, 0xFF, 0xFE, 0x80])
    defer { unlink(path) }
    let binary = #expect(throws: ConfigErrors.self) { try Config.load(path: path) }
    #expect(binary?.errors.map(\.description) == ["\(path):3: not a text file: NUL byte at offset 20"])

    let invalid = Config.textProblem(Array("ok\nfine\n".utf8) + [0xC3, 0x28], fileName: "f")
    #expect(invalid?.description == "f:3: not a text file: invalid UTF-8")
}

@Test func errorsStayOnOneLine() {
    let errors = Config.check(text: minimalConfig + "lan-device = \"a\\nb\\u001b[2J\"\n", fileName: "n.toml")
    #expect(errors.map(\.description) == [
        #"n.toml:4: router.lan-device: 'a\u{a}b\u{1b}[2J' is not a valid Linux device name (1-15 characters, no '/', ':' or spaces)"#,
    ])
}

@Test func waypointPortRangesAndLimits() {
    let text = minimalConfig + """
        [[interface]]
        name = "wan0"
        address = "203.0.113.10"
        neighborhood = "internet"
        port-range = "20000-20999"
        max-waypoints = 5000

        [[interface]]
        name = "wan1"
        address = "203.0.113.11"
        neighborhood = "internet"
        port-range = "80-8080"

        [[peer]]
        name = "r1"
        public-key = "X++bW0CCBzYCGiQEiy/b1gESv88rxjc5x4iaR3RShTY="
        waypoints = ["192.0.2.1"]
        port-range = "30000"
        """
    let errors = Config.check(text: text, fileName: "p.toml").map { "\($0.line) \($0.path) \($0.kind)" }
    #expect(errors == [
        "9 interface[0].max-waypoints conflict",
        "15 interface[1].port-range outOfRange",
        "18 peer[0].name conflict",
        "21 peer[0].port-range outOfRange",
    ])
    let ok = Config.check(text: minimalConfig + "[[interface]]\nname = 'w'\naddress = '192.0.2.9'\nneighborhood = 'n'\nport-range = '20000-20999'\n", fileName: "p.toml")
    #expect(ok.isEmpty)
}

@Test func windowsLineEndingsKeepLineNumbers() {
    let lf = Config.check(text: brokenConfig, fileName: "b.toml")
    let crlf = Config.check(text: brokenConfig.replacingOccurrences("\n", with: "\r\n"), fileName: "b.toml")
    #expect(crlf.map(\.line) == lf.map(\.line))
    #expect(crlf.map(\.path) == lf.map(\.path))
}

/// A number from the environment, to run the fuzz tests longer or with another seed.
func environment(_ name: String) -> UInt64? { getenv(name).flatMap { UInt64(String(cString: $0)) } }

/// A deterministic generator so that a failing mutation can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Mangled versions of the valid examples (lines dropped, duplicated or swapped, bytes
/// replaced or inserted, truncation) must give errors or a config, never a trap, and every
/// error must point inside the file. This found the toml++ crashes `TOMLLineIndex.malformed`
/// guards against. Longer runs: SVR_FUZZ_ROUNDS=100000 SVR_FUZZ_SEED=7 swift test ...
@Test func mutatedExamplesNeverCrash() throws {
    let originals = try ["branch.toml", "cloud-onramp.toml", "hub.toml"].map { name in
        try #require(String(validating: try ConfigFile.read(
            "\(packageRoot)/deploy/examples/\(name)", limit: 1 << 20).bytes, as: UTF8.self))
    }
    var rng = SplitMix64(state: environment("SVR_FUZZ_SEED") ?? 42)
    let noise: [UInt8] = Array("[]{}=\",.'#\n -0x7fz\\\u{7}\u{e9}".utf8)
    for round in 0..<Int(environment("SVR_FUZZ_ROUNDS") ?? 300) {
        var lines = originals[round % originals.count].split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            let i = Int.random(in: 0..<lines.count, using: &rng)
            switch Int.random(in: 0..<5, using: &rng) {
            case 0: lines.remove(at: i)
            case 1: lines.insert(lines[i], at: i)
            case 2: lines.swapAt(i, Int.random(in: 0..<lines.count, using: &rng))
            case 3 where Bool.random(using: &rng):
                var bytes = Array(lines[i].utf8)
                bytes.insert(noise.randomElement(using: &rng)!, at: Int.random(in: 0...bytes.count, using: &rng))
                lines[i] = String(decoding: bytes, as: UTF8.self)
            case 3:
                var bytes = Array(lines[i].utf8)
                if !bytes.isEmpty { bytes[Int.random(in: 0..<bytes.count, using: &rng)] = noise.randomElement(using: &rng)! }
                lines[i] = String(decoding: bytes, as: UTF8.self)
            default: lines = Array(lines.prefix(i))
            }
            if lines.isEmpty { lines = [""] }
        }
        let text = lines.joined(separator: "\n")
        let lineCount = text.utf8.count { $0 == 0x0A } + 1
        let errors = Config.check(text: text, fileName: "m.toml")
        #expect(errors.allSatisfy { (1...max(1, lineCount)).contains($0.line) }, "round \(round): \(errors)")
    }
}

/// Short random strings over the characters TOML gives meaning to, alone and after a key or
/// a header: the corner cases of the parser itself, where toml++'s assertions live.
@Test func randomFragmentsNeverCrash() {
    let alphabet = Array("[[]]{}=\",.'#\n\r\t -+0x1_:eiz\\\u{7}\u{b}\u{e9}\u{a0}\u{2028}".unicodeScalars)
    let prefixes = ["", "a = ", "[a]\n", "a = [", "a = {", "[[a]]\nb = [1,", "a = \"\"\"", "a.b"]
    var rng = SplitMix64(state: environment("SVR_FUZZ_SEED") ?? 1)
    for _ in 0..<10 * Int(environment("SVR_FUZZ_ROUNDS") ?? 300) {
        var text = prefixes.randomElement(using: &rng)!
        for _ in 0..<Int.random(in: 1...12, using: &rng) {
            text.unicodeScalars.append(alphabet.randomElement(using: &rng)!)
        }
        let errors = Config.check(text: text, fileName: "f.toml")
        #expect(!errors.isEmpty, "\(text.debugDescription)")
    }
}

/// A peer configured with the router's own public key (a copy-paste slip: the key of the other
/// side belongs there) is a conflict on that peer's line; the key is derived from the router's
/// private key, inline or from a file.
@Test func peerWithTheRoutersOwnPublicKeyIsRejected() throws {
    let own = try X25519PrivateKey(base64: "kLIz5DZPDegt0GV4WTmv8sw1u5JMrnv0v/ytlSLCC0k=").publicKey
    let text = minimalConfigWithWAN + """
        [[peer]]
        name = "hub"
        public-key = "\(own.base64)"
        waypoints = ["192.0.2.1"]
        """
    let errors = Config.check(text: text, fileName: "own.toml")
    #expect(errors.map(\.description) == [
        "own.toml:11: peer[0].public-key: this is the router's own public key (derived from its private key), not the peer's",
    ])
    #expect(errors.map(\.kind) == [.conflict])

    // Any other key is fine.
    let other = text.replacingOccurrences(own.base64, with: "uY6OwaFhbPxdEGH4b7TFgwYsU90unh9F8hiVPxaryk0=")
    #expect(Config.check(text: other, fileName: "own.toml").isEmpty)
}

import Testing

@testable import SVR

// Each setting that svrd reads but does not act on gives one `ConfigWarning` at its key and
// line; the config stays valid. When a setting starts working, its case here goes away with
// its line in `ConfigBuilder.warnAboutSettingsNotInEffect`.

/// A valid config with one IPv4 interface and peer, a tenant, a service and its route, and a
/// policy; `extra` is spliced in at the marked places. Line numbers: see `line(of:in:)`.
func warningConfig(router: String = "", interface: String = "", peer: String = "", tenant: String = "",
                   service: String = "", route: String = "peer = \"hub\"", policy: String = "") -> String {
    """
    [router]
    name = "r1"
    private-key = "kLIz5DZPDegt0GV4WTmv8sw1u5JMrnv0v/ytlSLCC0k="
    \(router)
    [[interface]]
    name = "wan0"
    address = "203.0.113.10"
    neighborhood = "internet"
    \(interface)
    [[peer]]
    name = "hub"
    public-key = "X++bW0CCBzYCGiQEiy/b1gESv88rxjc5x4iaR3RShTY="
    \(peer.isEmpty ? "waypoints = [\"192.0.2.1\"]" : peer)

    [[peer]]
    name = "cloud"
    public-key = "uY6OwaFhbPxdEGH4b7TFgwYsU90unh9F8hiVPxaryk0="
    waypoints = ["198.51.100.10"]

    [[tenant]]
    name = "staff"
    prefixes = ["10.1.0.0/16"\(tenant)]

    [[service]]
    name = "web"
    prefixes = ["10.100.0.0/16"\(service)]
    tenants = ["staff"]
    service-policy = "p"

    [[service-route]]
    service = "web"
    \(route)

    [[service-policy]]
    name = "p"
    \(policy)
    """
}

/// The 1-based line of the first line of `text` containing `needle`.
func line(of needle: String, in text: String) -> Int {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    return (lines.firstIndex { $0.contains(needle) } ?? -1) + 1
}

struct WarningCase: CustomTestStringConvertible, Sendable {
    let config: String
    /// Text on the line the warning must point at.
    let lineText: String
    let path: String
    let kind: ConfigWarning.Kind
    var testDescription: String { path }
}

let warningCases: [WarningCase] = [
    WarningCase(config: warningConfig(policy: "max-latency-ms = 150"), lineText: "max-latency-ms",
                path: "service-policy[0].max-latency-ms", kind: .notInEffect),
    WarningCase(config: warningConfig(policy: "max-jitter-ms = 30"), lineText: "max-jitter-ms",
                path: "service-policy[0].max-jitter-ms", kind: .notInEffect),
    WarningCase(config: warningConfig(policy: "max-loss-percent = 1.0"), lineText: "max-loss-percent",
                path: "service-policy[0].max-loss-percent", kind: .notInEffect),
    WarningCase(config: warningConfig(policy: "min-mos = 3.6"), lineText: "min-mos",
                path: "service-policy[0].min-mos", kind: .notInEffect),
    WarningCase(config: warningConfig(policy: "best-effort = false"), lineText: "best-effort",
                path: "service-policy[0].best-effort", kind: .notInEffect),
    WarningCase(config: warningConfig(policy: "session-resiliency = \"failover\""), lineText: "session-resiliency",
                path: "service-policy[0].session-resiliency", kind: .notInEffect),
    WarningCase(config: warningConfig(interface: "max-waypoints = 1000"), lineText: "max-waypoints",
                path: "interface[0].max-waypoints", kind: .notInEffect),
    WarningCase(config: warningConfig(interface: "external-address = \"198.51.100.99\""), lineText: "external-address",
                path: "interface[0].external-address", kind: .notInEffect),
    WarningCase(config: warningConfig(route: "peer = \"hub\"\nname = \"web-route\""), lineText: "web-route",
                path: "service-route[0].name", kind: .notInEffect),
    WarningCase(config: warningConfig(route: "peers = [\"hub\",\n  \"cloud\"]"), lineText: "\"cloud\"]",
                path: "service-route[0].peers[1]", kind: .unusedAlternative),
    WarningCase(config: warningConfig(peer: "waypoints = [\"192.0.2.1\",\n  \"192.0.2.129\"]"), lineText: "192.0.2.129",
                path: "peer[0].waypoints[1]", kind: .unusedAlternative),
    WarningCase(config: warningConfig(interface: "[[interface]]\nname = \"wan6\"\naddress = \"2001:db8::10\"\nneighborhood = \"v6\"\n",
                                      peer: "waypoints = [\"192.0.2.1\",\n  \"2001:db8::1\"]"),
                lineText: "2001:db8::10", path: "interface[1].address", kind: .ipv6),
    WarningCase(config: warningConfig(interface: "[[interface]]\nname = \"wan6\"\naddress = \"2001:db8::10\"\nneighborhood = \"v6\"\n",
                                      peer: "waypoints = [\"192.0.2.1\",\n  \"2001:db8::1\"]"),
                lineText: "2001:db8::1\"]", path: "peer[0].waypoints[1]", kind: .ipv6),
    WarningCase(config: warningConfig(tenant: ",\n  \"2001:db8:1::/48\""), lineText: "2001:db8:1::/48",
                path: "tenant[0].prefixes[1]", kind: .ipv6),
    WarningCase(config: warningConfig(service: ",\n  \"2001:db8:100::/48\""), lineText: "2001:db8:100::/48",
                path: "service[0].prefixes[1]", kind: .ipv6),
    WarningCase(config: warningConfig(router: "lan-address = \"2001:db8:1::1/64\""), lineText: "lan-address",
                path: "router.lan-address", kind: .ipv6),
    WarningCase(config: warningConfig(route: "local = true\nsource-nat = true\nnat-address = \"2001:db8::5\""),
                lineText: "nat-address", path: "service-route[0].nat-address", kind: .ipv6),
]

@Test(arguments: warningCases)
func settingNotInEffectWarnsAtItsLine(_ c: WarningCase) throws {
    let result = Config.validate(text: c.config, fileName: "w.toml")
    #expect(result.errors.isEmpty, "\(result.errors)")
    let matching = result.warnings.filter { $0.path.description == c.path }
    let warning = try #require(matching.first, "no warning at \(c.path): \(result.warnings)")
    #expect(matching.count == 1)
    #expect(warning.kind == c.kind)
    #expect(warning.line == line(of: c.lineText, in: c.config), "\(warning)")
    #expect(warning.description.hasPrefix("w.toml:\(warning.line): warning: \(c.path): "))
    #expect(warning.message.contains("not"))
}

@Test func baseConfigHasNoWarnings() {
    let result = Config.validate(text: warningConfig(), fileName: "w.toml")
    #expect(result.errors.isEmpty && result.config != nil, "\(result.errors)")
    #expect(result.warnings.isEmpty, "\(result.warnings)")
    // Values that are in effect (the defaults written out) do not warn.
    let explicit = warningConfig(policy: "session-resiliency = \"none\"\nencryption = \"aes-gcm\"\nadaptive-encryption = false")
    #expect(Config.warnings(text: explicit, fileName: "w.toml").isEmpty)
}

@Test func invalidConfigGivesErrorsNotWarnings() {
    let result = Config.validate(text: warningConfig(policy: "max-latency-ms = 150\nmin-mos = 9"), fileName: "w.toml")
    #expect(result.config == nil && result.errors.count == 1 && result.warnings.isEmpty)
}

/// Every example gives exactly these warnings (the examples describe the intended network:
/// SLA policies, backup paths and peers that svrd does not use yet). The lab configs give none.
@Test func exampleWarningsAreExactlyTheExpectedOnes() throws {
    let sla = ["max-latency-ms", "max-jitter-ms", "max-loss-percent", "min-mos"]
    let expected: [String: [String]] = [
        "branch.toml": ["30 interface[1].max-waypoints", "46 peer[1].waypoints[1]", "107 service-route[0].peers[1]"]
            + zip(131..., sla).map { "\($0) service-policy[0].\($1)" }
            + ["135 service-policy[0].session-resiliency", "141 service-policy[1].max-latency-ms",
               "142 service-policy[1].best-effort", "143 service-policy[1].session-resiliency"],
        "cloud-onramp.toml": ["22 interface[0].external-address", "31 peer[0].waypoints[1]"]
            + zip(95..., sla).map { "\($0) service-policy[0].\($1)" } + ["99 service-policy[0].session-resiliency"],
        "hub.toml": ["35 peer[0].waypoints[1]", "101 service-policy[0].max-latency-ms",
                     "102 service-policy[0].session-resiliency"]
            + zip(107..., sla).map { "\($0) service-policy[1].\($1)" } + ["111 service-policy[1].session-resiliency"],
        "lab/branch-a.toml": [],
        "lab/cloud-b.toml": [],
    ]
    for (name, lines) in expected {
        let path = "\(packageRoot)/deploy/examples/\(name)"
        let (_, warnings) = try Config.loadWithWarnings(path: path)
        #expect(warnings.map { "\($0.line) \($0.path)" } == lines, "\(name)")
        #expect(warnings.allSatisfy { $0.file == path })
    }
}

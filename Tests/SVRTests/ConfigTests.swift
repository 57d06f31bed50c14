import Glibc
import Testing

@testable import SVR

/// The package root, found from this file's path (Tests/SVRTests/ConfigTests.swift).
let packageRoot: String = {
    var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

func loadExample(_ name: String) throws -> Config {
    try Config.load(path: "\(packageRoot)/deploy/examples/\(name)")
}

/// A small valid config that tests extend with more sections.
let minimalConfig = """
    [router]
    name = "r1"
    private-key = "kLIz5DZPDegt0GV4WTmv8sw1u5JMrnv0v/ytlSLCC0k="

    """

@Test(arguments: ["branch.toml", "cloud-onramp.toml", "hub.toml"])
func exampleConfigLoads(_ name: String) throws {
    let config = try loadExample(name)
    #expect(!config.services.isEmpty)
    for service in config.services {
        #expect(config.route(forService: service.name) != nil)
    }
}

@Test func branchExampleModel() throws {
    let c = try loadExample("branch.toml")
    #expect(c.router.name == "branch-1")
    #expect(c.router.privateKeySource == .inline)
    #expect(c.router.privateKey.bytes.count == 32)
    #expect(c.router.lanAddress?.description == "10.1.0.1/16")
    #expect(c.router.lanAddress?.prefix == IPPrefix("10.1.0.0/16"))
    #expect(c.interfaces.map(\.name) == ["wan0", "wwan0"])
    #expect(c.interfaces[1].maxWaypoints == 10000)
    #expect(c.interfaces[0].maxWaypoints == Config.Interface.defaultMaxWaypoints)
    #expect(c.interfaces[0].portRange == nil)

    let cloud = try #require(c.peer(named: "cloud-gw"))
    #expect(cloud.transport == .udp)
    #expect(cloud.portRange == Config.PortRange(20000, 29999))
    #expect(cloud.waypoints == [.init(address: IPAddress("198.51.100.10")!, neighborhood: nil)])
    let hub = try #require(c.peer(named: "hub"))
    #expect(hub.transport == .native)
    #expect(hub.waypoints.map(\.neighborhood) == ["internet", "lte"])
    #expect(hub.waypoints[0].isReachable(from: c.interfaces[0]))
    #expect(!hub.waypoints[0].isReachable(from: c.interfaces[1]))

    let web = try #require(c.service(named: "vpc-web"))
    #expect(web.proto == .tcp)
    #expect(web.ports.map(\.description) == ["80", "443", "8000-8080"])
    #expect(web.matchesPort(8042) && !web.matchesPort(8081))
    #expect(web.admits(tenant: "guests") && !web.admits(tenant: "branch-2-staff"))
    #expect(web.policy.name == "interactive" && web.policy.encryption == .aesGCM && web.policy.minMOS == 3.6)
    #expect(web.policy.sessionResiliency == .revertibleFailover)
    #expect(c.service(named: "vpc-ping")?.policy == Config.ServicePolicy.default)
    #expect(c.route(forService: "vpc-web")?.target == .peers(["cloud-gw", "hub"]))
    #expect(c.route(forService: "branch-1-files")?.target == .local(sourceNAT: false, natAddress: nil))
    #expect(c.tenant(named: "guests")?.prefixes == [IPPrefix("10.1.200.0/24")!])
    #expect(c.tenant(named: "staff")?.interfaces == ["svr0"])
    #expect(c.timeouts.tcpEstablished == .seconds(3600) && c.timeouts.udp == .seconds(60))
    #expect(c.limits.maxSessions == 200_000)
    #expect(c.metrics.listen?.description == "127.0.0.1:9810")
}

@Test func cloudExampleEgressesWithSourceNAT() throws {
    let c = try loadExample("cloud-onramp.toml")
    let gateway = IPAddress("10.100.0.5")!
    for service in c.services {
        #expect(c.route(forService: service.name)?.target == .local(sourceNAT: true, natAddress: gateway))
    }
    #expect(c.interfaces[0].address == gateway)
    #expect(c.interfaces[0].publicAddress == IPAddress("198.51.100.10"))
    #expect(c.interfaces[0].portRange == Config.PortRange(20000, 29999))
    #expect(c.interfaces[0].maxWaypoints == 10000)
    #expect(c.tenants.allSatisfy { $0.prefixes.isEmpty && $0.interfaces.isEmpty })
}

/// The three examples describe one network: each router's view of the others must match
/// what those others say about themselves (names, waypoints, keys, ports, transport).
@Test func examplesAreMutuallyConsistent() throws {
    let routers = try ["branch.toml", "cloud-onramp.toml", "hub.toml"].map(loadExample)
    let byName = Dictionary(uniqueKeysWithValues: routers.map { ($0.router.name, $0) })
    var publicKeys: [String: Config.PublicKey] = [:]
    for config in routers {
        for peer in config.peers {
            if let known = publicKeys[peer.name] { #expect(known == peer.publicKey, "\(peer.name)") }
            publicKeys[peer.name] = peer.publicKey
            guard let other = byName[peer.name] else { continue }  // branch-2 has no example file
            #expect(Set(peer.waypoints.map(\.address)).isSubset(of: other.interfaces.map(\.publicAddress)),
                    "\(config.router.name) -> \(peer.name)")
            #expect(other.peer(named: config.router.name)?.transport == peer.transport)
            #expect(peer.portRange == other.interfaces.first?.portRange)
            // Its private key is not any other router's: keys differ pairwise.
            #expect(other.router.privateKey != config.router.privateKey)
        }
    }
    // Each peer key belongs to exactly one router name.
    #expect(Set(publicKeys.values).count == publicKeys.count)
    // A service both ends know has the same encryption at both ends (payload crypto is end to end).
    for a in routers {
        for b in routers where a.router.name < b.router.name {
            for s in a.services {
                if let t = b.service(named: s.name) {
                    #expect(s.policy.encryption == t.policy.encryption, "\(s.name)")
                    #expect(s.prefixes == t.prefixes && s.ports == t.ports && s.proto == t.proto, "\(s.name)")
                }
            }
        }
    }
}

@Test func sourceNATDefaultsToTheLANAddress() throws {
    let text = minimalConfig + """
        lan-address = "10.1.0.1/24"
        [[service]]
        name = "s"
        prefixes = ["10.9.0.0/16"]
        [[service-route]]
        service = "s"
        local = true
        source-nat = true
        """
    let c = try Config.parse(text: text, fileName: "n.toml")
    #expect(c.route(forService: "s")?.target == .local(sourceNAT: true, natAddress: IPAddress("10.1.0.1")))
    #expect(c.route(forService: "s")?.name == "s")
    let errors = Config.check(text: text.replacingOccurrences("lan-address = \"10.1.0.1/24\"", with: ""), fileName: "n.toml")
    #expect(errors.map(\.description) == [
        "n.toml:11: service-route[0].source-nat: source NAT needs 'nat-address' here or 'lan-address' in [router]",
    ])
}

@Test func minimalConfigGetsDefaults() throws {
    let c = try Config.parse(text: minimalConfig, fileName: "min.toml")
    #expect(c.router.lanDevice == "svr0")
    #expect(c.router.mtu == 1400)
    #expect(c.router.lanAddress == nil)
    #expect(c.timeouts == Config.Timeouts(tcpSyn: .seconds(30), tcpEstablished: .seconds(1800),
                                          tcpClosing: .seconds(30), udp: .seconds(60), icmp: .seconds(30)))
    #expect(c.limits.maxSessions == 1_000_000)
    #expect(c.control.socketPath == "/run/svrd/svrd.sock")
    #expect(c.metrics.listen == nil)
    #expect(c.summary == "router 'r1': 0 interfaces, 0 peers, 0 tenants, 0 services, 0 service routes, 0 service policies")
    #expect("\(c.router.privateKey)" == "(private key)")
}

@Test func ipv6WaypointsAndMetricsEndpoint() throws {
    let text = minimalConfig + """
        [[interface]]
        name = "wan0"
        address = "2001:db8::10"
        neighborhood = "internet"
        port-range = "30000-30999"

        [[peer]]
        name = "p1"
        public-key = "uY6OwaFhbPxdEGH4b7TFgwYsU90unh9F8hiVPxaryk0="
        waypoints = ["2001:db8:1::1"]

        [metrics]
        listen = "[::1]:9810"
        """
    let c = try Config.parse(text: text, fileName: "v6.toml")
    #expect(c.interfaces[0].address == IPAddress("2001:db8::10"))
    #expect(c.interfaces[0].portRange?.count == 1000)
    #expect(c.metrics.listen?.description == "[::1]:9810")
}

/// Creates a temporary file holding `bytes`; the caller unlinks it.
func makeTemporaryFile(_ bytes: [UInt8]) throws -> String {
    var template = Array("/tmp/svrd-test-XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    try #require(fd >= 0)
    defer { close(fd) }
    #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count)
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

@Test func privateKeyFileIsReadAndItsModeChecked() throws {
    let path = try makeTemporaryFile(Array("QNtRX4EhG/ADFrQrVJYlIUKu9REcAk0G2be+lZXiAFk=\n".utf8))
    defer { unlink(path) }
    let text = """
        [router]
        name = "r1"
        private-key-file = "\(path)"
        """
    chmod(path, 0o600)
    let c = try Config.parse(text: text, fileName: "k.toml")
    #expect(c.router.privateKeySource == .file(path))
    #expect(c.router.privateKey.bytes == Base64.decode("QNtRX4EhG/ADFrQrVJYlIUKu9REcAk0G2be+lZXiAFk="))

    chmod(path, 0o644)
    let errors = Config.check(text: text, fileName: "k.toml")
    #expect(errors.map(\.kind) == [.invalidKey])
    #expect(errors.first?.description == "k.toml:3: router.private-key-file: '\(path)' is accessible by group or others (mode 0644); run: chmod 600 \(path)")

    let missing = Config.check(text: text.replacingOccurrences(path, with: path + ".none"), fileName: "k.toml")
    #expect(missing.map(\.kind) == [.unreadable])
    let relative = Config.check(text: text.replacingOccurrences(path, with: "private.key"), fileName: "k.toml")
    #expect(relative.map(\.message) == ["'private.key' must be an absolute path"])
}

@Test func base64IsStrict() {
    let key = "uY6OwaFhbPxdEGH4b7TFgwYsU90unh9F8hiVPxaryk0="
    let bytes = Base64.decode(key)
    #expect(bytes?.count == 32)
    #expect(Base64.encode(bytes ?? []) == key)
    #expect(Base64.decode("uY6OwaFhbPxdEGH4b7TFgwYsU90unh9F8hiVPxaryk1=") == nil)  // non-zero unused bits
    #expect(Base64.decode("uY6OwaFhbPxdEGH4b7TFgwYsU90unh9F8hiVPxaryk0") == nil)   // no padding
    #expect(Base64.decode("uY6OwaFhbPxdEGH4b7TFgwYsU90unh9F8hiVPxa-yk0=") == nil)  // URL alphabet
    #expect(Base64.decode("uY6O=aFh") == nil)
    #expect(Base64.decode("") == [])
    #expect(Base64.decode("Zm9vYg==") == Array("foob".utf8))
    #expect(Base64.encode(Array("fooba".utf8)) == "Zm9vYmE=")
    #expect(Base64.decode("Zm9vYmE=") == Array("fooba".utf8))
}

@Test func portRangesParse() throws {
    #expect(try ConfigValues.portRange("16384-65534") == Config.PortRange.defaultWaypoints)
    #expect(try ConfigValues.portRange("443").count == 1)
    for bad in ["0", "65536", "10-", "-10", "a-b", "2-1", "1-2-3", "", " 80"] {
        #expect(throws: ValueProblem.self, "\(bad)") { try ConfigValues.portRange(bad) }
    }
}

extension String {
    /// Foundation-free replacement of every occurrence of `target`.
    func replacingOccurrences(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

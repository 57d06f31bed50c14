// Builds a `Config` from a parsed TOML document, checking everything on the way: types,
// unknown and missing keys, values, duplicate names, references between objects and
// ambiguous classification. It keeps going after an error so that `svrd check` can list
// every problem at once; cross-reference checks run only against sections that parsed
// completely, so one mistake does not cascade into spurious "unknown reference" errors.

import TOMLKit

struct ConfigBuilder {
    let d: ConfigDiagnostics
    let root: TableReader

    static let sections = [
        "router", "interface", "peer", "tenant", "service", "service-route", "service-policy",
        "timeouts", "limits", "control", "metrics", "log",
    ]

    init(document: TOMLTable, diagnostics: ConfigDiagnostics) {
        d = diagnostics
        root = TableReader(document, at: .root, allowed: Self.sections, diagnostics: diagnostics)
    }

    /// The config, or nil when any error was reported.
    func build() -> Config? {
        let router = buildRouter()
        let lanDevice = router?.lanDevice ?? Config.Router.defaultLANDevice
        let (interfaces, interfacesComplete) = buildInterfaces(lanDevice: lanDevice, lanAddress: router?.lanAddress?.address)
        let (peers, peerNames) = buildPeers(
            interfaces: interfacesComplete ? interfaces : nil, routerName: router?.name,
            routerPublicKey: router.flatMap { try? X25519PrivateKey(bytes: $0.privateKey.bytes).publicKey })
        let (policies, policiesComplete) = buildPolicies()
        let (tenants, tenantsComplete) = buildTenants(lanDevice: lanDevice)
        let (services, servicesComplete) = buildServices(
            tenants: tenantsComplete ? tenants : nil, policies: policiesComplete ? policies : nil)
        let routes = buildRoutes(
            services: servicesComplete ? services : nil, peerNames: peerNames, router: router)
        let timeouts = buildTimeouts()
        let limits = buildLimits()
        let control = buildControl()
        let metrics = buildMetrics()
        let log = buildLog()
        guard d.errors.isEmpty, let router else { return nil }
        let config = Config(
            router: router, interfaces: interfaces, peers: peers, tenants: tenants, services: services,
            serviceRoutes: routes, servicePolicies: policies, timeouts: timeouts, limits: limits, control: control,
            metrics: metrics, log: log)
        warnAboutSettingsNotInEffect(config)
        return config
    }

    // MARK: - helpers

    /// Reads string `key` of `t` and converts it with `parse`, reporting failures.
    func parsed<T>(_ t: TableReader, _ key: String, required: Bool = false, _ parse: (String) throws(ValueProblem) -> T) -> T? {
        guard let s = t.string(key, required: required) else { return nil }
        return parsed(s, at: t.path.appending(key), parse)
    }

    func parsed<T>(_ s: String, at path: ConfigPath, _ parse: (String) throws(ValueProblem) -> T) -> T? {
        do {
            return try parse(s)
        } catch {
            d.report(path, error.kind, error.message)
            return nil
        }
    }

    /// Reports every repeated name; `what` is "peer", "service", ...
    func checkUnique(_ items: [(name: String, path: ConfigPath)], what: String) {
        var seen: [String: ConfigPath] = [:]
        for item in items {
            if let first = seen[item.name] {
                d.report(item.path, .duplicate, "duplicate \(what) '\(item.name)' (first on line \(d.line(of: first)))")
            } else {
                seen[item.name] = item.path
            }
        }
    }

    /// A string array of object names that must all be in `known` (when known is complete).
    func references(_ t: TableReader, _ key: String, known: Set<String>?, what: String) -> [String] {
        guard let items = t.strings(key) else { return [] }
        checkUnique(items.map { ($0.value, $0.path) }, what: what)
        var out: [String] = []
        for item in items {
            if let known, !known.contains(item.value) {
                reportUnknown(item.value, at: item.path, known: known, what: what)
            }
            out.append(item.value)
        }
        return out
    }

    func reportUnknown(_ name: String, at path: ConfigPath, known: Set<String>, what: String) {
        // (no suggestion once the error list is full: it would not be shown)
        let hint = d.isFull ? "" : TableReader.suggestion(for: name, among: known.sorted()).map { "; did you mean '\($0)'?" } ?? ""
        d.report(path, .unknownReference, "no \(what) named '\(name)'\(hint)")
    }

    // MARK: - [router]

    static let routerKeys = ["name", "private-key-file", "private-key", "lan-device", "lan-address", "mtu",
                             "refused-sessions"]

    func buildRouter() -> Config.Router? {
        guard let t = root.table("router", allowed: Self.routerKeys, required: true) else { return nil }
        let name = parsed(t, "name", required: true, ConfigValues.name)
        var key: Config.PrivateKey?
        var source: Config.PrivateKeySource?
        switch (t.string("private-key-file"), t.string("private-key")) {
        case (.some, .some):
            t.report("private-key", .conflict, "set either 'private-key' or 'private-key-file', not both")
        case (let path?, nil):
            key = parsed(path, at: t.path.appending("private-key-file"), ConfigFile.privateKey).flatMap(Config.PrivateKey.init)
            source = .file(path)
        case (nil, let inline?):
            key = parsed(inline, at: t.path.appending("private-key")) { s throws(ValueProblem) in
                try ConfigValues.key(s, what: "private key")
            }.flatMap(Config.PrivateKey.init)
            source = .inline
        case (nil, nil):
            if !t.has("private-key-file") && !t.has("private-key") {
                d.report(t.path, .missingKey, "missing required key 'private-key-file' (or an inline 'private-key')")
            }
        }
        let lanDevice = parsed(t, "lan-device", ConfigValues.deviceName) ?? Config.Router.defaultLANDevice
        let lanAddress = parsed(t, "lan-address", ConfigValues.interfaceAddress)
        let mtu = t.int("mtu", range: Config.Router.mtuRange) ?? Config.Router.defaultMTU
        let refused = t.word("refused-sessions", as: Config.RefusedSessions.self) ?? .reject
        guard let name, let key, let source else { return nil }
        return Config.Router(name: name, privateKey: key, privateKeySource: source, lanDevice: lanDevice,
                             lanAddress: lanAddress, mtu: mtu, refusedSessions: refused)
    }

    // MARK: - [[interface]]

    static let interfaceKeys = ["name", "address", "external-address", "neighborhood", "port-range", "max-waypoints", "mtu"]

    func buildInterfaces(lanDevice: String, lanAddress: IPAddress?) -> ([Config.Interface], complete: Bool) {
        let tables = root.tables("interface", allowed: Self.interfaceKeys)
        var out: [Config.Interface] = []
        var names: [(String, ConfigPath)] = []
        var addresses: [(String, ConfigPath)] = []
        for t in tables {
            let name = parsed(t, "name", required: true, ConfigValues.deviceName)
            let address = parsed(t, "address", required: true, ConfigValues.address)
            let external = parsed(t, "external-address", ConfigValues.address)
            let neighborhood = parsed(t, "neighborhood", required: true, ConfigValues.name)
            let range = parsed(t, "port-range", ConfigValues.waypointPortRange)
            // Default 50000 (spec §3), capped at the size of a configured range.
            var maxWaypoints = min(Config.Interface.defaultMaxWaypoints, range?.count ?? .max)
            if let explicit = t.int("max-waypoints", range: 1...65535) {
                if let ports = range?.count, explicit > ports {
                    t.report("max-waypoints", .conflict, "\(explicit) is more than the \(ports) ports of the waypoint port range")
                }
                maxWaypoints = explicit
            }
            let mtu = t.int("mtu", range: Config.Interface.mtuRange)
            if let name {
                names.append((name, t.path.appending("name")))
                if name == lanDevice {
                    t.report("name", .conflict, "'\(name)' is the LAN device ([router] lan-device); a WAN interface needs another device")
                }
            }
            if let address {
                addresses.append((address.description, t.path.appending("address")))
                if address == lanAddress {
                    t.report("address", .conflict, "\(address) is also the LAN address ([router] lan-address)")
                }
            }
            if let external {
                addresses.append((external.description, t.path.appending("external-address")))
                if let address, external.isIPv4 != address.isIPv4 {
                    t.report("external-address", .conflict, "\(external) and address \(address) are of different address families")
                }
            }
            guard let name, let address, let neighborhood else { continue }
            out.append(Config.Interface(name: name, address: address, externalAddress: external, neighborhood: neighborhood,
                                        portRange: range, maxWaypoints: maxWaypoints, mtu: mtu))
        }
        checkUnique(names, what: "interface")
        checkUnique(addresses, what: "interface address")
        return (out, out.count == tables.count)
    }

    // MARK: - [[peer]]

    static let peerKeys = ["name", "public-key", "waypoints", "transport", "port-range"]

    /// The peers that are valid, and the names of all peers (nil if a name is missing or bad).
    /// `routerPublicKey` (derived from the router's private key) must not be a peer's key.
    func buildPeers(interfaces: [Config.Interface]?, routerName: String?,
                    routerPublicKey: X25519PublicKey?) -> ([Config.Peer], names: Set<String>?) {
        let tables = root.tables("peer", allowed: Self.peerKeys)
        var out: [Config.Peer] = []
        var names: [(String, ConfigPath)] = []
        var keys: [(String, ConfigPath)] = []
        var waypointAddresses: [(String, ConfigPath)] = []
        var namesComplete = true
        for t in tables {
            let name = parsed(t, "name", required: true, ConfigValues.name)
            let key = parsed(t, "public-key", required: true) { s throws(ValueProblem) in
                try ConfigValues.key(s, what: "public key")
            }.flatMap(Config.PublicKey.init)
            let transport = t.word("transport", as: Config.Transport.self) ?? .native
            let range = parsed(t, "port-range", ConfigValues.waypointPortRange)
            let (waypoints, waypointsComplete) = buildWaypoints(t, interfaces: interfaces)
            for (w, path) in waypoints {
                waypointAddresses.append((w.address.description, path))
                if let own = interfaces?.first(where: { $0.address == w.address || $0.externalAddress == w.address }) {
                    d.report(path, .conflict, "\(w.address) is this router's own interface '\(own.name)'")
                }
            }
            if let name { names.append((name, t.path.appending("name"))) } else { namesComplete = false }
            if let name, name == routerName {
                t.report("name", .conflict, "'\(name)' is this router's own name")
            }
            if let key, key.bytes == routerPublicKey?.bytes {
                t.report("public-key", .conflict,
                         "this is the router's own public key (derived from its private key), not the peer's")
            }
            if let key { keys.append((key.description, t.path.appending("public-key"))) }
            guard let name, let key, waypointsComplete else { continue }
            out.append(Config.Peer(name: name, publicKey: key, waypoints: waypoints.map(\.0), transport: transport,
                                   portRange: range))
        }
        checkUnique(names, what: "peer")
        checkUnique(keys, what: "peer public-key")
        checkUnique(waypointAddresses, what: "peer waypoint")
        return (out, namesComplete ? Set(names.map(\.0)) : nil)
    }

    /// `waypoints = ["198.51.100.10", { address = "2001:db8::10", neighborhood = "internet" }]`
    func buildWaypoints(_ t: TableReader, interfaces: [Config.Interface]?) -> ([(Config.Peer.Waypoint, ConfigPath)], complete: Bool) {
        guard let array = t.value("waypoints", .array, required: true)?.array else { return ([], false) }
        let base = t.path.appending("waypoints")
        if array.isEmpty {
            t.report("waypoints", .missingKey, "a peer needs at least one waypoint address")
            return ([], false)
        }
        let neighborhoods = Set(interfaces?.map(\.neighborhood) ?? [])
        var out: [(Config.Peer.Waypoint, ConfigPath)] = []
        var complete = true
        for (n, element) in array.enumerated() {
            let path = base.appending(index: n)
            var waypoint: Config.Peer.Waypoint?
            if element.type == .string, let s = element.string {
                waypoint = parsed(s, at: path, ConfigValues.address).map { .init(address: $0, neighborhood: nil) }
            } else if element.type == .table, let table = element.table {
                let w = TableReader(table, at: path, allowed: ["address", "neighborhood"], diagnostics: d)
                let address = parsed(w, "address", required: true, ConfigValues.address)
                let neighborhood = parsed(w, "neighborhood", ConfigValues.name)
                if let neighborhood, interfaces != nil, !neighborhoods.contains(neighborhood) {
                    reportUnknown(neighborhood, at: path.appending("neighborhood"), known: neighborhoods,
                                  what: "local interface in a neighborhood")
                } else if let address {
                    waypoint = .init(address: address, neighborhood: neighborhood)
                }
            } else {
                d.report(path, .wrongType,
                         "expected an address string or { address = ..., neighborhood = ... }, found \(TableReader.name(of: element.type))")
            }
            guard let waypoint else {
                complete = false
                continue
            }
            if let interfaces, !interfaces.contains(where: waypoint.isReachable(from:)) {
                let family = waypoint.address.isIPv4 ? "IPv4" : "IPv6"
                let hood = waypoint.neighborhood.map { " in neighborhood '\($0)'" } ?? ""
                d.report(path, .conflict, "no [[interface]] can reach \(waypoint.address) (needs an \(family) interface\(hood))")
            }
            out.append((waypoint, path))
        }
        return (out, complete)
    }

    // MARK: - [[service-policy]]

    static let policyKeys = [
        "name", "encryption", "adaptive-encryption", "max-latency-ms", "max-jitter-ms", "max-loss-percent", "min-mos",
        "best-effort", "session-resiliency",
    ]

    func buildPolicies() -> ([Config.ServicePolicy], complete: Bool) {
        let tables = root.tables("service-policy", allowed: Self.policyKeys)
        var out: [Config.ServicePolicy] = []
        var names: [(String, ConfigPath)] = []
        for t in tables {
            let name = parsed(t, "name", required: true, ConfigValues.name)
            let base = Config.ServicePolicy.default
            let policy = Config.ServicePolicy(
                name: name ?? "",
                encryption: t.word("encryption", as: Config.Encryption.self) ?? base.encryption,
                adaptiveEncryption: t.bool("adaptive-encryption", default: base.adaptiveEncryption),
                maxLatencyMs: t.int("max-latency-ms", range: 1...60_000) ?? base.maxLatencyMs,
                maxJitterMs: t.int("max-jitter-ms", range: 1...60_000) ?? base.maxJitterMs,
                maxLossPercent: t.double("max-loss-percent", range: 0...100) ?? base.maxLossPercent,
                minMOS: t.double("min-mos", range: 1...5),
                bestEffort: t.bool("best-effort", default: base.bestEffort),
                sessionResiliency: t.word("session-resiliency", as: Config.SessionResiliency.self) ?? base.sessionResiliency)
            guard let name else { continue }
            names.append((name, t.path.appending("name")))
            out.append(policy)
        }
        checkUnique(names, what: "service-policy")
        return (out, out.count == tables.count)
    }

    // MARK: - [[tenant]]

    static let tenantKeys = ["name", "prefixes", "interfaces"]

    func buildTenants(lanDevice: String) -> ([Config.Tenant], complete: Bool) {
        let tables = root.tables("tenant", allowed: Self.tenantKeys)
        var out: [Config.Tenant] = []
        var names: [(String, ConfigPath)] = []
        var claimedPrefixes: [IPPrefix: (tenant: String, path: ConfigPath)] = [:]
        var claimedInterfaces: [String: (tenant: String, path: ConfigPath)] = [:]
        var namesComplete = true
        for t in tables {
            let name = parsed(t, "name", required: true, ConfigValues.name)
            if let name { names.append((name, t.path.appending("name"))) } else { namesComplete = false }
            let owner = name ?? "?"
            var prefixes: [IPPrefix] = []
            for item in t.strings("prefixes") ?? [] {
                guard let p = parsed(item.value, at: item.path, ConfigValues.prefix) else { continue }
                if let other = claimedPrefixes[p] {
                    let kind: ConfigError.Kind = other.tenant == owner ? .duplicate : .ambiguousTenant
                    let whose = other.tenant == owner ? "this tenant" : "tenant '\(other.tenant)'"
                    d.report(item.path, kind, "prefix \(p) is already a member of \(whose) (line \(d.line(of: other.path)))")
                } else {
                    claimedPrefixes[p] = (owner, item.path)
                }
                prefixes.append(p)
            }
            var devices: [String] = []
            for item in t.strings("interfaces") ?? [] {
                guard let dev = parsed(item.value, at: item.path, ConfigValues.deviceName) else { continue }
                if dev != lanDevice {
                    d.report(item.path, .unknownReference,
                             "no LAN interface named '\(dev)' (this router's LAN device is '\(lanDevice)')")
                } else if let other = claimedInterfaces[dev] {
                    let whose = other.tenant == owner ? "this tenant" : "tenant '\(other.tenant)'"
                    d.report(item.path, other.tenant == owner ? .duplicate : .ambiguousTenant,
                             "interface '\(dev)' already belongs to \(whose) (line \(d.line(of: other.path)))")
                } else {
                    claimedInterfaces[dev] = (owner, item.path)
                }
                devices.append(dev)
            }
            guard let name else { continue }
            out.append(Config.Tenant(name: name, prefixes: prefixes, interfaces: devices))
        }
        checkUnique(names, what: "tenant")
        return (out, namesComplete)
    }

    // MARK: - [[service]]

    static let serviceKeys = ["name", "prefixes", "protocol", "ports", "tenants", "service-policy"]

    func buildServices(tenants: [Config.Tenant]?, policies: [Config.ServicePolicy]?) -> ([Config.Service], complete: Bool) {
        let tables = root.tables("service", allowed: Self.serviceKeys)
        var out: [(service: Config.Service, path: ConfigPath)] = []
        var names: [(String, ConfigPath)] = []
        var namesComplete = true
        let tenantNames = tenants.map { Set($0.map(\.name)) }
        for t in tables {
            let name = parsed(t, "name", required: true, ConfigValues.name)
            if let name { names.append((name, t.path.appending("name"))) } else { namesComplete = false }
            var prefixes: [IPPrefix] = []
            if let items = t.strings("prefixes", required: true) {
                if t.table["prefixes"]?.array?.isEmpty == true {
                    t.report("prefixes", .missingKey, "a service needs at least one prefix")
                }
                for item in items {
                    guard let p = parsed(item.value, at: item.path, ConfigValues.prefix) else { continue }
                    if prefixes.contains(p) {
                        d.report(item.path, .duplicate, "prefix \(p) is listed twice")
                    } else {
                        prefixes.append(p)
                    }
                }
            }
            let proto = t.word("protocol", as: Config.ServiceProtocol.self) ?? .any
            let ports = buildPorts(t)
            if proto == .icmp && !ports.isEmpty {
                t.report("ports", .conflict, "ports do not apply to protocol 'icmp'")
            }
            let allowed = references(t, "tenants", known: tenantNames, what: "tenant")
            var policy = Config.ServicePolicy.default
            if let policyName = parsed(t, "service-policy", ConfigValues.name), let policies {
                if let p = policies.first(where: { $0.name == policyName }) {
                    policy = p
                } else {
                    reportUnknown(policyName, at: t.path.appending("service-policy"), known: Set(policies.map(\.name)),
                                  what: "service-policy")
                }
            }
            guard let name else { continue }
            out.append((Config.Service(name: name, prefixes: prefixes, proto: proto, ports: ports, tenants: allowed,
                                       policy: policy), t.path))
        }
        checkUnique(names, what: "service")
        checkAmbiguity(out)
        return (out.map(\.service), namesComplete)
    }

    /// `ports = ["80", "443", "8000-8080"]` (integers accepted too); overlapping entries are reported.
    func buildPorts(_ t: TableReader) -> [Config.PortRange] {
        guard let array = t.value("ports", .array)?.array else { return [] }
        var out: [Config.PortRange] = []
        for (n, element) in array.enumerated() {
            let path = t.path.appending("ports").appending(index: n)
            var range: Config.PortRange?
            if element.type == .int, let v = element.int {
                if (1...65535).contains(v) { range = Config.PortRange(UInt16(v), UInt16(v)) } else {
                    d.report(path, .invalidPort, "\(v) is not a port (1-65535)")
                }
            } else if element.type == .string, let s = element.string {
                range = parsed(s, at: path, ConfigValues.portRange)
            } else {
                d.report(path, .wrongType, "expected a port or \"LOW-HIGH\" string, found \(TableReader.name(of: element.type))")
            }
            guard let range else { continue }
            if let other = out.first(where: { $0.overlaps(range) }) {
                d.report(path, .duplicate, "\(range) overlaps \(other) in the same list")
            }
            out.append(range)
        }
        if array.isEmpty { t.report("ports", .invalidPort, "empty port list; leave 'ports' out to match every port") }
        return out
    }

    /// Two services are ambiguous when some packet matches both with the same priority: an
    /// equal prefix (nested prefixes are resolved by longest match), the same protocol (a
    /// named protocol beats `any`) and overlapping ports (no ports means all ports).
    func checkAmbiguity(_ services: [(service: Config.Service, path: ConfigPath)]) {
        // Only services sharing a prefix can clash: index them by prefix (not every pair).
        let protos = services.map(\.service.proto)
        let ports = services.map(\.service.ports)
        var byPrefix: [IPPrefix: [Int]] = [:]
        var checkedFor = [Int](repeating: -1, count: services.count)  // checkedFor[i] == j: pair (i, j) done
        for j in services.indices {
            let b = services[j].service
            for p in b.prefixes {
                for i in byPrefix[p] ?? [] where checkedFor[i] != j && !d.isFull {
                    checkedFor[i] = j
                    guard protos[i] == protos[j], let port = Self.sharedPort(ports[i], ports[j]) else { continue }
                    let a = services[i].service
                    guard let (n, prefix) = b.prefixes.enumerated().first(where: { a.prefixes.contains($0.element) }) else {
                        continue
                    }
                    let what = a.proto == .icmp ? "icmp" : a.ports.isEmpty && b.ports.isEmpty
                        ? "\(a.proto.rawValue) on every port" : "\(a.proto.rawValue) port \(port)"
                    d.report(services[j].path.appending("prefixes").appending(index: n), .ambiguousService,
                             "service '\(b.name)' and service '\(a.name)' (line \(d.line(of: services[i].path))) both match \(what) to \(prefix); make their prefixes, protocols or ports differ")
                }
            }
            for p in b.prefixes { byPrefix[p, default: []].append(j) }
        }
    }

    /// The lowest port both lists match, or nil if they are disjoint (an empty list is every port).
    static func sharedPort(_ a: [Config.PortRange], _ b: [Config.PortRange]) -> UInt16? {
        if a.isEmpty { return b.isEmpty ? 0 : b.lazy.map(\.lower).min() }
        if b.isEmpty { return a.lazy.map(\.lower).min() }
        var best: UInt16?
        for x in a {
            for y in b where x.overlaps(y) {
                let p = max(x.lower, y.lower)
                best = min(best ?? p, p)
            }
        }
        return best
    }

    // MARK: - [[service-route]]

    static let routeKeys = ["name", "service", "peer", "peers", "local", "source-nat", "nat-address"]

    func buildRoutes(services: [Config.Service]?, peerNames: Set<String>?, router: Config.Router?) -> [Config.ServiceRoute] {
        let tables = root.tables("service-route", allowed: Self.routeKeys)
        var out: [Config.ServiceRoute] = []
        var routed: [String: ConfigPath] = [:]
        var names: [(String, ConfigPath)] = []
        var complete = true
        let serviceNames = services.map { Set($0.map(\.name)) }
        for t in tables {
            let service = parsed(t, "service", required: true, ConfigValues.name)
            if let service {
                if let serviceNames, !serviceNames.contains(service) {
                    reportUnknown(service, at: t.path.appending("service"), known: serviceNames, what: "service")
                } else if let first = routed[service] {
                    t.report("service", .duplicate, "service '\(service)' already has a route (line \(d.line(of: first)))")
                } else {
                    routed[service] = t.path.appending("service")
                }
            } else {
                complete = false
            }
            let name = parsed(t, "name", ConfigValues.name) ?? service
            if let name, t.has("name") { names.append((name, t.path.appending("name"))) }

            var peerList: [String] = []
            if let single = parsed(t, "peer", ConfigValues.name) {
                peerList.append(single)
                if let peerNames, !peerNames.contains(single) {
                    reportUnknown(single, at: t.path.appending("peer"), known: peerNames, what: "peer")
                }
            }
            peerList += references(t, "peers", known: peerNames, what: "peer")
            let local = t.bool("local", default: false)
            let sourceNAT = t.bool("source-nat", default: false)
            let natAddress = parsed(t, "nat-address", ConfigValues.address)
            let chosen = [t.has("peer"), t.has("peers"), local].filter { $0 }.count
            var target: Config.ServiceRoute.Target?
            if chosen > 1 {
                t.report(local ? "local" : "peers", .conflict, "set only one of 'peer', 'peers' or 'local = true'")
            } else if chosen == 0 {
                d.report(t.path, .missingKey, "missing 'peer', 'peers' or 'local = true' (where the service's sessions go)")
            } else if local {
                if t.has("nat-address") && !sourceNAT {
                    t.report("nat-address", .conflict, "'nat-address' needs 'source-nat = true'")
                } else if sourceNAT && !t.has("nat-address"), let router, router.lanAddress == nil {
                    t.report("source-nat", .conflict, "source NAT needs 'nat-address' here or 'lan-address' in [router]")
                }
                target = .local(sourceNAT: sourceNAT, natAddress: natAddress ?? (sourceNAT ? router?.lanAddress?.address : nil))
            } else {
                for key in ["source-nat", "nat-address"] where t.has(key) {
                    t.report(key, .conflict, "'\(key)' applies only to 'local = true' routes (the egress router NATs)")
                }
                if t.has("peers") && peerList.isEmpty {
                    t.report("peers", .missingKey, "empty peer list")
                }
                target = .peers(peerList)
            }
            guard let service, let name, let target else { continue }
            out.append(Config.ServiceRoute(name: name, service: service, target: target))
        }
        checkUnique(names, what: "service-route")
        if complete, let services {
            for (n, s) in services.enumerated() where routed[s.name] == nil {
                d.report(root.path.appending("service").appending(index: n), .missingKey,
                         "no [[service-route]] for service '\(s.name)'; add one with 'peer', 'peers' or 'local = true'")
            }
        }
        return out
    }

    // MARK: - [timeouts], [limits], [control], [metrics]

    func buildTimeouts() -> Config.Timeouts {
        let base = Config.Timeouts()
        guard let t = root.table("timeouts", allowed: ["tcp-syn", "tcp-established", "tcp-closing", "udp", "icmp"]) else {
            return base
        }
        func seconds(_ key: String, _ def: Duration) -> Duration {
            t.int(key, range: 1...604_800).map { .seconds($0) } ?? def
        }
        return Config.Timeouts(
            tcpSyn: seconds("tcp-syn", base.tcpSyn), tcpEstablished: seconds("tcp-established", base.tcpEstablished),
            tcpClosing: seconds("tcp-closing", base.tcpClosing), udp: seconds("udp", base.udp),
            icmp: seconds("icmp", base.icmp))
    }

    func buildLimits() -> Config.Limits {
        let keys = ["max-sessions", "max-sessions-per-source", "max-new-sessions-per-second-per-source", "max-sessions-per-tenant"]
        guard let t = root.table("limits", allowed: keys) else { return Config.Limits() }
        let d = Config.Limits()
        return Config.Limits(
            maxSessions: t.int("max-sessions", range: 1...100_000_000) ?? d.maxSessions,
            maxSessionsPerSource: t.int("max-sessions-per-source", range: 0...100_000_000) ?? d.maxSessionsPerSource,
            maxNewSessionsPerSecondPerSource: t.int("max-new-sessions-per-second-per-source", range: 0...100_000_000)
                ?? d.maxNewSessionsPerSecondPerSource,
            maxSessionsPerTenant: t.int("max-sessions-per-tenant", range: 0...100_000_000) ?? d.maxSessionsPerTenant)
    }

    func buildControl() -> Config.Control {
        guard let t = root.table("control", allowed: ["socket"]) else { return Config.Control() }
        guard let path = t.string("socket") else { return Config.Control() }
        if !path.hasPrefix("/") || path.utf8.count > 107 {
            t.report("socket", .invalidValue, "'\(path)' must be an absolute path of at most 107 bytes")
            return Config.Control()
        }
        return Config.Control(socketPath: path)
    }

    func buildMetrics() -> Config.Metrics {
        guard let t = root.table("metrics", allowed: ["listen"]) else { return Config.Metrics() }
        return Config.Metrics(listen: parsed(t, "listen", ConfigValues.endpoint))
    }

    func buildLog() -> Config.Log {
        guard let t = root.table("log", allowed: ["format", "priority-prefix"]) else { return Config.Log() }
        func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ def: T) -> T where T.RawValue == String {
            guard let s = t.string(key) else { return def }
            guard let v = T(rawValue: s) else {
                t.report(key, .invalidValue, "'\(s)' must be one of \(T.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", "))")
                return def
            }
            return v
        }
        return Config.Log(format: choice("format", Config.Log.Format.text),
                          priorityPrefix: choice("priority-prefix", Config.Log.PriorityPrefix.auto))
    }
}

// Warnings: settings that are valid but that the running svrd does not act on (yet). A
// warning does not make a config invalid; `svrd check` and `svrd run` print each one as
// `FILE:LINE: warning: key.path: why` so that nothing in a config silently does nothing.
//
// Every warning comes from one line of `ConfigBuilder.warnAboutSettingsNotInEffect`: when a
// setting starts working, delete its line there (and its test in ConfigWarningTests and its
// note in docs/config.md). A new key that works needs nothing here.

import TOMLKit

/// One setting in a valid config that svrd does not act on.
public struct ConfigWarning: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        /// A key svrd reads and checks but does not use yet.
        case notInEffect
        /// An IPv6 address or prefix: svrd forwards IPv4 only so far.
        case ipv6
        /// A list entry beyond the one svrd uses (a second peer of a route, another waypoint).
        case unusedAlternative
    }

    public var file: String
    public var line: Int
    public var path: ConfigPath
    public var kind: Kind
    /// Why the setting has no effect.
    public var message: String

    public init(file: String, line: Int, path: ConfigPath, kind: Kind, message: String) {
        self.file = file
        self.line = line
        self.path = path
        self.kind = kind
        self.message = message
    }

    /// `FILE:LINE: warning: key.path: why`.
    public var description: String {
        ConfigError.line(file: file, line: line, path: path, label: "warning: ", message: message)
    }
}

extension ConfigBuilder {
    static let noSLA = "not yet in effect: svrd does not measure its paths, so no SLA selects or drops them"
    static let ipv6 = "not yet in effect: svrd forwards IPv4 only"

    /// Adds a warning for every setting of the valid `config` that the running svrd ignores.
    /// One line per setting; delete the line when the setting starts working.
    func warnAboutSettingsNotInEffect(_ config: Config) {
        // [[service-policy]]: no path measurement, SLA or session failover yet.
        for key in ["max-latency-ms", "max-jitter-ms", "max-loss-percent", "min-mos", "best-effort"] {
            present("service-policy", key, .notInEffect, Self.noSLA)
        }
        present("service-policy", "session-resiliency", .notInEffect,
                "not yet in effect: a session stays on its path; there is no failover", unless: { $0.string == "none" })
        // [[interface]]
        present("interface", "max-waypoints", .notInEffect,
                "not yet in effect: waypoint ports are limited only by the port range")
        present("interface", "external-address", .notInEffect,
                "not used by svrd (only checked against peer waypoints); nothing else is needed behind a 1:1 NAT")
        // [[service-route]]
        present("service-route", "name", .notInEffect, "not used: svrd knows a route by its service")
        // IPv6 (LAN and WAN packet paths are IPv4 only).
        if let a = config.router.lanAddress, !a.address.isIPv4 {
            warn(ConfigPath.root.appending("router").appending("lan-address"), .ipv6,
                 "\(Self.ipv6): the address is given to the TUN, but IPv6 packets are dropped")
        }
        for (i, interface) in config.interfaces.enumerated() where !interface.address.isIPv4 {
            warn(path("interface", i, "address"), .ipv6, "\(Self.ipv6): this interface is not opened")
        }
        for (t, tenant) in config.tenants.enumerated() {
            for (n, p) in tenant.prefixes.enumerated() where !p.address.isIPv4 {
                warn(path("tenant", t, "prefixes").appending(index: n), .ipv6, "\(Self.ipv6): no packet matches \(p)")
            }
        }
        for (s, service) in config.services.enumerated() {
            for (n, p) in service.prefixes.enumerated() where !p.address.isIPv4 {
                warn(path("service", s, "prefixes").appending(index: n), .ipv6, "\(Self.ipv6): no packet matches \(p)")
            }
        }
        for (r, route) in config.serviceRoutes.enumerated() {
            if case .local(true, let to?) = route.target, !to.isIPv4 {
                let key = root.table["service-route"]?.array?[r].table?["nat-address"] != nil ? "nat-address" : "source-nat"
                warn(path("service-route", r, key), .ipv6, "\(Self.ipv6): no source NAT to \(to)")
            }
        }
        // More than one path: sessions take one, with no failover yet.
        warnAboutUnusedPeers(config)
        warnAboutUnusedWaypoints(config)
    }

    /// `peers = [a, b]`: new sessions go to the first peer with a path (b only carries a
    /// session that came from a, in transit).
    func warnAboutUnusedPeers(_ config: Config) {
        for (r, route) in config.serviceRoutes.enumerated() {
            guard case .peers(let names) = route.target, names.count > 1 else { continue }
            for n in names.indices.dropFirst() {
                warn(path("service-route", r, "peers").appending(index: n), .unusedAlternative,
                     "not yet in effect: sessions go to the first peer of the list that has a path; no failover to the next one")
            }
        }
    }

    /// The engine sends a peer's sessions over its first reachable IPv4 waypoint only.
    func warnAboutUnusedWaypoints(_ config: Config) {
        for (p, peer) in config.peers.enumerated() {
            let used = peer.waypoints.firstIndex { w in
                w.address.isIPv4 && config.interfaces.contains { $0.address.isIPv4 && w.isReachable(from: $0) }
            }
            for (n, w) in peer.waypoints.enumerated() where n != used {
                let at = path("peer", p, "waypoints").appending(index: n)
                if !w.address.isIPv4 {
                    warn(at, .ipv6, "\(Self.ipv6): this waypoint is not used")
                } else if let used {
                    warn(at, .unusedAlternative,
                         "not yet in effect: sessions this router starts go to \(peer.waypoints[used].address) only (no path selection or failover); packets from this address are accepted")
                }
            }
        }
    }

    // MARK: - helpers

    func path(_ table: String, _ index: Int, _ key: String) -> ConfigPath {
        ConfigPath.root.appending(table).appending(index: index).appending(key)
    }

    func warn(_ path: ConfigPath, _ kind: ConfigWarning.Kind, _ message: String) {
        d.warn(path, kind, message)
    }

    /// Warns at `key` of every `[[table]]` that sets it (unless `unless` says its value is harmless).
    func present(_ table: String, _ key: String, _ kind: ConfigWarning.Kind, _ message: String,
                 unless: (TOMLValueConvertible) -> Bool = { _ in false }) {
        for (i, element) in (root.table[table]?.array ?? []).enumerated() {
            guard let value = element.table?[key], !unless(value) else { continue }
            warn(path(table, i, key), kind, message)
        }
    }
}

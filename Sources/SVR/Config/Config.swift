// The validated configuration of one svrd router: an immutable, Sendable snapshot built from
// one TOML file (docs/config.md). The daemon publishes it to its threads as a whole; nothing
// in it changes after `Config.load` returns. Every cross reference in it has been checked:
// a service's tenants and policy, a route's service and peers, a tenant's interfaces exist.

/// A complete, validated router configuration.
public struct Config: Sendable, Equatable {
    public let router: Router
    /// WAN interfaces (local waypoints), in file order.
    public let interfaces: [Interface]
    /// SVR peers, in file order.
    public let peers: [Peer]
    public let tenants: [Tenant]
    /// Services, in file order; each carries its resolved service policy.
    public let services: [Service]
    /// At most one route per service.
    public let serviceRoutes: [ServiceRoute]
    /// The service policies declared in the file (a service without one uses `ServicePolicy.default`).
    public let servicePolicies: [ServicePolicy]
    public let timeouts: Timeouts
    public let limits: Limits
    public let control: Control
    public let metrics: Metrics
    public let log: Log

    public init(
        router: Router, interfaces: [Interface], peers: [Peer], tenants: [Tenant], services: [Service],
        serviceRoutes: [ServiceRoute], servicePolicies: [ServicePolicy], timeouts: Timeouts, limits: Limits,
        control: Control, metrics: Metrics, log: Log = Log()
    ) {
        self.router = router
        self.interfaces = interfaces
        self.peers = peers
        self.tenants = tenants
        self.services = services
        self.serviceRoutes = serviceRoutes
        self.servicePolicies = servicePolicies
        self.timeouts = timeouts
        self.limits = limits
        self.control = control
        self.metrics = metrics
        self.log = log
    }

    public func peer(named name: String) -> Peer? { peers.first { $0.name == name } }
    public func tenant(named name: String) -> Tenant? { tenants.first { $0.name == name } }
    public func service(named name: String) -> Service? { services.first { $0.name == name } }
    public func interface(named name: String) -> Interface? { interfaces.first { $0.name == name } }
    /// The route of a service (every service has exactly one in a valid config).
    public func route(forService name: String) -> ServiceRoute? { serviceRoutes.first { $0.service == name } }
}

extension Config {
    /// `[router]`: this router's identity and LAN side.
    public struct Router: Sendable, Equatable {
        /// Router name sent in metadata (1–64 of `A-Z a-z 0-9 . _ -`).
        public let name: String
        public let privateKey: PrivateKey
        /// Where the private key came from.
        public let privateKeySource: PrivateKeySource
        /// Name of the LAN TUN device (default `svr0`).
        public let lanDevice: String
        /// Address and prefix length given to the LAN TUN, if svrd should set one.
        public let lanAddress: InterfaceAddress?
        /// MTU of the LAN TUN (default 1400, 576...9000).
        public let mtu: Int
        /// What a LAN sender hears when its session is refused (default `.reject`).
        public let refusedSessions: RefusedSessions

        public init(name: String, privateKey: PrivateKey, privateKeySource: PrivateKeySource, lanDevice: String,
                    lanAddress: InterfaceAddress?, mtu: Int, refusedSessions: RefusedSessions = .reject) {
            self.name = name
            self.privateKey = privateKey
            self.privateKeySource = privateKeySource
            self.lanDevice = lanDevice
            self.lanAddress = lanAddress
            self.mtu = mtu
            self.refusedSessions = refusedSessions
        }

        public static let defaultLANDevice = "svr0"
        public static let defaultMTU = 1400
        public static let mtuRange = 576...9000
    }

    /// `[router] refused-sessions`: the answer to a LAN packet whose session is refused (no
    /// tenant, no service, tenant not allowed, no route).
    public enum RefusedSessions: String, Sendable, Equatable, CaseIterable {
        /// Drop and count; the sender hears nothing (waits for its own timeout).
        case silent
        /// Drop and count, and answer at once (rate-limited): a TCP RST for TCP, an ICMP
        /// destination unreachable, code 13 (administratively prohibited) otherwise.
        case reject
    }

    public enum PrivateKeySource: Sendable, Equatable {
        /// `private-key-file = PATH` (checked: exists, regular, not accessible by group/others).
        case file(String)
        /// `private-key = "BASE64"` inline in the config.
        case inline
    }

    /// An address with its prefix length, as configured on an interface ("10.1.0.1/24").
    public struct InterfaceAddress: Sendable, Hashable, CustomStringConvertible {
        public let address: IPAddress
        public let prefixLength: Int

        /// Nil when `prefixLength` does not fit the address family.
        public init?(address: IPAddress, prefixLength: Int) {
            guard let prefix = IPPrefix(address, length: prefixLength) else { return nil }
            self.address = address
            self.prefixLength = prefixLength
            self.prefix = prefix
        }

        /// The network ("10.1.0.0/24").
        public let prefix: IPPrefix
        public var description: String { "\(address)/\(prefixLength)" }
    }

    /// `[[interface]]`: a WAN interface whose address is a local waypoint.
    public struct Interface: Sendable, Equatable {
        /// Linux device name (1–15 characters).
        public let name: String
        /// The waypoint address (IPv4 or IPv6) SVR traffic is sent from and received on.
        public let address: IPAddress
        /// The address peers reach this interface at when it sits behind a 1:1 NAT (a cloud
        /// VM's public address); nil when peers use `address`.
        public let externalAddress: IPAddress?
        /// Neighborhood (the network this interface is attached to: "internet", "mpls", ...).
        public let neighborhood: String
        /// Waypoint ports accepted on this interface; nil means the default split of spec O4
        /// (local even ports 16384...65534, remote odd ports 16385...65533).
        public let portRange: PortRange?
        /// At most this many waypoint ports in use at once on this interface (default 50000, or
        /// the size of `portRange` when that is smaller).
        public let maxWaypoints: Int
        /// The MTU of the paths through this interface; nil: the device's MTU (read when the
        /// daemon starts), lowered per path by the underlay's ICMP "fragmentation needed".
        public let mtu: Int?

        public init(name: String, address: IPAddress, externalAddress: IPAddress? = nil, neighborhood: String,
                    portRange: PortRange?, maxWaypoints: Int, mtu: Int? = nil) {
            self.name = name
            self.address = address
            self.externalAddress = externalAddress
            self.neighborhood = neighborhood
            self.portRange = portRange
            self.maxWaypoints = maxWaypoints
            self.mtu = mtu
        }

        /// The address peers send to: `externalAddress` if set, else `address`.
        public var publicAddress: IPAddress { externalAddress ?? address }

        public static let defaultMaxWaypoints = 50_000
        /// The `mtu` a WAN interface may be given.
        public static let mtuRange = 576...65535
    }

    /// An inclusive range of L4 ports ("16384-65534", or one port "443").
    public struct PortRange: Sendable, Hashable, CustomStringConvertible {
        public let lower: UInt16
        public let upper: UInt16

        public init?(_ lower: UInt16, _ upper: UInt16) {
            guard lower <= upper else { return nil }
            self.lower = lower
            self.upper = upper
        }

        public func contains(_ port: UInt16) -> Bool { lower <= port && port <= upper }
        public func overlaps(_ other: PortRange) -> Bool { lower <= other.upper && other.lower <= upper }
        public var count: Int { Int(upper) - Int(lower) + 1 }
        public var description: String { lower == upper ? "\(lower)" : "\(lower)-\(upper)" }

        /// The default waypoint range (spec §3, O4): 16384...65534.
        public static let defaultWaypoints = PortRange(16384, 65534)!
    }

    /// How SVR packets are carried to a peer.
    public enum Transport: String, Sendable, Equatable, CaseIterable {
        /// TCP as TCP, everything else as UDP (the SSR default).
        case native
        /// Everything as UDP ("UDP transform", spec §10.1).
        case udp
    }

    /// `[[peer]]`: another SVR router this one exchanges sessions with.
    public struct Peer: Sendable, Equatable {
        /// Name of the peer (its router name).
        public let name: String
        /// The peer's X25519 public key.
        public let publicKey: PublicKey
        /// The peer's waypoints (remote addresses), in file order.
        public let waypoints: [Waypoint]
        public let transport: Transport
        /// Ports the peer accepts on its waypoints; nil means the default odd ports 16385...65533.
        public let portRange: PortRange?

        public init(name: String, publicKey: PublicKey, waypoints: [Waypoint], transport: Transport, portRange: PortRange?) {
            self.name = name
            self.publicKey = publicKey
            self.waypoints = waypoints
            self.transport = transport
            self.portRange = portRange
        }

        /// One remote waypoint. A waypoint tied to a neighborhood is reached only from local
        /// interfaces in that neighborhood; one without is reached from every local interface
        /// of the same address family. Each (local interface, waypoint) pair is a peer path.
        public struct Waypoint: Sendable, Hashable {
            public let address: IPAddress
            public let neighborhood: String?

            public init(address: IPAddress, neighborhood: String?) {
                self.address = address
                self.neighborhood = neighborhood
            }

            /// Whether the local `interface` can reach this waypoint.
            public func isReachable(from interface: Interface) -> Bool {
                interface.address.isIPv4 == address.isIPv4 && (neighborhood.map { $0 == interface.neighborhood } ?? true)
            }
        }
    }

    /// `[[tenant]]`: a named population of sources. A packet's tenant is the tenant with the
    /// longest prefix containing its source address, else the tenant of the LAN interface it
    /// came in on. A tenant with no members is known only from metadata (traffic from peers).
    public struct Tenant: Sendable, Equatable {
        public let name: String
        public let prefixes: [IPPrefix]
        /// LAN interface (TUN) names whose traffic belongs to this tenant.
        public let interfaces: [String]

        public init(name: String, prefixes: [IPPrefix], interfaces: [String]) {
            self.name = name
            self.prefixes = prefixes
            self.interfaces = interfaces
        }
    }

    /// Transport protocol a service matches.
    public enum ServiceProtocol: String, Sendable, Equatable, CaseIterable {
        case tcp, udp, icmp, any

        /// Whether a packet with IP protocol number `proto` matches.
        public func matches(_ proto: UInt8) -> Bool {
            switch self {
            case .tcp: proto == IPProtocolNumber.tcp
            case .udp: proto == IPProtocolNumber.udp
            case .icmp: proto == IPProtocolNumber.icmp || proto == IPProtocolNumber.icmpv6
            case .any: true
            }
        }
    }

    /// `[[service]]`: a named destination and who may reach it. Classification picks the
    /// service with the longest prefix containing the destination; among services with that
    /// same prefix a service naming the packet's protocol beats `any`; ports must then match.
    /// A valid config never has two services left matching the same packet.
    public struct Service: Sendable, Equatable {
        public let name: String
        public let prefixes: [IPPrefix]
        public let proto: ServiceProtocol
        /// Destination ports; empty means every port (always empty for `icmp`).
        public let ports: [PortRange]
        /// Tenants allowed to open sessions to this service; empty admits nobody.
        public let tenants: [String]
        /// The service policy in force (the named one, or `ServicePolicy.default`).
        public let policy: ServicePolicy

        public init(name: String, prefixes: [IPPrefix], proto: ServiceProtocol, ports: [PortRange], tenants: [String],
                    policy: ServicePolicy) {
            self.name = name
            self.prefixes = prefixes
            self.proto = proto
            self.ports = ports
            self.tenants = tenants
            self.policy = policy
        }

        /// Whether destination port `port` matches (any port when `ports` is empty).
        public func matchesPort(_ port: UInt16) -> Bool { ports.isEmpty || ports.contains { $0.contains(port) } }
        /// Whether `tenant` may open sessions to this service (deny by default).
        public func admits(tenant: String) -> Bool { tenants.contains(tenant) }
    }

    /// `[[service-route]]`: how this router delivers a service's sessions.
    public struct ServiceRoute: Sendable, Equatable {
        /// Route name (defaults to the service name).
        public let name: String
        /// The service this route is for.
        public let service: String
        public let target: Target

        public init(name: String, service: String, target: Target) {
            self.name = name
            self.service = service
            self.target = target
        }

        public enum Target: Sendable, Equatable {
            /// Send over SVR to these peers, in preference order.
            case peers([String])
            /// Deliver on this router's LAN side (this router is the egress). With source NAT,
            /// the source becomes `natAddress` (default: the router's `lan-address`).
            case local(sourceNAT: Bool, natAddress: IPAddress?)
        }
    }

    /// Payload encryption suite of a service policy (spec §6).
    public enum Encryption: String, Sendable, Equatable, CaseIterable {
        /// AES-256-CBC + HMAC-SHA256/128, SSR compatible.
        case aesCBCHMAC = "aes-cbc-hmac"
        /// AES-256-GCM.
        case aesGCM = "aes-gcm"
        case none
    }

    /// What happens to a session when its peer path fails (spec §8.2).
    public enum SessionResiliency: String, Sendable, Equatable, CaseIterable {
        case none
        case failover
        case revertibleFailover = "revertible-failover"
    }

    /// `[[service-policy]]`: encryption and path SLA for the services that use it.
    public struct ServicePolicy: Sendable, Equatable {
        public let name: String
        public let encryption: Encryption
        /// Skip payload encryption for traffic that is already TLS (spec §6.2).
        public let adaptiveEncryption: Bool
        public let maxLatencyMs: Int
        public let maxJitterMs: Int
        public let maxLossPercent: Double
        /// Minimum MOS (1.0...5.0), nil when not used.
        public let minMOS: Double?
        /// If no path meets the SLA, use the best one instead of dropping.
        public let bestEffort: Bool
        public let sessionResiliency: SessionResiliency

        public init(name: String, encryption: Encryption = .aesCBCHMAC, adaptiveEncryption: Bool = true,
                    maxLatencyMs: Int = 250, maxJitterMs: Int = 100, maxLossPercent: Double = 0.5, minMOS: Double? = nil,
                    bestEffort: Bool = true, sessionResiliency: SessionResiliency = .none) {
            self.name = name
            self.encryption = encryption
            self.adaptiveEncryption = adaptiveEncryption
            self.maxLatencyMs = maxLatencyMs
            self.maxJitterMs = maxJitterMs
            self.maxLossPercent = maxLossPercent
            self.minMOS = minMOS
            self.bestEffort = bestEffort
            self.sessionResiliency = sessionResiliency
        }

        /// The policy of a service that names none: all defaults.
        public static let `default` = ServicePolicy(name: "default")
    }

    /// `[timeouts]`: idle time after which a session is removed.
    public struct Timeouts: Sendable, Equatable {
        public let tcpSyn: Duration
        public let tcpEstablished: Duration
        public let tcpClosing: Duration
        public let udp: Duration
        public let icmp: Duration

        public init(tcpSyn: Duration = .seconds(30), tcpEstablished: Duration = .seconds(1800),
                    tcpClosing: Duration = .seconds(30), udp: Duration = .seconds(60), icmp: Duration = .seconds(30)) {
            self.tcpSyn = tcpSyn
            self.tcpEstablished = tcpEstablished
            self.tcpClosing = tcpClosing
            self.udp = udp
            self.icmp = icmp
        }
    }

    /// `[limits]`.
    public struct Limits: Sendable, Equatable {
        /// Most sessions held at once; first packets beyond it are dropped and counted.
        public let maxSessions: Int
        /// Most sessions of one source address (under its tenant) at once; 0 = no limit.
        public let maxSessionsPerSource: Int
        /// Most new sessions per second of one source address (bursts of as many); 0 = no limit.
        public let maxNewSessionsPerSecondPerSource: Int
        /// Most sessions of one tenant at once; 0 = no limit (only `maxSessions`).
        public let maxSessionsPerTenant: Int

        public static let defaultMaxSessionsPerSource = 50_000
        public static let defaultMaxNewSessionsPerSecondPerSource = 5_000

        public init(maxSessions: Int = 1_000_000, maxSessionsPerSource: Int = Self.defaultMaxSessionsPerSource,
                    maxNewSessionsPerSecondPerSource: Int = Self.defaultMaxNewSessionsPerSecondPerSource,
                    maxSessionsPerTenant: Int = 0) {
            self.maxSessions = maxSessions
            self.maxSessionsPerSource = maxSessionsPerSource
            self.maxNewSessionsPerSecondPerSource = maxNewSessionsPerSecondPerSource
            self.maxSessionsPerTenant = maxSessionsPerTenant
        }
    }

    /// `[control]`: the local control socket `svrctl` talks to.
    public struct Control: Sendable, Equatable {
        public let socketPath: String

        public init(socketPath: String = "/run/svrd/svrd.sock") { self.socketPath = socketPath }
    }

    /// `[metrics]`: the Prometheus endpoint (off when `listen` is absent).
    public struct Metrics: Sendable, Equatable {
        public let listen: Endpoint?

        public init(listen: Endpoint? = nil) { self.listen = listen }
    }

    /// `[log]`: how svrd writes its log lines (to stderr, which systemd hands to journald).
    public struct Log: Sendable, Equatable {
        public enum Format: String, Sendable, CaseIterable { case text, json }
        /// When each line starts with its syslog priority (`<3>` … `<7>`), which journald reads.
        public enum PriorityPrefix: String, Sendable, CaseIterable {
            /// When stderr is journald's stream (`JOURNAL_STREAM` is set, as under systemd).
            case auto
            case always, never
        }
        public let format: Format
        public let priorityPrefix: PriorityPrefix

        public init(format: Format = .text, priorityPrefix: PriorityPrefix = .auto) {
            self.format = format
            self.priorityPrefix = priorityPrefix
        }
    }

    /// An address and a port ("127.0.0.1:9810", "[::1]:9810").
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        public let address: IPAddress
        public let port: UInt16

        public init(address: IPAddress, port: UInt16) {
            self.address = address
            self.port = port
        }

        public var description: String { address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)" }
    }

    /// 32 raw bytes of an X25519 public key (strict base64 in the file).
    public struct PublicKey: Sendable, Hashable, CustomStringConvertible {
        public let bytes: [UInt8]

        public init?(bytes: [UInt8]) {
            guard bytes.count == 32 else { return nil }
            self.bytes = bytes
        }

        public var description: String { Base64.encode(bytes) }
    }

    /// 32 raw bytes of this router's X25519 private key. Its description never shows them.
    public struct PrivateKey: Sendable, Equatable, CustomStringConvertible {
        public let bytes: [UInt8]

        public init?(bytes: [UInt8]) {
            guard bytes.count == 32 else { return nil }
            self.bytes = bytes
        }

        public var description: String { "(private key)" }
    }
}

// First-packet classification and access policy (spec §2.2 steps 2–3, deny by default).
//
// Flow for one first packet:
//   tenant  = longest source-prefix match among tenant members, else the tenant bound to the
//             LAN interface the packet came in on (a member prefix is more specific than a
//             whole interface, so it wins)                                  -> else noTenant
//   service = longest destination-prefix match whose protocol/ports accept the packet; at one
//             prefix, port-specific rules beat protocol-only rules beat "any"; if nothing at
//             the longest prefix accepts it, shorter covering prefixes are tried in turn
//                                                                           -> else noService
//   policy  = the service lists the tenant                                  -> else tenantNotAllowed
//   route   = the caller's service-route table says the service is reachable -> else noRoute
//
// The covering-prefix fallback is precomputed: each distinct service prefix owns one flat
// candidate list (its own rules, then its parents'), so a lookup is one LPM plus a short scan.
// The classifier is an immutable `Sendable` snapshot built from plain inputs; classification
// does not allocate. Refusals are counted in a caller-owned (per-thread) counter struct.

/// Protocol and destination-port constraint of a service.
public struct TransportMatch: Sendable, Hashable {
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, ...).
    public var proto: UInt8
    /// Accepted destination ports; empty means any port. Ignored only when empty: a protocol
    /// without ports (ICMP) matches a `TransportMatch` only if `ports` is empty.
    public var ports: [ClosedRange<UInt16>]

    public init(proto: UInt8, ports: [ClosedRange<UInt16>] = []) {
        self.proto = proto
        self.ports = ports
    }
}

/// A service as the classifier needs it.
public struct ServiceRule: Sendable {
    public var service: ServiceID
    /// Destination prefixes (both families may be mixed).
    public var prefixes: [IPPrefix]
    /// Accepted transports; empty means every protocol and port.
    public var transports: [TransportMatch]
    /// Tenants allowed to reach the service (deny by default).
    public var allowedTenants: [TenantID]

    public init(service: ServiceID, prefixes: [IPPrefix], transports: [TransportMatch] = [], allowedTenants: [TenantID]) {
        self.service = service
        self.prefixes = prefixes
        self.transports = transports
        self.allowedTenants = allowedTenants
    }
}

/// Which services currently have a usable route (a peer path or a local next hop). Owned by
/// the caller; route changes produce a new value.
public struct ServiceRouteTable: Sendable, Equatable {
    private var bits: [UInt64]

    /// A table where no service has a route.
    public init(serviceCount: Int) { bits = [UInt64](repeating: 0, count: (serviceCount + 63) / 64) }

    public mutating func setRoute(_ service: ServiceID, _ exists: Bool) {
        let w = service.index >> 6
        if w >= bits.count { bits.append(contentsOf: repeatElement(0, count: w + 1 - bits.count)) }
        let m = UInt64(1) << UInt64(service.index & 63)
        if exists { bits[w] |= m } else { bits[w] &= ~m }
    }

    @inlinable public func hasRoute(_ service: ServiceID) -> Bool { test(service.index) }

    @usableFromInline func test(_ i: Int) -> Bool {
        let w = i >> 6
        return w < bits.count && bits[w] >> UInt64(i & 63) & 1 != 0
    }
}

/// Why a first packet was refused.
public enum ClassificationRefusal: UInt8, Sendable, CaseIterable {
    case noTenant
    case noService
    case tenantNotAllowed
    case noRoute
}

/// The outcome of classifying a first packet.
public enum Classification: Sendable, Equatable {
    case allowed(TenantID, ServiceID)
    case refused(ClassificationRefusal)
}

/// Per-thread classification counters (plain fields; aggregate with `add(_:)`).
public struct ClassifierCounters: Sendable, Equatable {
    public var allowed: UInt64 = 0
    public var noTenant: UInt64 = 0
    public var noService: UInt64 = 0
    public var tenantNotAllowed: UInt64 = 0
    public var noRoute: UInt64 = 0

    public init() {}

    public subscript(reason: ClassificationRefusal) -> UInt64 {
        switch reason {
        case .noTenant: noTenant
        case .noService: noService
        case .tenantNotAllowed: tenantNotAllowed
        case .noRoute: noRoute
        }
    }

    public mutating func add(_ o: ClassifierCounters) {
        allowed &+= o.allowed
        noTenant &+= o.noTenant
        noService &+= o.noService
        tenantNotAllowed &+= o.tenantNotAllowed
        noRoute &+= o.noRoute
    }

    @usableFromInline mutating func count(_ r: ClassificationRefusal) {
        switch r {
        case .noTenant: noTenant &+= 1
        case .noService: noService &+= 1
        case .tenantNotAllowed: tenantNotAllowed &+= 1
        case .noRoute: noRoute &+= 1
        }
    }
}

/// Why a classifier could not be built.
public enum ClassifierBuildError: Error, Sendable, Equatable {
    /// Two tenants claim the same member prefix.
    case duplicateTenantPrefix(IPPrefix)
    /// An interface is bound to two tenants.
    case duplicateInterface(LANInterfaceID)
    case prefixTable(PrefixTableError)
}

/// Tenant, service and access-policy classification of first packets.
public struct Classifier: Sendable {
    /// One way a service can accept a packet: a protocol (or any) and port ranges (or any).
    struct Candidate: Sendable {
        var service: UInt16
        /// Protocol number, or -1 for any protocol (then ports are any too).
        var proto: Int16
        /// Range of `portRanges` entries; count 0 means any port.
        var rangeStart: UInt32
        var rangeCount: UInt32
    }

    private let tenantByPrefix: PrefixTable
    /// Tenant raw value + 1 per interface index (0: none).
    private let tenantByInterface: [UInt16]
    private let serviceByPrefix: PrefixTable
    /// (start, count) into `candidates`, indexed by the service LPM value.
    private let lists: [(start: UInt32, count: UInt32)]
    private let candidates: [Candidate]
    /// Packed `lower << 16 | upper`.
    private let portRanges: [UInt32]
    /// Allowed-tenant bit sets, `policyWords` words per service.
    private let policy: [UInt64]
    private let policyWords: Int

    /// Builds a classifier.
    /// - Parameters:
    ///   - tenantPrefixes: member source prefixes of each tenant.
    ///   - interfaceTenants: tenants bound to whole LAN interfaces.
    ///   - services: the services; a service may appear in several rules.
    public init(
        tenantPrefixes: [(prefix: IPPrefix, tenant: TenantID)],
        interfaceTenants: [(interface: LANInterfaceID, tenant: TenantID)] = [],
        services: [ServiceRule]
    ) throws(ClassifierBuildError) {
        var seen = Set<IPPrefix>()
        for (p, _) in tenantPrefixes where !seen.insert(p).inserted { throw .duplicateTenantPrefix(p) }
        do {
            tenantByPrefix = try PrefixTable(tenantPrefixes.map { ($0.prefix, UInt32($0.tenant.rawValue)) })
        } catch { throw .prefixTable(error) }

        var byInterface: [UInt16] = []
        for (i, t) in interfaceTenants {
            if i.index >= byInterface.count {
                byInterface.append(contentsOf: repeatElement(0, count: i.index + 1 - byInterface.count))
            }
            guard byInterface[i.index] == 0 else { throw .duplicateInterface(i) }
            byInterface[i.index] = t.rawValue + 1
        }
        tenantByInterface = byInterface

        // Candidates per distinct prefix, ranked: ports given (0), protocol only (1), any (2).
        var ranges: [UInt32] = []
        var own: [IPPrefix: [(rank: Int, candidate: Candidate)]] = [:]
        var tenantCount = 1
        var serviceCount = 1
        for rule in services {
            serviceCount = max(serviceCount, rule.service.index + 1)
            for t in rule.allowedTenants { tenantCount = max(tenantCount, t.index + 1) }
            var cs: [(Int, Candidate)] = []
            if rule.transports.isEmpty {
                cs.append((2, Candidate(service: rule.service.rawValue, proto: -1, rangeStart: 0, rangeCount: 0)))
            }
            for t in rule.transports {
                let start = UInt32(ranges.count)
                for r in t.ports { ranges.append(UInt32(r.lowerBound) << 16 | UInt32(r.upperBound)) }
                let c = Candidate(service: rule.service.rawValue, proto: Int16(t.proto), rangeStart: start, rangeCount: UInt32(t.ports.count))
                cs.append((t.ports.isEmpty ? 1 : 0, c))
            }
            for p in rule.prefixes { own[p, default: []].append(contentsOf: cs) }
        }
        portRanges = ranges

        // Full list of a prefix = its own ranked candidates, then its nearest parent's list.
        var full: [IPPrefix: [Candidate]] = [:]
        var values: [(IPPrefix, UInt32)] = []
        var flat: [Candidate] = []
        var listIndex: [(start: UInt32, count: UInt32)] = []
        for p in own.keys.sorted(by: { $0.length < $1.length }) {
            var list = own[p]!.enumerated().sorted { ($0.element.rank, $0.offset) < ($1.element.rank, $1.offset) }
                .map(\.element.candidate)
            var l = Int(p.length) - 1
            while l >= 0 {
                if let parent = IPPrefix(p.address, length: l), let pl = full[parent] {
                    list += pl
                    break
                }
                l -= 1
            }
            full[p] = list
            values.append((p, UInt32(listIndex.count)))
            listIndex.append((UInt32(flat.count), UInt32(list.count)))
            flat += list
        }
        do { serviceByPrefix = try PrefixTable(values) } catch { throw .prefixTable(error) }
        lists = listIndex
        candidates = flat

        for (_, t) in tenantPrefixes { tenantCount = max(tenantCount, t.index + 1) }
        for (_, t) in interfaceTenants { tenantCount = max(tenantCount, t.index + 1) }
        let words = (tenantCount + 63) / 64
        var bits = [UInt64](repeating: 0, count: words * serviceCount)
        for rule in services {
            for t in rule.allowedTenants {
                bits[rule.service.index * words + t.index >> 6] |= UInt64(1) << UInt64(t.index & 63)
            }
        }
        policy = bits
        policyWords = words
    }

    /// The tenant of a packet from `source` that arrived on `interface`.
    public func tenant(source: IPAddress, interface: LANInterfaceID?) -> TenantID? {
        if let t = tenantByPrefix.lookup(source) { return TenantID(rawValue: UInt16(truncatingIfNeeded: t)) }
        if let i = interface, i.index < tenantByInterface.count, tenantByInterface[i.index] != 0 {
            return TenantID(rawValue: tenantByInterface[i.index] - 1)
        }
        return nil
    }

    /// The service a packet to `destination` with `proto`/`destinationPort` belongs to.
    public func service(destination: IPAddress, proto: UInt8, destinationPort: UInt16) -> ServiceID? {
        guard let li = serviceByPrefix.lookup(destination) else { return nil }
        let (start, count) = lists[Int(li)]
        let hasPorts = proto == IPProtocolNumber.tcp || proto == IPProtocolNumber.udp || proto == 132
        for i in Int(start)..<Int(start + count) {
            let c = candidates[i]
            if c.proto < 0 { return ServiceID(rawValue: c.service) }
            guard c.proto == Int16(proto) else { continue }
            if c.rangeCount == 0 { return ServiceID(rawValue: c.service) }
            guard hasPorts else { continue }
            let p = UInt32(destinationPort)
            for r in Int(c.rangeStart)..<Int(c.rangeStart + c.rangeCount) {
                let packed = portRanges[r]
                if p >= packed >> 16 && p <= packed & 0xFFFF { return ServiceID(rawValue: c.service) }
            }
        }
        return nil
    }

    /// Whether the service's policy lets `tenant` in.
    public func allows(_ tenant: TenantID, _ service: ServiceID) -> Bool {
        let w = tenant.index >> 6
        guard w < policyWords else { return false }
        let i = service.index * policyWords + w
        return i < policy.count && policy[i] >> UInt64(tenant.index & 63) & 1 != 0
    }

    /// Classifies a first packet and counts the outcome in `counters`.
    /// - Parameters:
    ///   - tuple: the LAN-side 5-tuple (ICMP: ports are ignored).
    ///   - interface: the LAN interface the packet came in on, if known.
    ///   - routes: which services are reachable now.
    public func classify(
        _ tuple: FiveTuple, interface: LANInterfaceID?, routes: ServiceRouteTable,
        counters: inout ClassifierCounters
    ) -> Classification {
        let r = decide(tuple, interface: interface, routes: routes)
        switch r {
        case .allowed: counters.allowed &+= 1
        case .refused(let why): counters.count(why)
        }
        return r
    }

    private func decide(_ tuple: FiveTuple, interface: LANInterfaceID?, routes: ServiceRouteTable) -> Classification {
        guard let t = tenant(source: tuple.source, interface: interface) else { return .refused(.noTenant) }
        guard let s = service(destination: tuple.destination, proto: tuple.proto, destinationPort: tuple.destinationPort) else {
            return .refused(.noService)
        }
        guard allows(t, s) else { return .refused(.tenantNotAllowed) }
        guard routes.hasRoute(s) else { return .refused(.noRoute) }
        return .allowed(t, s)
    }
}

// The objects of rtnetlink as Swift values: links, interface addresses, routes and policy
// routing rules, and how each is read back from a kernel message (dump or notification).

internal import CNetlink

/// Well-known routing table numbers. Tables above 255 travel in RTA_TABLE / FRA_TABLE.
public enum RouteTable {
    public static let main: UInt32 = RTNL.tableMain
    public static let local: UInt32 = RTNL.tableLocal
}

/// `rtm_protocol`: who installed a route (`ip route` shows it as `proto …`).
public struct RouteProtocol: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let kernel = RouteProtocol(rawValue: RTNL.protoKernel)
    /// What `ip route add` uses.
    public static let boot = RouteProtocol(rawValue: RTNL.protoBoot)
    /// An administrator's (or daemon's) static route: the default of `Route`.
    public static let `static` = RouteProtocol(rawValue: RTNL.protoStatic)
    public var description: String {
        switch self {
        case .kernel: "kernel"
        case .boot: "boot"
        case .static: "static"
        default: "\(rawValue)"
        }
    }
}

/// `rtm_scope` of a route.
public struct RouteScope: RawRepresentable, Sendable, Hashable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let universe = RouteScope(rawValue: RTNL.scopeUniverse)
    public static let link = RouteScope(rawValue: RTNL.scopeLink)
    public static let host = RouteScope(rawValue: RTNL.scopeHost)
}

/// `rtm_type` of a route.
public struct RouteType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let unicast = RouteType(rawValue: RTNL.typeUnicast)
    public static let local = RouteType(rawValue: RTNL.typeLocal)
    public static let blackhole = RouteType(rawValue: RTNL.typeBlackhole)
    public static let unreachable = RouteType(rawValue: RTNL.typeUnreachable)
    public static let prohibit = RouteType(rawValue: RTNL.typeProhibit)
    public var description: String {
        switch self {
        case .unicast: "unicast"
        case .local: "local"
        case .blackhole: "blackhole"
        case .unreachable: "unreachable"
        case .prohibit: "prohibit"
        default: "type \(rawValue)"
        }
    }
}

/// A network interface as RTM_GETLINK reports it.
public struct Link: Sendable, Hashable, CustomStringConvertible {
    public var index: Int32
    public var name: String
    public var mtu: UInt32
    /// `ifi_flags` (IFF_UP, IFF_RUNNING, …).
    public var flags: UInt32
    /// The link kind ("dummy", "veth", "tun", …) when the kernel reports one.
    public var kind: String?
    /// The hardware address (empty for TUN and loopback-like devices).
    public var hardwareAddress: [UInt8]

    /// The administrative state (IFF_UP), what `ip link set up/down` changes.
    public var isUp: Bool { flags & RTNL.iffUp != 0 }

    public var description: String {
        "\(index): \(name) mtu \(mtu) \(isUp ? "up" : "down")" + (kind.map { " kind \($0)" } ?? "")
    }

    init?(_ message: NetlinkReplyMessage) {
        let p = message.payload
        guard message.type == RTNL.newLink, p.count >= RTNL.ifinfomsgSize else { return nil }
        let info = p.loadUnaligned(as: ifinfomsg.self)
        let attrs = NetlinkAttributes(p, offset: RTNL.ifinfomsgSize)
        index = info.ifi_index
        flags = info.ifi_flags
        name = attrs.string(RTNL.iflaIfname) ?? ""
        mtu = attrs.u32(RTNL.iflaMTU) ?? 0
        kind = attrs.nested(RTNL.iflaLinkinfo)?.string(RTNL.iflaInfoKind)
        hardwareAddress = attrs[RTNL.iflaAddress].map(Array.init) ?? []
    }
}

/// What kind of link `RouteNetlink.createLink` makes.
public enum LinkKind: Sendable, Hashable {
    /// A dummy device: accepts routes and addresses, drops what it is sent.
    case dummy
    /// A veth pair: the new link and its peer `peer`, both in the current namespace.
    case veth(peer: String)
}

/// An address assigned to an interface (`ip addr`).
public struct InterfaceAddress: Sendable, Hashable, CustomStringConvertible {
    public var interfaceIndex: Int32
    /// The local address with its prefix length (host bits kept, e.g. 192.0.2.1/24).
    public var prefix: NetlinkPrefix
    /// `ifa_scope` (0 universe, 253 link, 254 host).
    public var scope: UInt8
    /// Address flags (IFA_FLAGS when present, else `ifa_flags`).
    public var flags: UInt32

    public var description: String { "\(prefix) dev #\(interfaceIndex)" }

    init?(_ message: NetlinkReplyMessage) {
        let p = message.payload
        guard message.type == RTNL.newAddr || message.type == RTNL.delAddr,
              p.count >= RTNL.ifaddrmsgSize else { return nil }
        let head = p.loadUnaligned(as: ifaddrmsg.self)
        let attrs = NetlinkAttributes(p, offset: RTNL.ifaddrmsgSize)
        // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
        // links and equal to IFA_LOCAL otherwise (IPv6 sends only IFA_ADDRESS).
        guard let raw = attrs[RTNL.ifaLocal] ?? attrs[RTNL.ifaAddress],
              let address = NetlinkAddress(bytes: raw),
              let prefix = NetlinkPrefix(address, length: Int(head.ifa_prefixlen)) else { return nil }
        interfaceIndex = Int32(bitPattern: head.ifa_index)
        self.prefix = prefix
        scope = head.ifa_scope
        flags = attrs.u32(RTNL.ifaFlags) ?? UInt32(head.ifa_flags)
    }
}

/// A route in a routing table.
public struct Route: Sendable, Hashable, CustomStringConvertible {
    /// The destination; a new route's host bits must be zero (the kernel refuses others).
    public var destination: NetlinkPrefix
    /// The next hop; nil for a route straight to a device.
    public var gateway: NetlinkAddress?
    /// The output interface (RTA_OIF); required for device routes.
    public var interfaceIndex: Int32?
    /// RTA_PRIORITY. nil lets the kernel choose (0 for IPv4, 1024 for IPv6).
    public var metric: UInt32?
    public var table: UInt32
    public var proto: RouteProtocol
    public var type: RouteType
    /// nil: chosen as `ip route` does (see `effectiveScope`).
    public var scope: RouteScope?
    /// RTA_PREFSRC: the source address the host uses for traffic along this route.
    public var preferredSource: NetlinkAddress?

    public init(
        destination: NetlinkPrefix, gateway: NetlinkAddress? = nil, interfaceIndex: Int32? = nil,
        metric: UInt32? = nil, table: UInt32 = RouteTable.main, proto: RouteProtocol = .static,
        type: RouteType = .unicast, scope: RouteScope? = nil, preferredSource: NetlinkAddress? = nil
    ) {
        self.destination = destination
        self.gateway = gateway
        self.interfaceIndex = interfaceIndex
        self.metric = metric
        self.table = table
        self.proto = proto
        self.type = type
        self.scope = scope
        self.preferredSource = preferredSource
    }

    public var family: AddressFamily { destination.family }

    /// The scope the route is installed with: as `ip route add`, link for an IPv4 unicast
    /// route without gateway, host for an IPv4 local route, universe otherwise (IPv6 routes
    /// have no scope: the kernel ignores it).
    public var effectiveScope: RouteScope {
        if let scope { return scope }
        guard family == .ipv4 else { return .universe }
        if type == .local { return .host }
        return gateway == nil && type == .unicast ? .link : .universe
    }

    /// `10.0.0.0/8 via 192.0.2.1 dev #3 metric 10 table 100`.
    public var description: String {
        var s = type == .unicast ? "" : "\(type) "
        s += destination.description
        if let gateway { s += " via \(gateway)" }
        if let interfaceIndex { s += " dev #\(interfaceIndex)" }
        if let metric { s += " metric \(metric)" }
        s += table == RouteTable.main ? " table main" : " table \(table)"
        return s
    }

    /// Parses RTM_NEWROUTE / RTM_DELROUTE; nil for other messages and for cached clones.
    init?(_ message: NetlinkReplyMessage) {
        let p = message.payload
        guard message.type == RTNL.newRoute || message.type == RTNL.delRoute,
              p.count >= RTNL.rtmsgSize else { return nil }
        let head = p.loadUnaligned(as: rtmsg.self)
        guard head.rtm_flags & RTNL.flagCloned == 0,
              let family = AddressFamily(kernelValue: head.rtm_family) else { return nil }
        let attrs = NetlinkAttributes(p, offset: RTNL.rtmsgSize)
        let dst = attrs[RTNL.rtaDst].flatMap { NetlinkAddress(bytes: $0) } ?? .any(family)
        guard let destination = NetlinkPrefix(dst, length: Int(head.rtm_dst_len)) else { return nil }
        self.destination = destination
        gateway = attrs[RTNL.rtaGateway].flatMap { NetlinkAddress(bytes: $0) }
        interfaceIndex = attrs.u32(RTNL.rtaOif).map { Int32(bitPattern: $0) }
        metric = attrs.u32(RTNL.rtaPriority)
        table = attrs.u32(RTNL.rtaTable) ?? UInt32(head.rtm_table)
        proto = RouteProtocol(rawValue: head.rtm_protocol)
        type = RouteType(rawValue: head.rtm_type)
        scope = RouteScope(rawValue: head.rtm_scope)
        preferredSource = attrs[RTNL.rtaPrefsrc].flatMap { NetlinkAddress(bytes: $0) }
    }
}

/// A policy routing rule (`ip rule`): traffic matching the selectors looks up `table`.
public struct RoutingRule: Sendable, Hashable, CustomStringConvertible {
    public var family: AddressFamily
    /// The rule's preference: lower runs first. nil lets the kernel pick one below the last.
    public var priority: UInt32?
    /// Match packets whose fwmark, masked with `fwmask` (default all ones), equals this.
    public var fwmark: UInt32?
    public var fwmask: UInt32?
    public var source: NetlinkPrefix?
    public var destination: NetlinkPrefix?
    public var table: UInt32

    public init(
        family: AddressFamily, priority: UInt32? = nil, fwmark: UInt32? = nil, fwmask: UInt32? = nil,
        source: NetlinkPrefix? = nil, destination: NetlinkPrefix? = nil, table: UInt32
    ) {
        self.family = family
        self.priority = priority
        self.fwmark = fwmark
        self.fwmask = fwmask
        self.source = source
        self.destination = destination
        self.table = table
    }

    /// `inet priority 1000 from all fwmark 0x1/0xff lookup 100`.
    public var description: String {
        var s = "\(family)"
        if let priority { s += " priority \(priority)" }
        s += " from \(source?.description ?? "all")"
        if let destination { s += " to \(destination)" }
        if let fwmark {
            s += " fwmark 0x" + String(fwmark, radix: 16)
            if let fwmask { s += "/0x" + String(fwmask, radix: 16) }
        }
        return s + " lookup \(table == RouteTable.main ? "main" : String(table))"
    }

    /// Parses RTM_NEWRULE / RTM_DELRULE.
    init?(_ message: NetlinkReplyMessage) {
        let p = message.payload
        guard message.type == RTNL.newRule || message.type == RTNL.delRule,
              p.count >= RTNL.fibRuleHeaderSize else { return nil }
        let head = p.loadUnaligned(as: fib_rule_hdr.self)
        guard let family = AddressFamily(kernelValue: head.family) else { return nil }
        let attrs = NetlinkAttributes(p, offset: RTNL.fibRuleHeaderSize)
        func prefix(_ type: UInt16, _ length: UInt8) -> NetlinkPrefix? {
            attrs[type].flatMap { NetlinkAddress(bytes: $0) }.flatMap { NetlinkPrefix($0, length: Int(length)) }
        }
        self.family = family
        priority = attrs.u32(RTNL.fraPriority)
        fwmark = attrs.u32(RTNL.fraFwmark)
        fwmask = attrs.u32(RTNL.fraFwmask)
        source = prefix(RTNL.fraSrc, head.src_len)
        destination = prefix(RTNL.fraDst, head.dst_len)
        table = attrs.u32(RTNL.fraTable) ?? UInt32(head.table)
    }
}

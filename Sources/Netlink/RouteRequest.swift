// Every rtnetlink request svrd sends, as a value: the message it builds (the bytes golden
// tests check) and the operation text errors carry. `RouteNetlink` sends them.
//
// The layouts follow what `ip` (iproute2) sends for the same command, so that behaviour
// matches: tables below 256 go in the fixed header and larger ones in RTA_TABLE/FRA_TABLE
// (with the header field RT_TABLE_UNSPEC), deletes use wildcard protocol/scope/type, new
// objects are created with NLM_F_CREATE|NLM_F_EXCL.

internal import CNetlink

public enum RouteRequest: Sendable, CustomStringConvertible {
    /// RTM_GETLINK for one name (the kernel answers ENODEV when there is none).
    case getLink(name: String)
    case dumpLinks
    case createLink(name: String, kind: LinkKind)
    /// RTM_NEWLINK on an existing link: set the admin state and/or the MTU.
    case setLink(index: Int32, up: Bool?, mtu: UInt32?)
    case deleteLink(index: Int32)
    /// RTM_NEWADDR; IPv6 addresses are added with IFA_F_NODAD (usable at once, no DAD).
    case addAddress(NetlinkPrefix, interfaceIndex: Int32)
    case deleteAddress(NetlinkPrefix, interfaceIndex: Int32)
    case dumpAddresses(AddressFamily?)
    case addRoute(Route)
    /// Adds the route or replaces the one with the same destination, table and metric.
    case replaceRoute(Route)
    case deleteRoute(Route)
    case dumpRoutes(AddressFamily)
    case addRule(RoutingRule)
    case deleteRule(RoutingRule)
    case dumpRules(AddressFamily)

    /// The operation text of errors: "add route 10.0.0.0/8 via 192.0.2.1 table 100".
    public var description: String {
        switch self {
        case .getLink(let name): "find link \(name)"
        case .dumpLinks: "list links"
        case .createLink(let name, .dummy): "create dummy link \(name)"
        case .createLink(let name, .veth(let peer)): "create veth link \(name) peer \(peer)"
        case .setLink(let index, let up, let mtu):
            "set link #\(index)" + (up.map { $0 ? " up" : " down" } ?? "") + (mtu.map { " mtu \($0)" } ?? "")
        case .deleteLink(let index): "delete link #\(index)"
        case .addAddress(let prefix, let index): "add address \(prefix) dev #\(index)"
        case .deleteAddress(let prefix, let index): "delete address \(prefix) dev #\(index)"
        case .dumpAddresses(let family): "list addresses" + (family.map { " \($0)" } ?? "")
        case .addRoute(let route): "add route \(route)"
        case .replaceRoute(let route): "replace route \(route)"
        case .deleteRoute(let route): "delete route \(route)"
        case .dumpRoutes(let family): "list \(family) routes"
        case .addRule(let rule): "add rule \(rule)"
        case .deleteRule(let rule): "delete rule \(rule)"
        case .dumpRules(let family): "list \(family) rules"
        }
    }

    /// Builds the request (sequence number 0; the socket sets it when sending).
    public func message() -> NetlinkMessage {
        let ack = NetlinkFlags.ack
        let create = NetlinkFlags.create | NetlinkFlags.exclusive | ack
        switch self {
        case .getLink(let name):
            var m = Self.link(RTNL.getLink, flags: ack, index: 0)
            m.put(RTNL.iflaIfname, string: name)
            return m
        case .dumpLinks:
            return Self.link(RTNL.getLink, flags: NetlinkFlags.dump, index: 0)
        case .createLink(let name, let kind):
            var m = Self.link(RTNL.newLink, flags: create, index: 0)
            m.put(RTNL.iflaIfname, string: name)
            m.nest(RTNL.iflaLinkinfo) { info in
                switch kind {
                // The kind without NUL, as `ip link add` sends it.
                case .dummy:
                    info.put(RTNL.iflaInfoKind, bytes: Array("dummy".utf8))
                case .veth(let peer):
                    info.put(RTNL.iflaInfoKind, bytes: Array("veth".utf8))
                    info.nest(RTNL.iflaInfoData) { data in
                        // VETH_INFO_PEER holds a struct ifinfomsg followed by the peer's attributes.
                        data.nest(RTNL.vethInfoPeer) { peerInfo in
                            _ = mnl_nlmsg_put_extra_header(peerInfo.header, RTNL.ifinfomsgSize)
                            peerInfo.put(RTNL.iflaIfname, string: peer)
                        }
                    }
                }
            }
            return m
        case .setLink(let index, let up, let mtu):
            var m = Self.link(RTNL.newLink, flags: ack, index: index)
            if let up {
                m.withExtraHeader(as: ifinfomsg.self) {
                    $0.ifi_change = RTNL.iffUp
                    $0.ifi_flags = up ? RTNL.iffUp : 0
                }
            }
            if let mtu { m.put(RTNL.iflaMTU, u32: mtu) }
            return m
        case .deleteLink(let index):
            return Self.link(RTNL.delLink, flags: ack, index: index)
        case .addAddress(let prefix, let index):
            return Self.address(RTNL.newAddr, flags: create, prefix, index)
        case .deleteAddress(let prefix, let index):
            return Self.address(RTNL.delAddr, flags: ack, prefix, index)
        case .dumpAddresses(let family):
            var m = NetlinkMessage(type: RTNL.getAddr, flags: NetlinkFlags.dump, extraHeaderSize: RTNL.ifaddrmsgSize)
            m.withExtraHeader(as: ifaddrmsg.self) { $0.ifa_family = family?.kernelValue ?? RTNL.afUnspec }
            return m
        case .addRoute(let route):
            return Self.route(RTNL.newRoute, flags: create, route)
        case .replaceRoute(let route):
            return Self.route(RTNL.newRoute, flags: NetlinkFlags.create | NetlinkFlags.replace | ack, route)
        case .deleteRoute(let route):
            return Self.route(RTNL.delRoute, flags: ack, route)
        case .dumpRoutes(let family):
            var m = NetlinkMessage(type: RTNL.getRoute, flags: NetlinkFlags.dump, extraHeaderSize: RTNL.rtmsgSize)
            m.withExtraHeader(as: rtmsg.self) { $0.rtm_family = family.kernelValue }
            return m
        case .addRule(let rule):
            return Self.rule(RTNL.newRule, flags: create, rule)
        case .deleteRule(let rule):
            return Self.rule(RTNL.delRule, flags: ack, rule)
        case .dumpRules(let family):
            var m = NetlinkMessage(
                type: RTNL.getRule, flags: NetlinkFlags.dump, extraHeaderSize: RTNL.fibRuleHeaderSize)
            m.withExtraHeader(as: fib_rule_hdr.self) { $0.family = family.kernelValue }
            return m
        }
    }

    // ---- builders ------------------------------------------------------------------------------

    private static func link(_ type: UInt16, flags: UInt16, index: Int32) -> NetlinkMessage {
        var m = NetlinkMessage(type: type, flags: flags, extraHeaderSize: RTNL.ifinfomsgSize)
        m.withExtraHeader(as: ifinfomsg.self) {
            $0.ifi_family = RTNL.afUnspec
            $0.ifi_index = index
        }
        return m
    }

    private static func address(_ type: UInt16, flags: UInt16, _ prefix: NetlinkPrefix, _ index: Int32) -> NetlinkMessage {
        var m = NetlinkMessage(type: type, flags: flags, extraHeaderSize: RTNL.ifaddrmsgSize)
        m.withExtraHeader(as: ifaddrmsg.self) {
            $0.ifa_family = prefix.family.kernelValue
            $0.ifa_prefixlen = prefix.length
            // IPv6 addresses are for svrd's own use at once: skip duplicate address detection.
            $0.ifa_flags = type == RTNL.newAddr && prefix.family == .ipv6 ? RTNL.ifaFNodad : 0
            $0.ifa_index = UInt32(bitPattern: index)
        }
        let bytes = prefix.address.bytes
        m.put(RTNL.ifaLocal, bytes: bytes)
        m.put(RTNL.ifaAddress, bytes: bytes)
        return m
    }

    private static func route(_ type: UInt16, flags: UInt16, _ route: Route) -> NetlinkMessage {
        let isDelete = type == RTNL.delRoute
        var m = NetlinkMessage(type: type, flags: flags, extraHeaderSize: RTNL.rtmsgSize)
        m.withExtraHeader(as: rtmsg.self) {
            $0.rtm_family = route.family.kernelValue
            $0.rtm_dst_len = route.destination.length
            $0.rtm_table = route.table < 256 ? UInt8(route.table) : UInt8(RTNL.tableUnspec)
            // A delete matches any protocol and type, and for IPv4 any scope unless one is set.
            $0.rtm_protocol = isDelete ? 0 : route.proto.rawValue
            $0.rtm_scope = isDelete && route.scope == nil && route.family == .ipv4
                ? RTNL.scopeNowhere : route.effectiveScope.rawValue
            $0.rtm_type = isDelete ? 0 : route.type.rawValue
        }
        // Attribute order of `ip route add DST via GW src S table T metric M dev D`.
        if route.destination.length > 0 { m.put(RTNL.rtaDst, bytes: route.destination.address.bytes) }
        if let gateway = route.gateway { m.put(RTNL.rtaGateway, bytes: gateway.bytes) }
        if let source = route.preferredSource { m.put(RTNL.rtaPrefsrc, bytes: source.bytes) }
        if route.table >= 256 { m.put(RTNL.rtaTable, u32: route.table) }
        if let metric = route.metric { m.put(RTNL.rtaPriority, u32: metric) }
        if let oif = route.interfaceIndex { m.put(RTNL.rtaOif, u32: UInt32(bitPattern: oif)) }
        return m
    }

    private static func rule(_ type: UInt16, flags: UInt16, _ rule: RoutingRule) -> NetlinkMessage {
        var m = NetlinkMessage(type: type, flags: flags, extraHeaderSize: RTNL.fibRuleHeaderSize)
        m.withExtraHeader(as: fib_rule_hdr.self) {
            $0.family = rule.family.kernelValue
            $0.dst_len = rule.destination?.length ?? 0
            $0.src_len = rule.source?.length ?? 0
            $0.table = rule.table < 256 ? UInt8(rule.table) : UInt8(RTNL.tableUnspec)
            // A delete matches any action, as `ip rule del` does.
            $0.action = type == RTNL.newRule ? RTNL.actionToTable : 0
        }
        // Attribute order of `ip rule add from S to D fwmark M/K table T priority P`.
        if let source = rule.source { m.put(RTNL.fraSrc, bytes: source.address.bytes) }
        if let destination = rule.destination { m.put(RTNL.fraDst, bytes: destination.address.bytes) }
        if let fwmark = rule.fwmark { m.put(RTNL.fraFwmark, u32: fwmark) }
        if let fwmask = rule.fwmask { m.put(RTNL.fraFwmask, u32: fwmask) }
        if rule.table >= 256 { m.put(RTNL.fraTable, u32: rule.table) }
        if let priority = rule.priority { m.put(RTNL.fraPriority, u32: priority) }
        return m
    }
}

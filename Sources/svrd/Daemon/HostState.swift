// What svrd creates on the host, how it is built from the config, and how it is removed.
//
// svrd owns exactly these objects and touches nothing else (docs/operations.md):
//
//   - the LAN TUN (`[router] lan-device`, default svr0) with `lan-address` and the MTU;
//   - service routes: one route per prefix of each service whose route goes to a peer,
//     `PREFIX dev svr0 proto 83` in the main table; protocol 83 ("svrd") marks them, so
//     leftovers of a killed svrd are found by protocol;
//   - the return path: `ip rule fwmark 0x5352 lookup 21330 pref 5352` and table 21330 with
//     `default dev svr0 proto 83`. nftables puts ct mark 0x5352 on every connection whose
//     first packet came out of the TUN (sessions this router is the egress for) and copies
//     it to the packet mark of that connection's packets that arrive from elsewhere (the
//     server's replies), so the replies are routed back into svr0 — never out a WAN in
//     the clear — whatever the main table says about the client's address;
//   - the nftables table `inet svrd` (replaced as a whole, atomically): WAN isolation
//     (docs/wan-io.md), silence toward strangers on the waypoint ports (what conntrack does
//     not know as the host's own connection is dropped, docs/operations.md), the ct/packet
//     marks above, TCP MSS clamping on svr0, and source NAT for local service routes with
//     `source-nat`.
//
// At start, leftovers of an earlier svrd (killed with SIGKILL) are removed first: routes of
// protocol 83 in the main table, every route of table 21330, rules pointing to table 21330
// or with priority 5352 and fwmark 0x5352. The nft table is replaced atomically anyway, the
// TUN vanished with the killed process, and a stale control socket is replaced by
// ControlServer.

import Glibc
import Logging
import Netlink
import SVR

enum HostObjects {
    /// `rtm_protocol` of every route svrd installs (free in iproute2's rt_protos).
    static let routeProtocol = RouteProtocol(rawValue: 83)
    /// The return-path routing table.
    static let table: UInt32 = 21330
    /// Packet and conntrack mark of connections that entered from the LAN TUN.
    static let mark: UInt32 = 0x5352
    /// Priority of the fwmark rule (before main at 32766).
    static let rulePriority: UInt32 = 5352
    /// nftables table name (family inet).
    static let nftTable = "svrd"
}

/// The host objects of one running svrd, created by `install` and removed by `remove`.
/// Used by the main thread only.
final class HostState {
    let config: Config
    let logger: Logger
    private let rtnl: RouteNetlink
    private let nft: Nftables
    private(set) var tunIndex: Int32 = 0
    private var routes: [Route] = []
    private var rule: RoutingRule?
    private var defaultRoute: Route?
    private var nftInstalled = false

    init(config: Config, logger: Logger) throws(DaemonFailure) {
        self.config = config
        self.logger = logger
        do {
            rtnl = try RouteNetlink()
            nft = try Nftables()
        } catch {
            throw DaemonFailure(.setup, "cannot open netlink sockets: \(error)")
        }
    }

    /// The LAN device must not exist yet: an existing device of that name is another
    /// program's (svrd's own TUN disappears with its process).
    func checkLANDeviceFree() throws(DaemonFailure) {
        let name = config.router.lanDevice
        do {
            let link = try rtnl.link(named: name)
            let kind = link.kind.map { "a \($0) device" } ?? "a device"
            throw DaemonFailure(.deviceTaken,
                "LAN device name '\(name)' is taken by \(kind) (ifindex \(link.index)) that svrd did not create; delete it or set [router] lan-device to another name")
        } catch let e as DaemonFailure {
            throw e
        } catch let e as NetlinkError where e.isNotFound {
            return
        } catch {
            throw DaemonFailure(.setup, "cannot look up device \(name): \(error)")
        }
    }

    /// Every WAN interface must exist (checked before anything is created).
    func checkWANInterfaces() throws(DaemonFailure) {
        for i in config.interfaces {
            do {
                _ = try rtnl.link(named: i.name)
            } catch let e where e.isNotFound {
                throw DaemonFailure(.setup, "WAN interface '\(i.name)' ([[interface]] \(i.address)) does not exist")
            } catch {
                throw DaemonFailure(.setup, "cannot look up WAN interface \(i.name): \(error)")
            }
        }
    }

    /// Warnings about host settings svrd needs but does not change (host-wide state).
    func warnAboutHostSettings() {
        if Self.readSysctl("/proc/sys/net/ipv4/ip_forward") == "0" {
            logger.warning("net.ipv4.ip_forward is 0: traffic of other LAN hosts is not forwarded into svr0, nor restored packets to servers; set it to 1 (docs/operations.md)")
        }
        for i in config.interfaces {
            guard let index = try? rtnl.linkIndex(named: i.name),
                  let addresses = try? rtnl.addresses(interfaceIndex: index) else { continue }
            if !addresses.contains(where: { "\($0.prefix.address)" == "\(i.address)" }) {
                logger.warning("the waypoint address is not assigned to its interface: peers' packets may never arrive",
                               metadata: ["interface": "\(i.name)", "address": "\(i.address)"])
            }
        }
    }

    static func readSysctl(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 64)
        guard fgets(&line, Int32(line.count), f) != nil else { return nil }
        return String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes what a killed svrd left behind (see the top of this file).
    func removeLeftovers() {
        var removed = 0
        do {
            for r in try rtnl.routes(table: RouteTable.main) where r.proto == HostObjects.routeProtocol {
                try? rtnl.deleteRoute(r)
                removed += 1
            }
            removed += try rtnl.flushRoutes(table: HostObjects.table)
            for family in [AddressFamily.ipv4, .ipv6] {
                for r in try rtnl.rules(family: family) where r.table == HostObjects.table
                    || (r.priority == HostObjects.rulePriority && r.fwmark == HostObjects.mark) {
                    try? rtnl.deleteRule(r)
                    removed += 1
                }
            }
        } catch {
            logger.warning("cannot list leftover routes or rules", metadata: ["error": "\(error)"])
        }
        if removed > 0 {
            logger.notice("removed leftovers of an earlier svrd", metadata: ["routes-and-rules": "\(removed)"])
        }
    }

    /// Address, up, sysctls of our own device, routes, rule, return table, nft table.
    func install(tunName: String) throws(DaemonFailure) {
        let router = config.router
        do {
            tunIndex = try rtnl.linkIndex(named: tunName)
            if let a = router.lanAddress, let p = NetlinkPrefix("\(a)") {
                try rtnl.addAddress(p, interfaceIndex: tunIndex)
            }
            // Our own device only: no IPv6 router solicitations on an IPv4 LAN TUN, and no
            // strict reverse-path check of sources that svrd restores.
            if router.lanAddress?.address.isIPv4 ?? true {
                writeSysctl("/proc/sys/net/ipv6/conf/\(tunName)/disable_ipv6", "1")
            }
            writeSysctl("/proc/sys/net/ipv4/conf/\(tunName)/rp_filter", "0")
            // ICMP errors svrd answers itself (time exceeded, refused sessions) come from the
            // router's own LAN address: the kernel must accept that local source from the TUN.
            writeSysctl("/proc/sys/net/ipv4/conf/\(tunName)/accept_local", "1")
            try rtnl.setLink(tunIndex, up: true)
        } catch {
            throw DaemonFailure(.setup, "cannot configure \(tunName): \(error)")
        }
        logger.info("LAN TUN up", metadata: ["tun": "\(tunName)", "ifindex": "\(tunIndex)", "mtu": "\(router.mtu)",
                                              "address": "\(router.lanAddress.map { "\($0)" } ?? "none")"])

        for prefix in peerRoutedPrefixes() {
            guard let dest = NetlinkPrefix(prefix.description) else { continue }
            let route = Route(destination: dest, interfaceIndex: tunIndex, table: RouteTable.main, proto: HostObjects.routeProtocol)
            do {
                try rtnl.addRoute(route)
                routes.append(route)
            } catch let e where e.isExists {
                logger.warning("a route for this service prefix exists and is not svrd's; leaving it (traffic to it will not enter svrd)",
                               metadata: ["prefix": "\(prefix)"])
            } catch {
                throw DaemonFailure(.setup, "cannot add route \(prefix) dev \(tunName): \(error)")
            }
        }
        do {
            let def = Route(destination: .defaultRoute(.ipv4), interfaceIndex: tunIndex, table: HostObjects.table,
                            proto: HostObjects.routeProtocol)
            try rtnl.addRoute(def)
            defaultRoute = def
            let r = RoutingRule(family: .ipv4, priority: HostObjects.rulePriority, fwmark: HostObjects.mark,
                                fwmask: 0xffff_ffff, table: HostObjects.table)
            try rtnl.addRule(r)
            rule = r
        } catch {
            throw DaemonFailure(.setup, "cannot install the return path (table \(HostObjects.table), rule): \(error)")
        }
        logger.info("routes installed", metadata: [
            "service-routes": "\(routes.count)", "proto": "\(HostObjects.routeProtocol.rawValue)",
            "return-rule": "fwmark 0x\(String(HostObjects.mark, radix: 16)) lookup \(HostObjects.table) pref \(HostObjects.rulePriority)"])

        let table = Self.nftTable(config: config, tun: tunName)
        do {
            try nft.replace(table)
            nftInstalled = true
        } catch {
            throw DaemonFailure(.setup, "cannot install nftables table inet \(HostObjects.nftTable): \(error)")
        }
        logger.info("nftables table installed", metadata: ["table": "inet \(HostObjects.nftTable)",
                                                           "chains": "\(table.chains.count)",
                                                           "rules": "\(table.chains.reduce(0) { $0 + $1.rules.count })"])
    }

    private var tunDown = false

    /// Called every few seconds by the main thread. Taking a device down makes the kernel
    /// delete every route through it; when svr0 comes back up (an administrator's
    /// `ip link set svr0 down; … up`), svrd's routes are added again. One GETLINK request
    /// when nothing changed.
    func watchTUN() {
        guard tunIndex > 0, let link = try? rtnl.link(named: config.router.lanDevice) else { return }
        if !link.isUp {
            if !tunDown { logger.warning("LAN TUN is down: no traffic enters svrd until it is up again", metadata: ["tun": "\(link.name)"]) }
            tunDown = true
            return
        }
        guard tunDown else { return }
        tunDown = false
        var added = 0
        for r in routes + (defaultRoute.map { [$0] } ?? []) {
            do {
                try rtnl.addRoute(r)
                added += 1
            } catch let e where e.isExists {
            } catch {
                logger.error("cannot restore route", metadata: ["route": "\(r)", "error": "\(error)"])
            }
        }
        logger.notice("LAN TUN is up again; routes restored", metadata: ["tun": "\(link.name)", "routes": "\(added)"])
    }

    /// Removes everything `install` created (each step on its own; errors are logged).
    /// The TUN itself goes when its fds close.
    func remove() {
        let anything = nftInstalled || rule != nil || defaultRoute != nil || !routes.isEmpty
        if nftInstalled {
            do { _ = try nft.delete(table: HostObjects.nftTable, family: .inet) } catch {
                logger.error("cannot delete nftables table", metadata: ["error": "\(error)"])
            }
            nftInstalled = false
        }
        if let r = rule {
            do { try rtnl.deleteRule(r) } catch { logger.error("cannot delete rule", metadata: ["error": "\(error)"]) }
            rule = nil
        }
        if let d = defaultRoute {
            try? rtnl.deleteRoute(d)
            defaultRoute = nil
        }
        for r in routes { try? rtnl.deleteRoute(r) }
        routes = []
        if anything { logger.info("removed routes, rule and nftables table") }
    }

    /// Prefixes of services whose route goes to a peer (IPv4 only for now).
    func peerRoutedPrefixes() -> [IPPrefix] {
        var out: [IPPrefix] = []
        for s in config.services {
            guard case .peers? = config.route(forService: s.name)?.target else { continue }
            for p in s.prefixes where !p.address.isIPv4 {
                logger.warning("IPv6 service prefixes are not routed into svrd yet", metadata: ["service": "\(s.name)", "prefix": "\(p)"])
            }
            for p in s.prefixes where p.address.isIPv4 && !out.contains(p) { out.append(p) }
        }
        return out
    }

    /// Waypoint ports to isolate for one interface: its range (or the default), and 1280.
    static func waypointPorts(_ i: Config.Interface) -> [ClosedRange<UInt16>] {
        let r = i.portRange.map { $0.lower...$0.upper } ?? 16384...65535
        return [r, 1280...1280]
    }

    /// The whole `inet svrd` table for `config` (see docs/operations.md for the listing).
    static func nftTable(config: Config, tun: String) -> NftTable {
        let mark = HostObjects.mark
        var sets: [NftSet] = []
        var wanIn: [NftRule] = []
        var wanOut: [NftRule] = []
        var silence: [NftRule] = []
        // Only traffic from (to) configured peer waypoints is taken away from the host: the
        // waypoint port range overlaps the host's ephemeral ports, and the host's own
        // connections from the same address must keep working (docs/architecture.md).
        var peerWaypoints: [NftSetElement] = []
        for p in config.peers {
            for w in p.waypoints where w.address.isIPv4 {
                if let a = NftAddress("\(w.address)"), !peerWaypoints.contains(.address(a)) { peerWaypoints.append(.address(a)) }
            }
        }
        sets.append(NftSet(name: "peer_waypoints", keyType: .ipv4Address, interval: false, elements: peerWaypoints))
        for (n, i) in config.interfaces.enumerated() where i.address.isIPv4 {
            guard let a = NftAddress("\(i.address)") else { continue }
            let set = "waypoint_ports_\(n)"
            sets.append(NftSet(name: set, keyType: .inetService, interval: true,
                               elements: waypointPorts(i).map { $0.lowerBound == $0.upperBound ? .port($0.lowerBound) : .portRange($0) }))
            for proto in [NftPortProtocol.udp, .tcp] {
                wanIn.append(NftRule(tag: "wan-in \(i.name)", [.sourceAddress(.set("peer_waypoints")), .destinationAddress(.address(a)),
                                                                    .destinationPort(proto, .set(set))],
                                     then: [.counter, .drop]))
                wanOut.append(NftRule(tag: "wan-out \(i.name)", [.sourceAddress(.address(a)), .destinationAddress(.set("peer_waypoints")),
                                                                      .sourcePort(proto, .set(set))],
                                      then: [.notrack]))
                // Anyone else (a stranger, a scanner): whatever conntrack does not know as
                // a connection of the host's own is dropped, so the host answers nothing with
                // an RST or an ICMP port unreachable, and the host's own connections from
                // ephemeral ports inside the range (replies: established) keep working.
                silence.append(NftRule(tag: "silence \(i.name)", [.destinationAddress(.address(a)), .destinationPort(proto, .set(set)),
                                                                    .not(.ctState([.established, .related]))],
                                       then: [.counter, .drop]))
            }
        }
        let mss = UInt16(clamping: config.router.mtu - 40)
        var nat: [NftRule] = []
        for route in config.serviceRoutes {
            guard case .local(let snat, let natAddress) = route.target, snat,
                  let service = config.service(named: route.service) else { continue }
            let to = natAddress ?? config.router.lanAddress?.address
            for p in service.prefixes where p.address.isIPv4 {
                guard let prefix = NftPrefix(p.description) else { continue }
                var matches: [NftMatch] = [.ctMark(mark), .destinationAddress(.prefix(prefix))]
                matches.append(.not(.outputInterfaceName(tun)))
                if let to, to.isIPv4, let address = NftAddress("\(to)") {
                    nat.append(NftRule(tag: "snat \(route.name)", matches, then: [.snat(address)]))
                } else {
                    nat.append(NftRule(tag: "masquerade \(route.name)", matches, then: [.masquerade]))
                }
            }
        }
        var chains: [NftChain] = [
            NftChain(name: "wan_prerouting", type: .filter, hook: .prerouting, priority: -300, rules: wanIn),
            NftChain(name: "wan_output", type: .filter, hook: .output, priority: -300, rules: wanOut),
            NftChain(name: "lan_prerouting", type: .filter, hook: .prerouting, priority: -150, rules: [
                NftRule(tag: "egress session", [.inputInterfaceName(tun), .ctState(.new)], then: [.setCtMark(mark)]),
                NftRule(tag: "return path", [.not(.inputInterfaceName(tun)), .ctMark(mark)], then: [.setMark(mark)]),
            ]),
            NftChain(name: "lan_output", type: .route, hook: .output, priority: -150, rules: [
                NftRule(tag: "return path (local)", [.ctMark(mark)], then: [.setMark(mark)]),
            ]),
            NftChain(name: "mss_forward", type: .filter, hook: .forward, priority: -150, rules: [
                NftRule(tag: "mss to tun", [.outputInterfaceName(tun)], then: [.clampMSS(mss)]),
                NftRule(tag: "mss from tun", [.inputInterfaceName(tun)], then: [.clampMSS(mss)]),
            ]),
            NftChain(name: "mss_output", type: .filter, hook: .output, priority: -150, rules: [
                NftRule(tag: "mss to tun (local)", [.outputInterfaceName(tun)], then: [.clampMSS(mss)]),
            ]),
        ]
        if !nat.isEmpty {
            chains.append(NftChain(name: "nat_postrouting", type: .nat, hook: .postrouting, priority: 100, rules: nat))
        }
        // After conntrack (-200), before the host's TCP/UDP input (docs/operations.md).
        chains.append(NftChain(name: "wan_silence", type: .filter, hook: .prerouting, priority: -190, rules: silence))
        return NftTable(name: HostObjects.nftTable, family: .inet, chains: chains, sets: sets)
    }

    private func writeSysctl(_ path: String, _ value: String) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = value.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }
}

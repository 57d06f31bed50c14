// Root tests of RouteNetlink against the real kernel, each in a network namespace of its own
// (removed by `defer { ns.close() }`, also when a test fails). Every change is read back
// twice: with our own dump and independently with `ip -j`.
//
// This kernel may lack the dummy driver, so the tests build on veth pairs (svrv0/svrv1).

import Glibc
import Netlink
import TestSupport
import Testing

private func prefix(_ text: String) -> NetlinkPrefix { NetlinkPrefix(text)! }
private func address(_ text: String) -> NetlinkAddress { NetlinkAddress(text)! }

/// The top-level objects of an `ip -j …` answer, each as its JSON text.
private func ipObjects(_ ns: TestNamespace, _ command: String) -> [String] {
    let output = ns.sh(command).output
    var objects: [String] = []
    var depth = 0
    var current = ""
    for c in output {
        if c == "{" { depth += 1 }
        if depth >= 1 { current.append(c) }
        if c == "}" {
            depth -= 1
            if depth == 0 { objects.append(current); current = "" }
        }
    }
    return objects
}

/// True when one object of `objects` contains every one of `fields` (JSON text fragments).
private func anyHas(_ objects: [String], _ fields: String...) -> Bool {
    objects.contains { object in fields.allSatisfy { object.contains($0) } }
}

/// Creates the veth pair svrv0/svrv1 with our API and sets both ends up; returns svrv0's index.
private func makeVethPair(_ rt: RouteNetlink) throws -> Int32 {
    try rt.createLink(named: "svrv0", kind: .veth(peer: "svrv1"))
    let index = try rt.linkIndex(named: "svrv0")
    try rt.setLink(index, up: true)
    try rt.setLink(try rt.linkIndex(named: "svrv1"), up: true)
    return index
}

@Suite(.enabled(if: isRoot)) struct LinkRootTests {
    @Test func vethUpDownMTUAndDelete() throws {
        let ns = try TestNamespace("lk")
        defer { ns.close() }
        try ns.run {
            let rt = try RouteNetlink()
            try rt.createLink(named: "svrv0", kind: .veth(peer: "svrv1"))
            let link = try rt.link(named: "svrv0")
            #expect(link.kind == "veth")
            #expect(!link.isUp)
            #expect(try rt.links().map(\.name).sorted() == ["lo", "svrv0", "svrv1"])
            #expect(anyHas(ipObjects(ns, "ip -j link show svrv0"), "\"ifindex\":\(link.index),", "\"link\":\"svrv1\""))

            try rt.setLink(link.index, up: true)
            #expect(try rt.link(named: "svrv0").isUp)
            #expect(anyHas(ipObjects(ns, "ip -j link show svrv0"), "\"UP\""))

            try rt.setLink(link.index, mtu: 1400)
            #expect(try rt.link(named: "svrv0").mtu == 1400)
            #expect(anyHas(ipObjects(ns, "ip -j link show svrv0"), "\"mtu\":1400,"))

            try rt.setLink(link.index, up: false)
            #expect(try !rt.link(named: "svrv0").isUp)
            #expect(!anyHas(ipObjects(ns, "ip -j link show svrv0"), "\"UP\""))
            #expect(anyHas(ipObjects(ns, "ip -j link show svrv0"), "\"ifname\":\"svrv0\""))

            try rt.deleteLink(link.index)
            let gone = #expect(throws: NetlinkError.self) { try rt.linkIndex(named: "svrv0") }
            #expect(gone?.errno == ENODEV)
            #expect(gone?.isNotFound == true)
            #expect(gone?.operation == "find link svrv0")
            #expect(ns.sh("ip link show svrv1").status != 0)  // the peer went with it
        }
    }

    @Test func dummyLinkIsCreatedOrRefusedWithTheKernelsReason() throws {
        let ns = try TestNamespace("dm")
        defer { ns.close() }
        try ns.run {
            let rt = try RouteNetlink()
            do {
                try rt.createLink(named: "svrd0", kind: .dummy)
                #expect(try rt.link(named: "svrd0").kind == "dummy")
                #expect(anyHas(ipObjects(ns, "ip -j -d link show svrd0"), "\"info_kind\":\"dummy\""))
            } catch let error as NetlinkError {
                // Kernels built without CONFIG_DUMMY (like the CI one) say so.
                #expect(error.errno == EOPNOTSUPP)
                #expect(error.kernelMessage == "Unknown device type")
                #expect(ns.sh("ip link show svrd0").status != 0)
            }
        }
    }

    @Test func creatingATakenNameFailsWithEEXIST() throws {
        let ns = try TestNamespace("lx")
        defer { ns.close() }
        try ns.run {
            let rt = try RouteNetlink()
            _ = try makeVethPair(rt)
            let error = #expect(throws: NetlinkError.self) { try rt.createLink(named: "svrv0", kind: .veth(peer: "svrv9")) }
            #expect(error?.isExists == true)
            #expect(error?.description.hasPrefix("create veth link svrv0 peer svrv9: File exists") == true)
        }
    }
}

@Suite(.enabled(if: isRoot)) struct AddressRootTests {
    @Test func addAndDeleteIPv4AndIPv6() throws {
        let ns = try TestNamespace("ad", ipv6: true)
        defer { ns.close() }
        try ns.run {
            let rt = try RouteNetlink()
            let index = try makeVethPair(rt)
            let v4 = prefix("198.51.100.7/24")
            let v6 = prefix("2001:db8::7/64")
            try rt.addAddress(v4, interfaceIndex: index)
            try rt.addAddress(v6, interfaceIndex: index)

            let ours = try rt.addresses(interfaceIndex: index)
            #expect(ours.contains { $0.prefix == v4 && $0.interfaceIndex == index })
            #expect(ours.contains { $0.prefix == v6 })
            #expect(try rt.addresses(interfaceIndex: index, family: .ipv4).map(\.prefix) == [v4])
            let info = ipObjects(ns, "ip -j addr show dev svrv0")
            #expect(anyHas(info, "\"local\":\"198.51.100.7\",\"prefixlen\":24,"))
            #expect(anyHas(info, "\"local\":\"2001:db8::7\",\"prefixlen\":64,"))
            // IFA_F_NODAD: usable at once, never tentative.
            let v6Line = ns.sh("ip -6 addr show dev svrv0 to 2001:db8::7/128").output
            #expect(v6Line.contains("nodad") && !v6Line.contains("tentative"))
            // The kernel added the prefix route for the IPv4 address.
            #expect(try rt.routes(family: .ipv4).contains { $0.destination == prefix("198.51.100.0/24") && $0.proto == .kernel })

            let again = #expect(throws: NetlinkError.self) { try rt.addAddress(v4, interfaceIndex: index) }
            #expect(again?.errno == EEXIST)

            try rt.deleteAddress(v4, interfaceIndex: index)
            try rt.deleteAddress(v6, interfaceIndex: index)
            #expect(try !rt.addresses(interfaceIndex: index).contains { $0.prefix == v4 || $0.prefix == v6 })
            let after = ns.sh("ip -j addr show dev svrv0").output
            #expect(!after.contains("198.51.100.7") && !after.contains("2001:db8::7"))

            let missing = #expect(throws: NetlinkError.self) { try rt.deleteAddress(v4, interfaceIndex: index) }
            #expect(missing?.errno == EADDRNOTAVAIL)
            #expect(missing?.isNotFound == true)
        }
    }
}

@Suite(.enabled(if: isRoot)) struct RouteRootTests {
    @Test func addReplaceDeleteInMainAndTable100() throws {
        let ns = try TestNamespace("rt", ipv6: true)
        defer { ns.close() }
        try ns.run {
            let rt = try RouteNetlink()
            let index = try makeVethPair(rt)
            try rt.addAddress(prefix("192.0.2.1/24"), interfaceIndex: index)
            try rt.addAddress(prefix("2001:db8::1/64"), interfaceIndex: index)

            let device4 = Route(destination: prefix("10.1.0.0/16"), interfaceIndex: index)
            let gateway4 = Route(destination: prefix("10.2.0.0/16"), gateway: address("192.0.2.254"), metric: 10, table: 100)
            let device6 = Route(destination: prefix("2001:db8:2::/48"), interfaceIndex: index, table: 100)
            let gateway6 = Route(destination: prefix("2001:db8:1::/48"), gateway: address("2001:db8::fe"), metric: 20)
            for route in [device4, gateway4, device6, gateway6] { try rt.addRoute(route) }

            // Our own dump.
            let main = try rt.routes(table: RouteTable.main)
            let t100 = try rt.routes(table: 100)
            let d4 = try #require(main.first { $0.destination == device4.destination })
            #expect(d4.interfaceIndex == index && d4.gateway == nil && d4.scope == .link && d4.proto == .static)
            let g4 = try #require(t100.first { $0.destination == gateway4.destination })
            #expect(g4.gateway == gateway4.gateway && g4.metric == 10 && g4.table == 100 && g4.interfaceIndex == index)
            let d6 = try #require(t100.first { $0.destination == device6.destination })
            #expect(d6.interfaceIndex == index && d6.family == .ipv6 && d6.metric == 1024)
            let g6 = try #require(main.first { $0.destination == gateway6.destination })
            #expect(g6.gateway == gateway6.gateway && g6.metric == 20)
            #expect(!t100.contains { $0.destination == device4.destination })

            // ip's view.
            let ip4main = ipObjects(ns, "ip -j route show table main")
            #expect(anyHas(ip4main, "\"dst\":\"10.1.0.0/16\"", "\"dev\":\"svrv0\"", "\"protocol\":\"static\"", "\"scope\":\"link\""))
            let ip4t100 = ipObjects(ns, "ip -j route show table 100")
            #expect(anyHas(ip4t100, "\"dst\":\"10.2.0.0/16\"", "\"gateway\":\"192.0.2.254\"", "\"metric\":10,"))
            #expect(anyHas(ipObjects(ns, "ip -j -6 route show table 100"), "\"dst\":\"2001:db8:2::/48\"", "\"dev\":\"svrv0\""))
            #expect(anyHas(ipObjects(ns, "ip -j -6 route show table main"), "\"dst\":\"2001:db8:1::/48\"", "\"gateway\":\"2001:db8::fe\"", "\"metric\":20,"))

            // EEXIST on a second add; replace swaps the gateway in place.
            let twice = #expect(throws: NetlinkError.self) { try rt.addRoute(gateway4) }
            #expect(twice?.isExists == true)
            var moved = gateway4
            moved.gateway = address("192.0.2.253")
            try rt.replaceRoute(moved)
            let replaced = try rt.routes(table: 100, family: .ipv4).filter { $0.destination == gateway4.destination }
            #expect(replaced.map(\.gateway) == [address("192.0.2.253")])
            let ipReplaced = ipObjects(ns, "ip -j route show table 100 10.2.0.0/16")
            #expect(ipReplaced.count == 1 && anyHas(ipReplaced, "\"gateway\":\"192.0.2.253\""))

            // Delete, read back, delete again.
            for route in [device4, moved, device6, gateway6] { try rt.deleteRoute(route) }
            #expect(try !rt.routes(table: RouteTable.main).contains { $0.destination == device4.destination || $0.destination == gateway6.destination })
            #expect(try rt.routes(table: 100).isEmpty)
            #expect(ns.sh("ip -j route show table 100").output.filter { $0 != "\n" } == "[]")
            #expect(ns.sh("ip -j -6 route show table 100").output.filter { $0 != "\n" } == "[]")
            #expect(!ns.sh("ip -j route show table main").output.contains("10.1.0.0/16"))

            let missing = #expect(throws: NetlinkError.self) { try rt.deleteRoute(device4) }
            #expect(missing?.errno == ESRCH)
            #expect(missing?.isNotFound == true)
            #expect(missing?.operation == "delete route 10.1.0.0/16 dev #\(index) table main")
        }
    }

    @Test func dumpOfATableParsesEveryField() throws {
        let ns = try TestNamespace("dp")
        defer { ns.close() }
        try ns.run {
            let rt = try RouteNetlink()
            let index = try makeVethPair(rt)
            try rt.addAddress(prefix("192.0.2.1/24"), interfaceIndex: index)
            // Made by ip, read by us: the parser does not just echo our own encoder.
            for command in [
                "ip route add 10.10.0.0/16 via 192.0.2.9 table 100 metric 7 proto static",
                "ip route add 10.11.0.0/24 dev svrv0 table 100 src 192.0.2.1",
                "ip route add default via 192.0.2.254 table 100",
                "ip route add 10.12.0.0/16 via 192.0.2.9 table 200",
                "ip route add 10.13.0.0/16 via 192.0.2.9 table 1000",
            ] { #expect(ns.sh(command).status == 0, "\(command)") }

            let routes = try rt.routes(table: 100).sorted { $0.destination.description < $1.destination.description }
            #expect(routes.map(\.destination.description) == ["0.0.0.0/0", "10.10.0.0/16", "10.11.0.0/24"])
            #expect(routes[0].gateway == address("192.0.2.254") && routes[0].proto == .boot && routes[0].metric == nil)
            #expect(routes[1] == Route(destination: prefix("10.10.0.0/16"), gateway: address("192.0.2.9"),
                                       interfaceIndex: index, metric: 7, table: 100, proto: .static,
                                       scope: .universe))
            #expect(routes[2].scope == .link && routes[2].preferredSource == address("192.0.2.1") && routes[2].gateway == nil)
            #expect(try rt.routes(table: 1000).map(\.destination) == [prefix("10.13.0.0/16")])
            #expect(try rt.routes(table: 200).map(\.table) == [200])

            // Flushing a table deletes exactly its routes, whatever their kind.
            #expect(try rt.flushRoutes(table: 100) == 3)
            #expect(try rt.routes(table: 100).isEmpty)
            #expect(ns.sh("ip -j route show table 100").output.filter { $0 != "\n" } == "[]")
            #expect(try rt.routes(table: 200).count == 1)
            #expect(try rt.flushRoutes(table: 100) == 0)
        }
    }

    @Test func errorsCarryErrnoAndTheKernelsMessage() throws {
        let ns = try TestNamespace("er")
        defer { ns.close() }
        try ns.run {
            let rt = try RouteNetlink()
            let index = try makeVethPair(rt)
            try rt.addAddress(prefix("192.0.2.1/24"), interfaceIndex: index)

            let unreachable = Route(destination: prefix("10.0.0.0/8"), gateway: address("203.0.113.9"), table: 100)
            let error = #expect(throws: NetlinkError.self) { try rt.addRoute(unreachable) }
            #expect(error?.errno == ENETUNREACH)
            #expect(error?.kernelMessage == "Nexthop has invalid gateway")
            #expect(error?.operation == "add route 10.0.0.0/8 via 203.0.113.9 table 100")
            #expect(error?.description ==
                "add route 10.0.0.0/8 via 203.0.113.9 table 100: Network is unreachable (errno 101) — kernel says: Nexthop has invalid gateway")

            let missing = #expect(throws: NetlinkError.self) {
                try rt.deleteRoute(Route(destination: prefix("10.99.0.0/16"), table: 100))
            }
            #expect(missing?.errno == ESRCH)

            let badDevice = #expect(throws: NetlinkError.self) {
                try rt.addRoute(Route(destination: prefix("10.98.0.0/16"), interfaceIndex: 9999))
            }
            #expect(badDevice?.errno == ENODEV)
        }
    }
}

@Suite(.enabled(if: isRoot)) struct RuleRootTests {
    @Test func fwmarkRulesToTablesIPv4AndIPv6() throws {
        let ns = try TestNamespace("ru", ipv6: true)
        defer { ns.close() }
        try ns.run {
            let rt = try RouteNetlink()
            let v4 = RoutingRule(family: .ipv4, priority: 1000, fwmark: 0x1, fwmask: 0xff, table: 100)
            let v6 = RoutingRule(family: .ipv6, priority: 1001, fwmark: 0x2, table: 1000)
            let from = RoutingRule(family: .ipv4, priority: 1002, source: prefix("192.0.2.0/24"), table: 7)
            try rt.addRule(v4)
            try rt.addRule(v6)
            try rt.addRule(from)

            #expect(try rt.rules(family: .ipv4).contains(v4))
            #expect(try rt.rules(family: .ipv4).contains(from))
            // The kernel reports the implicit all-ones mask of a rule added without one.
            #expect(try rt.rules(family: .ipv6).contains { $0.priority == 1001 && $0.fwmark == 2 && $0.table == 1000 })
            #expect(try rt.rules(family: .ipv4).contains { $0.priority == 32766 && $0.table == RouteTable.main })
            let ip4 = ipObjects(ns, "ip -j rule show")
            #expect(anyHas(ip4, "\"priority\":1000,", "\"fwmark\":\"0x1\",\"fwmask\":\"0xff\"", "\"table\":\"100\""))
            #expect(anyHas(ip4, "\"priority\":1002,", "\"src\":\"192.0.2.0\",\"srclen\":24", "\"table\":\"7\""))
            #expect(anyHas(ipObjects(ns, "ip -j -6 rule show"), "\"priority\":1001,", "\"fwmark\":\"0x2\"", "\"table\":\"1000\""))

            let twice = #expect(throws: NetlinkError.self) { try rt.addRule(v4) }
            #expect(twice?.isExists == true)

            for rule in [v4, v6, from] { try rt.deleteRule(rule) }
            #expect(try !rt.rules(family: .ipv4).contains { [1000, 1002].contains($0.priority) })
            #expect(try !rt.rules(family: .ipv6).contains { $0.priority == 1001 })
            #expect(!ns.sh("ip rule show; ip -6 rule show").output.contains("fwmark"))

            let missing = #expect(throws: NetlinkError.self) { try rt.deleteRule(v4) }
            #expect(missing?.errno == ENOENT)
            #expect(missing?.operation == "delete rule inet priority 1000 from all fwmark 0x1/0xff lookup 100")
        }
    }
}

@Suite(.enabled(if: isRoot)) struct RouteMonitorRootTests {
    /// The next event about `destination`, skipping others (addresses add kernel routes).
    private func nextEvent(_ monitor: RouteMonitor, about destination: String) throws -> RouteEvent? {
        while let event = try monitor.next(timeout: .seconds(3)) {
            switch event {
            case .added(let r), .removed(let r): if r.destination.description == destination { return event }
            case .overrun: return event
            }
        }
        return nil
    }

    @Test func seesRoutesAddedAndDeletedByIP() throws {
        let ns = try TestNamespace("mo", ipv6: true)
        defer { ns.close() }
        try ns.run {
            let monitor = try RouteMonitor()
            #expect(try monitor.next(timeout: .milliseconds(50)) == nil)
            let rt = try RouteNetlink()
            let index = try makeVethPair(rt)

            #expect(ns.sh("ip route add 10.9.0.0/16 dev svrv0 table 100 metric 3").status == 0)
            let added = try nextEvent(monitor, about: "10.9.0.0/16")
            #expect(added == .added(Route(destination: prefix("10.9.0.0/16"), interfaceIndex: index, metric: 3,
                                          table: 100, proto: .boot, scope: .link)))
            #expect(ns.sh("ip route del 10.9.0.0/16 table 100").status == 0)
            guard case .removed(let removed) = try nextEvent(monitor, about: "10.9.0.0/16") else {
                Issue.record("no removal event")
                return
            }
            #expect(removed.table == 100 && removed.interfaceIndex == index)

            #expect(ns.sh("ip -6 route add 2001:db8:9::/48 dev svrv0").status == 0)
            guard case .added(let v6) = try nextEvent(monitor, about: "2001:db8:9::/48") else {
                Issue.record("no IPv6 event")
                return
            }
            #expect(v6.family == .ipv6 && v6.table == RouteTable.main)
        }
    }

    @Test func aFullSocketBufferIsReportedAsOverrun() throws {
        let ns = try TestNamespace("mv")
        defer { ns.close() }
        try ns.run {
            // The smallest buffer the kernel allows (a few KB) cannot hold 300 notifications.
            let monitor = try RouteMonitor(families: [.ipv4], receiveBufferSize: 1)
            let rt = try RouteNetlink()
            let index = try makeVethPair(rt)
            for i in 0..<300 {
                try rt.addRoute(Route(destination: NetlinkPrefix(.v4(0x0a00_0000 | UInt32(i) << 8), length: 24)!,
                                      interfaceIndex: index))
            }
            var events: [RouteEvent] = []
            while let event = try monitor.next(timeout: .milliseconds(300)) { events.append(event) }
            #expect(events.first == .overrun)
            #expect(events.count < 300)
            // The monitor keeps working after an overrun.
            #expect(ns.sh("ip route add 10.200.0.0/16 dev svrv0").status == 0)
            guard case .added(let route) = try monitor.next(timeout: .seconds(3)) else {
                Issue.record("no event after the overrun")
                return
            }
            #expect(route.destination == prefix("10.200.0.0/16"))
        }
    }

    @Test func asyncStreamDeliversFromItsOwnThread() async throws {
        let ns = try TestNamespace("ma")
        defer { ns.close() }
        let stream = try ns.run {
            let rt = try RouteNetlink()
            _ = try makeVethPair(rt)
            return try RouteMonitor.events(families: [.ipv4])
        }
        #expect(ns.sh("ip route add 10.8.0.0/16 dev svrv0").status == 0)
        let event = try await withThrowingTaskGroup(of: RouteEvent?.self) { group in
            group.addTask {
                for try await event in stream {
                    if case .added(let r) = event, r.destination == prefix("10.8.0.0/16") { return event }
                }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: .seconds(5))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard case .added(let route) = event else {
            Issue.record("no event within 5 s")
            return
        }
        #expect(route.interfaceIndex != nil && route.scope == .link)
    }
}

import SVR
import Testing

@Suite struct ClassifierTests {
    typealias Kit = SessionTestKit
    let corp = TenantID(rawValue: 0)
    let guest = TenantID(rawValue: 1)
    let lab = TenantID(rawValue: 2)
    let any = ServiceID(rawValue: 0)
    let web = ServiceID(rawValue: 1)
    let dns = ServiceID(rawValue: 2)
    let alt = ServiceID(rawValue: 3)
    let ping = ServiceID(rawValue: 4)
    let ssh = ServiceID(rawValue: 5)
    let v6 = ServiceID(rawValue: 6)

    func classifier() throws -> Classifier {
        try Classifier(
            tenantPrefixes: [(Kit.prefix("10.1.0.0/16"), corp), (Kit.prefix("10.1.9.0/24"), guest),
                             (Kit.prefix("2001:db8:1::/48"), corp)],
            interfaceTenants: [(LANInterfaceID(rawValue: 3), lab)],
            services: [
                ServiceRule(service: any, prefixes: [Kit.prefix("172.16.0.0/12")], allowedTenants: [corp, lab]),
                ServiceRule(service: web, prefixes: [Kit.prefix("172.16.0.0/16")],
                            transports: [TransportMatch(proto: 6, ports: [443...443, 8000...8080])], allowedTenants: [corp, guest]),
                ServiceRule(service: dns, prefixes: [Kit.prefix("172.16.2.0/24")],
                            transports: [TransportMatch(proto: 17, ports: [53...53])], allowedTenants: [corp]),
                ServiceRule(service: alt, prefixes: [Kit.prefix("192.0.2.0/24")], allowedTenants: [corp]),
                ServiceRule(service: ping, prefixes: [Kit.prefix("198.51.100.0/24")],
                            transports: [TransportMatch(proto: 1)], allowedTenants: [corp]),
                ServiceRule(service: ssh, prefixes: [Kit.prefix("192.0.2.0/24")],
                            transports: [TransportMatch(proto: 6, ports: [22...22])], allowedTenants: [corp]),
                ServiceRule(service: v6, prefixes: [Kit.prefix("2001:db8:2::/48")],
                            transports: [TransportMatch(proto: 17)], allowedTenants: [corp]),
            ])
    }

    func routesToAll() -> ServiceRouteTable {
        var r = ServiceRouteTable(serviceCount: 7)
        for s in 0..<7 { r.setRoute(ServiceID(rawValue: UInt16(s)), true) }
        return r
    }

    func service(_ c: Classifier, _ dst: String, _ proto: UInt8, _ port: UInt16) -> ServiceID? {
        c.service(destination: Kit.ip(dst), proto: proto, destinationPort: port)
    }

    @Test func mostSpecificServiceWinsAndFallsBackByTransport() throws {
        let c = try classifier()
        #expect(service(c, "172.16.2.9", 17, 53) == dns)
        // The /24 is UDP 53 only: TCP 443 falls back to the /16, TCP 80 to the /12.
        #expect(service(c, "172.16.2.9", 6, 443) == web)
        #expect(service(c, "172.16.2.9", 6, 80) == any)
        #expect(service(c, "172.31.0.1", 17, 53) == any)
        #expect(service(c, "10.0.0.1", 6, 443) == nil)
    }

    @Test func portRangesAndLists() throws {
        let c = try classifier()
        #expect(service(c, "172.16.7.7", 6, 8000) == web)
        #expect(service(c, "172.16.7.7", 6, 8050) == web)
        #expect(service(c, "172.16.7.7", 6, 8080) == web)
        #expect(service(c, "172.16.7.7", 6, 8081) == any)
        #expect(service(c, "172.16.7.7", 17, 443) == any)
    }

    @Test func portSpecificRuleBeatsAnyAtTheSamePrefix() throws {
        let c = try classifier()
        #expect(service(c, "192.0.2.10", 6, 22) == ssh)
        #expect(service(c, "192.0.2.10", 6, 23) == alt)
        #expect(service(c, "192.0.2.10", 1, 0) == alt)
    }

    @Test func icmpHasNoPorts() throws {
        let c = try classifier()
        #expect(service(c, "198.51.100.1", 1, 0) == ping)
        #expect(service(c, "198.51.100.1", 1, 4711) == ping)
        #expect(service(c, "198.51.100.1", 6, 443) == nil)
        // A rule with ports never matches a protocol without ports.
        let portsOnIcmp = try Classifier(
            tenantPrefixes: [], services: [ServiceRule(service: any, prefixes: [Kit.prefix("203.0.113.0/24")],
                                                       transports: [TransportMatch(proto: 1, ports: [0...65535])], allowedTenants: [])])
        #expect(service(portsOnIcmp, "203.0.113.1", 1, 0) == nil)
    }

    @Test func tenantByPrefixThenInterface() throws {
        let c = try classifier()
        let lan3 = LANInterfaceID(rawValue: 3)
        #expect(c.tenant(source: Kit.ip("10.1.2.3"), interface: nil) == corp)
        #expect(c.tenant(source: Kit.ip("10.1.9.3"), interface: nil) == guest)
        #expect(c.tenant(source: Kit.ip("10.1.9.3"), interface: lan3) == guest)
        #expect(c.tenant(source: Kit.ip("192.168.0.1"), interface: lan3) == lab)
        #expect(c.tenant(source: Kit.ip("192.168.0.1"), interface: LANInterfaceID(rawValue: 2)) == nil)
        #expect(c.tenant(source: Kit.ip("192.168.0.1"), interface: LANInterfaceID(rawValue: 900)) == nil)
        #expect(c.tenant(source: Kit.ip("2001:db8:1::5"), interface: nil) == corp)
    }

    @Test func everyOutcomeIsCountedByReason() throws {
        let c = try classifier()
        var routes = routesToAll()
        routes.setRoute(dns, false)
        var n = ClassifierCounters()
        let lan3 = LANInterfaceID(rawValue: 3)
        func run(_ t: FiveTuple, _ i: LANInterfaceID? = nil) -> Classification {
            c.classify(t, interface: i, routes: routes, counters: &n)
        }
        #expect(run(Kit.tuple("10.1.2.3", 40000, "172.16.5.5", 443, 6)) == .allowed(corp, web))
        #expect(run(Kit.tuple("10.1.9.3", 40000, "172.16.5.5", 8001, 6)) == .allowed(guest, web))
        #expect(run(Kit.tuple("192.168.0.1", 5, "172.20.0.1", 9, 17), lan3) == .allowed(lab, any))
        #expect(run(Kit.tuple("2001:db8:1::5", 5, "2001:db8:2::9", 53, 17)) == .allowed(corp, v6))
        #expect(run(Kit.tuple("192.168.0.1", 40000, "172.16.5.5", 443, 6)) == .refused(.noTenant))
        #expect(run(Kit.tuple("10.1.2.3", 40000, "8.8.8.8", 53, 17)) == .refused(.noService))
        #expect(run(Kit.tuple("2001:db8:1::5", 5, "2001:db8:2::9", 53, 6)) == .refused(.noService))
        #expect(run(Kit.tuple("10.1.9.3", 40000, "172.20.0.1", 80, 6)) == .refused(.tenantNotAllowed))
        #expect(run(Kit.tuple("192.168.0.1", 40000, "172.16.5.5", 443, 6), lan3) == .refused(.tenantNotAllowed))
        #expect(run(Kit.tuple("10.1.2.3", 40000, "172.16.2.2", 53, 17)) == .refused(.noRoute))
        #expect(n.allowed == 4)
        #expect(n[.noTenant] == 1 && n[.noService] == 2 && n[.tenantNotAllowed] == 2 && n[.noRoute] == 1)
        var total = ClassifierCounters()
        total.add(n)
        total.add(n)
        #expect(total.noService == 4 && total.allowed == 8)
    }

    @Test func buildErrors() {
        #expect(throws: ClassifierBuildError.duplicateTenantPrefix(Kit.prefix("10.0.0.0/8"))) {
            try Classifier(tenantPrefixes: [(Kit.prefix("10.0.0.0/8"), corp), (Kit.prefix("10.0.0.0/8"), guest)], services: [])
        }
        #expect(throws: ClassifierBuildError.duplicateInterface(LANInterfaceID(rawValue: 1))) {
            try Classifier(tenantPrefixes: [], interfaceTenants: [(LANInterfaceID(rawValue: 1), corp), (LANInterfaceID(rawValue: 1), guest)],
                           services: [])
        }
    }

    @Test func nameTables() {
        var names = NameTable<TenantID>()
        #expect(names.add("corp") == TenantID(rawValue: 0))
        #expect(names.add("guest") == TenantID(rawValue: 1))
        #expect(names.add("corp") == nil)
        #expect(names.id(named: "guest") == TenantID(rawValue: 1))
        #expect(names.name(of: TenantID(rawValue: 0)) == "corp")
        #expect(names.name(of: TenantID(rawValue: 7)) == nil)
        #expect(NameTable<ServiceID>(["a", "b", "a"]) == nil)
        #expect(NameTable<ServiceID>(["a", "b"])?.count == 2)
    }
}

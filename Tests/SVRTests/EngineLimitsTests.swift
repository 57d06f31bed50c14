// `[limits]` per source address and per tenant, and waypoint ports beyond one per session,
// through the in-memory two-router network.

import Testing

@testable import SVR

@Suite struct EngineLimitsTests {
    /// A ⇄ B with `limits` (TOML lines of `[limits]`) on both routers.
    func net(_ limits: String, maxSessions: Int = 4096, encryption: String = "aes-cbc-hmac") throws -> Net {
        let k = Topo.Keys()
        let net = Net()
        let tail = "\n[limits]\n" + limits + "\n"
        try net.add("A", Topo.router("A", key: k.a, address: Topo.a, tenantPrefixes: "\"10.1.0.0/16\"")
            + Topo.peer("B", key: k.b, address: Topo.b, transport: "udp")
            + Topo.services(route: "peer = \"B\"", encryption: encryption, adaptive: false) + tail,
            waypoint: Topo.a, maxSessions: maxSessions)
        try net.add("B", Topo.router("B", key: k.b, address: Topo.b, tenantPrefixes: "")
            + Topo.peer("A", key: k.a, address: Topo.a, transport: "udp")
            + Topo.services(route: "local = true", encryption: encryption, adaptive: false) + tail,
            waypoint: Topo.b, maxSessions: maxSessions)
        return net
    }

    func query(_ source: String, _ port: UInt16) -> [UInt8] { Pkt.udp(source, port, Topo.dns, 53, [1, 2, 3]) }

    @Test func perSourceConcurrentLimitRefusesCountsAndRecoversOnExpiry() throws {
        let net = try net("max-sessions-per-source = 3\nmax-new-sessions-per-second-per-source = 0")
        for p in UInt16(1000)..<1003 { #expect(net.sendLAN("A", query(Topo.client, p)) == .toWAN(interface: 0)) }
        #expect(net.sendLAN("A", query(Topo.client, 1003)) == .drop(.sourceSessionLimit))
        #expect(net.sendLAN("A", query(Topo.client, 1004)) == .drop(.sourceSessionLimit))
        // Packets of the admitted sessions still flow; another host is not affected.
        #expect(net.sendLAN("A", query(Topo.client, 1001)) == .toWAN(interface: 0))
        #expect(net.sendLAN("A", query("10.1.1.11", 1003)) == .toWAN(interface: 0))
        let c = net.counters("A")
        #expect(c.drops(.sourceSessionLimit) == 2 && c.sessionsCreated == 4)
        #expect(net.lan["B"]?.count == 5)
        // Once the sessions expire, the source may open new ones.
        net.advance(seconds: 120)
        for _ in 0..<200 { net.tick() }
        #expect(net.sendLAN("A", query(Topo.client, 1003)) == .toWAN(interface: 0))
    }

    @Test func perSourceRateLimitAllowsABurstThenTheRate() throws {
        let net = try net("max-sessions-per-source = 0\nmax-new-sessions-per-second-per-source = 4")
        for p in UInt16(1000)..<1004 { #expect(net.sendLAN("A", query(Topo.client, p)) == .toWAN(interface: 0)) }
        #expect(net.sendLAN("A", query(Topo.client, 1004)) == .drop(.sourceRateLimit))
        #expect(net.sendLAN("A", query("10.1.1.11", 1004)) == .toWAN(interface: 0))
        net.advance(seconds: 0.3)  // one more session's worth (250 ms each)
        #expect(net.sendLAN("A", query(Topo.client, 1005)) == .toWAN(interface: 0))
        #expect(net.sendLAN("A", query(Topo.client, 1006)) == .drop(.sourceRateLimit))
        #expect(net.counters("A").drops(.sourceRateLimit) == 2)
    }

    @Test func perTenantLimitAlsoAtTheEgress() throws {
        let net = try net("max-sessions-per-source = 0\nmax-new-sessions-per-second-per-source = 0\nmax-sessions-per-tenant = 2")
        #expect(net.sendLAN("A", query(Topo.client, 1000)) == .toWAN(interface: 0))
        #expect(net.sendLAN("A", query("10.1.1.11", 1000)) == .toWAN(interface: 0))
        #expect(net.sendLAN("A", query("10.1.1.12", 1000)) == .drop(.tenantSessionLimit))
        #expect(net.counters("A").drops(.tenantSessionLimit) == 1)
        #expect(net.counters("B").sessionsCreated == 2)
    }

    @Test func defaultsAreInForceAndShownInTheConfig() throws {
        let config = try Config.parse(text: Topo.router("A", key: Topo.Keys().a, address: Topo.a, tenantPrefixes: "\"10.1.0.0/16\""),
                                      fileName: "a.toml")
        #expect(config.limits.maxSessionsPerSource == 50_000)
        #expect(config.limits.maxNewSessionsPerSecondPerSource == 5_000)
        #expect(config.limits.maxSessionsPerTenant == 0)
    }

    @Test func limitKeysParseAndRangesAreChecked() throws {
        let base = Topo.router("A", key: Topo.Keys().a, address: Topo.a, tenantPrefixes: "\"10.1.0.0/16\"")
        let c = try Config.parse(text: base + "\n[limits]\nmax-sessions-per-source = 0\nmax-new-sessions-per-second-per-source = 7\n"
                                 + "max-sessions-per-tenant = 9\n", fileName: "a.toml")
        #expect(c.limits.maxSessionsPerSource == 0 && c.limits.maxNewSessionsPerSecondPerSource == 7 && c.limits.maxSessionsPerTenant == 9)
        do {
            _ = try Config.parse(text: base + "\n[limits]\nmax-sessions-per-source = -1\n", fileName: "a.toml")
            Issue.record("a negative limit was accepted")
        } catch {
            #expect("\(error.errors)".contains("max-sessions-per-source"), "\(error.errors)")
        }
    }

    @Test func morePeerSessionsThanLocalWaypointPorts() throws {
        // 30,000 concurrent UDP sessions from one host to one peer: more than the 24,576 even
        // local ports, so local ports carry several sessions (with different remote ports).
        let n = 30_000
        let net = try net("max-sessions-per-source = 0\nmax-new-sessions-per-second-per-source = 0", maxSessions: 32_768,
                          encryption: "none")
        var refused = 0
        for i in 0..<n {
            let src = "10.1.\(2 + i / 60_000).10"
            if net.sendLAN("A", query(src, UInt16(1024 + i % 60_000))) != .toWAN(interface: 0) { refused += 1 }
        }
        #expect(refused == 0)
        #expect(net.counters("A").sessionsCreated == UInt64(n) && net.counters("B").sessionsCreated == UInt64(n))
        #expect(net.lan["B"]?.count == n)
        // Every waypoint tuple is distinct and local ports repeat.
        let tuples = Set(net.wire.filter { $0.from == "A" }.map { Array($0.bytes[20..<24]) })
        let locals = Set(net.wire.filter { $0.from == "A" }.map { Array($0.bytes[20..<22]) })
        #expect(tuples.count == n && locals.count == 24_576)
        // Replies find their sessions on both sides.
        #expect(net.sendLAN("B", Pkt.udp(Topo.dns, 53, "10.1.2.10", 1024 + 29_999, [7])) == .toWAN(interface: 0))
        #expect(net.lan["A"]?.count == 1)
    }
}

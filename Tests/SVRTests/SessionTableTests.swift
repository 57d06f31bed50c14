import SVR
import Testing

@Suite struct SessionTableTests {
    typealias Kit = SessionTestKit
    static let s = Kit.second
    let corp = TenantID(rawValue: 1)
    let web = ServiceID(rawValue: 2)
    let client = Kit.tuple("10.1.1.10", 40000, "172.16.2.20", 53, 17)

    func table(max: Int = 16, _ edit: (inout SessionTimeouts) -> Void = { _ in }) -> SessionTable {
        var t = SessionTimeouts()
        edit(&t)
        return SessionTable(SessionTableConfiguration(maxSessions: max, timeouts: t))
    }

    /// An ingress session for `original` over waypoints A → B with the given ports.
    func ingress(_ original: FiveTuple, local: UInt16 = 20000, remote: UInt16 = 30001, flags: TCPFlags = [],
                 lease: PortLease? = nil) -> NewSession {
        var n = NewSession(role: .ingress, tenant: corp, service: web, original: original)
        let wire = original.proto == 6 ? UInt8(6) : UInt8(17)
        n.wanFromDownstream = Kit.tuple("198.51.100.2", remote, "203.0.113.1", local, wire)
        n.tcpFlags = flags
        n.portLease = lease
        n.peer = 7
        n.keyHandle = 99
        return n
    }

    func lan(_ t: FiveTuple) -> SessionKey { SessionKey(t, side: .lan) }
    func wan(_ t: FiveTuple) -> SessionKey { SessionKey(t, side: .wan) }

    @Test func ingressIsFoundByLanOriginalAndWanReply() throws {
        let t = table()
        let i = try t.insert(ingress(client), now: 5 * Self.s)
        #expect(t.count == 1)
        #expect(t.lookup(lan(client)) == SessionHit(index: i, role: .lanOriginal))
        let fromPeer = Kit.tuple("198.51.100.2", 30001, "203.0.113.1", 20000, 17)
        #expect(t.lookup(wan(fromPeer)) == SessionHit(index: i, role: .wanFromDownstream))
        // Same tuples on the other side, or the other direction, are different keys.
        #expect(t.lookup(wan(client)) == nil)
        #expect(t.lookup(lan(client.reversed)) == nil)
        #expect(t.lookup(SessionKey(client, side: .lan, zone: 2)) == nil)
        let info = try #require(t.info(i))
        #expect(info.original == client && info.role == .ingress && info.peer == 7 && info.keyHandle == 99)
        #expect(info.waypointOutbound == Kit.tuple("203.0.113.1", 20000, "198.51.100.2", 30001, 17))
        #expect(info.uuid.version == 4 && info.uuid.bytes[8] & 0xC0 == 0x80)
        #expect(info.created == 5 * Self.s && info.state == .udp)
        #expect(t.tenant(i) == corp && t.service(i) == web && t.peer(i) == 7 && t.keyHandle(i) == 99)
        #expect(t.key(i, .wanFromDownstream) == wan(fromPeer) && t.key(i, .lanReply) == nil)
    }

    @Test func egressIsFoundByWanForwardAndLanReply() throws {
        let t = table()
        var n = NewSession(role: .egress, tenant: corp, service: web, original: client)
        let fromPeer = Kit.tuple("203.0.113.1", 20000, "198.51.100.2", 30001, 17)
        n.wanFromUpstream = fromPeer
        let uuid = SessionUUID(high: 0x1234_5678_9ABC_4DEF, low: 0x8000_0000_0000_0001)
        n.uuid = uuid
        let i = try t.insert(n, now: 0)
        #expect(t.lookup(wan(fromPeer)) == SessionHit(index: i, role: .wanFromUpstream))
        #expect(t.lookup(lan(client.reversed)) == SessionHit(index: i, role: .lanReply))
        // The original tuple is kept for metadata and display but is not a key at the egress.
        #expect(t.lookup(lan(client)) == nil)
        #expect(t.uuid(i) == uuid)
        #expect(t.info(i)?.waypointOutbound == fromPeer.reversed)

        // With source NAT, replies come back to the NAT address instead.
        var m = NewSession(role: .egress, tenant: corp, service: web, original: Kit.tuple("10.1.1.11", 1, "172.16.2.20", 53, 17))
        m.lanReply = Kit.tuple("172.16.2.20", 53, "172.16.2.1", 61000, 17)
        m.wanFromUpstream = Kit.tuple("203.0.113.1", 20002, "198.51.100.2", 30003, 17)
        let j = try t.insert(m, now: 0)
        #expect(t.lookup(lan(Kit.tuple("172.16.2.20", 53, "172.16.2.1", 61000, 17)))?.index == j)
    }

    @Test func transitAndIPv6Keys() throws {
        let t = table()
        let original = Kit.tuple("2001:db8:1::10", 40000, "2001:db8:2::20", 443, 6)
        var n = NewSession(role: .transit, tenant: corp, service: web, original: original)
        let up = Kit.tuple("2001:db8:a::1", 20000, "2001:db8:b::1", 30001, 6)
        let down = Kit.tuple("2001:db8:c::1", 30003, "2001:db8:b::1", 20002, 6)
        n.wanFromUpstream = up
        n.wanFromDownstream = down
        let i = try t.insert(n, now: 0)
        #expect(t.lookup(wan(up))?.role == .wanFromUpstream)
        #expect(t.lookup(wan(down))?.role == .wanFromDownstream)
        #expect(t.lookup(lan(original)) == nil)
        #expect(t.info(i)?.original == original)
        #expect(t.key(i, .wanFromUpstream)?.tuple == up)
    }

    @Test func duplicateKeysAndFullTableAreRefusedAndCounted() throws {
        let t = table(max: 3)
        let path = t.ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"))
        _ = try t.insert(ingress(client), now: 0)
        let p = try t.allocatePorts(path: path, wireProtocol: 17)
        let lease = PortLease(path: path, wireProtocol: 17, localPort: p.local)
        #expect(throws: SessionRefusal.duplicateKey(.lanOriginal)) {
            try t.insert(ingress(client, local: p.local, remote: p.remote, lease: lease), now: 0)
        }
        // The refused session's ports went back.
        #expect(t.ports.inUse(path: path, wireProtocol: 17) == 0)
        #expect(throws: SessionRefusal.duplicateKey(.wanFromDownstream)) {
            try t.insert(ingress(Kit.tuple("10.1.1.10", 40001, "172.16.2.20", 53, 17)), now: 0)
        }
        _ = try t.insert(ingress(Kit.tuple("10.1.1.10", 40002, "172.16.2.20", 53, 17), local: 20002), now: 0)
        _ = try t.insert(ingress(Kit.tuple("10.1.1.10", 40003, "172.16.2.20", 53, 17), local: 20004), now: 0)
        #expect(throws: SessionRefusal.tableFull) {
            try t.insert(ingress(Kit.tuple("10.1.1.10", 40004, "172.16.2.20", 53, 17), local: 20006), now: 0)
        }
        #expect(t.count == 3)
        #expect(t.counters.inserted == 3 && t.counters.refusedDuplicateKey == 2 && t.counters.refusedTableFull == 1)
    }

    @Test func tcpStateMachine() throws {
        let t = table()
        let syn = Kit.tuple("10.1.1.10", 40000, "172.16.2.20", 443, 6)
        let i = try t.insert(ingress(syn, flags: .syn), now: 0)
        let fwd = SessionHit(index: i, role: .lanOriginal)
        let rev = SessionHit(index: i, role: .wanFromDownstream)
        #expect(t.state(i) == .tcpSynSent)
        #expect(t.recordPacket(fwd, bytes: 60, tcpFlags: .syn, now: 1) == .tcpSynSent)
        #expect(t.recordPacket(rev, bytes: 60, tcpFlags: .ack, now: 1) == .tcpSynSent)
        #expect(t.recordPacket(rev, bytes: 60, tcpFlags: [.syn, .ack], now: 2) == .tcpSynReceived)
        #expect(t.recordPacket(fwd, bytes: 52, tcpFlags: .ack, now: 3) == .tcpEstablished)
        #expect(t.recordPacket(rev, bytes: 1400, tcpFlags: [.ack, .psh], now: 4) == .tcpEstablished)
        #expect(t.recordPacket(rev, bytes: 52, tcpFlags: [.fin, .ack], now: 5) == .tcpFinWait)
        var info = try #require(t.info(i))
        #expect(!info.finForward && info.finReverse)
        #expect(t.recordPacket(rev, bytes: 52, tcpFlags: [.fin, .ack], now: 6) == .tcpFinWait)
        #expect(t.recordPacket(fwd, bytes: 52, tcpFlags: [.fin, .ack], now: 7) == .tcpClosed)
        #expect(t.recordPacket(fwd, bytes: 52, tcpFlags: .ack, now: 8) == .tcpClosed)
        info = try #require(t.info(i))
        #expect(info.finForward && info.finReverse)
        #expect(info.packetsForward == 4 && info.packetsReverse == 5)
        #expect(info.bytesForward == 60 + 52 * 3 && info.bytesReverse == 60 * 2 + 1400 + 52 * 2)
        #expect(info.lastSeen == 8)

        let j = try t.insert(ingress(Kit.tuple("10.1.1.10", 40001, "172.16.2.20", 443, 6), local: 20002, flags: .syn), now: 0)
        #expect(t.recordPacket(SessionHit(index: j, role: .wanFromDownstream), bytes: 40, tcpFlags: [.rst, .ack], now: 1) == .tcpReset)
        // A flow picked up mid-stream starts established; a first RST starts reset.
        let k = try t.insert(ingress(Kit.tuple("10.1.1.10", 40002, "172.16.2.20", 443, 6), local: 20004, flags: .ack), now: 0)
        #expect(t.state(k) == .tcpEstablished)
        #expect(SessionState.initial(proto: 6, tcpFlags: .rst) == .tcpReset)
        #expect(SessionState.initial(proto: 1, tcpFlags: []) == .icmp)
        #expect(SessionState.initial(proto: 47, tcpFlags: []) == .other)
    }

    @Test func perStateTimeoutsWithInjectedClock() throws {
        let t = table { $0.tcpEstablished = 100; $0.tcpReset = 2; $0.tcpHandshake = 5 }
        let s = Self.s
        let est = try t.insert(ingress(Kit.tuple("10.1.1.10", 40000, "172.16.2.20", 443, 6), flags: .ack), now: 0)
        let rst = try t.insert(ingress(Kit.tuple("10.1.1.10", 40001, "172.16.2.20", 443, 6), local: 20002, flags: .ack), now: 0)
        let syn = try t.insert(ingress(Kit.tuple("10.1.1.10", 40002, "172.16.2.20", 443, 6), local: 20004, flags: .syn), now: 0)
        #expect(t.expire(now: 4 * s) == 0)
        var ended: [SessionInfo] = []
        #expect(t.expire(now: 5 * s) { ended.append($0) } == 1)
        #expect(ended.map(\.index) == [syn] && ended.first?.end == .idleTimeout)
        // RST at 10 s: the established timeout no longer applies, the reset one does.
        t.recordPacket(SessionHit(index: rst, role: .lanOriginal), bytes: 40, tcpFlags: .rst, now: 10 * s)
        #expect(t.expire(now: 11 * s) == 0)
        #expect(t.expire(now: 12 * s) == 1 && t.info(rst) == nil)
        // Traffic at 60 s pushes the established session to 160 s.
        t.recordPacket(SessionHit(index: est, role: .lanOriginal), bytes: 40, tcpFlags: .ack, now: 60 * s)
        #expect(t.expire(now: 100 * s) == 0)
        #expect(t.expire(now: 159 * s) == 0 && t.info(est) != nil)
        #expect(t.expire(now: 160 * s) == 1 && t.info(est) == nil)
        #expect(t.count == 0 && t.counters.expired == 3)
        #expect(t.lookup(lan(Kit.tuple("10.1.1.10", 40000, "172.16.2.20", 443, 6))) == nil)
    }

    @Test func udpAndIcmpIdleExpiry() throws {
        let t = table { $0.udp = 30; $0.icmp = 2 }
        let s = Self.s
        let udp = try t.insert(ingress(client), now: 0)
        let ping = try t.insert(ingress(Kit.tuple("10.1.1.10", 7, "172.16.2.20", 0, 1), local: 20002), now: 0)
        #expect(t.state(ping) == .icmp)
        #expect(t.expire(now: 1 * s) == 0)
        #expect(t.expire(now: 2 * s) == 1 && t.info(ping) == nil && t.info(udp) != nil)
        t.recordPacket(SessionHit(index: udp, role: .wanFromDownstream), bytes: 100, now: 29 * s)
        #expect(t.expire(now: 30 * s) == 0)
        #expect(t.expire(now: 58 * s) == 0)
        #expect(t.expire(now: 59 * s) == 1)
    }

    @Test func expiryExaminesAtMostBudgetPerCall() throws {
        let t = table(max: 1000) { $0.udp = 10 }
        for n in 0..<500 {
            _ = try t.insert(ingress(Kit.tuple("10.1.1.10", UInt16(n), "172.16.2.20", 53, 17), local: UInt16(n)), now: 0)
        }
        var calls = 0
        while t.count > 0 {
            let before = t.count
            let n = t.expire(now: 10 * Self.s, budget: 16)
            #expect(n <= 16 && before - t.count == n)
            calls += 1
            if calls > 1000 { break }
        }
        #expect(t.count == 0 && calls >= 500 / 16)
    }

    @Test func clockJumpOfDaysStillExpiresEverything() throws {
        let t = table(max: 64) { $0.udp = 5000; $0.tcpEstablished = 3 * 86400 }
        _ = try t.insert(ingress(client), now: 0)
        _ = try t.insert(ingress(Kit.tuple("10.1.1.10", 1, "172.16.2.20", 2, 6), local: 20002), now: 0)
        var total = 0
        for _ in 0..<1000 where t.count > 0 { total += t.expire(now: 2 * 86400 * Self.s, budget: 64) }
        #expect(total == 1 && t.count == 1)
        for _ in 0..<1000 where t.count > 0 { total += t.expire(now: 4 * 86400 * Self.s, budget: 64) }
        #expect(total == 2 && t.count == 0)
    }

    @Test func expiryReleasesPortsForReuse() throws {
        let t = table { $0.udp = 10 }
        let path = t.ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"),
                                   space: .ranges(local: 40000...40000, remote: 50000...50001))
        func open(_ sport: UInt16, now: UInt64) throws(SessionRefusal) -> SessionIndex {
            let p = try t.allocatePorts(path: path, wireProtocol: 17)
            let lease = PortLease(path: path, wireProtocol: 17, localPort: p.local)
            return try t.insert(ingress(Kit.tuple("10.1.1.10", sport, "172.16.2.20", 53, 17), local: p.local, remote: p.remote, lease: lease), now: now)
        }
        // One local port, two remote ports: two sessions share local port 40000.
        let a = try open(1, now: 0)
        let b = try open(2, now: 5 * Self.s)
        #expect(t.info(b)?.waypointOutbound?.sourcePort == 40000 && t.info(b)?.waypointOutbound?.destinationPort == 50001)
        #expect(throws: SessionRefusal.portsExhausted) { try open(3, now: 5 * Self.s) }
        #expect(t.counters.refusedPortsExhausted == 1)
        var reported: [SessionInfo] = []
        #expect(t.expire(now: 10 * Self.s) { reported.append($0) } == 1)
        #expect(reported.first?.index == a && reported.first?.portLease?.localPort == 40000)
        #expect(t.ports.inUse(path: path, wireProtocol: 17) == 1)
        let c = try open(3, now: 10 * Self.s)
        #expect(t.info(c)?.portLease == PortLease(path: path, wireProtocol: 17, localPort: 40000))
        #expect(t.info(c)?.waypointOutbound?.sourcePort == 40000 && t.info(c)?.waypointOutbound?.destinationPort == 50000)
        // Explicit removal releases too.
        #expect(t.remove(c)?.end == .removed)
        #expect(t.remove(c) == nil)
        #expect(t.ports.inUse(path: path, wireProtocol: 17) == 1 && t.counters.removed == 1)
    }

    @Test func aLocalPortCarriesManySessionsAndTuplesInUseAreSkipped() throws {
        let t = table(max: 64)
        let path = t.ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"),
                                   space: .ranges(local: 40000...40003, remote: 50000...50009))
        // A session the peer opened toward us holds 198.51.100.2:50001 → 203.0.113.1:40001: our
        // walk would pick that pair second, and must skip it.
        var up = NewSession(role: .egress, tenant: corp, service: web, original: Kit.tuple("10.9.9.9", 1, "10.1.1.1", 2, 17))
        up.wanFromUpstream = Kit.tuple("198.51.100.2", 50001, "203.0.113.1", 40001, 17)
        _ = try t.insert(up, now: 0)
        var seen = Set<String>()
        for n in 0..<39 {
            let p = try t.allocatePorts(path: path, wireProtocol: 17)
            #expect(!(p.local == 40001 && p.remote == 50001), "the peer's tuple was handed out")
            let lease = PortLease(path: path, wireProtocol: 17, localPort: p.local)
            let i = try t.insert(ingress(Kit.tuple("10.1.1.10", UInt16(1000 + n), "172.16.2.20", 53, 17), local: p.local,
                                         remote: p.remote, lease: lease), now: 0)
            // Each session is found by its own full waypoint tuple.
            let back = Kit.tuple("198.51.100.2", p.remote, "203.0.113.1", p.local, 17)
            #expect(t.lookup(wan(back)) == SessionHit(index: i, role: .wanFromDownstream))
            seen.insert("\(p.local)-\(p.remote)")
        }
        #expect(seen.count == 39)
        #expect(t.ports.inUse(path: path, wireProtocol: 17) == 39)
        // 4 × 10 pairs, one held by the peer, 39 by us: nothing left.
        #expect(throws: SessionRefusal.portsExhausted) { try t.allocatePorts(path: path, wireProtocol: 17) }
    }

    // MARK: Limits

    func limited(_ limits: SessionLimits, max: Int = 256) -> SessionTable {
        var t = SessionTimeouts()
        t.udp = 10
        return SessionTable(SessionTableConfiguration(maxSessions: max, timeouts: t, limits: limits))
    }

    /// An ingress UDP session of `source`:`port` (unique waypoint tuple per call).
    func flow(_ source: String, _ port: UInt16, tenant: TenantID? = nil) -> NewSession {
        var n = ingress(Kit.tuple(source, port, "172.16.2.20", 53, 17), local: port, remote: 30001)
        n.wanFromDownstream = Kit.tuple("198.51.100.2", 30001, "203.0.113.1", port, 17)
        n.wanFromDownstream!.source = Kit.ip("198.51.\(Int(port) / 256 % 256).\(Int(port) % 256)")
        if let tenant { n.tenant = tenant }
        return n
    }

    @Test func perSourceLimitRefusesCountsAndIsReleasedByExpiryAndRemoval() throws {
        let t = limited(SessionLimits(maxPerSource: 3))
        let a = try t.insert(flow("10.1.1.10", 1), now: 0)
        _ = try t.insert(flow("10.1.1.10", 2), now: 0)
        _ = try t.insert(flow("10.1.1.10", 3), now: 5 * Self.s)
        #expect(throws: SessionRefusal.sourceLimit) { try t.insert(flow("10.1.1.10", 4), now: 5 * Self.s) }
        // Another source, and the same address under another tenant, are counted apart.
        _ = try t.insert(flow("10.1.1.11", 5), now: 5 * Self.s)
        _ = try t.insert(flow("10.1.1.10", 6, tenant: TenantID(rawValue: 9)), now: 5 * Self.s)
        #expect(t.counters.refusedSourceLimit == 1 && t.count == 5)
        #expect(t.sessions(tenant: corp, source: Kit.ip("10.1.1.10")) == 3)
        #expect(t.limitedSources == 3)
        // A refusal for another reason does not count against the source.
        #expect(throws: SessionRefusal.duplicateKey(.lanOriginal)) { try t.insert(flow("10.1.1.11", 5), now: 5 * Self.s) }
        #expect(t.sessions(tenant: corp, source: Kit.ip("10.1.1.11")) == 1)
        // Removal gives one back ...
        t.remove(a)
        _ = try t.insert(flow("10.1.1.10", 4), now: 5 * Self.s)
        #expect(throws: SessionRefusal.sourceLimit) { try t.insert(flow("10.1.1.10", 7), now: 5 * Self.s) }
        // ... and so does expiry (UDP 10 s): everything idle since 5 s is gone at 15 s.
        #expect(t.expire(now: 16 * Self.s, budget: 10_000) == 5)
        #expect(t.sessions(tenant: corp, source: Kit.ip("10.1.1.10")) == 0 && t.limitedSources == 0)
        for p in UInt16(10)..<13 { _ = try t.insert(flow("10.1.1.10", p), now: 16 * Self.s) }
        #expect(t.counters.refusedSourceLimit == 2)
    }

    @Test func perSourceRateIsABurstThenTheRate() throws {
        let t = limited(SessionLimits(newPerSecondPerSource: 10))
        for p in UInt16(1)...10 { _ = try t.insert(flow("10.1.1.10", p), now: 0) }
        #expect(throws: SessionRefusal.sourceRateLimit) { try t.insert(flow("10.1.1.10", 11), now: 0) }
        _ = try t.insert(flow("10.1.1.12", 11), now: 0)
        // 100 ms buys one more session.
        #expect(throws: SessionRefusal.sourceRateLimit) { try t.insert(flow("10.1.1.10", 12), now: Self.s / 20) }
        _ = try t.insert(flow("10.1.1.10", 13), now: Self.s / 10)
        #expect(throws: SessionRefusal.sourceRateLimit) { try t.insert(flow("10.1.1.10", 14), now: Self.s / 10) }
        // After a second's pause, a full burst again.
        for p in UInt16(20)..<30 { _ = try t.insert(flow("10.1.1.10", p), now: 2 * Self.s) }
        #expect(t.counters.refusedSourceRate == 3)
    }

    @Test func perTenantLimit() throws {
        let t = limited(SessionLimits(maxPerTenant: 2))
        let a = try t.insert(flow("10.1.1.10", 1), now: 0)
        _ = try t.insert(flow("10.1.1.11", 2), now: 0)
        #expect(throws: SessionRefusal.tenantLimit) { try t.insert(flow("10.1.1.12", 3), now: 0) }
        _ = try t.insert(flow("10.1.1.12", 4, tenant: TenantID(rawValue: 2)), now: 0)
        #expect(t.sessions(tenant: corp) == 2 && t.counters.refusedTenantLimit == 1)
        t.remove(a)
        _ = try t.insert(flow("10.1.1.12", 3), now: 0)
        #expect(t.sessions(tenant: corp) == 2)
    }

    @Test func refusedByALimitReleasesThePortLease() throws {
        let t = limited(SessionLimits(maxPerSource: 1))
        let path = t.ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"))
        for port in UInt16(1)...2 {
            let p = try t.allocatePorts(path: path, wireProtocol: 17)
            var n = ingress(Kit.tuple("10.1.1.10", port, "172.16.2.20", 53, 17), local: p.local, remote: p.remote,
                            lease: PortLease(path: path, wireProtocol: 17, localPort: p.local))
            n.tcpFlags = []
            if port == 1 { _ = try t.insert(n, now: 0) } else {
                #expect(throws: SessionRefusal.sourceLimit) { try t.insert(n, now: 0) }
            }
        }
        #expect(t.ports.inUse(path: path, wireProtocol: 17) == 1)
    }

    /// Many sources coming and going against a dictionary: exercises the source hash's
    /// backward-shift deletion (a small table, so clusters are long).
    @Test func sourceCountersAgreeWithDictionaryUnderChurn() throws {
        let t = limited(SessionLimits(maxPerSource: 4), max: 512)
        var rng = Kit.Seeded(7)
        var live: [(SessionIndex, String)] = []
        var model: [String: Int] = [:]
        var port: UInt16 = 1
        for step in 0..<20_000 {
            if live.count < 480 && (rng.next() % 2 == 0 || live.isEmpty) {
                let src = "10.2.\(rng.next() % 4).\(rng.next() % 64)"
                port = port == 65535 ? 1 : port + 1
                do {
                    let i = try t.insert(flow(src, port), now: 0)
                    live.append((i, src))
                    model[src, default: 0] += 1
                    #expect(model[src]! <= 4)
                } catch {
                    #expect(error == .sourceLimit && model[src] == 4)
                }
            } else {
                let (i, src) = live.remove(at: Int(rng.next() % UInt64(live.count)))
                t.remove(i)
                model[src]! -= 1
                if model[src] == 0 { model[src] = nil }
            }
            if step % 499 == 0 {
                for (src, n) in model { #expect(t.sessions(tenant: corp, source: Kit.ip(src)) == n) }
                #expect(t.limitedSources == model.count)
            }
        }
    }

    /// Random inserts and removals against a dictionary: exercises backward-shift deletion.
    @Test func churnAgreesWithDictionary() throws {
        let t = table(max: 4096)
        var rng = Kit.Seeded(42)
        var model: [SessionKey: SessionIndex] = [:]
        var live: [(SessionIndex, SessionKey, SessionKey)] = []
        var used = Set<UInt32>()
        for step in 0..<20000 {
            if live.count < 3000 && (rng.next() % 3 != 0 || live.isEmpty) {
                let a = UInt32(truncatingIfNeeded: rng.next() % 64)
                let port = UInt16(truncatingIfNeeded: rng.next())
                let key = UInt32(a) << 16 | UInt32(port)
                guard used.insert(key).inserted else { continue }
                let o = FiveTuple(source: .v4(IPv4Address(0x0A00_0000 | a)), destination: .v4(IPv4Address(0xAC10_0001)),
                                  sourcePort: port, destinationPort: 53, proto: 17)
                var n = ingress(o)
                n.wanFromDownstream = FiveTuple(source: .v4(IPv4Address(0xC633_6402)), destination: .v4(IPv4Address(0xCB00_7101)),
                                                sourcePort: UInt16(a), destinationPort: port, proto: 17)
                let i = try t.insert(n, now: 0)
                let lk = SessionKey(o, side: .lan)
                let wk = SessionKey(n.wanFromDownstream!, side: .wan)
                model[lk] = i
                model[wk] = i
                live.append((i, lk, wk))
            } else {
                let victim = live.remove(at: Int(rng.next() % UInt64(live.count)))
                t.remove(victim.0)
                model[victim.1] = nil
                model[victim.2] = nil
                used.remove(UInt32(victim.1.sourceLow & 0xFF) << 16 | UInt32(victim.1.sourcePort))
            }
            if step % 997 == 0 {
                for (k, i) in model { #expect(t.lookup(k)?.index == i) }
            }
        }
        for (i, lk, wk) in live {
            #expect(t.lookup(lk) == SessionHit(index: i, role: .lanOriginal))
            #expect(t.lookup(wk) == SessionHit(index: i, role: .wanFromDownstream))
        }
        #expect(t.count == live.count && t.indexLoad.used == live.count * 2)
        var seen = 0
        t.forEach { _ in seen += 1 }
        #expect(seen == live.count)
    }

    @Test func uuidsAreRandomVersion4() throws {
        let t = table(max: 64)
        var uuids = Set<SessionUUID>()
        for n in 0..<64 {
            let i = try t.insert(ingress(Kit.tuple("10.1.1.10", UInt16(n), "172.16.2.20", 53, 17), local: UInt16(n)), now: 0)
            let u = t.uuid(i)
            #expect(u.version == 4 && u.low >> 62 == 2)
            uuids.insert(u)
        }
        #expect(uuids.count == 64)
        #expect(SessionUUID(high: 0x0011_2233_4455_6677, low: 0x8899_AABB_CCDD_EEFF).description == "00112233-4455-6677-8899-aabbccddeeff")
    }

    @Test func sessionsAreFoundByUUIDAndUUIDsAreUnique() throws {
        let t = table()
        let i = try t.insert(ingress(client), now: 0)
        #expect(t.lookup(uuid: t.uuid(i)) == i)
        var n = NewSession(role: .egress, tenant: corp, service: web, original: Kit.tuple("10.1.1.12", 1, "172.16.2.20", 53, 17))
        n.wanFromUpstream = Kit.tuple("203.0.113.1", 20010, "198.51.100.2", 30011, 17)
        n.uuid = t.uuid(i)
        #expect(throws: SessionRefusal.duplicateUUID) { try t.insert(n, now: 0) }
        n.uuid = SessionUUID(high: 1, low: 2)
        let j = try t.insert(n, now: 0)
        #expect(t.lookup(uuid: SessionUUID(high: 1, low: 2)) == j)
        t.remove(j)
        #expect(t.lookup(uuid: SessionUUID(high: 1, low: 2)) == nil)
        #expect(t.lookup(uuid: t.uuid(i)) == i)
    }

    @Test func migrationMovesTheWaypointKeyAndThePorts() throws {
        let t = table()
        let pathA = t.ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"))
        let pathB = t.ports.addPath(local: Kit.ip("192.0.2.1"), remote: Kit.ip("198.51.100.9"))
        let pa = try t.allocatePorts(path: pathA, wireProtocol: 17)
        let i = try t.insert(ingress(client, local: pa.local, remote: pa.remote,
                                     lease: PortLease(path: pathA, wireProtocol: 17, localPort: pa.local)), now: 0)
        t.setMetadataAcknowledged(i, true)
        #expect(t.metadataAcknowledged(i) && t.info(i)?.metadataAcknowledged == true)
        let oldKey = try #require(t.key(i, .wanFromDownstream))

        // Failover to path B: new ports, new reverse waypoint tuple, metadata again.
        let pb = try t.allocatePorts(path: pathB, wireProtocol: 17)
        let newTuple = Kit.tuple("198.51.100.9", pb.remote, "192.0.2.1", pb.local, 17)
        try t.replaceKey(i, .wanFromDownstream, with: newTuple, lease: PortLease(path: pathB, wireProtocol: 17, localPort: pb.local))
        #expect(t.lookup(oldKey) == nil)
        #expect(t.lookup(wan(newTuple)) == SessionHit(index: i, role: .wanFromDownstream))
        #expect(t.lookup(lan(client)) == SessionHit(index: i, role: .lanOriginal))
        #expect(t.ports.inUse(path: pathA, wireProtocol: 17) == 0 && t.ports.inUse(path: pathB, wireProtocol: 17) == 1)
        #expect(!t.metadataAcknowledged(i))
        #expect(t.info(i)?.waypointOutbound == newTuple.reversed)
        #expect(t.indexLoad.used == 2)

        // A tuple owned by another session is refused, counted, and the offered lease freed.
        let other = try t.insert(ingress(Kit.tuple("10.1.1.10", 40001, "172.16.2.20", 53, 17), local: 20002), now: 0)
        let pc = try t.allocatePorts(path: pathB, wireProtocol: 17)
        #expect(throws: SessionRefusal.duplicateKey(.wanFromDownstream)) {
            try t.replaceKey(other, .wanFromDownstream, with: newTuple, lease: PortLease(path: pathB, wireProtocol: 17, localPort: pc.local))
        }
        #expect(t.ports.inUse(path: pathB, wireProtocol: 17) == 1 && t.counters.refusedDuplicateKey == 1)
        t.remove(i)
        #expect(t.ports.inUse(path: pathB, wireProtocol: 17) == 0)
        #expect(throws: SessionRefusal.noSuchSession) { try t.replaceKey(i, .wanFromDownstream, with: newTuple, lease: nil) }
    }

    @Test func keysFromHeaderFieldsEqualKeysFromTuples() throws {
        let v4 = Kit.tuple("10.1.1.10", 40000, "172.16.2.20", 443, 6)
        let raw = SessionKey(v4Source: 0x0A01_010A, v4Destination: 0xAC10_0214, sourcePort: 40000, destinationPort: 443,
                             proto: 6, side: .wan, zone: 0)
        #expect(raw == SessionKey(v4, side: .wan))
        #expect(raw.tuple == v4 && raw.side == .wan && raw.zone == 0)
        #expect(raw.reversed == SessionKey(v4.reversed, side: .wan) && raw.reversed.reversed == raw)
        let v6 = Kit.tuple("2001:db8:1::10", 5, "2001:db8:2::20", 53, 17)
        let raw6 = SessionKey(v6Source: IPv6Address("2001:db8:1::10")!, v6Destination: IPv6Address("2001:db8:2::20")!,
                              sourcePort: 5, destinationPort: 53, proto: 17, side: .lan, zone: 3)
        #expect(raw6 == SessionKey(v6, side: .lan, zone: 3) && raw6.tuple == v6 && raw6.zone == 3)
        // An IPv4 address and the IPv6 address with the same low bits never collide.
        let low = SessionKey(v6Source: IPv6Address(high: 0, low: 0x0A01_010A), v6Destination: IPv6Address(high: 0, low: 0xAC10_0214),
                             sourcePort: 40000, destinationPort: 443, proto: 6, side: .wan)
        #expect(low != raw && low.source.isIPv4 == false)
    }

    /// Two routers' tables wired by hand the way the engine will: what the ingress sends on
    /// the waypoint tuple is what the egress registers, and the egress's replies hit the
    /// ingress's reverse key.
    @Test func ingressAndEgressTablesAgreeOnTheWaypointTuple() throws {
        let a = table()
        let b = table()
        let classifier = try Classifier(
            tenantPrefixes: [(Kit.prefix("10.1.0.0/16"), corp)],
            services: [ServiceRule(service: web, prefixes: [Kit.prefix("172.16.2.0/24")], allowedTenants: [corp])])
        var routes = ServiceRouteTable(serviceCount: 3)
        routes.setRoute(web, true)
        var counters = ClassifierCounters()
        let syn = Kit.tuple("10.1.1.10", 40000, "172.16.2.20", 443, 6)

        // Router A (ingress): miss, classify, ports, insert.
        #expect(a.lookup(lan(syn)) == nil)
        guard case .allowed(let tenant, let service) = classifier.classify(syn, interface: nil, routes: routes, counters: &counters) else {
            Issue.record("not allowed")
            return
        }
        let path = a.ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"))
        let ports = try a.allocatePorts(path: path, wireProtocol: 6)
        var n = NewSession(role: .ingress, tenant: tenant, service: service, original: syn)
        n.wanFromDownstream = Kit.tuple("198.51.100.2", ports.remote, "203.0.113.1", ports.local, 6)
        n.portLease = PortLease(path: path, wireProtocol: 6, localPort: ports.local)
        n.tcpFlags = .syn
        let ia = try a.insert(n, now: 0)
        let sent = try #require(a.key(ia, .wanFromDownstream)?.reversed)

        // Router B (egress): the packet arrives on its waypoint with metadata naming the session.
        var m = NewSession(role: .egress, tenant: tenant, service: service, original: syn)
        m.wanFromUpstream = sent.tuple
        m.uuid = a.uuid(ia)
        m.tcpFlags = .syn
        let ib = try b.insert(m, now: 0)
        #expect(b.lookup(sent)?.index == ib)
        // The server's SYN-ACK on B's LAN, then B's reply over the waypoints, then A.
        let synAck = try #require(b.lookup(lan(syn.reversed)))
        #expect(synAck.role == .lanReply)
        #expect(b.recordPacket(synAck, bytes: 60, tcpFlags: [.syn, .ack], now: 1) == .tcpSynReceived)
        let back = try #require(b.key(ib, .wanFromUpstream)?.reversed)
        let atA = try #require(a.lookup(back))
        #expect(atA == SessionHit(index: ia, role: .wanFromDownstream))
        #expect(a.recordPacket(atA, bytes: 60, tcpFlags: [.syn, .ack], now: 1) == .tcpSynReceived)
        #expect(a.uuid(ia) == b.uuid(ib) && back.sourcePort % 2 == 1 && back.destinationPort % 2 == 0)
    }

    @Test func prefaultedTableWorksTheSame() throws {
        let t = SessionTable(SessionTableConfiguration(maxSessions: 10_000, prefault: true))
        for n in 0..<1000 {
            _ = try t.insert(ingress(Kit.tuple("10.1.1.10", UInt16(n), "172.16.2.20", 53, 17), local: UInt16(n)), now: 0)
        }
        #expect(t.count == 1000 && t.capacity == 10_000)
        #expect(t.lookup(lan(Kit.tuple("10.1.1.10", 999, "172.16.2.20", 53, 17))) != nil)
    }
}

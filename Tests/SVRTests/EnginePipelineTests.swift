// End-to-end tests of the session engine over the in-memory network (EngineTestSupport).

import Testing
import TestSupport

@testable import SVR

let marker: [UInt8] = Array("MARKER-0123456789-MARKER".utf8)

@Suite struct EnginePipelineTests {
    @Test(arguments: ["native", "udp"], ["aes-cbc-hmac", "aes-gcm", "none"])
    func udpRequestResponse(transport: String, encryption: String) throws {
        let net = try Topo.twoRouters(transport: transport, encryption: encryption)
        let query = Pkt.udp(Topo.client, 40000, Topo.dns, 53, marker + [1, 2, 3])
        #expect(net.sendLAN("A", query) == .toWAN(interface: 0))
        #expect(net.lan["B"]?.first == query)
        #expect(Pkt.checksumsValid(net.wire[0].bytes))
        let answer = Pkt.udp(Topo.dns, 53, Topo.client, 40000, marker + [9])
        #expect(net.sendLAN("B", answer) == .toWAN(interface: 0))
        #expect(net.lan["A"]?.first == answer)
        // Wire tuple: A's even port → B's odd port.
        let w = net.wire[0].bytes
        let sp = UInt16(w[20]) << 8 | UInt16(w[21]), dp = UInt16(w[22]) << 8 | UInt16(w[23])
        #expect(sp % 2 == 0 && dp % 2 == 1)
        #expect(net.wire[1].bytes[20...23] == w[22...23] + w[20...21])
        #expect(net.drops.isEmpty)
    }

    @Test(arguments: ["native", "udp"])
    func tcpHandshakeDataFin(transport: String) throws {
        let net = try Topo.twoRouters(transport: transport, encryption: "aes-cbc-hmac", adaptive: false)
        let c = Topo.client, s = Topo.web
        // MSS 1000: below what the path allows, so it crosses unchanged (clamping: EngineMTUTests).
        let opts: [UInt8] = [2, 4, 3, 0xe8, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]
        let flows: [(from: String, pkt: [UInt8])] = [
            ("A", Pkt.tcp(c, 51000, s, 80, flags: 0x02, seq: 1000, options: opts)),
            ("B", Pkt.tcp(s, 80, c, 51000, flags: 0x12, seq: 5000, ack: 1001, options: opts)),
            ("A", Pkt.tcp(c, 51000, s, 80, flags: 0x10, seq: 1001, ack: 5001)),
            ("A", Pkt.tcp(c, 51000, s, 80, flags: 0x18, seq: 1001, ack: 5001, marker)),
            ("B", Pkt.tcp(s, 80, c, 51000, flags: 0x18, seq: 5001, ack: 1025, marker + marker)),
            ("A", Pkt.tcp(c, 51000, s, 80, flags: 0x11, seq: 1025, ack: 5049)),
            ("B", Pkt.tcp(s, 80, c, 51000, flags: 0x11, seq: 5049, ack: 1026)),
            ("A", Pkt.tcp(c, 51000, s, 80, flags: 0x10, seq: 1026, ack: 5050)),
        ]
        var expectA: [[UInt8]] = [], expectB: [[UInt8]] = []
        for f in flows {
            #expect(net.sendLAN(f.from, f.pkt) == .toWAN(interface: 0))
            if f.from == "A" { expectB.append(f.pkt) } else { expectA.append(f.pkt) }
        }
        #expect(net.lan["B"] ?? [] == expectB)
        #expect(net.lan["A"] ?? [] == expectA)
        for w in net.wire {
            #expect(Pkt.checksumsValid(w.bytes))
            #expect(w.proto == (transport == "udp" ? 17 : 6))
            #expect(!w.contains(marker))
        }
        // Native TCP: the SYN on the wire is a SYN carrying metadata; UDP transform: TLV 12.
        #expect(net.wire[0].hasMetadata)
        let snap = net.routers["A"]!.snapshot(now: net.now)
        #expect(snap.sessions.count == 1)
        #expect(snap.sessions.first?.transport == (transport == "udp" ? "udp" : "native"))
        #expect(snap.sessions.first?.forwardPackets == 5)
        #expect(snap.sessions.first?.reversePackets == 3)
        #expect(net.drops.isEmpty)
    }

    @Test func tcpSynUnderUDPTransformCarriesTLV12() throws {
        let net = try Topo.twoRouters(transport: "udp", encryption: "none")
        net.sendLAN("A", Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x02, seq: 1))
        #expect(net.wire[0].proto == 17)
        // The metadata is sealed; B's session state shows it saw TLV 12 (a SYN).
        let s = net.routers["B"]!.snapshot(now: net.now).sessions
        #expect(s.count == 1 && s.first?.state == "\(SessionState.tcpSynSent)")
        // A transformed first packet that is not a SYN starts established (no TLV 12).
        net.sendLAN("A", Pkt.tcp(Topo.client, 51001, Topo.web, 80, flags: 0x10, seq: 1))
        let t = net.routers["B"]!.snapshot(now: net.now).sessions.filter { $0.original.sourcePort == 51001 }
        #expect(t.first?.state == "\(SessionState.tcpEstablished)")
    }

    @Test func icmpEcho() throws {
        let net = try Topo.twoRouters(transport: "native", encryption: "aes-gcm")
        let req = Pkt.echo(Topo.client, Topo.dns, type: 8, id: 0x4242, seq: 1, marker)
        #expect(net.sendLAN("A", req) == .toWAN(interface: 0))
        #expect(net.wire[0].proto == 17)
        #expect(net.lan["B"]?.first == req)
        let rep = Pkt.echo(Topo.dns, Topo.client, type: 0, id: 0x4242, seq: 1, marker)
        #expect(net.sendLAN("B", rep) == .toWAN(interface: 0))
        #expect(net.lan["A"]?.first == rep)
        #expect(!net.wire.contains { $0.contains(marker) })
    }

    @Test func deniedSessionsAreCountedDrops() throws {
        // Refused and counted; answered on the LAN (refused-sessions = "reject", the default).
        let net = try Topo.twoRouters()
        #expect(net.sendLAN("A", Pkt.udp("10.9.9.9", 1000, Topo.dns, 53, [1])) == .toLAN)
        #expect(net.sendLAN("A", Pkt.udp(Topo.client, 1000, "8.8.8.8", 53, [1])) == .toLAN)
        #expect(net.sendLAN("A", Pkt.udp(Topo.client, 1000, "172.16.9.1", 53, [1])) == .toLAN)
        #expect(net.sendLAN("A", Pkt.udp(Topo.client, 1000, Topo.dns, 54, [1])) == .toLAN)
        #expect(net.sendLAN("A", [0x45, 0, 0]) == .drop(.malformedPacket))
        #expect(net.wire.isEmpty)
        let c = net.counters("A")
        #expect(c.drops(.noTenant) == 1 && c.drops(.noService) == 2 && c.drops(.notAllowed) == 1 && c.drops(.malformedPacket) == 1)
        #expect(c.sessionsCreated == 0)
    }

    @Test func metadataOnlyUntilTheHandshakeIsDone() throws {
        let net = try Topo.twoRouters(transport: "native", encryption: "aes-gcm")
        let c = Topo.client, s = Topo.dns
        net.sendLAN("A", Pkt.udp(c, 40000, s, 53, [1]))  // fwd: metadata
        net.sendLAN("A", Pkt.udp(c, 40000, s, 53, [2]))  // fwd: metadata again (not acked)
        net.sendLAN("B", Pkt.udp(s, 53, c, 40000, [3]))  // rev: reverse metadata
        net.sendLAN("B", Pkt.udp(s, 53, c, 40000, [4]))  // rev: still (no fwd without metadata yet)
        net.sendLAN("A", Pkt.udp(c, 40000, s, 53, [5]))  // fwd: none (reverse metadata seen)
        net.sendLAN("B", Pkt.udp(s, 53, c, 40000, [6]))  // rev: none (fwd without metadata seen)
        net.sendLAN("A", Pkt.udp(c, 40000, s, 53, [7]))
        net.sendLAN("B", Pkt.udp(s, 53, c, 40000, [8]))
        #expect(net.wire.map(\.hasMetadata) == [true, true, true, true, false, false, false, false])
        #expect(net.lan["B"]?.count == 4 && net.lan["A"]?.count == 4)
        #expect(net.drops.isEmpty)
    }

    @Test func oneWayFlowGetsATLV18ControlPacket() throws {
        let net = try Topo.twoRouters(transport: "native", encryption: "aes-gcm")
        let c = Topo.client, s = Topo.dns
        net.sendLAN("A", Pkt.udp(c, 40000, s, 53, [1]))
        net.tick()
        #expect(net.wire.count == 1)  // not yet: under a second
        net.advance(seconds: 1.5)
        net.tick()
        #expect(net.wire.count == 2)
        let control = net.wire[1]
        #expect(control.from == "B" && control.hasMetadata && control.proto == 17)
        #expect(net.consumed == 1)
        net.sendLAN("A", Pkt.udp(c, 40000, s, 53, [2]))
        #expect(net.wire.last?.hasMetadata == false)
        #expect(net.lan["B"]?.count == 2)
        // Only once.
        net.advance(seconds: 2)
        net.tick()
        #expect(net.wire.count == 3)
    }

    @Test func lostControlPacketIsSentAgain() throws {
        let net = try Topo.twoRouters(transport: "native", encryption: "aes-gcm")
        let c = Topo.client, s = Topo.dns
        net.onWire = { w in w.from == "B" ? nil : w.bytes }  // B's first control packet is lost
        net.sendLAN("A", Pkt.udp(c, 40000, s, 53, [1]))
        net.advance(seconds: 1.5)
        net.tick()
        #expect(net.wire.count == 2 && net.consumed == 0)
        net.onWire = nil
        net.sendLAN("A", Pkt.udp(c, 40000, s, 53, [2]))  // still with metadata
        #expect(net.wire.last?.hasMetadata == true)
        net.advance(seconds: 0.5)
        net.sendLAN("A", Pkt.udp(c, 40000, s, 53, [3]))  // too early for another control packet
        net.tick()
        #expect(net.consumed == 0)
        net.advance(seconds: 1)
        net.sendLAN("A", Pkt.udp(c, 40000, s, 53, [4]))
        net.tick()
        #expect(net.consumed == 1)
        net.sendLAN("A", Pkt.udp(c, 40000, s, 53, [5]))
        #expect(net.wire.last?.hasMetadata == false)
        #expect(net.lan["B"]?.count == 5)
    }

    @Test func payloadMarkerHiddenOnlyWithEncryption() throws {
        let on = try Topo.twoRouters(encryption: "aes-cbc-hmac")
        on.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, marker))
        #expect(on.wire.count == 1 && !on.wire[0].contains(marker))
        #expect(on.lan["B"]?.first.map { Net.find(marker, in: $0) } == true)
        let off = try Topo.twoRouters(encryption: "none")
        off.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, marker))
        #expect(off.wire.count == 1 && off.wire[0].contains(marker))
    }

    @Test func adaptiveEncryptionSkipsTLS() throws {
        let tlsHello: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0x20] + marker
        let net = try Topo.twoRouters(encryption: "aes-cbc-hmac", adaptive: true)
        net.sendLAN("A", Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x02, seq: 1))
        net.sendLAN("B", Pkt.tcp(Topo.web, 80, Topo.client, 51000, flags: 0x12, seq: 9, ack: 2))
        net.sendLAN("A", Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x18, seq: 2, ack: 10, tlsHello))
        #expect(net.wire.last?.contains(marker) == true)
        #expect(net.lan["B"]?.last.map { Net.find(marker, in: $0) } == true)

        let net2 = try Topo.twoRouters(encryption: "aes-cbc-hmac", adaptive: true)
        net2.sendLAN("A", Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x02, seq: 1))
        net2.sendLAN("B", Pkt.tcp(Topo.web, 80, Topo.client, 51000, flags: 0x12, seq: 9, ack: 2))
        net2.sendLAN("A", Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x10, seq: 2, ack: 10))
        let plain = Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x18, seq: 2, ack: 10, marker)
        net2.sendLAN("A", plain)
        #expect(net2.wire.last?.contains(marker) == false)
        #expect(net2.lan["B"]?.last == plain)
        let reply = Pkt.tcp(Topo.web, 80, Topo.client, 51000, flags: 0x18, seq: 10, ack: 26, marker)
        net2.sendLAN("B", reply)
        #expect(net2.wire.last?.contains(marker) == false)
        #expect(net2.lan["A"]?.last == reply)
        #expect(net2.drops.isEmpty)
    }

    @Test(arguments: ["metadata", "payload", "hmac"])
    func tamperedPacketsAreDropped(_ place: String) throws {
        let net = try Topo.twoRouters(encryption: "aes-cbc-hmac")
        net.onWire = { w in
            var b = w.bytes
            switch place {
            case "metadata": b[28 + 30] ^= 0x01
            case "payload": b[b.count - 20] ^= 0x80
            default: b[b.count - 1] ^= 0x01
            }
            return b
        }
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, marker))
        #expect(net.lan["B"] == nil)
        #expect(net.counters("B").drops(.authenticationFailed) == 1)
        #expect(net.counters("B").sessionsCreated == 0)
    }

    @Test func replayOutsideTheTimeWindowIsDropped() throws {
        let net = try Topo.twoRouters()
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [1]))
        let recorded = net.wire[0].bytes
        net.advance(seconds: 10)
        #expect(net.injectWAN(recorded) == .drop(.authenticationFailed))
        #expect(net.lan["B"]?.count == 1)
    }

    @Test func garbageOnTheWaypointIsCountedNeverATrap() throws {
        let net = try Topo.twoRouters()
        var g = SeededGenerator(seed: 7)
        for n in [0, 1, 20, 28, 40, 64, 200, 1400] {
            var b = (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
            if n >= 20 {
                b[0] = 0x45; b[2] = UInt8(n >> 8); b[3] = UInt8(n & 0xff); b[6] = 0; b[7] = 0; b[9] = 17
                b[12...15] = [203, 0, 113, 1]; b[16...19] = [198, 51, 100, 2]
            }
            let slot = PacketSlot(capacity: n + 512)
            withExtendedLifetime(slot) {
                var p = try! slot.packet(headroom: 256, copying: b)
                if case .drop = net.routers["B"]!.handleWAN(&p, interface: 0, now: net.now) {} else { Issue.record("accepted garbage") }
            }
        }
        // Not addressed to one of B's waypoints.
        let elsewhere = Pkt.udp(Topo.a, 20000, "198.51.100.99", 30001, [1, 2, 3])
        let slot = PacketSlot(capacity: 1024)
        withExtendedLifetime(slot) {
            var p = try! slot.packet(headroom: 256, copying: elsewhere)
            #expect(net.routers["B"]!.handleWAN(&p, interface: 0, now: net.now) == .drop(.notSVR))
        }
        // A valid header from a stranger.
        let stranger = Pkt.udp("9.9.9.9", 20000, Topo.b, 30001, [1, 2, 3])
        #expect(net.injectWAN(stranger) == .drop(.unknownPeer))
    }

    @Test func falsePositiveHeaderAroundCookiePayloads() throws {
        let net = try Topo.twoRouters(encryption: "none")
        let c = Topo.client, s = Topo.dns
        net.sendLAN("A", Pkt.udp(c, 40000, s, 53, [1]))
        net.sendLAN("B", Pkt.udp(s, 53, c, 40000, [2]))
        let tricky = Pkt.udp(c, 40000, s, 53, [0x4c, 0x48, 0xdb, 0xc6, 0xdd, 0xf6, 0x67, 0x0c] + Array("app-data".utf8))
        net.sendLAN("A", tricky)
        #expect(net.wire.last?.hasFalsePositiveHeader == true)
        #expect(net.lan["B"]?.last == tricky)
    }

    @Test func sessionExpiryFreesPorts() throws {
        let net = try Topo.twoRouters()
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [1]))
        let a = net.routers["A"]!
        let path = try #require(a.peers[0].path)
        #expect(a.table.ports.inUse(path: path, wireProtocol: 17) == 1)
        #expect(a.table.count == 1 && net.routers["B"]!.table.count == 1)
        net.advance(seconds: 200)
        net.tick()
        #expect(a.table.count == 0 && net.routers["B"]!.table.count == 0)
        #expect(a.table.ports.inUse(path: path, wireProtocol: 17) == 0)
        #expect(net.counters("A").sessionsExpired == 1)
        // A later packet of that flow is a first packet again.
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [2]))
        #expect(net.wire.last?.hasMetadata == true)
    }

    @Test(arguments: ["native", "udp"])
    func threeRouterChainKeepsPayloadSealedEndToEnd(transport: String) throws {
        let net = try Topo.chain(encryption: "aes-cbc-hmac", transport: transport)
        let q = Pkt.udp(Topo.client, 40000, Topo.dns, 53, marker)
        #expect(net.sendLAN("A", q) == .toWAN(interface: 0))
        #expect(net.lan["B"]?.first == q)
        let r = Pkt.udp(Topo.dns, 53, Topo.client, 40000, marker)
        #expect(net.sendLAN("B", r) == .toWAN(interface: 0))
        #expect(net.lan["A"]?.first == r)
        #expect(net.lan["H"] == nil)
        #expect(net.wire.count == 4)
        #expect(!net.wire.contains { $0.contains(marker) })
        #expect(net.routers["H"]!.snapshot(now: net.now).sessions.first?.role == .transit)
        // TCP through the chain too.
        let syn = Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x02, seq: 1)
        net.sendLAN("A", syn)
        #expect(net.lan["B"]?.last == syn)
        let data = Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x18, seq: 2, ack: 1, marker)
        net.sendLAN("A", data)
        #expect(net.lan["B"]?.last == data)
        #expect(net.drops.isEmpty)
    }
}

@Suite struct EngineRefusalTests {
    /// B (egress) refuses what its own config does not allow, by reason, and sends nothing.
    @Test func egressChecksTenantServiceAndRoute() throws {
        let k = Topo.Keys()
        func egress(_ services: String) throws -> Net {
            let net = Net()
            try net.add("A", Topo.router("A", key: k.a, address: Topo.a, tenantPrefixes: "\"10.1.0.0/16\"")
                + Topo.peer("B", key: k.b, address: Topo.b, transport: "native")
                + Topo.services(route: "peer = \"B\"", encryption: "aes-gcm", adaptive: false), waypoint: Topo.a)
            try net.add("B", Topo.router("B", key: k.b, address: Topo.b, tenantPrefixes: "")
                + Topo.peer("A", key: k.a, address: Topo.a, transport: "native") + services, waypoint: Topo.b)
            return net
        }
        // dns admits only "red" at B: not allowed.
        let notAllowed = try egress(Topo.services(route: "local = true", encryption: "aes-gcm", adaptive: false, dnsTenant: "red"))
        notAllowed.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [1]))
        #expect(notAllowed.counters("B").drops(.notAllowed) == 1)
        // B routes dns back to A (the sender): no route.
        let noRoute = try egress(Topo.services(route: "peer = \"A\"", encryption: "aes-gcm", adaptive: false))
        noRoute.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [1]))
        #expect(noRoute.counters("B").drops(.noRoute) == 1)
        // A's dns service is wider than B's: B refuses destinations outside its own service.
        let wide = Net()
        try wide.add("A", Topo.router("A", key: k.a, address: Topo.a, tenantPrefixes: "\"10.1.0.0/16\"")
            + Topo.peer("B", key: k.b, address: Topo.b, transport: "native")
            + Topo.services(route: "peer = \"B\"", encryption: "aes-gcm", adaptive: false)
            .replacingOccurrences(of: "prefixes = [\"172.16.2.20/32\"]", with: "prefixes = [\"172.16.3.0/24\"]"), waypoint: Topo.a)
        try wide.add("B", Topo.router("B", key: k.b, address: Topo.b, tenantPrefixes: "")
            + Topo.peer("A", key: k.a, address: Topo.a, transport: "native")
            + Topo.services(route: "local = true", encryption: "aes-gcm", adaptive: false), waypoint: Topo.b)
        wide.sendLAN("A", Pkt.udp(Topo.client, 40000, "172.16.3.3", 53, [1]))
        #expect(wide.counters("B").drops(.noService) == 1)
        for net in [notAllowed, noRoute, wide] {
            #expect(net.wire.count == 1 && net.lan["B"] == nil)
            #expect(net.counters("B").sessionsCreated == 0)
        }
    }

    @Test func sessionLimitAndUnknownSession() throws {
        let net = try Topo.twoRouters()
        let a = net.routers["A"]!
        let small = try SVRRouter(config: a.config, maxSessions: 2)
        net.routers["A"] = small
        net.sendLAN("A", Pkt.udp(Topo.client, 1, Topo.dns, 53, [1]))
        net.sendLAN("A", Pkt.udp(Topo.client, 2, Topo.dns, 53, [1]))
        #expect(net.sendLAN("A", Pkt.udp(Topo.client, 3, Topo.dns, 53, [1])) == .drop(.sessionLimit))
        // A mid-session packet (no metadata) for a session B does not know: ack A's first
        // session with a reply, then give B a fresh, empty engine (as after a restart).
        let b = net.routers["B"]!
        net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, 1, [2]))
        let fresh = net.wire.count
        net.routers["B"] = try SVRRouter(config: b.config, maxSessions: 16)
        #expect(net.sendLAN("A", Pkt.udp(Topo.client, 1, Topo.dns, 53, [3])) == .toWAN(interface: 0))
        #expect(net.wire.count == fresh + 1 && net.wire.last?.hasMetadata == false)
        #expect(net.drops.last?.router == "B" && net.drops.last?.reason == .noSession)
    }
}

@Suite struct EngineReplayTests {
    /// Inside the HMAC time window, a replayed AES-GCM packet is caught by the session's
    /// nonce window (forward at the egress, reverse at the ingress); reordering is fine.
    @Test func replayInsideTheTimeWindowIsDroppedWithGCM() throws {
        let net = try Topo.twoRouters(encryption: "aes-gcm")
        for n in 0..<3 { net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [UInt8(n)])) }
        net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, 40000, [9]))
        // Reordered: the second packet again after the third is a replay; the first one too.
        #expect(net.injectWAN(net.wire[1].bytes) == .drop(.replay))
        #expect(net.injectWAN(net.wire[0].bytes) == .drop(.replay))
        #expect(net.injectWAN(net.wire[3].bytes) == .drop(.replay))
        #expect(net.lan["B"]?.count == 3 && net.lan["A"]?.count == 1)
        #expect(net.counters("B").drops(.replay) == 2 && net.counters("A").drops(.replay) == 1)
    }

}

@Suite struct EngineRobustnessTests {
    /// Authenticated but mangled packets (a peer with a bug, or bit errors before the HMAC
    /// was computed): every one is dropped under a reason or delivered, never a trap.
    @Test func mangledPacketsWithValidHMACNeverTrap() throws {
        let net = try Topo.twoRouters(transport: "udp", encryption: "aes-gcm")
        net.onWire = { _ in nil }  // capture only
        net.sendLAN("A", Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x02, seq: 1, marker))
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, marker))
        let originals = net.wire.map(\.bytes)
        let a = net.routers["A"]!, b = net.routers["B"]!
        var g = SeededGenerator(seed: 42)
        var outcomes: [String: Int] = [:]
        for round in 0..<3000 {
            var p = originals[round % originals.count]
            let bodyStart = 28
            var body = Array(p[bodyStart..<(p.count - 16)])
            switch round % 4 {
            case 0:  // flip bytes anywhere in the body (metadata header, TLVs, payload)
                for _ in 0...Int.random(in: 0...3, using: &g) { body[Int.random(in: 0..<body.count, using: &g)] ^= UInt8.random(in: 1...255, using: &g) }
            case 1:  // truncate
                body = Array(body[0..<Int.random(in: 0..<body.count, using: &g)])
            case 2:  // lengths in the metadata base header
                body[Int.random(in: 8...11, using: &g)] = UInt8.random(in: 0...255, using: &g)
            default:  // header TLV type/length
                body[Int.random(in: 12...19, using: &g)] = UInt8.random(in: 0...255, using: &g)
            }
            // Re-sign with A's key for B, fix the lengths.
            body += [UInt8](repeating: 0, count: 16)
            let n = body.count - 16
            _ = try body.withUnsafeMutableBytes { try a.peers[0].auth.appendTrailer($0, length: n, unixSeconds: net.now.unixSeconds) }
            p = Array(p[0..<bodyStart]) + body
            p[2] = UInt8(p.count >> 8); p[3] = UInt8(p.count & 0xff)
            p[24] = UInt8((p.count - 20) >> 8); p[25] = UInt8((p.count - 20) & 0xff)
            let slot = PacketSlot(capacity: p.count + 1024)
            withExtendedLifetime(slot) {
                var pb = try! slot.packet(headroom: 512, copying: p)
                let d = b.handleWAN(&pb, interface: 0, now: net.now)
                switch d {
                case .drop(let r): outcomes["\(r)", default: 0] += 1
                case .toLAN: outcomes["delivered", default: 0] += 1
                default: outcomes["other", default: 0] += 1
                }
            }
        }
        #expect(outcomes.values.reduce(0, +) == 3000)
        #expect(outcomes["other"] == nil)
        #expect((outcomes["bad-metadata"] ?? 0) > 0 && (outcomes["decrypt-failed"] ?? 0) > 0)
    }
}

@Suite struct EnginePortTests {
    /// Configured port ranges are used (no even/odd split) and their exhaustion is a counted drop.
    @Test func portRangesAndExhaustion() throws {
        let k = Topo.Keys()
        let net = Net()
        let a = Topo.router("A", key: k.a, address: Topo.a, tenantPrefixes: "\"10.1.0.0/16\"")
            .replacingOccurrences(of: "neighborhood = \"internet\"", with: "neighborhood = \"internet\"\nport-range = \"20000-20001\"")
        try net.add("A", a + Topo.peer("B", key: k.b, address: Topo.b, transport: "native")
            .replacingOccurrences(of: "transport = \"native\"", with: "transport = \"native\"\nport-range = \"30000-30009\"")
            + Topo.services(route: "peer = \"B\"", encryption: "aes-gcm", adaptive: false), waypoint: Topo.a)
        try net.add("B", Topo.router("B", key: k.b, address: Topo.b, tenantPrefixes: "")
            + Topo.peer("A", key: k.a, address: Topo.a, transport: "native")
            + Topo.services(route: "local = true", encryption: "aes-gcm", adaptive: false), waypoint: Topo.b)
        // 2 local × 10 remote ports: 20 concurrent sessions (a session is the port pair).
        for p in UInt16(1)...20 {
            #expect(net.sendLAN("A", Pkt.udp(Topo.client, p, Topo.dns, 53, [1])) == .toWAN(interface: 0))
        }
        #expect(net.sendLAN("A", Pkt.udp(Topo.client, 21, Topo.dns, 53, [1])) == .drop(.portsExhausted))
        var pairs = Set<UInt32>()
        for w in net.wire where w.from == "A" {
            let sp = UInt16(w.bytes[20]) << 8 | UInt16(w.bytes[21]), dp = UInt16(w.bytes[22]) << 8 | UInt16(w.bytes[23])
            #expect((20000...20001).contains(sp) && (30000...30009).contains(dp))
            pairs.insert(UInt32(sp) << 16 | UInt32(dp))
        }
        #expect(pairs.count == 20)
        #expect(net.lan["B"]?.count == 20)
        // The forward metadata block: cookie, version 1, header length 20 (TLV 16 = 1), then
        // the sealed payload-TLV section.
        let body = net.wire[0].body
        #expect(Array(body[0..<10]) == [0x4c, 0x48, 0xdb, 0xc6, 0xdd, 0xf6, 0x67, 0x0c, 0x10, 0x14])
        #expect(Array(body[12..<20]) == [0, 16, 0, 4, 0, 0, 0, 1])
    }
}

@Suite struct EngineSnapshotTests {
    @Test func snapshotShowsSessionsPeersServicesAndCounters() throws {
        let net = try Topo.twoRouters(transport: "udp", encryption: "aes-gcm")
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, Array(repeating: 7, count: 100)))
        net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, 40000, [1]))
        let a = net.routers["A"]!.snapshot(now: net.now.adding(seconds: 2))
        #expect(a.routerName == "A")
        let s = try #require(a.sessions.first)
        #expect(s.role == .ingress && s.tenant == "blue" && s.service == "dns" && s.peer == "B")
        #expect(s.original == FiveTuple(source: IPAddress(Topo.client)!, destination: IPAddress(Topo.dns)!,
                                        sourcePort: 40000, destinationPort: 53, proto: 17))
        #expect(s.waypoint.source == IPAddress(Topo.a) && s.waypoint.destination == IPAddress(Topo.b))
        #expect(s.transport == "udp" && s.encryption == "aes-gcm")
        #expect(s.forwardPackets == 1 && s.reversePackets == 1 && s.forwardBytes == 128)
        #expect(s.idleSeconds == 2)
        #expect(a.peers == [PeerView(name: "B", waypoints: [Topo.b], transport: "udp", status: "unknown", sessions: 1, mtu: 1500)])
        let dns = try #require(a.services.first { $0.name == "dns" })
        #expect(dns.route == "peer B" && dns.transport == "udp/53" && dns.encryption == "aes-gcm" && dns.sessions == 1)
        let b = net.routers["B"]!.snapshot(now: net.now)
        #expect(b.sessions.first?.role == .egress && b.services.first { $0.name == "dns" }?.route == "local")
        #expect(a.counters.lanReceivedPackets == 1 && a.counters.wanSentPackets == 1)
        #expect(a.counters.wanReceivedPackets == 1 && a.counters.lanSentPackets == 1 && a.counters.sessionsCreated == 1)
    }
}

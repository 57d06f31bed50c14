import SVR
import Testing

/// Bugs found by the end-to-end tests in namespaces, pinned in memory.
@Suite struct EngineRegressionTests {
    let marker = Array("SVR-REGRESSION-MARKER".utf8)

    /// A native TCP SYN-ACK carries reverse metadata (with TLV 18) and no payload; it must be
    /// delivered, not taken for a TV4 control packet (every connection waited 1 s for a
    /// SYN retransmission).
    @Test(arguments: [false, true])
    func nativeSynAckWithReverseMetadataIsDelivered(adaptive: Bool) throws {
        let net = try Topo.twoRouters(transport: "native", encryption: "aes-cbc-hmac", adaptive: adaptive)
        let syn = Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x02, seq: 1000)
        let synAck = Pkt.tcp(Topo.web, 80, Topo.client, 51000, flags: 0x12, seq: 5000, ack: 1001)
        #expect(net.sendLAN("A", syn) == .toWAN(interface: 0))
        #expect(net.sendLAN("B", synAck) == .toWAN(interface: 0))
        #expect(net.wire.last?.hasMetadata == true)
        #expect(net.lan["A"] ?? [] == [synAck])
        #expect(net.consumed == 0)
        #expect(net.drops.isEmpty)
    }

    /// Adaptive encryption through a hub: when A switches the session to encryption (TLV 11
    /// re-triggered), H must tell B, or B keeps answering in the clear and A drops it.
    @Test func adaptiveEncryptionSwitchCrossesTheHub() throws {
        let net = try Topo.chain(encryption: "aes-cbc-hmac", transport: "native", adaptive: true)
        let c = Topo.client, s = Topo.web
        net.sendLAN("A", Pkt.tcp(c, 51000, s, 80, flags: 0x02, seq: 1000))
        net.sendLAN("B", Pkt.tcp(s, 80, c, 51000, flags: 0x12, seq: 5000, ack: 1001))
        net.sendLAN("A", Pkt.tcp(c, 51000, s, 80, flags: 0x10, seq: 1001, ack: 5001))
        // Not TLS: A encrypts from here on and signals it.
        let data = Pkt.tcp(c, 51000, s, 80, flags: 0x18, seq: 1001, ack: 5001, marker)
        net.sendLAN("A", data)
        #expect(net.lan["B"]?.last == data)
        let reply = Pkt.tcp(s, 80, c, 51000, flags: 0x18, seq: 5001, ack: 1001 + UInt32(marker.count), marker)
        #expect(net.sendLAN("B", reply) == .toWAN(interface: 0))
        #expect(net.lan["A"]?.last == reply)
        #expect(!net.wire.suffix(4).contains { $0.contains(marker) })
        #expect(net.drops.isEmpty)
    }

    /// The ingress restarts and reuses the waypoint ports of a session the egress still holds:
    /// the new forward metadata (new UUID) replaces the stale session (spec §2.6).
    @Test(arguments: ["native", "udp"])
    func newSessionOnAStaleWaypointTupleReplacesIt(transport: String) throws {
        let net = try Topo.twoRouters(transport: transport, encryption: "aes-gcm", adaptive: false)
        let q = Pkt.udp(Topo.client, 40000, Topo.dns, 53, marker)
        #expect(net.sendLAN("A", q) == .toWAN(interface: 0))
        let firstTuple = net.wire.last.map { Array($0.bytes[12..<24]) }
        try net.restart("A")
        let q2 = Pkt.udp(Topo.client, 40001, Topo.dns, 53, marker)
        #expect(net.sendLAN("A", q2) == .toWAN(interface: 0))
        #expect(net.wire.last.map { Array($0.bytes[12..<24]) } == firstTuple)  // same addresses and ports
        #expect(net.lan["B"]?.last == q2)
        let r = Pkt.udp(Topo.dns, 53, Topo.client, 40001, marker)
        #expect(net.sendLAN("B", r) == .toWAN(interface: 0))
        #expect(net.lan["A"]?.last == r)
        #expect(net.drops.isEmpty)
        #expect(net.routers["B"]!.snapshot(now: net.now).sessions.count == 1)
    }
}

// Replay protection for every suite, direction binding, adaptive encryption per direction
// and the egress's encryption floor, over the in-memory network (EngineTestSupport).

import Testing

@testable import SVR

/// A captured WAN packet sent back toward its sender: addresses and ports swapped (the
/// checksums stay valid: the swap does not change their sums).
func reflected(_ w: WirePacket) -> [UInt8] {
    var b = w.bytes
    let src = Array(b[12..<16]), sp = Array(b[20..<22])
    b.replaceSubrange(12..<16, with: b[16..<20])
    b.replaceSubrange(16..<20, with: src)
    b.replaceSubrange(20..<22, with: b[22..<24])
    b.replaceSubrange(22..<24, with: sp)
    return b
}

@Suite struct EngineReplayEverySuiteTests {
    /// Inside the HMAC time window a replayed packet is dropped whatever the suite, in both
    /// directions, while an endpoint's own retransmission (an identical datagram sent again)
    /// is delivered.
    @Test(arguments: ["aes-cbc-hmac", "aes-gcm", "none"])
    func replayDroppedRetransmissionDelivered(encryption: String) throws {
        let net = try Topo.twoRouters(encryption: encryption)
        let query = Pkt.udp(Topo.client, 40000, Topo.dns, 53, marker)
        for _ in 0..<3 { net.sendLAN("A", query) }  // the application sends it three times
        #expect(net.lan["B"]?.count == 3)
        net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, 40000, [9]))
        #expect(net.lan["A"]?.count == 1)
        let captured = net.wire.map(\.bytes)
        for c in captured { #expect(net.injectWAN(c) == .drop(.replay)) }
        #expect(net.lan["B"]?.count == 3 && net.lan["A"]?.count == 1)
        #expect(net.counters("B").drops(.replay) == 3 && net.counters("A").drops(.replay) == 1)
        // Still working afterwards.
        net.sendLAN("A", query)
        #expect(net.lan["B"]?.count == 4)
    }

    /// 70 packets replayed out of order after the session went on: none is accepted.
    @Test(arguments: ["aes-cbc-hmac", "aes-gcm", "none"])
    func replayedBurstIsDropped(encryption: String) throws {
        let net = try Topo.twoRouters(transport: "udp", encryption: encryption)
        for n in 0..<70 { net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [UInt8(n)])) }
        let captured = net.wire.map(\.bytes)
        for c in captured.reversed() { net.injectWAN(c) }
        #expect(net.lan["B"]?.count == 70)
        #expect(net.counters("B").drops(.replay) == 70)
    }

    /// A transit router does not open payloads: a replay sent to it is relayed (under its
    /// own fresh trailer) and dropped by the router that opens it.
    @Test(arguments: ["aes-cbc-hmac", "aes-gcm", "none"])
    func replayThroughATransitIsDroppedAtTheEgress(encryption: String) throws {
        let net = try Topo.chain(encryption: encryption)
        for n in 0..<3 { net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [UInt8(n)])) }
        #expect(net.lan["B"]?.count == 3)
        for w in net.wire where w.from == "A" { net.injectWAN(w.bytes) }
        #expect(net.lan["B"]?.count == 3)
        #expect(net.counters("B").drops(.replay) == 3)
    }

    /// The hole of a window that restarts on a new nonce prefix: after a reflected reply
    /// (another prefix) reached the egress, older forward packets were accepted again.
    @Test func oldPrefixAfterAReflectionIsDropped() throws {
        let net = try Topo.twoRouters(encryption: "aes-gcm")
        for n in 0..<70 { net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [UInt8(n)])) }
        net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, 40000, [1]))
        let forward = net.wire.filter { $0.from == "A" }.map(\.bytes)
        let reply = try #require(net.wire.last)
        net.injectWAN(reflected(reply))
        for f in forward { net.injectWAN(f) }
        #expect(net.lan["B"]?.count == 70)
    }

    /// Sequence windows: reordering within 64 is fine; a counter seen before or older than
    /// the window is not; nothing restarts the window.
    @Test func windowAcceptsReorderingWithin64() {
        var w = ReplayWindow()
        let steps: [(UInt64, Bool)] = [(100, true), (102, true), (101, true), (101, false), (200, true), (102, false),
                                       (150, true), (150, false), (137, true), (136, false), (1, false), (201, true)]
        #expect(steps.map { w.accept(counter: $0.0) } == steps.map(\.1))
    }

    /// A CBC sender that draws IVs at random (not svrd: no sequence in the IV) falls back to
    /// the bounded record of recent IVs: its packet is delivered once, its replay dropped.
    @Test func randomIVSenderFallsBackToTheRecentIVRecord() throws {
        let net = try Topo.twoRouters(encryption: "aes-cbc-hmac")
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [1]))
        net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, 40000, [2]))  // handshake done
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [3]))
        let a = net.routers["A"]!
        let template = try #require(net.wire.last).bytes
        #expect(!WirePacket(from: "A", bytes: template).hasMetadata)
        // Re-seal a payload with the session's keys and a random IV, as another SVR router would.
        let index = try #require((0..<a.table.capacity).first { a.extras[$0].generation != 0 })
        let keys = withUnsafeBytes(of: a.extras[index]) { Array($0[SessionExtra.keyOffset..<SessionExtra.keyOffset + 64]) }
        var cipher = try PayloadCipher(suite: .aes256CbcHmacSha256_128, subkeys: keys)
        let plain = marker
        var body = plain + [UInt8](repeating: 0, count: 48 + 16)
        let sealed = try body.withUnsafeMutableBytes { try cipher.seal(inPlace: $0, plaintextLength: plain.count) }
        _ = try body.withUnsafeMutableBytes { try a.peers[0].auth.appendTrailer($0, length: sealed, unixSeconds: net.now.unixSeconds) }
        body = Array(body[0..<sealed + 16])
        var p = Array(template[0..<28]) + body
        p[2] = UInt8(p.count >> 8); p[3] = UInt8(p.count & 0xff)
        p[24] = UInt8((p.count - 20) >> 8); p[25] = UInt8((p.count - 20) & 0xff)
        #expect(net.injectWAN(p) == .toLAN)
        #expect(net.lan["B"]?.last.map { Net.find(marker, in: $0) } == true)
        #expect(net.injectWAN(p) == .drop(.replay))
        net.advance(seconds: 2)  // next HMAC window: still inside the trailer's acceptance
        #expect(net.injectWAN(p) == .drop(.replay))
    }

    /// Per-session memory (docs/crypto.md): one 16-byte window and the 16-byte sending
    /// sequence; the engine's per-session extra stays at two cache lines.
    @Test func perSessionStateSize() {
        #expect(MemoryLayout<ReplayWindow>.size == 16)
        #expect(MemoryLayout<SessionExtra>.stride == 128)
    }

    /// A sender that re-creates its session state under the same key (new prefix) continues
    /// above its old counters: its new packets pass, the old ones stay replays.
    @Test func recreatedSenderContinuesAboveTheWindow() throws {
        let net = try Topo.twoRouters(encryption: "aes-gcm")
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [1]))
        net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, 40000, [2]))
        let oldReply = try #require(net.wire.last).bytes
        // B loses the session; A's next packet still carries forward metadata? Not after the
        // reply (fwdAck): re-create B's state by replaying the first forward packet on a new B.
        try net.restart("B")
        net.advance(seconds: 1)
        #expect(net.injectWAN(net.wire[0].bytes) == .toLAN)  // B re-creates the session (same key)
        net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, 40000, [3]))
        #expect(net.lan["A"]?.count == 2)
        #expect(net.injectWAN(oldReply) == .drop(.replay))
    }

    /// The CBC IV is not the previous packet's last ciphertext block (predictable IVs allow
    /// chosen-plaintext attacks), and two packets never share an IV.
    @Test func cbcIVsAreNotChained() throws {
        let net = try Topo.twoRouters(encryption: "aes-cbc-hmac")
        for n in 0..<20 { net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [UInt8(n)] + marker)) }
        var ivs = Set<[UInt8]>()
        var previousLast: [UInt8]?
        for w in net.wire {
            let b = w.body, end = b.count - 16  // HMAC trailer
            let iv = Array(b[end - 32..<end - 16])
            if let previousLast { #expect(iv != previousLast) }
            previousLast = Array(b[end - 48..<end - 32])
            ivs.insert(iv)
        }
        #expect(ivs.count == 20)
    }
}

@Suite struct EngineDirectionBindingTests {
    /// A server reply captured on the WAN and sent back to the egress with addresses and
    /// ports swapped is not delivered to the server (it was signed by the egress itself).
    @Test(arguments: ["native", "udp"], ["aes-cbc-hmac", "aes-gcm", "none"])
    func reflectedReplyIsDropped(transport: String, encryption: String) throws {
        let net = try Topo.twoRouters(transport: transport, encryption: encryption)
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [1]))
        net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, 40000, marker))
        let reply = try #require(net.wire.last)
        #expect(reply.from == "B")
        #expect(net.injectWAN(reflected(reply)) == .drop(.authenticationFailed))
        #expect(net.lan["B"]?.count == 1)
        // The other way: a forward packet reflected to the ingress.
        #expect(net.injectWAN(reflected(net.wire[0])) == .drop(.authenticationFailed))
        #expect(net.lan["A"]?.count == 1)
    }

    /// The two directions of a GCM session never share a nonce: the prefix's top bit is
    /// the direction.
    @Test func gcmNoncePrefixCarriesTheDirection() throws {
        let net = try Topo.twoRouters(encryption: "aes-gcm")
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [1]))
        net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, 40000, [2]))
        let f = EngineNurseryTests.nonce(net.wire[0]), r = EngineNurseryTests.nonce(net.wire[1])
        #expect(f.prefix[0] & 0x80 == 0 && r.prefix[0] & 0x80 != 0)
    }
}

@Suite struct EngineAdaptiveEncryptionTests {
    static let tlsRecord: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0x20] + marker

    /// Opens a TCP session A → B (handshake only).
    static func handshake(_ net: Net) {
        net.sendLAN("A", Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x02, seq: 1))
        net.sendLAN("B", Pkt.tcp(Topo.web, 80, Topo.client, 51000, flags: 0x12, seq: 9, ack: 2))
        net.sendLAN("A", Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x10, seq: 2, ack: 10))
    }

    /// Default policy (aes-cbc-hmac, adaptive): the server speaks first (a banner): its data
    /// is encrypted on the wire; the client then answers with TLS: that direction goes clear.
    @Test(arguments: ["native", "udp"])
    func serverFirstDataIsEncrypted(transport: String) throws {
        let net = try Topo.twoRouters(transport: transport, encryption: "aes-cbc-hmac", adaptive: true)
        Self.handshake(net)
        let banner = Pkt.tcp(Topo.web, 80, Topo.client, 51000, flags: 0x18, seq: 10, ack: 2, marker)
        net.sendLAN("B", banner)
        #expect(!net.wire.contains { $0.contains(marker) })
        #expect(net.lan["A"]?.last == banner)
        let hello = Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x18, seq: 2, ack: 34, Self.tlsRecord)
        net.sendLAN("A", hello)
        #expect(net.wire.last?.contains(marker) == true)  // TLS: clear
        #expect(net.lan["B"]?.last == hello)
        net.sendLAN("B", Pkt.tcp(Topo.web, 80, Topo.client, 51000, flags: 0x18, seq: 34, ack: 39, marker))
        #expect(net.wire.last?.contains(marker) == false)  // still sealed
        #expect(net.drops.isEmpty)
        for r in ["A", "B"] {
            let s = try #require(net.routers[r]!.snapshot(now: net.now).sessions.first)
            #expect(s.forwardEncryption == "none" && s.reverseEncryption == "aes-cbc-hmac", "\(r)")
            #expect(s.encryption == "none/aes-cbc-hmac")
        }
    }

    /// TLS in both directions: both clear; before any payload both are pending.
    @Test func tlsBothWaysGoesClear() throws {
        let net = try Topo.twoRouters(encryption: "aes-gcm", adaptive: true)
        Self.handshake(net)
        #expect(net.routers["A"]!.snapshot(now: net.now).sessions.first?.encryption == "pending")
        net.sendLAN("A", Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x18, seq: 2, ack: 10, Self.tlsRecord))
        net.sendLAN("B", Pkt.tcp(Topo.web, 80, Topo.client, 51000, flags: 0x18, seq: 10, ack: 39, Self.tlsRecord))
        #expect(net.wire.suffix(2).allSatisfy { $0.contains(marker) })
        #expect(net.lan["A"]?.count == 2 && net.lan["B"]?.count == 3 && net.drops.isEmpty)
        #expect(net.routers["B"]!.snapshot(now: net.now).sessions.first?.encryption == "none")
    }

    /// The direction's first packet lost: the sealed one after it still opens (the receiver
    /// decides on what it can open), and a lost TLS record's successor waits for the
    /// retransmission instead of being taken as clear.
    @Test func lossOfTheSwitchingPacket() throws {
        let net = try Topo.twoRouters(encryption: "aes-cbc-hmac", adaptive: true)
        Self.handshake(net)
        var lose = true
        net.onWire = { w in
            guard lose else { return w.bytes }
            lose = false
            return nil
        }
        let first = Pkt.tcp(Topo.web, 80, Topo.client, 51000, flags: 0x18, seq: 10, ack: 2, marker)
        net.sendLAN("B", first)  // lost
        net.sendLAN("B", Pkt.tcp(Topo.web, 80, Topo.client, 51000, flags: 0x18, seq: 34, ack: 2, marker))
        #expect(net.lan["A"]?.count == 2)  // SYN-ACK and the second segment
        net.sendLAN("B", first)  // TCP retransmission
        #expect(net.lan["A"]?.last == first)
        #expect(!net.wire.contains { $0.contains(marker) })
        // Client side: the TLS record is lost, a continuation arrives first.
        lose = true
        let hello = Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x18, seq: 2, ack: 58, Self.tlsRecord)
        let more = Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x18, seq: 39, ack: 58, [0x17, 0x03, 0x03, 0, 2, 1, 2])
        net.sendLAN("A", hello)  // lost
        net.sendLAN("A", more)
        #expect(net.drops.last?.reason == .weakerEncryption)
        net.sendLAN("A", hello)
        net.sendLAN("A", more)
        #expect(Array((net.lan["B"] ?? []).suffix(2)) == [hello, more])
    }

    /// An egress whose policy encrypts without adaptive encryption refuses a direction the
    /// ingress left clear for TLS.
    @Test func clearDirectionRefusedByAnEgressRequiringEncryption() throws {
        let net = try Topo.twoRouters { route in
            Topo.services(route: route, encryption: "aes-cbc-hmac", adaptive: route.hasPrefix("peer"))
        }
        Self.handshake(net)
        net.sendLAN("A", Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x18, seq: 2, ack: 10, Self.tlsRecord))
        #expect(net.drops.last?.router == "B" && net.drops.last?.reason == .weakerEncryption)
        #expect(net.counters("B").drops(.weakerEncryption) == 1)
    }
}

@Suite struct EngineEncryptionFloorTests {
    /// Forward metadata with no session key (encryption "none") to an egress whose policy
    /// for the service encrypts: refused and counted as weaker-encryption, no session.
    @Test func noneOfferedToAnEncryptingEgressIsRefused() throws {
        let net = try Topo.twoRouters { route in
            Topo.services(route: route, encryption: route.hasPrefix("peer") ? "none" : "aes-gcm", adaptive: false)
        }
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, marker))
        #expect(net.lan["B"] == nil)
        #expect(net.counters("B").drops(.weakerEncryption) == 1 && net.counters("B").sessionsCreated == 0)
        #expect(DropReason.weakerEncryption.description == "weaker-encryption")
    }

    /// The other way round is fine: an egress with "none" accepts an encrypted session.
    @Test func strongerThanTheEgressPolicyIsAccepted() throws {
        let net = try Topo.twoRouters { route in
            Topo.services(route: route, encryption: route.hasPrefix("peer") ? "aes-cbc-hmac" : "none", adaptive: false)
        }
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, marker))
        net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, 40000, marker))
        #expect(net.lan["B"]?.count == 1 && net.lan["A"]?.count == 1 && net.drops.isEmpty)
        #expect(!net.wire.contains { $0.contains(marker) })
    }
}

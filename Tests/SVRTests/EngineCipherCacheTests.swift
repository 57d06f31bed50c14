// The engine's cipher cache re-keys OpenSSL contexts in place (`PayloadCipher.rekey`):
// the result must be the cipher `PayloadCipher(suite:key:)` builds for the same key.

import Testing

@testable import SVR

@Suite struct EngineCipherCacheTests {
    @Test(arguments: [CipherSuite.aes256CbcHmacSha256_128, .aes256Gcm])
    func rekeyedCipherMatchesAFreshOne(suite: CipherSuite) throws {
        let deriver = try SubkeyDeriver()
        var cached = try PayloadCipher(suite: suite, key: SymmetricKey.random())
        for _ in 0..<3 {
            let key = try SymmetricKey.random()
            try key.bytes.withUnsafeBytes { try cached.rekey($0.baseAddress!, deriver: deriver) }
            var fresh = try PayloadCipher(suite: suite, key: key)
            var buf = [UInt8](repeating: 0, count: 256)
            for i in 0..<100 { buf[i] = UInt8(i) }
            let sealed = try buf.withUnsafeMutableBytes { try cached.seal(inPlace: $0, plaintextLength: 100) }
            let opened = try buf.withUnsafeMutableBytes { try fresh.open(inPlace: $0, sealedLength: sealed) }
            #expect(opened == 100 && Array(buf[0..<100]) == (0..<100).map { UInt8($0) })
        }
    }

    @Test func subkeysAreRFC5869HKDF() throws {
        let key = try SymmetricKey.random()
        let deriver = try SubkeyDeriver()
        var out = [UInt8](repeating: 0, count: 32)
        try key.bytes.withUnsafeBytes { k in
            try out.withUnsafeMutableBytes { o in
                try deriver.begin(k.baseAddress!)
                try deriver.expand(label: SubkeyDeriver.gcmLabel, into: o.baseAddress!)
            }
        }
        #expect(out == (try key.subkey("svrd payload v1 aes-256-gcm")))
    }

    /// Many sessions through a small cache (64 slots), directions interleaved: every session
    /// still seals and opens after evictions and half-keyed slots (CBC shares its MAC key).
    @Test(arguments: ["aes-gcm", "aes-cbc-hmac"])
    func sessionsSurviveCacheEvictions(encryption: String) throws {
        let net = try Topo.twoRouters(encryption: encryption)
        for round in 0..<2 {
            for port in UInt16(40000)..<40200 {
                net.sendLAN("A", Pkt.udp(Topo.client, port, Topo.dns, 53, marker))
                if (Int(port) + round) % 3 == 0 { net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, port, marker)) }
            }
            for port in UInt16(40000)..<40200 {
                net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, port, marker))
                net.sendLAN("A", Pkt.udp(Topo.client, port, Topo.dns, 53, marker))
            }
        }
        #expect(net.lan["B"]?.count == 800)
        #expect(net.drops.isEmpty)
        #expect(!net.wire.contains { $0.contains(marker) })
    }
}

/// A session's first cipher operations run in the nursery, later ones in its cache slot; its
/// AES-GCM nonces are the session's own sequence wherever it is sealed.
@Suite struct EngineNurseryTests {
    /// The nonce of an A → B GCM packet: after ciphertext, before tag (16) and HMAC trailer (16).
    static func nonce(_ w: WirePacket) -> (prefix: [UInt8], counter: UInt64) {
        let b = w.body, end = b.count - 32
        return (Array(b[end - 12..<end - 8]), b[end - 8..<end].reduce(0) { $0 << 8 | UInt64($1) })
    }

    /// Ten packets of one session, another session's packets in between, the session moving
    /// from the nursery to its cache slot on the way: one prefix, counters +1 each time.
    @Test func gcmNoncesFollowTheSessionAcrossCacheSlots() throws {
        let net = try Topo.twoRouters(encryption: "aes-gcm")
        for n in 0..<10 {
            net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [UInt8(n)]))
            net.sendLAN("A", Pkt.udp(Topo.client, 40001, Topo.dns, 53, [UInt8(n)]))
        }
        let mine = net.wire.enumerated().filter { $0.offset % 2 == 0 }.map { Self.nonce($0.element) }
        #expect(mine.count == 10 && net.lan["B"]?.count == 20)
        #expect(Set(mine.map(\.prefix)).count == 1)
        for k in 1..<mine.count { #expect(mine[k].counter == mine[k - 1].counter &+ 1) }
        let other = net.wire.enumerated().filter { $0.offset % 2 == 1 }.map { Self.nonce($0.element) }
        #expect(other[0].prefix != mine[0].prefix || other[0].counter != mine[0].counter)
    }

    /// A packet sealed while the session was in the nursery, replayed after it moved to its
    /// cache slot, is still a replay (the window does not restart).
    @Test func replayFromTheNurseryPhaseIsDroppedLater() throws {
        let net = try Topo.twoRouters(encryption: "aes-gcm")
        for n in 0..<8 { net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [UInt8(n)])) }
        for n in 0..<70 { net.sendLAN("A", Pkt.udp(Topo.client, UInt16(41000 + n), Topo.dns, 53, [1])) }
        #expect(net.injectWAN(net.wire[1].bytes) == .drop(.replay))
        #expect(net.lan["B"]?.count == 78 && net.counters("B").drops(.replay) == 1)
    }

    /// More new sessions than nursery slots between a session's request and its reply: the
    /// reply is opened after its nursery slot was taken over.
    @Test(arguments: ["aes-gcm", "aes-cbc-hmac"])
    func replyAfterTheNurseryWrappedAround(encryption: String) throws {
        let net = try Topo.twoRouters(encryption: encryption)
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [1]))
        for n in 0..<200 { net.sendLAN("A", Pkt.udp(Topo.client, UInt16(41000 + n), Topo.dns, 53, [2])) }
        net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, 40000, [3]))
        #expect(net.lan["A"]?.count == 1 && net.lan["A"]?.first?.last == 3)
        #expect(net.drops.isEmpty)
    }

    /// Two suites interleaved over the same slots: each slot keeps one context per suite
    /// (swapped on a change), so contexts are created at most twice per slot, not per change.
    @Test func mixedSuitesSwapContextsInsteadOfCreatingThem() throws {
        // Two UDP services, one per suite.
        let net = try Topo.twoRouters { route in
            var toml = "[[service-policy]]\nname = \"gcm\"\nencryption = \"aes-gcm\"\n"
                + "[[service-policy]]\nname = \"cbc\"\nencryption = \"aes-cbc-hmac\"\n"
            for (name, prefix, policy) in [("dns", "172.16.2.20/32", "gcm"), ("other", "172.16.2.21/32", "cbc")] {
                toml += Topo.service(name, prefix: prefix, protocol: "udp", tenant: "blue", policy: policy, route: route)
            }
            return toml
        }
        let sessions = 600
        for n in 0..<sessions {
            let server = n % 3 == 2 ? "172.16.2.21" : Topo.dns
            for _ in 0..<6 { net.sendLAN("A", Pkt.udp(Topo.client, UInt16(40000 + n), server, 53, [UInt8(n & 0xff)])) }
        }
        #expect(net.lan["B"]?.count == sessions * 6 && net.drops.isEmpty)
        let a = net.routers["A"]!
        let slots = a.cipherSlots.count + a.nursery.count
        #expect(a.cipherContextsCreated > 0 && a.cipherContextsCreated <= 2 * slots)
        #expect(net.routers["B"]!.cipherContextsCreated <= 2 * slots)
    }
}

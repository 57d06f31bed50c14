// ICMP errors over sessions, TTL expiry and refused-session answers, at packet level over
// the in-memory network (EngineTestSupport).

import Testing
import TestSupport

@testable import SVR

/// An ICMP error from `reporter` to `to` about `about`, as a host's or router's stack sends it
/// (IP header + 8 bytes quoted).
func icmpError(from reporter: String, to: String, type: UInt8, code: UInt8, mtu: UInt16 = 0, about: [UInt8],
               quoteData: Int = 8) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 600)
    let n = out.withUnsafeMutableBytes { o in
        about.withUnsafeBytes { q in
            ICMPErrorBuilder.write(into: o, type: type, code: code, nextHopMTU: mtu, source: IPv4Address(reporter)!.value,
                                   destination: IPv4Address(to)!.value, offending: q, quoteData: quoteData)
        }
    }
    return Array(out[0..<n!])
}

/// The parts of a delivered ICMP error a host's stack looks at.
struct SeenError: Equatable {
    var source: [UInt8], destination: [UInt8], type: UInt8, code: UInt8, rest: [UInt8], quote: [UInt8]
    init(_ b: [UInt8]) {
        source = Array(b[12..<16]); destination = Array(b[16..<20])
        type = b[20]; code = b[21]; rest = Array(b[24..<28]); quote = Array(b[28...])
    }
}

@Suite struct EngineICMPTests {
    /// A ⇄ B like `Topo.twoRouters`, with `extra` lines added to both routers' `[router]`.
    static func pair(transport: String = "native", encryption: String = "aes-cbc-hmac", router extra: String) throws -> Net {
        let k = Topo.Keys()
        let net = Net()
        func r(_ name: String, _ key: X25519PrivateKey, _ address: String, _ prefixes: String) -> String {
            "[router]\n" + extra + "\n" + String(Topo.router(name, key: key, address: address, tenantPrefixes: prefixes).dropFirst(9))
        }
        let svc = { Topo.services(route: $0, encryption: encryption, adaptive: false) }
        try net.add("A", r("A", k.a, Topo.a, "\"10.1.0.0/16\"") + Topo.peer("B", key: k.b, address: Topo.b, transport: transport)
            + svc("peer = \"B\""), waypoint: Topo.a)
        try net.add("B", r("B", k.b, Topo.b, "") + Topo.peer("A", key: k.a, address: Topo.a, transport: transport)
            + svc("local = true"), waypoint: Topo.b)
        return net
    }

    @Test("The server's port unreachable reaches the client, quoting exactly what the client sent",
          arguments: ["native", "udp"], ["aes-cbc-hmac", "aes-gcm", "none"])
    func portUnreachable(transport: String, encryption: String) throws {
        let net = try Topo.twoRouters(transport: transport, encryption: encryption)
        let query = Pkt.udp(Topo.client, 40000, Topo.dns, 53, marker)
        #expect(net.sendLAN("A", query) == .toWAN(interface: 0))
        let delivered = try #require(net.lan["B"]?.first)
        let err = icmpError(from: Topo.dns, to: Topo.client, type: 3, code: 3, about: delivered)
        #expect(net.sendLAN("B", err) == .toWAN(interface: 0))
        let got = try #require(net.lan["A"]?.first)
        #expect(Pkt.checksumsValid(got))
        let seen = SeenError(got)
        #expect(seen.source == Pkt.bytes(IPv4Address(Topo.dns)!.value) && seen.destination == Pkt.bytes(IPv4Address(Topo.client)!.value))
        #expect(seen.type == 3 && seen.code == 3)
        #expect(seen.quote == Array(query[0..<28]))
        #expect(net.drops.isEmpty)
        // The relay carries TLV 20 on the session's waypoint flow, and no payload in clear.
        let relay = net.wire.last!
        #expect(relay.hasMetadata && relay.bytes[9] == net.wire[0].bytes[9])
        #expect(relay.bytes[20..<24] == net.wire[0].bytes[22..<24] + net.wire[0].bytes[20..<22])
        if encryption != "none" { #expect(!relay.contains(Pkt.be16(40000) + Pkt.be16(53))) }
    }

    @Test("Every error type and code is relayed, with its second word (next-hop MTU)",
          arguments: [(UInt8(3), UInt8(0)), (3, 1), (3, 2), (3, 3), (3, 4), (3, 9), (3, 10), (3, 13), (11, 0), (11, 1), (12, 0)])
    func everyErrorType(type: UInt8, code: UInt8) throws {
        let net = try Topo.twoRouters(transport: "native", encryption: "aes-gcm")
        let syn = Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x02, seq: 77777)
        net.sendLAN("A", syn)
        let delivered = try #require(net.lan["B"]?.first)
        let err = icmpError(from: "172.16.2.1", to: Topo.client, type: type, code: code, mtu: 1280, about: delivered)
        let before = net.routers["A"]!.snapshot(now: net.now).sessions.first
        #expect(net.sendLAN("B", err) == .toWAN(interface: 0))
        let seen = SeenError(try #require(net.lan["A"]?.first))
        #expect(seen.type == type && seen.code == code)
        #expect(seen.source == [172, 16, 2, 1])
        #expect(seen.rest == (type == 3 && code == 4 ? [0, 0, 5, 0] : [0, 0, 0, 0]))
        #expect(seen.quote == Array(syn[0..<28]))  // ports and the sequence number
        #expect(net.drops.isEmpty)
        // The relay's bare ACK header (native TCP) did not move the session's TCP state at A.
        let after = net.routers["A"]!.snapshot(now: net.now).sessions.first
        #expect(before?.state != nil && after?.state == before?.state && after?.reversePackets == before?.reversePackets)
    }

    @Test("Time exceeded about an echo request: the identifier matches the client's ping", arguments: ["native", "udp"])
    func echoTimeExceeded(transport: String) throws {
        let net = try Topo.twoRouters(transport: transport)
        let ping = Pkt.echo(Topo.client, Topo.web, type: 8, id: 0x4242, seq: 3, marker)
        net.sendLAN("A", ping)
        let delivered = try #require(net.lan["B"]?.first)
        let err = icmpError(from: "172.16.2.1", to: Topo.client, type: 11, code: 0, about: delivered)
        #expect(net.sendLAN("B", err) == .toWAN(interface: 0))
        let seen = SeenError(try #require(net.lan["A"]?.first))
        #expect(seen.type == 11 && seen.quote == Array(ping[0..<28]))
    }

    @Test("An error on the ingress side about a server reply reaches the server", arguments: ["native", "udp"])
    func reverseDirection(transport: String) throws {
        let net = try Topo.twoRouters(transport: transport)
        net.sendLAN("A", Pkt.udp(Topo.client, 40000, Topo.dns, 53, [1]))
        let reply = Pkt.udp(Topo.dns, 53, Topo.client, 40000, marker)
        net.sendLAN("B", reply)
        let atClient = try #require(net.lan["A"]?.first)
        let err = icmpError(from: Topo.client, to: Topo.dns, type: 3, code: 3, about: atClient)
        #expect(net.sendLAN("A", err) == .toWAN(interface: 0))
        let got = try #require(net.lan["B"]?.last)
        let seen = SeenError(got)
        #expect(seen.destination == Pkt.bytes(IPv4Address(Topo.dns)!.value) && seen.type == 3 && seen.code == 3)
        #expect(seen.quote == Array(reply[0..<28]))
        #expect(Pkt.checksumsValid(got))
    }

    @Test("Through a transit router (A → H → B)", arguments: ["native", "udp"])
    func throughTransit(transport: String) throws {
        let net = try Topo.chain(transport: transport)
        let query = Pkt.udp(Topo.client, 40000, Topo.dns, 53, marker)
        net.sendLAN("A", query)
        let delivered = try #require(net.lan["B"]?.first)
        #expect(net.sendLAN("B", icmpError(from: Topo.dns, to: Topo.client, type: 3, code: 3, about: delivered)) == .toWAN(interface: 0))
        let seen = SeenError(try #require(net.lan["A"]?.first))
        #expect(seen.type == 3 && seen.code == 3 && seen.quote == Array(query[0..<28]))
        #expect(net.drops.isEmpty)
    }

    @Test("Unknown sessions, truncated quotes and errors about errors are counted drops")
    func badErrors() throws {
        let net = try Topo.twoRouters()
        let query = Pkt.udp(Topo.client, 40000, Topo.dns, 53, marker)
        net.sendLAN("A", query)
        let delivered = try #require(net.lan["B"]?.first)
        // No session for this quote (other port).
        let stranger = Pkt.udp(Topo.client, 40001, Topo.dns, 53, marker)
        #expect(net.sendLAN("B", icmpError(from: Topo.dns, to: Topo.client, type: 3, code: 3, about: stranger))
            == .drop(.icmpUnknownSession))
        // Quote cut short (IP header + 4 bytes), a quote that is not IPv4, a bare ICMP header.
        let cut = icmpError(from: Topo.dns, to: Topo.client, type: 3, code: 3, about: delivered, quoteData: 4)
        #expect(net.sendLAN("B", cut) == .drop(.icmpTruncated))
        #expect(net.sendLAN("B", Pkt.ipv4(Topo.dns, Topo.client, proto: 1, l4: [3, 3, 0, 0, 0, 0, 0, 0], payload: [])) == .drop(.icmpTruncated))
        // An error about an error.
        let inner = icmpError(from: Topo.client, to: Topo.dns, type: 3, code: 3, about: delivered)
        #expect(net.sendLAN("B", icmpError(from: Topo.dns, to: Topo.client, type: 3, code: 3, about: inner)) == .drop(.icmpUnquotable))
        // Queries other than echo stay unsupported.
        #expect(net.sendLAN("B", Pkt.ipv4(Topo.dns, Topo.client, proto: 1, l4: [13, 0, 0, 0, 0, 0, 0, 0], payload: [])) == .drop(.unsupportedProtocol))
        let c = net.counters("B")
        #expect(c.drops(.icmpUnknownSession) == 1 && c.drops(.icmpTruncated) == 2 && c.drops(.icmpUnquotable) == 1)
        #expect(net.wire.count == 1)
        // A relay whose body is garbage (tampered after sealing): dropped at A, never delivered.
        net.onWire = { w in var b = w.bytes; if w.from == "B" { b[b.count - 40] ^= 0xFF }; return b }
        net.sendLAN("B", icmpError(from: Topo.dns, to: Topo.client, type: 3, code: 3, about: delivered))
        #expect(net.lan["A"] == nil)
        #expect(net.drops.last?.router == "A")
    }

    @Test("Mutated errors at the egress's LAN: drops or relays, and what reaches the client is a valid ICMP error",
          arguments: ["native", "udp"])
    func mutatedErrors(transport: String) throws {
        let net = try Topo.twoRouters(transport: transport, encryption: "aes-gcm")
        let ping = Pkt.echo(Topo.client, Topo.web, type: 8, id: 7, seq: 1, [])
        let query = Pkt.udp(Topo.client, 40000, Topo.dns, 53, marker)
        let syn = Pkt.tcp(Topo.client, 51000, Topo.web, 80, flags: 0x02, seq: 1)
        for p in [ping, query, syn] { net.sendLAN("A", p) }
        let delivered = try #require(net.lan["B"])
        var rng = SeededGenerator(seed: 792)
        for round in 0..<3000 {
            var e = icmpError(from: Topo.dns, to: Topo.client, type: [3, 11, 12, 0, 8][round % 5], code: UInt8(round % 16),
                              about: delivered[round % 3], quoteData: Int.random(in: 0...40, using: &rng))
            for _ in 0..<Int.random(in: 0...4, using: &rng) {
                e[Int.random(in: 20..<e.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            if round % 7 == 0 { e = Array(e[0..<Int.random(in: 0...e.count, using: &rng)]) }
            if e.count >= 20 {
                // Keep the outer header plausible so the mutation reaches the ICMP code.
                e[2] = UInt8(e.count >> 8); e[3] = UInt8(e.count & 0xff); e[10] = 0; e[11] = 0
                let c = e.withUnsafeBytes { InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<20])) }
                e[10] = UInt8(c >> 8); e[11] = UInt8(c & 0xff)
            }
            _ = net.sendLAN("B", e)
        }
        for got in net.lan["A"] ?? [] {
            #expect(got[9] == 1 && ICMPv4.isError(type: got[20]) && Pkt.checksumsValid(got))
            #expect(Array(got[16..<20]) == Pkt.bytes(IPv4Address(Topo.client)!.value))
        }
        #expect((net.lan["A"] ?? []).count > 100)
        let c = net.counters("B")
        #expect(c.drops(.icmpTruncated) > 0 && c.drops(.icmpUnknownSession) > 0 && c.drops(.icmpUnquotable) > 0)
    }

    @Test("TTL 0 or 1 from the LAN: dropped, answered with time exceeded from the router")
    func ttlExpired() throws {
        let net = try Topo.twoRouters()
        for ttl: UInt8 in [1, 0] {
            var p = Pkt.udp(Topo.client, 40000, Topo.dns, 53, [1])
            p[8] = ttl
            let got = net.run("A", p, wan: false)
            #expect(got.0 == .toLAN)
            let seen = SeenError(got.1)
            #expect(seen.type == 11 && seen.code == 0 && seen.source == [203, 0, 113, 1] && seen.quote == Array(p[0..<28]))
            #expect(Pkt.checksumsValid(got.1))
        }
        #expect(net.counters("A").drops(.ttlExpired) == 2 && net.wire.isEmpty)
        // TTL 2 passes, with TTL 2 toward the peer.
        var p = Pkt.udp(Topo.client, 40000, Topo.dns, 53, [1])
        p[8] = 2
        #expect(net.sendLAN("A", p) == .toWAN(interface: 0))
        #expect(net.wire[0].bytes[8] == 2)
    }

    @Test("answerICMP (for other generated errors): fragmentation needed with the next-hop MTU, in place")
    func fragmentationNeededAnswer() throws {
        let net = try Topo.twoRouters()
        let big = Pkt.udp(Topo.client, 40000, Topo.dns, 53, [UInt8](repeating: 7, count: 1400))
        let slot = PacketSlot(capacity: 512 + big.count + 512)
        try withExtendedLifetime(slot) {
            var p = try slot.packet(headroom: 512, copying: big)
            #expect(net.routers["A"]!.answerICMP(&p, type: 3, code: 4, nextHopMTU: 1300, net.now))
            let e = p.copyBytes()
            #expect(e.count == 56 && e[20] == 3 && e[21] == 4 && Array(e[24..<28]) == [0, 0, 0x05, 0x14])
            #expect(Array(e[28...]) == Array(big[0..<28]) && Pkt.checksumsValid(e))
        }
    }

    @Test("refused-sessions = \"reject\": TCP RST, ICMP 13 for UDP and ping; drops still counted")
    func reject() throws {
        let net = try Self.pair(router: "refused-sessions = \"reject\"")
        let syn = Pkt.tcp("10.9.9.9", 51000, Topo.web, 80, flags: 0x02, seq: 1000)
        let rst = net.run("A", syn, wan: false)
        #expect(rst.0 == .toLAN)
        let r = rst.1
        #expect(r.count == 40 && Pkt.checksumsValid(r))
        #expect(Array(r[12..<16]) == [172, 16, 2, 30] && Array(r[16..<20]) == [10, 9, 9, 9])
        #expect(Array(r[20..<24]) == Pkt.be16(80) + Pkt.be16(51000))
        #expect(Array(r[24..<32]) == [0, 0, 0, 0] + Pkt.bytes(1001) && r[33] == 0x14)
        // An ACK without a session: RST with seq = its ack.
        let ack = net.run("A", Pkt.tcp("10.9.9.9", 51000, Topo.web, 80, flags: 0x10, seq: 5, ack: 999), wan: false).1
        #expect(Array(ack[24..<28]) == Pkt.bytes(999) && ack[33] == 0x04)
        // A RST is never answered.
        #expect(net.sendLAN("A", Pkt.tcp("10.9.9.9", 51000, Topo.web, 80, flags: 0x04, seq: 5)) == .drop(.noTenant))
        let udp = Pkt.udp(Topo.client, 1000, "172.16.9.1", 53, [1])
        let u = net.run("A", udp, wan: false)
        #expect(u.0 == .toLAN)
        let seen = SeenError(u.1)
        #expect(seen.type == 3 && seen.code == 13 && seen.quote == Array(udp[0..<28]))
        let ping = net.run("A", Pkt.echo(Topo.client, "8.8.8.8", type: 8, id: 1, seq: 1, []), wan: false)
        #expect(ping.0 == .toLAN && SeenError(ping.1).code == 13)
        let c = net.counters("A")
        #expect(c.drops(.noTenant) == 3 && c.drops(.notAllowed) == 1 && c.drops(.noService) == 1 && c.sessionsCreated == 0)
        #expect(net.wire.isEmpty)
    }

    @Test("refused-sessions = \"silent\": nothing comes back")
    func silent() throws {
        let net = try Self.pair(router: "refused-sessions = \"silent\"")
        #expect(net.sendLAN("A", Pkt.tcp("10.9.9.9", 51000, Topo.web, 80, flags: 0x02, seq: 1000)) == .drop(.noTenant))
        #expect(net.sendLAN("A", Pkt.udp(Topo.client, 1000, "172.16.9.1", 53, [1])) == .drop(.notAllowed))
        #expect(net.lan["A"] == nil && net.wire.isEmpty)
    }

    @Test("Generated answers are rate-limited: a flood of refused packets gets at most 100 answers a second")
    func rateLimit() throws {
        let net = try Topo.twoRouters()
        var answered = 0
        for i in 0..<1000 {
            let d = net.run("A", Pkt.udp(Topo.client, UInt16(1000 + i), "172.16.9.1", 53, [1]), wan: false).0
            if d == .toLAN { answered += 1 }
        }
        #expect(answered == 100)
        #expect(net.counters("A").drops(.notAllowed) == 1000)
        net.advance(seconds: 0.5)
        answered = 0
        for i in 0..<1000 {
            if net.run("A", Pkt.udp(Topo.client, UInt16(3000 + i), "172.16.9.1", 53, [1]), wan: false).0 == .toLAN { answered += 1 }
        }
        #expect(answered == 50)
    }

    @Test("Config: refused-sessions defaults to reject and rejects unknown words")
    func config() throws {
        let k = Topo.Keys()
        let base = Topo.router("A", key: k.a, address: Topo.a, tenantPrefixes: "")
        #expect(try Config.parse(text: base, fileName: "a.toml").router.refusedSessions == .reject)
        let silent = "[router]\nrefused-sessions = \"silent\"\n" + String(base.dropFirst(9))
        #expect(try Config.parse(text: silent, fileName: "a.toml").router.refusedSessions == .silent)
        let bad = "[router]\nrefused-sessions = \"drop\"\n" + String(base.dropFirst(9))
        #expect(throws: (any Error).self) { try Config.parse(text: bad, fileName: "a.toml") }
    }
}

// Engine tests of path MTU handling (SVRRouter+MTU.swift): MSS clamping per suite and
// carriage, "fragmentation needed" for DF packets that do not fit, SVR fragmentation of
// packets without DF, reassembly of LAN fragments, path MTU learned from the underlay's ICMP,
// and bad fragments or ICMP counted as drops.

import Testing

@testable import SVR

@Suite("Engine: path MTU and fragments")
struct EngineMTUTests {
    static let client = Topo.client
    static func noDF(_ b: inout [UInt8]) { b[6] &= ~0x40; fixIPChecksum(&b) }

    static func fixIPChecksum(_ b: inout [UInt8]) {
        b[10] = 0; b[11] = 0
        let c = b.withUnsafeBytes { InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<20])) }
        b[10] = UInt8(c >> 8); b[11] = UInt8(c & 0xff)
    }

    /// IPv4 fragments of `datagram` (20-byte header) with data pieces of `sizes` bytes (each a
    /// multiple of 8 but the last), in order.
    static func fragments(_ datagram: [UInt8], sizes: [Int]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var off = 0
        let data = Array(datagram[20...])
        for (k, n) in sizes.enumerated() {
            var h = Array(datagram[0..<20])
            let more = k < sizes.count - 1
            let len = min(n, data.count - off)
            let total = 20 + len
            h[2] = UInt8(total >> 8); h[3] = UInt8(total & 0xff)
            let word = UInt16(off / 8) | (more ? 0x2000 : 0)
            h[6] = UInt8(word >> 8); h[7] = UInt8(word & 0xff)
            var f = h + data[off..<off + len]
            fixIPChecksum(&f)
            out.append(f)
            off += len
        }
        return out
    }

    static func mssOption(_ packet: [UInt8]) -> Int? {
        let ihl = Int(packet[0] & 15) * 4
        let hl = Int(packet[ihl + 12] >> 4) * 4
        var o = ihl + 20
        while o + 3 < ihl + hl {
            if packet[o] == 2 { return Int(packet[o + 2]) << 8 | Int(packet[o + 3]) }
            o += packet[o] <= 1 ? 1 : Int(packet[o + 1])
        }
        return nil
    }

    static let mss1460: [UInt8] = [2, 4, 0x05, 0xB4]

    /// Forward metadata bound for these configs: router "A", peer "B", longest tenant
    /// "blue" (4), longest service "secret" (6): payload TLVs 17 + 20 + 8 + 10 + 5 + 5 + 4 +
    /// 69 + 4 = 142, sealed to 160 (PKCS#7 to 144, IV 16), plus base header 12 and TLV 16 (8).
    static let metadataBound = 180

    @Test("MSS of SYN and SYN-ACK clamped to the path MTU less the encapsulation and metadata, per suite and carriage",
          arguments: [("native", "aes-cbc-hmac", 1500 - 40 - 48 - 16 - metadataBound),
                      ("udp", "aes-cbc-hmac", 1500 - 40 - 8 - 48 - 16 - metadataBound),
                      ("native", "aes-gcm", 1500 - 40 - 28 - 16 - metadataBound),
                      ("udp", "aes-gcm", 1500 - 40 - 8 - 28 - 16 - metadataBound),
                      ("native", "none", 1500 - 40 - 12 - 16 - metadataBound)])
    func mssClamp(transport: String, encryption: String, expected: Int) throws {
        let net = try Topo.twoRouters(transport: transport, encryption: encryption, adaptive: true)
        net.sendLAN("A", Pkt.tcp(Self.client, 40000, Topo.web, 80, flags: 0x02, seq: 1, options: Self.mss1460))
        let syn = try #require(net.lan["B"]?.last)
        #expect(Self.mssOption(syn) == expected, "SYN MSS at the server (\(transport), \(encryption))")
        net.sendLAN("B", Pkt.tcp(Topo.web, 80, Self.client, 40000, flags: 0x12, seq: 100, ack: 2, options: Self.mss1460))
        let synAck = try #require(net.lan["A"]?.last)
        #expect(Self.mssOption(synAck) == expected, "SYN-ACK MSS at the client")
        #expect(Pkt.checksumsValid(syn) && Pkt.checksumsValid(synAck))
        // A full segment of that MSS, the first data (adaptive: carries metadata with TLV 11),
        // fits the 1500-byte path in one packet.
        let wireBefore = net.wire.count
        let data = [UInt8](repeating: 0x41, count: expected)
        net.sendLAN("A", Pkt.tcp(Self.client, 40000, Topo.web, 80, flags: 0x18, seq: 2, ack: 101, data))
        let sent = net.wire[wireBefore...].filter { $0.from == "A" }
        #expect(sent.count == 1 && sent.allSatisfy { $0.bytes.count <= 1500 }, "full segment: \(sent.map(\.bytes.count)) bytes on the wire")
        #expect(net.lan["B"]?.last.map { Array($0.suffix(expected)) } == data)
        // A lower path MTU lowers the MSS by as much.
        net.routers["A"]!.setInterfaceMTU(0, 1400)
        net.sendLAN("A", Pkt.tcp(Self.client, 40001, Topo.web, 80, flags: 0x02, seq: 1, options: Self.mss1460))
        #expect(net.lan["B"]?.last.flatMap(Self.mssOption) == expected - 100)
    }

    @Test("DF packet too big for the path: dropped, ICMP fragmentation needed with the MTU that fits goes to the sender")
    func dfTooBig() throws {
        let net = try Topo.twoRouters()
        let a = net.routers["A"]!
        a.setInterfaceMTU(0, 1280)
        #expect(a.pathMTU(peer: "B") == 1280)
        let big = Pkt.udp(Self.client, 5353, Topo.dns, 53, [UInt8](repeating: 7, count: 1300))
        #expect(net.sendLAN("A", big) == .drop(.tooBig))
        let icmp = try #require(net.lan["A"]?.last)
        #expect(icmp[9] == 1 && icmp[20] == 3 && icmp[21] == 4, "ICMP type 3 code 4")
        #expect(Int(icmp[26]) << 8 | Int(icmp[27]) == 1280 - 48 - 16, "next-hop MTU")
        #expect(Array(icmp[12..<16]) == Array(big[16..<20]) && Array(icmp[16..<20]) == Array(big[12..<16]))
        #expect(Array(icmp[28..<56]) == Array(big[0..<28]), "quotes the packet")
        #expect(Pkt.checksumsValid(icmp))
        #expect(net.counters("A").tooBigSent == 1 && net.counters("A").drops(.tooBig) == 1)
        // One that fits passes.
        let fits = Pkt.udp(Self.client, 5353, Topo.dns, 53, [UInt8](repeating: 7, count: 1216 - 28))
        net.sendLAN("A", fits)
        #expect(net.lan["B"]?.last == fits)
    }

    @Test("without DF, packets larger than the path go as SVR fragments and arrive whole", arguments: ["native", "udp"])
    func svrFragments(transport: String) throws {
        let net = try Topo.twoRouters(transport: transport)
        net.routers["A"]!.setInterfaceMTU(0, 1280)
        net.routers["B"]!.setInterfaceMTU(0, 1280)
        var big = Pkt.udp(Self.client, 5353, Topo.dns, 53, (0..<1400).map { UInt8(truncatingIfNeeded: $0) })
        Self.noDF(&big)
        #expect(net.sendLAN("A", big) == .consumed)
        #expect(net.wire.count >= 2 && net.wire.allSatisfy { $0.bytes.count <= 1280 }, "pieces \(net.wire.map(\.bytes.count))")
        #expect(net.wire.allSatisfy { $0.bytes[6] & 0x40 != 0 }, "pieces carry DF (the original had none)")
        let got = try #require(net.lan["B"]?.last)
        #expect(got == big && Pkt.checksumsValid(got))
        #expect(net.counters("B").datagramsReassembled == 1 && net.counters("A").fragmentsSent == UInt64(net.wire.count))
        // The reply the same way back.
        var reply = Pkt.udp(Topo.dns, 53, Self.client, 5353, [UInt8](repeating: 9, count: 1400))
        Self.noDF(&reply)
        net.sendLAN("B", reply)
        #expect(net.lan["A"]?.last == reply)
        // A piece lost: nothing is delivered, the incomplete datagram times out (counted).
        var dropFirst = true
        net.onWire = { w in
            if dropFirst { dropFirst = false; return nil }
            return w.bytes
        }
        let before = net.lan["B"]?.count ?? 0
        net.sendLAN("A", big)
        #expect((net.lan["B"]?.count ?? 0) == before)
        net.advance(seconds: 6)
        net.tick()
        #expect(net.counters("B").drops(.fragmentTimeout) == 1)
    }

    @Test("a first packet that only metadata makes too big goes as SVR fragments, DF or not")
    func firstPacketMetadata() throws {
        let net = try Topo.twoRouters()
        // 1400 bytes fit a 1500 path with the cipher overhead but not with the metadata too.
        let first = Pkt.udp(Self.client, 5353, Topo.dns, 53, [UInt8](repeating: 3, count: 1400 - 28))
        #expect(net.sendLAN("A", first) == .consumed)
        #expect(net.wire.count == 2 && net.wire.allSatisfy { $0.bytes.count <= 1500 })
        #expect(net.lan["B"]?.last == first)
    }

    @Test("LAN IP fragments are reassembled and the datagram crosses whole")
    func lanFragments() throws {
        let net = try Topo.twoRouters()
        var datagram = Pkt.udp(Self.client, 5353, Topo.dns, 53, (0..<4000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        Self.noDF(&datagram)
        let frags = Self.fragments(datagram, sizes: [1480, 1480, 1480])
        #expect(frags.count == 3)
        // Out of order: last first.
        #expect(net.sendLAN("A", frags[2]) == .consumed)
        #expect(net.sendLAN("A", frags[0]) == .consumed)
        #expect(net.lan["B"] == nil)
        #expect(net.sendLAN("A", frags[1]) == .consumed)
        let got = try #require(net.lan["B"]?.last)
        #expect(got == datagram && Pkt.checksumsValid(got))
        #expect(net.wire.allSatisfy { $0.bytes.count <= 1500 })
    }

    @Test("bad LAN fragments are counted drops: overlap, beyond 64 KiB, timeout")
    func badFragments() throws {
        let net = try Topo.twoRouters()
        var datagram = Pkt.udp(Self.client, 5353, Topo.dns, 53, [UInt8](repeating: 1, count: 2000))
        Self.noDF(&datagram)
        let frags = Self.fragments(datagram, sizes: [1000, 1000, 1000])
        net.sendLAN("A", frags[0])
        // The same first fragment again: an overlap.
        #expect(net.sendLAN("A", frags[0]) == .drop(.fragmentInvalid))
        // A fragment whose end lies beyond 65,535 bytes.
        var far = frags[1]
        far[6] = 0x3F; far[7] = 0xFF  // MF, offset 8191 × 8
        Self.fixIPChecksum(&far)
        #expect(net.sendLAN("A", far) == .drop(.fragmentOversized))
        // A non-last fragment not a multiple of 8 bytes.
        var odd = Array(frags[0].prefix(20 + 999))
        odd[2] = UInt8((20 + 999) >> 8); odd[3] = UInt8((20 + 999) & 0xff)
        Self.fixIPChecksum(&odd)
        #expect(net.sendLAN("A", odd) == .drop(.fragmentInvalid))
        // An incomplete datagram times out.
        net.sendLAN("A", frags[1])
        net.advance(seconds: 6)
        net.tick()
        #expect(net.counters("A").drops(.fragmentTimeout) >= 1)
        #expect(net.lan["B"] == nil)
    }

    @Test("an underlay ICMP fragmentation needed quoting our packet lowers the path MTU; one quoting no session is a counted drop")
    func underlayICMP() throws {
        let net = try Topo.twoRouters()
        let a = net.routers["A"]!
        net.sendLAN("A", Pkt.udp(Self.client, 5353, Topo.dns, 53, [UInt8](repeating: 5, count: 100)))
        let sent = try #require(net.wire.first { $0.from == "A" }?.bytes)
        func icmp(quoting q: [UInt8], mtu: UInt16) -> [UInt8] {
            let quote = Array(q.prefix(28))
            return Pkt.ipv4("192.0.2.99", Topo.a, proto: 1, l4: [3, 4, 0, 0, 0, 0] + Pkt.be16(mtu), payload: quote)
        }
        #expect(net.injectWAN(icmp(quoting: sent, mtu: 1300)) == .consumed)
        #expect(a.pathMTU(peer: "B") == 1500, "a report of an MTU the quoted packet fits in is not believed")
        var bigger = sent
        bigger[2] = 0x05; bigger[3] = 0xDC  // the quoted packet claimed 1500 bytes
        #expect(net.injectWAN(icmp(quoting: bigger, mtu: 1300)) == .consumed)
        #expect(a.pathMTU(peer: "B") == 1300 && net.counters("A").pathMTUReductions == 1)
        // Never below the floor.
        #expect(net.injectWAN(icmp(quoting: bigger, mtu: 200)) == .consumed)
        #expect(a.pathMTU(peer: "B") == SVRRouter.minPathMTU)
        // Quoting a packet of no session (other ports): counted, no change.
        var stranger = bigger
        stranger[20] ^= 0x55
        #expect(net.injectWAN(icmp(quoting: stranger, mtu: 1000)) == .drop(.icmpUnknownSession))
        #expect(a.pathMTU(peer: "B") == SVRRouter.minPathMTU)
        // Truncated quote: counted.
        let short = Pkt.ipv4("192.0.2.99", Topo.a, proto: 1, l4: [3, 4, 0, 0, 0, 0, 4, 0], payload: Array(bigger.prefix(10)))
        #expect(net.injectWAN(short) == .drop(.icmpUnknownSession))
        // The learned MTU expires.
        net.advance(seconds: 601)
        net.tick()
        #expect(a.pathMTU(peer: "B") == 1500)
    }
}

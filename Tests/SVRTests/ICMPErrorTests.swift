import Testing

@testable import SVR

@Suite("ICMP error builder and quote parser")
struct ICMPErrorTests {
    static func build(type: UInt8, code: UInt8, mtu: UInt16 = 0, offending: [UInt8], quoteData: Int = 8,
                      capacity: Int = 600) -> [UInt8]? {
        var out = [UInt8](repeating: 0xEE, count: capacity)
        let n = out.withUnsafeMutableBytes { o in
            offending.withUnsafeBytes { q in
                ICMPErrorBuilder.write(into: o, type: type, code: code, nextHopMTU: mtu, source: IPv4Address("10.9.9.9")!.value,
                                       destination: IPv4Address("10.1.1.10")!.value, offending: q, quoteData: quoteData)
            }
        }
        return n.map { Array(out[0..<$0]) }
    }

    @Test("Port unreachable: 28 + quoted header + 8 bytes, valid IP and ICMP checksums, quote verbatim")
    func portUnreachable() throws {
        let udp = Pkt.udp("10.1.1.10", 40000, "172.16.2.20", 53, Array("hello, world".utf8))
        let e = try #require(Self.build(type: 3, code: 3, offending: udp))
        #expect(e.count == 28 + 20 + 8)
        #expect(e[9] == 1 && e[20] == 3 && e[21] == 3)
        #expect(Array(e[12..<16]) == [10, 9, 9, 9] && Array(e[16..<20]) == [10, 1, 1, 10])
        #expect(Array(e[24..<28]) == [0, 0, 0, 0])
        #expect(Array(e[28...]) == Array(udp[0..<28]))
        #expect(Pkt.checksumsValid(e))
        let q = try e.withUnsafeBytes { try ICMPErrorQuote.parse($0) }
        #expect(q.type == 3 && q.code == 3 && q.proto == 17 && q.sourcePort == 40000 && q.destinationPort == 53)
        #expect(q.source == IPv4Address("10.1.1.10")!.value && q.destination == IPv4Address("172.16.2.20")!.value)
        #expect(q.reporter == IPv4Address("10.9.9.9")!.value && q.quoteOffset == 28 && q.quoteLength == 28)
    }

    @Test("Fragmentation needed carries the next-hop MTU (RFC 1191); other codes leave the word zero")
    func fragmentationNeeded() throws {
        let tcp = Pkt.tcp("10.1.1.10", 40000, "172.16.2.30", 80, flags: 0x18, seq: 7, [UInt8](repeating: 1, count: 1400))
        let e = try #require(Self.build(type: 3, code: 4, mtu: 1400, offending: tcp))
        #expect(Array(e[24..<28]) == [0, 0, 0x05, 0x78])
        #expect(Pkt.checksumsValid(e))
        let t = try #require(Self.build(type: 11, code: 0, mtu: 1400, offending: tcp))
        #expect(Array(t[24..<28]) == [0, 0, 0, 0])
    }

    @Test("Longer quotes stop at the packet's end and at 576 bytes in all")
    func quoteLimits() throws {
        let big = Pkt.udp("10.1.1.10", 1, "172.16.2.20", 2, [UInt8](repeating: 7, count: 1000))
        let e = try #require(Self.build(type: 3, code: 3, offending: big, quoteData: 5000))
        #expect(e.count == 576 && Pkt.checksumsValid(e))
        let small = Pkt.udp("10.1.1.10", 1, "172.16.2.20", 2, [1, 2, 3])
        let s = try #require(Self.build(type: 3, code: 3, offending: small, quoteData: 5000))
        #expect(s.count == 28 + small.count && Pkt.checksumsValid(s))
        // A buffer too small for any error, or an offending packet that is not IPv4.
        #expect(Self.build(type: 3, code: 3, offending: small, capacity: 40) == nil)
        #expect(Self.build(type: 3, code: 3, offending: [0x60] + [UInt8](repeating: 0, count: 39)) == nil)
    }

    @Test("In place: the error may be written over the offending packet's own bytes")
    func overlapping() throws {
        let udp = Pkt.udp("10.1.1.10", 40000, "172.16.2.20", 53, Array("payload".utf8))
        var slot = [UInt8](repeating: 0, count: 10) + udp + [UInt8](repeating: 0, count: 600)
        let n = slot.withUnsafeMutableBytes { s in
            ICMPErrorBuilder.write(into: UnsafeMutableRawBufferPointer(rebasing: s[0...]), type: 3, code: 13,
                                   source: 1, destination: 2,
                                   offending: UnsafeRawBufferPointer(rebasing: s[10..<(10 + udp.count)]))
        }
        let len = try #require(n)
        #expect(Array(slot[28..<len]) == Array(udp[0..<28]))
        #expect(Pkt.checksumsValid(Array(slot[0..<len])))
    }

    @Test("No errors about errors, non-first fragments, multicast or broadcast")
    func mayAnswer() {
        func ok(_ b: [UInt8]) -> Bool { b.withUnsafeBytes { ICMPErrorBuilder.mayAnswer($0) } }
        let udp = Pkt.udp("10.1.1.10", 1, "172.16.2.20", 2, [1])
        #expect(ok(udp))
        #expect(ok(Pkt.echo("10.1.1.10", "172.16.2.20", type: 8, id: 1, seq: 1, [])))
        let err = Self.build(type: 3, code: 3, offending: udp)!
        #expect(!ok(err))
        var frag = udp; frag[6] = 0x00; frag[7] = 0x10
        #expect(!ok(frag))
        #expect(!ok(Pkt.udp("10.1.1.10", 1, "224.0.0.5", 2, [1])))
        #expect(!ok(Pkt.udp("10.1.1.10", 1, "255.255.255.255", 2, [1])))
        #expect(!ok(Pkt.udp("0.0.0.0", 1, "10.0.0.1", 2, [1])))
        #expect(!ok([0x45, 0, 0]))
    }

    @Test("Quote parser: queries, truncation and errors about errors are rejected")
    func parserProblems() throws {
        let udp = Pkt.udp("10.1.1.10", 40000, "172.16.2.20", 53, [])
        let e = Self.build(type: 3, code: 3, offending: udp)!
        func parse(_ b: [UInt8]) -> ICMPErrorQuote.Problem? {
            b.withUnsafeBytes { raw -> ICMPErrorQuote.Problem? in
                do throws(ICMPErrorQuote.Problem) { _ = try ICMPErrorQuote.parse(raw); return nil } catch { return error }
            }
        }
        #expect(parse(e) == nil)
        #expect(parse(Pkt.echo("10.1.1.10", "172.16.2.20", type: 8, id: 1, seq: 1, [])) == .notAnError)
        #expect(parse(udp) == .notAnError)
        for cut in [20, 27, 28, 47, 55] { #expect(parse(Array(e[0..<cut])) == .truncated, "cut \(cut)") }
        let aboutError = Self.build(type: 3, code: 3, offending: e, quoteData: 8)!
        #expect(parse(aboutError) == .unquotable)
        // An echo quoted by time exceeded: identifier as the source port.
        let echo = Pkt.echo("10.1.1.10", "172.16.2.20", type: 8, id: 0x4242, seq: 9, [1, 2, 3, 4])
        let te = Self.build(type: 11, code: 0, offending: echo)!
        let q = try te.withUnsafeBytes { try ICMPErrorQuote.parse($0) }
        #expect(q.proto == 1 && q.sourcePort == 0x4242 && q.destinationPort == 0)
    }
}

import SVR
import TestSupport
import Testing

@Suite("Packet parsing")
struct PacketParseTests {
    @Test("TV1: every field of the forward-metadata UDP packet")
    func tv1Fields() throws {
        try withParsed(SpecVector.tv1) { p in
            let l = p.layout
            #expect(l.family == .ipv4)
            #expect(l.ipLength == 165 && l.l4Offset == 20 && l.l4HeaderLength == 8)
            #expect(l.payloadOffset == 28 && l.payloadLength == 137)
            #expect(l.proto == IPProtocolNumber.udp && l.protocolFieldOffset == 9)
            #expect(l.fragment == .unfragmented)
            #expect(l.tuple == FiveTuple(
                source: SpecVector.waypointA, destination: SpecVector.waypointB,
                sourcePort: 20000, destinationPort: 30001, proto: 17))
            let ip = try #require(p.ipv4)
            #expect(ip.version == 4 && ip.headerLength == 20 && ip.optionsLength == 0)
            #expect(ip.typeOfService == 0 && ip.totalLength == 165 && ip.identification == 0x1234)
            #expect(ip.dontFragment && !ip.moreFragments && ip.fragmentOffset == 0)
            #expect(ip.ttl == 64 && ip.proto == 17 && ip.checksum == 0xc1dc)
            #expect(ip.source == IPv4Address(203, 0, 113, 1) && ip.destination == IPv4Address(198, 51, 100, 2))
            #expect(ip.isChecksumValid && ip.computeChecksum() == 0xc1dc)
            let udp = try #require(p.udp)
            #expect(udp.sourcePort == 20000 && udp.destinationPort == 30001)
            #expect(udp.length == 145 && udp.checksum == 0x68fa)
            #expect(p.isTransportChecksumValid == true && p.computeTransportChecksum() == 0x68fa)
            #expect(p.tcp == nil && p.icmp == nil && p.ipv6 == nil)
            p.withPayload { #expect(Array($0.prefix(8)) == hexBytes("4c48dbc6ddf6670c")) }
        }
    }

    @Test("TV2: every field of the TCP SYN carrying metadata")
    func tv2Fields() throws {
        try withParsed(SpecVector.tv2) { p in
            let l = p.layout
            #expect(l.ipLength == 139 && l.l4Offset == 20 && l.l4HeaderLength == 36)
            #expect(l.payloadOffset == 56 && l.payloadLength == 83)
            #expect(l.tuple == FiveTuple(
                source: SpecVector.waypointA, destination: SpecVector.waypointB,
                sourcePort: 20002, destinationPort: 30003, proto: 6))
            let ip = try #require(p.ipv4)
            #expect(ip.totalLength == 139 && ip.identification == 0x1234 && ip.dontFragment && ip.ttl == 64)
            #expect(ip.proto == 6 && ip.checksum == 0xc201 && ip.isChecksumValid)
            let tcp = try #require(p.tcp)
            #expect(tcp.sourcePort == 20002 && tcp.destinationPort == 30003)
            #expect(tcp.sequenceNumber == 0x1122_3344 && tcp.acknowledgmentNumber == 0)
            #expect(tcp.dataOffset == 9 && tcp.headerLength == 36 && tcp.optionsLength == 16)
            #expect(tcp.flags == .syn && tcp.window == 64240 && tcp.urgentPointer == 0)
            #expect(tcp.checksum == 0xe73a)
            #expect(p.isTransportChecksumValid == true && p.computeTransportChecksum() == 0xe73a)
            #expect(p.udp == nil)
        }
    }

    @Test("TV3–TV6: addresses, ports, lengths and valid checksums", arguments: [
        (SpecVector.tv3, "198.51.100.2", "203.0.113.1", UInt16(30001), UInt16(20000), 130, UInt16(0xc1ff), UInt16(0x6a91)),
        (SpecVector.tv4, "198.51.100.2", "203.0.113.1", 30001, 20000, 49, 0xc250, 0x43ea),
        (SpecVector.tv5, "203.0.113.1", "198.51.100.2", 20006, 30007, 56, 0xc249, 0x417f),
        (SpecVector.tv6, "203.0.113.1", "198.51.100.2", 20006, 30007, 63, 0xc242, 0x0f5e),
    ])
    func otherVectors(
        bytes: [UInt8], source: String, destination: String, sourcePort: UInt16, destinationPort: UInt16,
        length: Int, ipChecksum: UInt16, udpChecksum: UInt16
    ) throws {
        try withParsed(bytes) { p in
            #expect(p.layout.ipLength == length && p.layout.payloadLength == length - 28)
            #expect(p.tuple == FiveTuple(
                source: IPAddress(source)!, destination: IPAddress(destination)!,
                sourcePort: sourcePort, destinationPort: destinationPort, proto: 17))
            let ip = try #require(p.ipv4)
            #expect(ip.identification == 0x1234 && ip.ttl == 64 && ip.dontFragment)
            #expect(ip.checksum == ipChecksum && ip.isChecksumValid)
            let udp = try #require(p.udp)
            #expect(Int(udp.length) == length - 20 && udp.checksum == udpChecksum)
            #expect(p.isTransportChecksumValid == true && p.computeTransportChecksum() == udpChecksum)
        }
    }

    @Test("IPv4 options, ICMP echo tuple (identifier as source port) and fragments")
    func ipv4OptionsIcmpAndFragments() throws {
        // IHL 6: one 4-byte option (NOP NOP NOP EOL).
        var icmp = ipv4Packet(
            source: IPv4Address(10, 1, 1, 10), destination: IPv4Address(172, 16, 2, 20), proto: 1,
            l4: [8, 0, 0, 0, 0xab, 0xcd, 0, 7] + Array("ping".utf8))
        icmp[0] = 0x46
        icmp.insert(contentsOf: [1, 1, 1, 0], at: 20)
        icmp[3] += 4
        try withParsed(icmp) { p in
            p.recomputeChecksums()
            #expect(p.ipv4?.headerLength == 24 && p.ipv4?.optionsLength == 4 && p.ipv4?.isChecksumValid == true)
            #expect(p.layout.l4Offset == 24 && p.layout.l4HeaderLength == 8 && p.layout.payloadLength == 4)
            #expect(p.tuple.sourcePort == 0xabcd && p.tuple.destinationPort == 0 && p.tuple.proto == 1)
            #expect(p.icmp?.isEcho == true && p.icmp?.sequenceNumber == 7)
            #expect(p.isTransportChecksumValid == true)
        }
        // Destination unreachable is not an echo: no ports.
        var unreachable = icmp
        unreachable[24] = 3
        try withParsed(unreachable) { p in #expect(p.tuple.sourcePort == 0 && p.icmp?.isEcho == false) }

        let udp = ipv4Packet(
            source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2), proto: 17,
            l4: udpSegment(source: 1, destination: 2, payload: [UInt8](repeating: 7, count: 32)))
        var first = udp
        first[6] = 0x20  // MF, offset 0; UDP length covers more than this fragment
        first[25] = 200
        try withParsed(first) { p in
            #expect(p.layout.fragment == .first && p.tuple.sourcePort == 1 && p.udp != nil)
            #expect(p.isTransportChecksumValid == nil && p.computeTransportChecksum() == nil)
        }
        var later = udp
        later[6] = 0x00
        later[7] = 0x05  // offset 40 bytes: no UDP header here
        try withParsed(later) { p in
            #expect(p.layout.fragment == .later && p.layout.l4HeaderLength == 0)
            #expect(p.tuple.sourcePort == 0 && p.tuple.destinationPort == 0 && p.udp == nil)
            #expect(p.layout.payloadOffset == 20)
            // A later fragment gets new addresses only; its IP checksum stays valid.
            p.recomputeChecksums()
            try p.rewrite(to: FiveTuple(source: SpecVector.waypointA, destination: SpecVector.waypointB,
                                        sourcePort: 5, destinationPort: 6, proto: 17))
            #expect(p.ipv4?.isChecksumValid == true && p.tuple.sourcePort == 0 && p.tuple.source == SpecVector.waypointA)
            #expect(p.buffer.copyBytes()[20...] == later[20...])
        }
    }

    @Test("IPv6: base header, skipped extension headers, fragment header, ICMPv6 echo")
    func ipv6() throws {
        let src = IPv6Address("2001:db8:1::10")!
        let dst = IPv6Address("2001:db8:2::20")!
        let udp = udpSegment(source: 40000, destination: 53, payload: Array("query".utf8))
        // hop-by-hop (8 bytes, next = dest opts), dest opts (16 bytes, next = UDP)
        let ext: [UInt8] = [60, 0, 1, 4, 0, 0, 0, 0] + [17, 1, 1, 12] + [UInt8](repeating: 0, count: 12)
        let packet = ipv6Packet(source: src, destination: dst, nextHeader: 0, extensions: ext, l4: udp)
        try withParsed(packet) { p in
            p.recomputeChecksums()
            let l = p.layout
            #expect(l.family == .ipv6 && l.ipLength == 40 + 24 + 13)
            #expect(l.l4Offset == 64 && l.protocolFieldOffset == 48 && l.proto == 17 && l.payloadLength == 5)
            #expect(l.tuple == FiveTuple(source: .v6(src), destination: .v6(dst), sourcePort: 40000, destinationPort: 53, proto: 17))
            let ip = try #require(p.ipv6)
            #expect(ip.version == 6 && ip.payloadLength == 37 && ip.nextHeader == 0 && ip.hopLimit == 64)
            #expect(ip.trafficClass == 0 && ip.flowLabel == 0)
            #expect(p.isTransportChecksumValid == true && p.ipv4 == nil)
            // Metadata goes after the UDP header, behind the extension headers.
            try p.insertAfterL4Header(count: 4) { $0.copyBytes(from: [0x4c, 0x48, 0xdb, 0xc6]) }
            #expect(p.ipv6?.payloadLength == 41 && p.udp?.length == 17 && p.isTransportChecksumValid == true)
            #expect(Array(p.buffer.copyBytes()[72..<76]) == [0x4c, 0x48, 0xdb, 0xc6])
            #expect(try PacketLayout(parsing: p.buffer) == p.layout)
        }
        // Fragment header: first fragment (M set) and a later one.
        let fragFirst: [UInt8] = [17, 0, 0x00, 0x01, 0, 0, 0, 9]
        try withParsed(ipv6Packet(source: src, destination: dst, nextHeader: 44, extensions: fragFirst, l4: udp)) { p in
            #expect(p.layout.fragment == .first && p.layout.l4Offset == 48 && p.tuple.destinationPort == 53)
        }
        let fragLater: [UInt8] = [17, 0, 0x00, 0x10, 0, 0, 0, 9]
        try withParsed(ipv6Packet(source: src, destination: dst, nextHeader: 44, extensions: fragLater, l4: udp)) { p in
            #expect(p.layout.fragment == .later && p.layout.l4HeaderLength == 0 && p.tuple.sourcePort == 0)
        }
        // ICMPv6 echo request: identifier is the source port.
        let echo: [UInt8] = [128, 0, 0, 0, 0x12, 0x34, 0, 1, 0xde, 0xad]
        try withParsed(ipv6Packet(source: src, destination: dst, nextHeader: 58, l4: echo)) { p in
            p.recomputeChecksums()
            #expect(p.tuple.sourcePort == 0x1234 && p.tuple.proto == 58 && p.icmp?.isEcho == true)
            #expect(p.isTransportChecksumValid == true)
        }
    }

    @Test("Link-layer padding after the datagram is not part of it")
    func padding() throws {
        try withParsed(SpecVector.tv4 + [0, 0, 0, 0, 0]) { p in
            #expect(p.layout.ipLength == 49 && p.buffer.count == 54 && p.isTransportChecksumValid == true)
            try p.stripAfterL4Header(count: 21)
            #expect(p.buffer.count == 28 && p.udp?.length == 8 && p.isTransportChecksumValid == true)
        }
    }
}

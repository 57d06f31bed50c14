import SVR
import TestSupport
import Testing

@Suite("Packet NAT, metadata insertion and trailers")
struct PacketRewriteTests {
    /// The DNS query of TV1 and its metadata block (the first 108 bytes of TV1's UDP payload).
    static let dnsQuery = hexBytes("abcd01000001000000000000076578616d706c6503636f6d0000010001")
    static let tv1Metadata = Array(SpecVector.tv1[28..<136])
    static let tv2Metadata = Array(SpecVector.tv2[56...])

    /// The client's plain DNS query as router A receives it on the LAN, checksums computed.
    static func plainDNS() throws -> [UInt8] {
        let bytes = ipv4Packet(
            source: IPv4Address(10, 1, 1, 10), destination: IPv4Address(172, 16, 2, 20), proto: 17,
            l4: udpSegment(source: 40000, destination: 53, payload: dnsQuery))
        return try withParsed(bytes) { p in
            p.recomputeChecksums()
            return p.buffer.copyBytes()
        }
    }

    /// The client's TCP SYN (MSS 1460, SACK permitted, timestamps) to the web server.
    static func plainSYN() throws -> [UInt8] {
        let bytes = ipv4Packet(
            source: IPv4Address(10, 1, 1, 10), destination: IPv4Address(172, 16, 2, 30), proto: 6,
            l4: tcpSegment(source: 51000, destination: 443, seq: 0x1122_3344, flags: 0x02, window: 64240,
                           options: hexBytes("020405b40402080a0000000000000000")))
        return try withParsed(bytes) { p in
            p.recomputeChecksums()
            return p.buffer.copyBytes()
        }
    }

    @Test("TV1 rebuilt: plain DNS query → double NAT → metadata insert equals the spec packet; and back")
    func tv1RoundTrip() throws {
        let original = try Self.plainDNS()
        try withParsed(original, headroom: 128) { p in
            #expect(p.isTransportChecksumValid == true && p.ipv4?.isChecksumValid == true)
            let lan = p.tuple
            try p.rewrite(to: FiveTuple(
                source: SpecVector.waypointA, destination: SpecVector.waypointB,
                sourcePort: 20000, destinationPort: 30001, proto: 17))
            try Self.tv1Metadata.withUnsafeBytes { try p.insertAfterL4Header($0) }
            #expect(hexString(p.buffer.copyBytes()) == hexString(SpecVector.tv1))
            // The 28 header bytes moved into the headroom; the payload stayed in place.
            #expect(p.buffer.offset == 128 - 108 && p.layout.payloadLength == 137)

            try p.stripAfterL4Header(count: 108)
            try p.rewrite(to: lan)
            #expect(hexString(p.buffer.copyBytes()) == hexString(original))
            #expect(p.buffer.offset == 128)
        }
    }

    @Test("TV2 rebuilt: TCP SYN with options → double NAT → metadata as SYN payload; and back")
    func tv2RoundTrip() throws {
        let original = try Self.plainSYN()
        try withParsed(original, headroom: 100) { p in
            let lan = p.tuple
            #expect(lan.sourcePort == 51000 && lan.destinationPort == 443 && p.isTransportChecksumValid == true)
            try p.rewriteSource(SpecVector.waypointA, port: 20002)
            try p.rewriteDestination(SpecVector.waypointB, port: 30003)
            try Self.tv2Metadata.withUnsafeBytes { try p.insertAfterL4Header($0) }
            #expect(hexString(p.buffer.copyBytes()) == hexString(SpecVector.tv2))
            try p.stripAfterL4Header(count: 83)
            try p.rewrite(to: lan)
            #expect(hexString(p.buffer.copyBytes()) == hexString(original))
        }
    }

    @Test("Without headroom the payload slides into the tailroom instead")
    func insertUsesTailroomWhenNoHeadroom() throws {
        let original = try Self.plainDNS()
        try withParsed(original, headroom: 0, tailroom: 200) { p in
            try p.rewrite(to: FiveTuple(
                source: SpecVector.waypointA, destination: SpecVector.waypointB,
                sourcePort: 20000, destinationPort: 30001, proto: 17))
            try p.insertAfterL4Header(count: 108) { gap in
                Self.tv1Metadata.withUnsafeBytes { gap.copyMemory(from: $0) }
            }
            #expect(p.buffer.offset == 0 && hexString(p.buffer.copyBytes()) == hexString(SpecVector.tv1))
        }
        try withParsed(original, headroom: 10, tailroom: 10) { p in
            #expect(throws: PacketError.noRoom(needed: 108, headroom: 10, tailroom: 10)) {
                try p.insertAfterL4Header(count: 108) { _ in }
            }
            #expect(hexString(p.buffer.copyBytes()) == hexString(original))
        }
    }

    @Test("TV7-style trailer: append 16 bytes to TV1 (UDP length 0xa1), then remove it")
    func trailer() throws {
        let mac = hexBytes("f791f1a9e7126bb9a6f01df6a6b2f907")
        try withParsed(SpecVector.tv1, tailroom: 16) { p in
            try mac.withUnsafeBytes { try p.appendTrailer($0) }
            #expect(p.udp?.length == 0xa1 && p.ipv4?.totalLength == 181 && p.buffer.count == 181)
            #expect(p.ipv4?.isChecksumValid == true && p.isTransportChecksumValid == true)
            #expect(Array(p.buffer.copyBytes().suffix(16)) == mac)
            #expect(throws: PacketError.noTailroom(needed: 1, available: 0)) { try p.appendTrailer(count: 1) { _ in } }
            try p.removeTrailer(count: 16)
            #expect(p.buffer.copyBytes() == SpecVector.tv1)
            #expect(throws: PacketError.lengthOutOfRange(requested: 138, available: 137)) { try p.removeTrailer(count: 138) }
            #expect(throws: PacketError.lengthOutOfRange(requested: 138, available: 137)) { try p.stripAfterL4Header(count: 138) }
        }
    }

    @Test("Edits that cannot apply throw and leave the packet as it was")
    func refusedEdits() throws {
        try withParsed(SpecVector.tv1) { p in
            let v6 = IPAddress("2001:db8::1")!
            #expect(throws: PacketError.addressFamilyMismatch) {
                try p.rewrite(to: FiveTuple(source: v6, destination: v6, sourcePort: 1, destinationPort: 2, proto: 17))
            }
            #expect(throws: PacketError.protocolMismatch(packet: 17, requested: 6)) {
                try p.rewrite(to: FiveTuple(source: SpecVector.client, destination: SpecVector.dnsServer,
                                            sourcePort: 1, destinationPort: 2, proto: 6))
            }
            #expect(p.buffer.copyBytes() == SpecVector.tv1)
        }
        var fragment = SpecVector.tv1
        fragment[6] = 0x20  // MF
        try withParsed(fragment) { p in
            #expect(throws: PacketError.fragmented) { try p.insertAfterL4Header(count: 4) { _ in } }
            #expect(throws: PacketError.fragmented) { try p.removeTrailer(count: 4) }
        }
        let gre = ipv4Packet(source: IPv4Address(1, 1, 1, 1), destination: IPv4Address(2, 2, 2, 2), proto: 47, l4: [0, 0, 8, 0])
        try withParsed(gre) { p in
            p.recomputeChecksums()
            #expect(throws: PacketError.noTransportHeader(proto: 47)) { try p.stripAfterL4Header(count: 1) }
            try p.rewrite(to: FiveTuple(source: SpecVector.waypointA, destination: SpecVector.waypointB,
                                        sourcePort: 9, destinationPort: 9, proto: 47))
            #expect(p.tuple.sourcePort == 0 && p.ipv4?.isChecksumValid == true && p.ipv4?.source == IPv4Address(203, 0, 113, 1))
        }
        let big = ipv4Packet(source: IPv4Address(1, 1, 1, 1), destination: IPv4Address(2, 2, 2, 2), proto: 17,
                             l4: udpSegment(source: 1, destination: 2, payload: [UInt8](repeating: 1, count: 65000)))
        try withParsed(big) { p in
            #expect(throws: PacketError.packetTooLarge(length: 65028 + 600)) { try p.insertAfterL4Header(count: 600) { _ in } }
        }
    }

    @Test("UDP over IPv4 without checksum keeps 0 through NAT and metadata; recompute sets it")
    func udpZeroChecksum() throws {
        var bytes = SpecVector.tv5
        bytes[26] = 0
        bytes[27] = 0
        try withParsed(bytes) { p in
            try p.rewrite(to: FiveTuple(source: SpecVector.client, destination: SpecVector.dnsServer,
                                        sourcePort: 1234, destinationPort: 53, proto: 17))
            try p.insertAfterL4Header(count: 4) { $0.copyBytes(from: [1, 2, 3, 4]) }
            #expect(p.udp?.checksum == 0 && p.isTransportChecksumValid == true && p.ipv4?.isChecksumValid == true)
            p.recomputeChecksums()
            #expect(p.udp?.checksum != 0 && p.isTransportChecksumValid == true)
        }
    }

    /// A random packet of the given family and protocol with valid checksums.
    static func randomPacket(ipv6: Bool, proto: UInt8, using rng: inout SeededGenerator) -> [UInt8] {
        let payload = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let l4: [UInt8]
        switch proto {
        case IPProtocolNumber.tcp:
            l4 = tcpSegment(source: .random(in: 0...0xffff, using: &rng), destination: .random(in: 0...0xffff, using: &rng),
                            seq: .random(in: 0...UInt32.max, using: &rng), flags: 0x18, window: 512,
                            options: Bool.random(using: &rng) ? hexBytes("020405b4") : [], payload: payload)
        case IPProtocolNumber.udp:
            l4 = udpSegment(source: .random(in: 0...0xffff, using: &rng), destination: .random(in: 0...0xffff, using: &rng),
                            payload: payload)
        default:
            l4 = [ipv6 ? 128 : 8, 0, 0, 0] + be16(.random(in: 0...0xffff, using: &rng)) + [0, 1] + payload
        }
        func v6() -> IPv6Address { IPv6Address(high: .random(in: 0...UInt64.max, using: &rng), low: .random(in: 0...UInt64.max, using: &rng)) }
        func v4() -> IPv4Address { IPv4Address(.random(in: 0...UInt32.max, using: &rng)) }
        return ipv6
            ? ipv6Packet(source: v6(), destination: v6(), nextHeader: proto, l4: l4)
            : ipv4Packet(source: v4(), destination: v4(), proto: proto, l4: l4)
    }

    @Test("Incremental NAT checksums equal full recomputation (seeded random rewrites)", arguments: [
        (false, IPProtocolNumber.udp), (false, IPProtocolNumber.tcp), (false, IPProtocolNumber.icmp),
        (true, IPProtocolNumber.udp), (true, IPProtocolNumber.tcp), (true, IPProtocolNumber.icmpv6),
    ])
    func incrementalNAT(ipv6: Bool, proto: UInt8) throws {
        var rng = SeededGenerator(seed: ipv6 ? 6 : 4 &+ UInt64(proto))
        for round in 0..<300 {
            let bytes = Self.randomPacket(ipv6: ipv6, proto: proto, using: &rng)
            try withParsed(bytes) { p in
                p.recomputeChecksums()
                let target: FiveTuple
                if ipv6 {
                    func v6() -> IPAddress { .v6(IPv6Address(high: .random(in: 0...UInt64.max, using: &rng), low: .random(in: 0...UInt64.max, using: &rng))) }
                    target = FiveTuple(source: v6(), destination: v6(), sourcePort: .random(in: 0...0xffff, using: &rng),
                                       destinationPort: .random(in: 0...0xffff, using: &rng), proto: proto)
                } else {
                    func v4() -> IPAddress { .v4(IPv4Address(.random(in: 0...UInt32.max, using: &rng))) }
                    // Every tenth round only one field changes.
                    let keep = round % 10 == 0
                    target = FiveTuple(source: v4(), destination: keep ? p.tuple.destination : v4(),
                                       sourcePort: keep ? p.tuple.sourcePort : .random(in: 0...0xffff, using: &rng),
                                       destinationPort: .random(in: 0...0xffff, using: &rng), proto: proto)
                }
                try p.rewrite(to: target)
                let incremental = p.buffer.copyBytes()
                #expect(p.ipv4?.isChecksumValid ?? true)
                #expect(p.isTransportChecksumValid == true)
                let isICMP = proto == IPProtocolNumber.icmp || proto == IPProtocolNumber.icmpv6
                #expect(p.tuple.destinationPort == (isICMP ? 0 : target.destinationPort))
                #expect(p.tuple.source == target.source && p.tuple.sourcePort == target.sourcePort)
                p.recomputeChecksums()
                #expect(p.buffer.copyBytes() == incremental, "round \(round)")
                // Parsing the result gives the tuple the rewrite reported.
                let reparsed = try PacketLayout(parsing: p.buffer)
                #expect(reparsed.tuple == p.tuple)
            }
        }
    }

    @Test("Insert and strip on random IPv6/IPv4 TCP/UDP packets keep checksums valid and round-trip", arguments: [false, true])
    func insertStripRandom(ipv6: Bool) throws {
        var rng = SeededGenerator(seed: 108)
        for _ in 0..<200 {
            let proto = Bool.random(using: &rng) ? IPProtocolNumber.tcp : IPProtocolNumber.udp
            let bytes = Self.randomPacket(ipv6: ipv6, proto: proto, using: &rng)
            let block = (0..<Int.random(in: 0...150, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let headroom = Int.random(in: 0...200, using: &rng)
            try withParsed(bytes, headroom: headroom, tailroom: 200) { p in
                p.recomputeChecksums()
                let before = p.buffer.copyBytes()
                // Even sizes are updated incrementally, odd ones summed again: both must give
                // exactly what a full recomputation gives.
                func storedChecksum() -> UInt16? { proto == IPProtocolNumber.tcp ? p.tcp?.checksum : p.udp?.checksum }
                try block.withUnsafeBytes { try p.insertAfterL4Header($0) }
                #expect(p.isTransportChecksumValid == true && (p.ipv4?.isChecksumValid ?? true))
                #expect(storedChecksum() == p.computeTransportChecksum())
                let reparsed = try PacketLayout(parsing: p.buffer)
                #expect(reparsed == p.layout)
                p.withPayload { #expect(Array($0.prefix(block.count)) == block) }
                let trailer = Array(block.prefix(Int.random(in: 0...17, using: &rng)))
                try trailer.withUnsafeBytes { try p.appendTrailer($0) }
                #expect(p.isTransportChecksumValid == true && storedChecksum() == p.computeTransportChecksum())
                p.withPayload { #expect(Array($0.suffix(trailer.count)) == trailer) }
                try p.removeTrailer(count: trailer.count)
                try p.stripAfterL4Header(count: block.count)
                #expect(p.buffer.copyBytes() == before)
            }
        }
    }
}

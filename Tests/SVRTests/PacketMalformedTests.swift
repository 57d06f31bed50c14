import SVR
import TestSupport
import Testing

@Suite("Malformed packets and buffer bounds")
struct PacketMalformedTests {
    static func parse(_ bytes: [UInt8]) throws {
        _ = try withPacket(bytes) { try PacketLayout(parsing: $0) }
    }

    static func patched(_ bytes: [UInt8], _ changes: [Int: UInt8]) -> [UInt8] {
        var b = bytes
        for (i, v) in changes { b[i] = v }
        return b
    }

    static let v6udp = ipv6Packet(
        source: IPv6Address("2001:db8::1")!, destination: IPv6Address("2001:db8::2")!, nextHeader: 17,
        l4: udpSegment(source: 1, destination: 2, payload: [1, 2, 3]))

    @Test("Each kind of malformed header gets its own typed error")
    func typedErrors() throws {
        let tv1 = SpecVector.tv1
        let tv2 = SpecVector.tv2
        #expect(throws: PacketError.emptyPacket) { try Self.parse([]) }
        #expect(throws: PacketError.badVersion(5)) { try Self.parse(Self.patched(tv1, [0: 0x55])) }
        #expect(throws: PacketError.badVersion(0)) { try Self.parse([0x00]) }
        #expect(throws: PacketError.truncatedIPHeader(needed: 20, available: 19)) { try Self.parse(Array(tv1.prefix(19))) }
        #expect(throws: PacketError.ipv4HeaderLengthTooShort(ihl: 4)) { try Self.parse(Self.patched(tv1, [0: 0x44])) }
        #expect(throws: PacketError.truncatedIPHeader(needed: 60, available: 49)) { try Self.parse(Self.patched(SpecVector.tv4, [0: 0x4f])) }
        #expect(throws: PacketError.ipv4TotalLengthInvalid(totalLength: 166, headerLength: 20, available: 165)) {
            try Self.parse(Self.patched(tv1, [3: 0xa6]))
        }
        #expect(throws: PacketError.ipv4TotalLengthInvalid(totalLength: 19, headerLength: 20, available: 165)) {
            try Self.parse(Self.patched(tv1, [2: 0, 3: 19]))
        }
        #expect(throws: PacketError.tcpDataOffsetTooShort(dataOffset: 4)) { try Self.parse(Self.patched(tv2, [32: 0x42])) }
        #expect(throws: PacketError.tcpHeaderBeyondPacket(headerLength: 60, available: 40)) {
            // Total length cut to 60: 40 TCP bytes, data offset 15 words.
            try Self.parse(Array(Self.patched(tv2, [2: 0, 3: 60, 32: 0xf2]).prefix(60)))
        }
        #expect(throws: PacketError.truncatedTransportHeader(proto: 6, needed: 20, available: 10)) {
            try Self.parse(Array(Self.patched(tv2, [2: 0, 3: 30]).prefix(30)))
        }
        #expect(throws: PacketError.truncatedTransportHeader(proto: 17, needed: 8, available: 4)) {
            try Self.parse(Array(Self.patched(tv1, [2: 0, 3: 24]).prefix(24)))
        }
        #expect(throws: PacketError.udpLengthInvalid(udpLength: 146, available: 145)) { try Self.parse(Self.patched(tv1, [25: 0x92])) }
        #expect(throws: PacketError.udpLengthInvalid(udpLength: 144, available: 145)) { try Self.parse(Self.patched(tv1, [25: 0x90])) }
        #expect(throws: PacketError.udpLengthInvalid(udpLength: 7, available: 145)) { try Self.parse(Self.patched(tv1, [24: 0, 25: 7])) }
        #expect(throws: PacketError.truncatedTransportHeader(proto: 1, needed: 8, available: 4)) {
            try Self.parse(ipv4Packet(source: .any, destination: .any, proto: 1, l4: [8, 0, 0, 0]))
        }

        let v6 = Self.v6udp
        #expect(throws: PacketError.truncatedIPHeader(needed: 40, available: 39)) { try Self.parse(Array(v6.prefix(39))) }
        #expect(throws: PacketError.ipv6PayloadLengthExceedsBuffer(payloadLength: 12, available: 11)) { try Self.parse(Self.patched(v6, [5: 12])) }
        #expect(throws: PacketError.ipv6Jumbogram) { try Self.parse(Self.patched(v6, [5: 0, 6: 0])) }
        #expect(throws: PacketError.truncatedExtensionHeader(nextHeader: 60, offset: 40)) { try Self.parse(Self.patched(v6, [6: 60])) }
        #expect(throws: PacketError.truncatedExtensionHeader(nextHeader: 0, offset: 40)) {
            // Hop-by-hop header claims 16 bytes, 11 are there.
            try Self.parse(Self.patched(v6, [6: 0, 41: 1]))
        }
        #expect(throws: PacketError.unsupportedExtensionHeader(135)) { try Self.parse(Self.patched(v6, [6: 135])) }
        #expect(throws: PacketError.udpLengthInvalid(udpLength: 12, available: 11)) { try Self.parse(Self.patched(v6, [45: 12])) }
    }

    @Test("Every truncation of every spec vector and an IPv6 packet is refused with a PacketError")
    func truncations() {
        for packet in SpecVector.all + [Self.v6udp] {
            for length in 0..<packet.count {
                #expect(throws: PacketError.self, "length \(length)") { try Self.parse(Array(packet.prefix(length))) }
            }
        }
    }

    @Test("Random byte mutations never crash; whatever parses is in bounds and editable")
    func mutations() throws {
        var rng = SeededGenerator(seed: 0x5eed)
        let seeds = SpecVector.all + [Self.v6udp, try PacketRewriteTests.plainSYN()]
        var parsed = 0
        for round in 0..<20_000 {
            var bytes = seeds[round % seeds.count]
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                // Mostly the headers, where the length fields are.
                let i = Int.random(in: 0..<min(bytes.count, round % 3 == 0 ? bytes.count : 64), using: &rng)
                bytes[i] = UInt8.random(in: 0...255, using: &rng)
            }
            if round % 5 == 0 { bytes.removeLast(Int.random(in: 0...bytes.count, using: &rng)) }
            try withPacket(bytes, headroom: 64, tailroom: 64) { buffer in
                guard var p = try? IPPacket(buffer) else { return }
                parsed += 1
                let l = p.layout
                #expect(l.l4Offset >= 20 && l.payloadOffset <= l.ipLength && l.ipLength <= buffer.count)
                _ = p.computeTransportChecksum()
                p.recomputeChecksums()
                try? p.rewrite(to: l.tuple.reversed)
                try? p.insertAfterL4Header(count: 12) { $0.initializeMemory(as: UInt8.self, repeating: 0xee) }
                try? p.appendTrailer(count: 16) { $0.initializeMemory(as: UInt8.self, repeating: 0xaa) }
                try? p.removeTrailer(count: 16)
                try? p.stripAfterL4Header(count: 12)
                if l.fragment == .unfragmented && l.hasTransportHeader {
                    let reparsed = try PacketLayout(parsing: p.buffer)
                    #expect(reparsed.ipLength == l.ipLength)
                }
            }
        }
        #expect(parsed > 1000)
    }

    @Test("PacketBuffer: slot checks, grow/shrink limits, gaps move the smaller side")
    func bufferGeometry() throws {
        let slot = PacketSlot(capacity: 64)
        try withExtendedLifetime(slot) {
            #expect(throws: PacketError.invalidSlot(capacity: 64, offset: 60, count: 5)) { try slot.packet(headroom: 60, count: 5) }
            #expect(throws: PacketError.invalidSlot(capacity: 64, offset: -1, count: 5)) { try slot.packet(headroom: -1, count: 5) }
            var b = try slot.packet(headroom: 8, copying: Array(0..<16))
            #expect(b.headroom == 8 && b.tailroom == 40 && b.count == 16)
            #expect(try b.uint16(at: 2) == 0x0203 && b.uint32(at: 12) == 0x0c0d_0e0f && b.byte(at: 15) == 15)
            #expect(throws: PacketError.outOfBounds(offset: 15, length: 2, packetLength: 16)) { try b.uint16(at: 15) }
            #expect(throws: PacketError.outOfBounds(offset: -1, length: 1, packetLength: 16)) { try b.byte(at: -1) }
            #expect(throws: PacketError.noHeadroom(needed: 9, available: 8)) { try b.growFront(by: 9) }
            #expect(throws: PacketError.noTailroom(needed: 41, available: 40)) { try b.growBack(by: 41) }

            // Gap near the front: the 2 front bytes move into the headroom.
            try b.insertGap(count: 4, at: 2)
            #expect(b.offset == 4 && b.count == 20)
            #expect(Array(b.copyBytes()[0..<2]) == [0, 1] && Array(b.copyBytes()[6...]) == Array(2..<16))
            try b.removeBytes(count: 4, at: 2)
            #expect(b.offset == 8 && b.copyBytes() == Array(0..<16))
            // Gap near the end: the 2 back bytes move into the tailroom.
            try b.insertGap(count: 4, at: 14)
            #expect(b.offset == 8 && Array(b.copyBytes()[18...]) == [14, 15])
            try b.removeBytes(count: 4, at: 14)
            #expect(b.copyBytes() == Array(0..<16))
            #expect(throws: PacketError.outOfBounds(offset: 17, length: 1, packetLength: 16)) { try b.insertGap(count: 1, at: 17) }
            #expect(throws: PacketError.outOfBounds(offset: 10, length: 7, packetLength: 16)) { try b.removeBytes(count: 7, at: 10) }

            try ([0xaa, 0xbb] as [UInt8]).withUnsafeBytes { try b.copy($0, to: 14) }
            #expect(try b.uint16(at: 14) == 0xaabb)
            #expect(throws: PacketError.outOfBounds(offset: 15, length: 2, packetLength: 16)) {
                try ([1, 2] as [UInt8]).withUnsafeBytes { try b.copy($0, to: 15) }
            }
            try b.growFront(by: 8)
            try b.setUInt32(0xdead_beef, at: 0)
            try b.shrinkFront(by: 2)
            #expect(try b.uint16(at: 0) == 0xbeef && b.headroom == 2)
            try b.shrinkBack(by: 22)
            #expect(b.count == 0)
            #expect(throws: PacketError.lengthOutOfRange(requested: 1, available: 0)) { try b.shrinkBack(by: 1) }
        }
    }
}

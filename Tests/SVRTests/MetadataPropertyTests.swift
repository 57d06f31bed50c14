// Seeded random tests of the metadata codec: random valid TLV sets round-trip byte-exact
// (encode -> decode -> encode), and every truncation and thousands of random mutations of the
// spec vectors and of random blocks decode without crashing, with both decoders agreeing and
// every accepted block re-encoding to its own bytes.

import TestSupport
import SVR
import Testing

private func randomName(_ g: inout SeededGenerator) -> String {
    let pool: [Character] = ["a", "b", "z", "0", "9", "-", "_", ".", "é", "ß", "東", "京", "🚀"]
    let target = Int.random(in: 0..<10, using: &g) == 0 ? Int.random(in: 1...255, using: &g) : Int.random(in: 1...24, using: &g)
    var s = ""
    while s.utf8.count < target {
        let c = pool.randomElement(using: &g)!
        if s.utf8.count + c.utf8.count > target { if s.isEmpty { continue } else { break } }
        s.append(c)
    }
    return s
}

private func randomBytes(_ count: Int, _ g: inout SeededGenerator) -> [UInt8] {
    (0..<count).map { _ in UInt8.random(in: 0...255, using: &g) }
}

private func randomAddress(v6: Bool, _ g: inout SeededGenerator) -> IPAddress {
    v6 ? .v6(IPv6Address(high: g.next(), low: g.next())) : .v4(IPv4Address(UInt32.random(in: 0...UInt32.max, using: &g)))
}

private func randomTuple(_ g: inout SeededGenerator) -> FiveTuple {
    let v6 = Bool.random(using: &g)
    return FiveTuple(
        source: randomAddress(v6: v6, &g), destination: randomAddress(v6: v6, &g),
        sourcePort: UInt16.random(in: 0...UInt16.max, using: &g), destinationPort: UInt16.random(in: 0...UInt16.max, using: &g),
        proto: UInt8.random(in: 0...255, using: &g))
}

/// Number of TLV kinds `randomTLV` knows (the last is "unknown type", which may repeat).
private let tlvKinds = 28

/// A random, valid TLV of kind `kind`.
private func randomTLV(kind: Int, _ g: inout SeededGenerator) -> MetadataTLV {
    func u32() -> UInt32 { UInt32(truncatingIfNeeded: g.next()) }
    switch kind {
    case 0:
        return .fragment(FragmentInfo(
            extendedID: u32(), originalID: UInt16(truncatingIfNeeded: g.next()), reservedFlag: Bool.random(using: &g),
            dontFragment: Bool.random(using: &g), moreFragments: Bool.random(using: &g),
            offset: UInt16.random(in: 0...0x1FFF, using: &g), largestSeenFragment: UInt16(truncatingIfNeeded: g.next())))
    case 1: return .forwardContext(randomTuple(&g))
    case 2: return .reverseContext(randomTuple(&g))
    case 3: return .sessionUUID(SessionUUID(high: g.next(), low: g.next()))
    case 4: return .tenant(randomName(&g))
    case 5: return .globalInterfaceID(u32())
    case 6: return .service(randomName(&g))
    case 7: return .sessionEncrypted
    case 8: return .tcpSyn
    case 9: return .sessionCount(g.next())
    case 10: return .sourceRouter(randomName(&g))
    case 11: return .securityPolicy(randomName(&g))
    case 12: return .securityID(u32())
    case 13: return .destinationRouter(randomName(&g))
    case 14: return .disableForwardMetadata
    case 15: return .peerPathway(randomName(&g))
    case 16: return .icmpErrorLocation(randomAddress(v6: Bool.random(using: &g), &g))
    case 17: return .control(SVRControlCode(rawValue: UInt8.random(in: 0...255, using: &g)))
    case 18: return .sourceNATAddress(IPv4Address(u32()))
    case 19:
        return .pathMetrics(PathMetrics(
            txColor: UInt8.random(in: 0...15, using: &g), txTime: u32() & 0x0FFF_FFFF, rxColor: UInt8.random(in: 0...15, using: &g),
            rxTime: u32() & 0x0FFF_FFFF, drop: Bool.random(using: &g), previousRxColorCount: UInt16.random(in: 0...0x7FFF, using: &g)))
    case 20:
        return .modifyRequest(ModifyRequest(rawValue: UInt16(truncatingIfNeeded: g.next())), extra: randomBytes(Int.random(in: 0...6, using: &g), &g))
    case 21: return .applicationName(randomName(&g))
    case 22: return .remainingSessionTime(u32())
    case 23: return .healthCheck(HealthCheck(rawValue: UInt8.random(in: 0...255, using: &g)))
    case 24: return .sessionKey(randomBytes(Int.random(in: 2...80, using: &g), &g))
    case 25:
        let v6 = Bool.random(using: &g)
        return .multicastGroup(MulticastGroup(
            flags: UInt8.random(in: 0...255, using: &g), source: randomAddress(v6: v6, &g), group: randomAddress(v6: v6, &g),
            proto: UInt8.random(in: 0...255, using: &g)))
    case 26: return .multicastEgressList((0..<Int.random(in: 0...4, using: &g)).map { _ in randomName(&g) })
    default:
        var t: UInt16
        repeat { t = UInt16.random(in: 0...UInt16.max, using: &g) } while MetadataTLVType(t).isKnown
        return .unknown(type: t, value: randomBytes(Int.random(in: 0...20, using: &g), &g))
    }
}

/// A random valid block: each kind at most once (unknown types up to three times), random
/// section for each, random order.
private func randomBlock(_ g: inout SeededGenerator) -> (header: [MetadataTLV], payload: [MetadataTLV]) {
    var tlvs = [MetadataTLV]()
    for kind in 0..<tlvKinds where Int.random(in: 0..<10, using: &g) < 4 {
        let copies = kind == tlvKinds - 1 ? Int.random(in: 1...3, using: &g) : 1
        for _ in 0..<copies { tlvs.append(randomTLV(kind: kind, &g)) }
    }
    tlvs.shuffle(using: &g)
    var header = [MetadataTLV]()
    var payload = [MetadataTLV]()
    for t in tlvs { if Bool.random(using: &g) { header.append(t) } else { payload.append(t) } }
    // Keep the header section within its 12-bit length.
    if let n = try? MetadataWriter.encodedLength(header: header, payload: []), n > MetadataHeader.maxHeaderLength {
        payload = header + payload
        header = []
    }
    return (header, payload)
}

@Test func randomValidTLVSetsRoundTripByteExact() throws {
    var g = SeededGenerator(seed: 0x5356_525F_4D44)
    var total = 0
    for _ in 0..<3000 {
        let (header, payload) = randomBlock(&g)
        total += header.count + payload.count
        let bytes = try encodeBlock(header: header, payload: payload)
        #expect(try MetadataWriter.encodedLength(header: header, payload: payload) == bytes.count)
        let list = try #require(try decodeList(bytes))
        try #require(list.headerTLVs == header && list.payloadTLVs == payload, "\(header) \(payload)")
        try #require(try encodeBlock(header: list.headerTLVs, payload: list.payloadTLVs) == bytes)
        // The per-packet decoder sees the same values.
        let d = try #require(try decodeFast(bytes))
        let unknown = (header + payload).filter { if case .unknown = $0 { true } else { false } }.count
        #expect(d.unknownCount == unknown && d.knownCount == header.count + payload.count - unknown)
        for t in header + payload {
            if case .unknown = t { continue }
            try #require(field(of: d, like: t, in: bytes) == t)
        }
    }
    #expect(total > 3000 * 8)  // the sets are not trivially small
}

@Test func everyTruncationOfEveryVectorFailsCleanly() throws {
    for v in metadataVectors {
        let bytes = v.bytes
        let block = v.headerLength + v.payloadLength
        for n in 0...bytes.count {
            let prefix = Array(bytes[..<n])
            let e = metadataError { () throws(MetadataError) in try decodeFast(prefix) }
            switch n {
            case ..<8: #expect(try e == nil && decodeFast(prefix) == nil)
            case ..<12: #expect(e == .truncatedHeader(available: n))
            case ..<block: #expect(e == .blockExceedsBuffer(blockLength: block, available: n))
            default: #expect(checkDecodeConsistency(prefix), "\(v.name) prefix \(n)")
            }
        }
    }
}

/// Applies 1-4 random edits: overwrite, bit flip, insert, delete, or a random 16-bit length.
private func mutate(_ input: [UInt8], _ g: inout SeededGenerator) -> [UInt8] {
    var b = input
    for _ in 0..<Int.random(in: 1...4, using: &g) {
        let i = b.isEmpty ? 0 : Int.random(in: 0..<b.count, using: &g)
        switch Int.random(in: 0..<5, using: &g) {
        case 0 where !b.isEmpty: b[i] = UInt8.random(in: 0...255, using: &g)
        case 1 where !b.isEmpty: b[i] ^= 1 << UInt8.random(in: 0...7, using: &g)
        case 2: b.insert(UInt8.random(in: 0...255, using: &g), at: i)
        case 3 where !b.isEmpty: b.remove(at: i)
        default:
            if i + 1 < b.count {
                let v = [0, 1, 2, 4, 255, 256, 0xFFFF, Int.random(in: 0...0xFFFF, using: &g)].randomElement(using: &g)!
                b[i] = UInt8(v >> 8)
                b[i + 1] = UInt8(v & 0xFF)
            }
        }
    }
    return b
}

@Test func seededRandomMutationsNeverCrash() throws {
    var g = SeededGenerator(seed: 7)
    var accepted = 0
    var rejected = 0
    var inputs = metadataVectors.map(\.bytes)
    for _ in 0..<100 {
        let (header, payload) = randomBlock(&g)
        inputs.append(try encodeBlock(header: header, payload: payload))
    }
    for input in inputs {
        for _ in 0..<(input.count < 160 ? 1000 : 100) {
            if checkDecodeConsistency(mutate(input, &g)) { accepted += 1 } else { rejected += 1 }
        }
    }
    // Both outcomes must be well represented, or the mutations test nothing.
    #expect(accepted > 1000 && rejected > 1000, "accepted \(accepted), rejected \(rejected)")
}

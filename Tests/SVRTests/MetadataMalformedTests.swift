// Malformed metadata: one typed error per kind of malformation (spec §4.6, §5), unknown and
// misplaced TLVs, and encode-side errors.

import SVR
import TestSupport
import Testing

/// One TLV's bytes, built by hand so tests can write what the encoder refuses to.
func rawTLV(_ type: UInt16, _ value: [UInt8]) -> [UInt8] {
    [UInt8(type >> 8), UInt8(type & 0xFF), UInt8(value.count >> 8), UInt8(value.count & 0xFF)] + value
}

/// A block with correct lengths around hand-built sections.
func rawBlock(_ header: [UInt8], _ payload: [UInt8], tail: [UInt8] = []) -> [UInt8] {
    let hl = 12 + header.count
    return hexBytes("4c48dbc6ddf6670c") + [UInt8(0x10 | hl >> 8), UInt8(hl & 0xFF), UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        + header + payload + tail
}

private func decodeError(_ bytes: [UInt8], trailerLength: Int = 0) -> MetadataError? {
    let e = metadataError { () throws(MetadataError) in try decodeFast(bytes, trailerLength: trailerLength) }
    // The owned decoder must fail the same way.
    #expect(e == metadataError { () throws(MetadataError) in try decodeList(bytes, trailerLength: trailerLength) })
    return e
}

@Test func noCookieMeansNoMetadata() throws {
    #expect(try decodeFast([]) == nil)
    #expect(try decodeFast(hexBytes("4c48dbc6ddf667")) == nil)
    #expect(try decodeFast(hexBytes("4c48dbc6ddf6670d100c0000")) == nil)
    #expect(try decodeFast(Array("GET / HTTP/1.1\r\n".utf8)) == nil)
}

@Test func truncatedHeader() {
    for n in 8..<12 {
        #expect(decodeError(Array(hexBytes("4c48dbc6ddf6670c100c0000")[..<n])) == .truncatedHeader(available: n))
    }
}

@Test func badVersionIsItsOwnError() {
    var b = metadataVectors[0].bytes
    b[8] = 0x20 | (b[8] & 0x0F)
    #expect(decodeError(b) == .unsupportedVersion(2))
    b[8] &= 0x0F
    #expect(decodeError(b) == .unsupportedVersion(0))
    b[8] |= 0xF0
    #expect(decodeError(b) == .unsupportedVersion(15))
}

@Test func headerLengthBelowBaseHeader() {
    #expect(decodeError(hexBytes("4c48dbc6ddf6670c 100b 0000 00")) == .headerLengthTooSmall(11))
    #expect(decodeError(hexBytes("4c48dbc6ddf6670c 1000 0000")) == .headerLengthTooSmall(0))
}

@Test func lengthsBeyondTheBuffer() {
    let tv4 = metadataVectors[4].bytes  // 21 bytes, block 17 + 4
    #expect(decodeError(Array(tv4.dropLast())) == .blockExceedsBuffer(blockLength: 21, available: 20))
    // Header Length alone past the end.
    #expect(decodeError(hexBytes("4c48dbc6ddf6670c 1fff 0000")) == .blockExceedsBuffer(blockLength: 4095, available: 12))
    // Payload Length past the end.
    #expect(decodeError(hexBytes("4c48dbc6ddf6670c 100c ffff 0012 0000")) == .blockExceedsBuffer(blockLength: 65547, available: 16))
    // The HMAC trailer is not available to the block: TV1 has 137 bytes, block 108.
    let tv1 = metadataVectors[0].bytes
    #expect(decodeError(tv1, trailerLength: 29) == nil)
    #expect(decodeError(tv1, trailerLength: 30) == .blockExceedsBuffer(blockLength: 108, available: 107))
    #expect(decodeError(tv1, trailerLength: 1000) == .blockExceedsBuffer(blockLength: 108, available: -863))
}

@Test func tlvOverrunningItsSection() {
    // Security ID claims 5 bytes: runs 1 byte into the payload section.
    var b = metadataVectors[0].bytes
    b[15] = 5
    #expect(decodeError(b) == .tlvOverrunsSection(type: .securityID, offset: 12, length: 5))
    // Last payload TLV of TV4 claims 1 byte that is not in the section.
    #expect(decodeError(rawBlock([], hexBytes("0012 0001"), tail: [0])) == .tlvOverrunsSection(type: .disableForwardMetadata, offset: 12, length: 1))
    // Walks that do not end at the section end: 1-3 stray bytes.
    for stray in 1...3 {
        let header = rawTLV(16, [0, 0, 0, 1]) + [UInt8](repeating: 0, count: stray)
        #expect(decodeError(rawBlock(header, [])) == .truncatedTLVHeader(offset: 20))
        #expect(decodeError(rawBlock([], [UInt8](repeating: 0, count: stray))) == .truncatedTLVHeader(offset: 12))
    }
}

/// Every fixed-size TLV with a value one byte short and one byte long (and empty).
@Test(arguments: [
    (UInt16(1), 10), (2, 13), (3, 37), (4, 13), (5, 37), (6, 16), (8, 4), (11, 0), (12, 0), (13, 8),
    (16, 4), (18, 0), (20, 4), (21, 16), (24, 1), (25, 4), (26, 10), (42, 4),
])
func wrongSizeForFixedTLV(type: UInt16, size: Int) {
    for bad in Set([size - 1, size + 1, 0]) where bad >= 0 && bad != size {
        let tlv = rawTLV(type, [UInt8](repeating: 0x41, count: bad))
        let expected = MetadataError.wrongLength(type: MetadataTLVType(type), length: bad)
        #expect(decodeError(rawBlock(tlv, [])) == expected, "type \(type) length \(bad)")
        #expect(decodeError(rawBlock([], tlv)) == expected, "type \(type) length \(bad)")
    }
    let good = rawTLV(type, [UInt8](repeating: 0x41, count: size))
    #expect(decodeError(rawBlock([], good)) == nil, "type \(type) length \(size)")
}

@Test func variableTLVsBelowTheirMinimum() {
    #expect(decodeError(rawBlock([], rawTLV(28, [0x80]))) == .wrongLength(type: .modifyRequest, length: 1))
    #expect(decodeError(rawBlock([], rawTLV(46, []))) == .wrongLength(type: .healthCheckOrSessionKey, length: 0))
    #expect(decodeError(rawBlock([], rawTLV(50, []))) == .wrongLength(type: .multicastGroup, length: 0))
    #expect(decodeError(rawBlock([], rawTLV(50, [4, 0, 1, 2, 3, 4]))) == .wrongLength(type: .multicastGroup, length: 6))
    #expect(decodeError(rawBlock([], rawTLV(51, [0]))) == .wrongLength(type: .multicastEgressList, length: 1))
}

@Test(arguments: [UInt16(7), 10, 14, 15, 17, 19, 35])
func namesEmptyOversizedOrNotUTF8(type: UInt16) throws {
    let t = MetadataTLVType(type)
    #expect(decodeError(rawBlock([], rawTLV(type, []))) == .emptyName(t))
    #expect(decodeError(rawBlock([], rawTLV(type, [UInt8](repeating: 0x61, count: 256)))) == .nameTooLong(type: t, length: 256))
    #expect(decodeError(rawBlock([], rawTLV(type, [UInt8](repeating: 0x61, count: 255)))) == nil)
    #expect(decodeError(rawBlock([], rawTLV(type, [0x61, 0xC3]))) == .invalidUTF8(t))  // cut 2-byte sequence
    #expect(decodeError(rawBlock([], rawTLV(type, [0xED, 0xA0, 0x80]))) == .invalidUTF8(t))  // surrogate
    #expect(decodeError(rawBlock([], rawTLV(type, [0xC0, 0xAF]))) == .invalidUTF8(t))  // overlong
    #expect(decodeError(rawBlock([], rawTLV(type, [0xF4, 0x90, 0x80, 0x80]))) == .invalidUTF8(t))  // > U+10FFFF
    #expect(decodeError(rawBlock([], rawTLV(type, Array("zürich-東京-🚀".utf8)))) == nil)
}

@Test func oversizedAndEmptyNamesOnEncode() throws {
    let long = String(repeating: "n", count: 256)
    #expect(metadataError { () throws(MetadataError) in try encodeBlock(header: [], payload: [.tenant(long)]) }
            == .nameTooLong(type: .tenant, length: 256))
    #expect(metadataError { () throws(MetadataError) in try encodeBlock(header: [], payload: [.service("")]) } == .emptyName(.service))
    #expect(metadataError { () throws(MetadataError) in try encodeBlock(header: [], payload: [.multicastEgressList(["a", long])]) }
            == .nameTooLong(type: .multicastEgressList, length: 256))
    // 255 bytes of multi-byte UTF-8 (85 x 3 bytes) is fine and round-trips.
    let name = String(repeating: "東", count: 85)
    let block = try encodeBlock(header: [], payload: [.sourceRouter(name)])
    #expect(try decodeList(block)?.payloadTLVs == [.sourceRouter(name)])
}

@Test func multicastStructureErrors() {
    #expect(decodeError(rawBlock([], rawTLV(50, [5] + [UInt8](repeating: 0, count: 10)))) == .invalidValue(.multicastGroup))
    #expect(decodeError(rawBlock([], rawTLV(51, [0, 2, 1, 0x61]))) == .invalidValue(.multicastEgressList))  // 1 of 2 names
    #expect(decodeError(rawBlock([], rawTLV(51, [0, 1, 3, 0x61]))) == .invalidValue(.multicastEgressList))  // name runs out
    #expect(decodeError(rawBlock([], rawTLV(51, [0, 1, 1, 0x61, 0]))) == .invalidValue(.multicastEgressList))  // trailing byte
    #expect(decodeError(rawBlock([], rawTLV(51, [0, 1, 0]))) == .emptyName(.multicastEgressList))
    #expect(decodeError(rawBlock([], rawTLV(51, [0, 1, 1, 0xFF]))) == .invalidUTF8(.multicastEgressList))
    #expect(decodeError(rawBlock([], rawTLV(51, [0, 0]))) == nil)
}

@Test func duplicateKinds() {
    let ctx4 = rawTLV(2, hexBytes("0a01010a ac100214 9c40 0035 11"))
    let ctx6 = rawTLV(3, [UInt8](repeating: 0, count: 37))
    #expect(decodeError(rawBlock([], ctx4 + ctx4)) == .duplicateTLV(.forwardContextV4))
    #expect(decodeError(rawBlock([], ctx4 + ctx6)) == .duplicateTLV(.forwardContextV6))
    #expect(decodeError(rawBlock(rawTLV(16, [0, 0, 0, 1]), rawTLV(16, [0, 0, 0, 2]))) == .duplicateTLV(.securityID))
    #expect(decodeError(rawBlock([], rawTLV(12, []) + rawTLV(12, []))) == .duplicateTLV(.tcpSyn))
    // A health check and a session key share type 46 but are different kinds.
    #expect(decodeError(rawBlock(rawTLV(46, [1]), rawTLV(46, [1, 2, 3]))) == nil)
    #expect(decodeError(rawBlock(rawTLV(46, [1]), rawTLV(46, [2]))) == .duplicateTLV(.healthCheckOrSessionKey))
    // Unknown types may repeat.
    #expect(decodeError(rawBlock([], rawTLV(9, []) + rawTLV(9, []))) == nil)
}

@Test func unknownTypesAreSkippedAndCounted() throws {
    let header = rawTLV(9, [1, 2, 3]) + rawTLV(16, [0, 0, 0, 7])
    let payload = rawTLV(0xFFFF, []) + rawTLV(7, Array("red".utf8)) + rawTLV(47, [UInt8](repeating: 9, count: 300))
    let bytes = rawBlock(header, payload, tail: [0xAB])
    let d = try #require(try decodeFast(bytes))
    #expect(d.unknownCount == 3 && d.firstUnknownType == 9 && d.knownCount == 2)
    #expect(d.securityID == 7 && bytes.withUnsafeBytes { d.tenant?.string(in: $0) } == "red")
    #expect(bytes[d.originalPayloadOffset...] == [0xAB])
    let list = try #require(try decodeList(bytes))
    #expect(list.headerTLVs == [.unknown(type: 9, value: [1, 2, 3]), .securityID(7)])
    #expect(list.payloadTLVs == [.unknown(type: 0xFFFF, value: []), .tenant("red"), .unknown(type: 47, value: [UInt8](repeating: 9, count: 300))])
    checkDecodeConsistency(bytes)
}

@Test func knownTLVsAreAcceptedInEitherSection() throws {
    // Security ID (normally header) in the payload section, tenant (normally payload) in the header.
    let bytes = rawBlock(rawTLV(7, Array("blue".utf8)), rawTLV(16, [0, 0, 0, 1]))
    let d = try #require(try decodeFast(bytes))
    #expect(d.securityID == 1 && bytes.withUnsafeBytes { d.tenant?.string(in: $0) } == "blue")
    let e = try encodeBlock(header: [.tenant("blue")], payload: [.securityID(1)])
    #expect(e == bytes)
}

@Test func encodeSideErrors() throws {
    let tuple = FiveTuple(source: v4("10.0.0.1"), destination: IPAddress("2001:db8::1")!, sourcePort: 1, destinationPort: 2, proto: 6)
    #expect(metadataError { () throws(MetadataError) in try encodeBlock(header: [], payload: [.forwardContext(tuple)]) }
            == .mixedAddressFamilies(.forwardContextV4))
    let frag = FragmentInfo(extendedID: 1, originalID: 2, dontFragment: false, moreFragments: true, offset: 0x2000, largestSeenFragment: 3)
    #expect(metadataError { () throws(MetadataError) in try encodeBlock(header: [.fragment(frag)], payload: []) } == .fieldOutOfRange(.fragment))
    let pm = PathMetrics(txColor: 16, txTime: 0, rxColor: 0, rxTime: 0, drop: false, previousRxColorCount: 0)
    #expect(metadataError { () throws(MetadataError) in try encodeBlock(header: [.pathMetrics(pm)], payload: []) } == .fieldOutOfRange(.pathMetrics))
    let pm2 = PathMetrics(txColor: 0, txTime: 1 << 28, rxColor: 0, rxTime: 0, drop: false, previousRxColorCount: 0x8000)
    #expect(metadataError { () throws(MetadataError) in try encodeBlock(header: [.pathMetrics(pm2)], payload: []) } == .fieldOutOfRange(.pathMetrics))
    #expect(metadataError { () throws(MetadataError) in try encodeBlock(header: [], payload: [.sessionKey([1])]) }
            == .wrongLength(type: .healthCheckOrSessionKey, length: 1))
    #expect(metadataError { () throws(MetadataError) in try encodeBlock(header: [], payload: [.unknown(type: 7, value: [])]) }
            == .knownTypeAsUnknown(.tenant))
    let big = [MetadataTLV](repeating: .sessionKey([UInt8](repeating: 1, count: 1000)), count: 5)
    #expect(metadataError { () throws(MetadataError) in try encodeBlock(header: big, payload: []) } == .headerSectionTooLong(5032))
    let huge = [MetadataTLV](repeating: .sessionKey([UInt8](repeating: 1, count: 30_000)), count: 3)
    #expect(metadataError { () throws(MetadataError) in try encodeBlock(header: [], payload: huge) } == .payloadSectionTooLong(90_012))
    #expect(metadataError { () throws(MetadataError) in try encodeBlock(header: [], payload: [.sessionKey([UInt8](repeating: 1, count: 70_000))]) }
            == .valueTooLong(type: .healthCheckOrSessionKey, length: 70_000))
}

@Test func writerBufferAndSectionOrder() throws {
    var small = [UInt8](repeating: 0, count: 11)
    #expect(metadataError { () throws(MetadataError) in
        try withMutableBytes(&small) { b throws(MetadataError) in try MetadataWriter(into: b) }
    } == .bufferTooSmall(needed: 12, available: 11))
    var buf = [UInt8](repeating: 0, count: 28)
    try withMutableBytes(&buf) { b throws(MetadataError) in
        var w = try MetadataWriter(into: b)
        try w.appendHeader(.securityID(1))  // 12 + 8 = 20
        // "blue1" would need 20 + 4 + 5 = 29 bytes: refused, and nothing is written.
        #expect(metadataError { () throws(MetadataError) in try w.appendPayload(.tenant("blue1")) } == .bufferTooSmall(needed: 29, available: 28))
        #expect(w.headerLength == 20 && w.payloadLength == 0)
        try w.appendHeader(.tcpSyn)  // still allowed: no payload TLV was written
        try w.appendPayload(.sessionEncrypted)
        #expect(metadataError { () throws(MetadataError) in try w.appendHeader(.tcpSyn) } == .headerTLVAfterPayload)
        #expect(w.headerLength == 24 && w.payloadLength == 4)
        #expect(try w.finish() == 28)
    }
    #expect(hexString(buf) == "4c48dbc6ddf6670c10180004" + "0010000400000001" + "000c0000" + "000b0000")
}

// Spec §12 test vectors TV1-TV6 and TV8, in both directions: encoding the listed values gives
// exactly the bytes, and decoding the bytes gives exactly the values (owned list and per-packet
// DecodedMetadata). TV7 (HMAC) belongs to the crypto tests.

import SVR
import TestSupport
import Testing

struct MetadataVector: Sendable, CustomTestStringConvertible {
    let name: String
    /// The L4 payload: metadata block followed by the original payload.
    let hex: String
    let headerLength: Int
    let payloadLength: Int
    let header: [MetadataTLV]
    let payload: [MetadataTLV]
    /// The original L4 payload after the block.
    let original: String

    var testDescription: String { name }
    var bytes: [UInt8] { hexBytes(hex) }
}

private let tv1UUID = SessionUUID(high: 0xF81D_4FAE_7DEC_11D0, low: 0xA765_00A0_C91E_6BF6)
private let tv2UUID = SessionUUID(high: 0x6BA7_B810_9DAD_11D1, low: 0x80B4_00C0_4FD4_30C8)
private let tv2Payload: [MetadataTLV] = [
    .forwardContext(FiveTuple(source: v4("10.1.1.10"), destination: v4("172.16.2.30"), sourcePort: 51000, destinationPort: 443, proto: 6)),
    .sessionUUID(tv2UUID), .tenant("blue"), .service("web"), .sourceRouter("branch1"),
]

let metadataVectors: [MetadataVector] = [
    MetadataVector(
        name: "TV1 forward metadata, UDP, IPv4",
        hex: """
            4c48dbc6ddf6670c 1014 0058 0010 0004 00000001
            0002 000d 0a01010a ac100214 9c40 0035 11
            0006 0010 f81d4fae7dec11d0a76500a0c91e6bf6
            0007 0004 626c7565 000a 0008 636f72702d646e73 000e 0007 6272616e636831
            000f 0008 706565722d736563 0013 0004 77616e30
            abcd01000001000000000000076578616d706c6503636f6d0000010001
            """,
        headerLength: 20, payloadLength: 88, header: [.securityID(1)],
        payload: [
            .forwardContext(FiveTuple(source: v4("10.1.1.10"), destination: v4("172.16.2.20"), sourcePort: 40000, destinationPort: 53, proto: 17)),
            .sessionUUID(tv1UUID), .tenant("blue"), .service("corp-dns"), .sourceRouter("branch1"),
            .securityPolicy("peer-sec"), .peerPathway("wan0"),
        ],
        original: "abcd01000001000000000000076578616d706c6503636f6d0000010001"),
    MetadataVector(
        name: "TV2 forward metadata on a TCP SYN",
        hex: """
            4c48dbc6ddf6670c 1014 003f 0010 0004 00000001
            0002 000d 0a01010a ac10021e c738 01bb 06 0006 0010 6ba7b8109dad11d180b400c04fd430c8
            0007 0004 626c7565 000a 0003 776562 000e 0007 6272616e636831
            """,
        headerLength: 20, payloadLength: 63, header: [.securityID(1)], payload: tv2Payload, original: ""),
    MetadataVector(
        name: "TV2b TCP SYN under UDP transform",
        hex: """
            4c48dbc6ddf6670c 1014 0043 0010000400000001
            0002000d0a01010aac10021ec73801bb06 00060010 6ba7b8109dad11d180b400c04fd430c8
            00070004626c7565 000a0003776562 000e00076272616e636831 000c 0000
            """,
        headerLength: 20, payloadLength: 67, header: [.securityID(1)], payload: tv2Payload + [.tcpSyn],
        original: ""),
    MetadataVector(
        name: "TV3 reverse metadata",
        hex: """
            4c48dbc6ddf6670c 1014 0025 0010 0004 00000001
            0004 000d ac100214 0a01010a 0035 9c40 11 000e 0004 68756231
            000d 0008 0000000000000005
            abcd81800001000100000000076578616d706c6503636f6d0000010001c00c000100010000012c00045db8d822
            """,
        headerLength: 20, payloadLength: 37, header: [.securityID(1)],
        payload: [
            .reverseContext(FiveTuple(source: v4("172.16.2.20"), destination: v4("10.1.1.10"), sourcePort: 53, destinationPort: 40000, proto: 17)),
            .sourceRouter("hub1"), .sessionCount(5),
        ],
        original: "abcd81800001000100000000076578616d706c6503636f6d0000010001c00c000100010000012c00045db8d822"),
    MetadataVector(
        name: "TV4 disable-forward-metadata acknowledgement",
        hex: "4c48dbc6ddf6670c 1011 0004 0018 0001 03 0012 0000",
        headerLength: 17, payloadLength: 4, header: [.control(.disableMetadata)],
        payload: [.disableForwardMetadata], original: ""),
    MetadataVector(
        name: "TV5 false-positive header",
        hex: "4c48dbc6ddf6670c 100c 0000 4c48dbc6ddf6670c 6170702d64617461",
        headerLength: 12, payloadLength: 0, header: [], payload: [],
        original: "4c48dbc6ddf6670c6170702d64617461"),
    MetadataVector(
        name: "TV6 path metrics header TLV",
        hex: "4c48dbc6ddf6670c 101a 0000 001a 000a 100004d2 2000049c 0064 7274702d6672616d65",
        headerLength: 26, payloadLength: 0,
        header: [.pathMetrics(PathMetrics(txColor: 1, txTime: 1234, rxColor: 2, rxTime: 1180, drop: false, previousRxColorCount: 100))],
        payload: [], original: "7274702d6672616d65"),
    MetadataVector(
        name: "TV8 IPv6 forward context",
        hex: """
            4c48dbc6ddf6670c 100c 0029
            0003 0025 20010db8000100000000000000000010 20010db8000200000000000000000020 9c40 0035 11
            """,
        headerLength: 12, payloadLength: 41, header: [],
        payload: [
            .forwardContext(FiveTuple(source: IPAddress("2001:db8:1::10")!, destination: IPAddress("2001:db8:2::20")!, sourcePort: 40000, destinationPort: 53, proto: 17))
        ],
        original: ""),
]

@Test(arguments: metadataVectors)
func vectorEncodesToExactBytes(_ v: MetadataVector) throws {
    let block = try encodeBlock(header: v.header, payload: v.payload)
    #expect(hexString(block + hexBytes(v.original)) == hexString(v.bytes))
    #expect(try MetadataWriter.encodedLength(header: v.header, payload: v.payload) == block.count)
}

@Test(arguments: metadataVectors)
func vectorDecodesToExactValues(_ v: MetadataVector) throws {
    let bytes = v.bytes
    let list = try #require(try decodeList(bytes))
    #expect(list.header == MetadataHeader(headerLength: v.headerLength, payloadLength: v.payloadLength))
    #expect(list.headerTLVs == v.header)
    #expect(list.payloadTLVs == v.payload)

    let d = try #require(try decodeFast(bytes))
    #expect(d.header.headerLength == v.headerLength && d.header.payloadLength == v.payloadLength)
    #expect(d.knownCount == v.header.count + v.payload.count)
    #expect(d.unknownCount == 0)
    for t in v.header + v.payload { #expect(field(of: d, like: t, in: bytes) == t) }
    #expect(hexString(bytes[d.originalPayloadOffset...]) == v.original)
    #expect(d.isFalsePositive == (v.headerLength == 12 && v.payloadLength == 0))
}

@Test func tv1PerPacketFieldsReadWithoutCopying() throws {
    let bytes = metadataVectors[0].bytes
    let d = try #require(try decodeFast(bytes))
    #expect(d.securityID == 1)
    #expect(d.forwardContext?.description == "10.1.1.10:40000 -> 172.16.2.20:53 proto 17")
    #expect(d.sessionUUID?.description == "f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
    bytes.withUnsafeBytes { b in
        #expect(d.tenant?.equals("blue", in: b) == true)
        #expect(d.tenant?.equals("blu", in: b) == false)
        #expect(d.service?.string(in: b) == "corp-dns")
        #expect(d.sourceRouter?.range == 81..<88)
    }
    #expect(d.reverseContext == nil && d.tcpSyn == false && d.control == nil)
    #expect(d.payloadTLVRange == 20..<108 && d.originalPayloadOffset == 108)
}

@Test func tv4ControlAndTV6MetricsDecodeToTheirMeaning() throws {
    let tv4 = try #require(try decodeFast(metadataVectors[4].bytes))
    #expect(tv4.control == .disableMetadata && tv4.disableForwardMetadata)
    let tv6 = try #require(try decodeFast(metadataVectors[6].bytes))
    let m = try #require(tv6.pathMetrics)
    #expect((m.txColor, m.txTime, m.rxColor, m.rxTime, m.drop, m.previousRxColorCount) == (1, 1234, 2, 1180, false, 100))
}

@Test func falsePositiveHeaderBothWays() throws {
    // Sender: TV5's original payload starts with the cookie and needs the marker; others do not.
    let original = hexBytes(metadataVectors[5].original)
    #expect(original.withUnsafeBytes { MetadataHeader.needsFalsePositiveHeader(payload: $0) })
    #expect(!hexBytes("4c48dbc6ddf6670d").withUnsafeBytes { MetadataHeader.needsFalsePositiveHeader(payload: $0) })
    #expect(!hexBytes("4c48dbc6ddf667").withUnsafeBytes { MetadataHeader.needsFalsePositiveHeader(payload: $0) })
    var marker = [UInt8](repeating: 0xEE, count: 16)
    let n = try withMutableBytes(&marker) { b throws(MetadataError) in try MetadataHeader.writeFalsePositive(into: b) }
    #expect(n == 12 && hexString(marker[..<12]) == "4c48dbc6ddf6670c100c0000" && marker[12] == 0xEE)
    // Receiver: the marker is recognised, and the original payload follows it unchanged.
    let h = try #require(try withBytes(metadataVectors[5].bytes) { b throws(MetadataError) in try MetadataHeader.parse(b) })
    #expect(h.isFalsePositive && h == .falsePositive && h.originalPayloadOffset == 12)
    // A block with TLVs is not a false positive.
    #expect(try decodeFast(metadataVectors[4].bytes)?.isFalsePositive == false)
}

@Test func twoStepReceiveWithInPlaceDecryptedPayloadSection() throws {
    // Sender: TV1's block, then its payload section "encrypted" to 16 bytes more (ciphertext || IV
    // stand-in) and the Payload Length patched.
    let v = metadataVectors[0]
    var block = try encodeBlock(header: v.header, payload: v.payload)
    block += [UInt8](repeating: 0xA5, count: 16) + hexBytes(v.original)
    try withMutableBytes(&block) { b throws(MetadataError) in try MetadataHeader.setPayloadLength(88 + 16, in: b) }
    // Receiver step 1: the header covers the transmitted section.
    let h = try #require(try withBytes(block) { b throws(MetadataError) in try MetadataHeader.parse(b) })
    #expect(h.payloadTLVRange == 20..<124 && h.originalPayloadOffset == 124)
    // Step 2 after "decryption" in place: 88 clear bytes at the section start.
    let d = try withBytes(block) { b throws(MetadataError) in
        try MetadataDecoder.decode(b, header: h, payloadTLVLength: 88)
    }
    #expect(d.knownCount == 8 && d.payloadTLVRange == 20..<108 && d.originalPayloadOffset == 124)
    #expect(hexString(block[d.originalPayloadOffset...]) == v.original)
    // Without the clear length the 16 stand-in bytes are walked as TLVs and rejected.
    let e = metadataError { () throws(MetadataError) in
        try withBytes(block) { b throws(MetadataError) in try MetadataDecoder.decode(b, header: h) }
    }
    #expect(e == .tlvOverrunsSection(type: MetadataTLVType(0xA5A5), offset: 108, length: 0xA5A5))
    let tooLong = metadataError { () throws(MetadataError) in
        try withBytes(block) { b throws(MetadataError) in try MetadataDecoder.decode(b, header: h, payloadTLVLength: 105) }
    }
    #expect(tooLong == .invalidPayloadSectionLength(105))
}

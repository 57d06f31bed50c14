// Shared helpers for the packet tests: golden packets of spec §12, slots, a seeded generator
// and a reference (byte-by-byte) checksum to compare the fast one against.

import SVR
import TestSupport

/// The full IPv4 packets of spec §12 (TV1–TV6), as printed there.
enum SpecVector {
    static let tv1 = hexBytes("""
        450000a5123440004011c1dccb007101c63364024e207531009168fa
        4c48dbc6ddf6670c1014005800100004000000010002000d0a01010aac1002149c4000351100060010f81d4fae
        7dec11d0a76500a0c91e6bf600070004626c7565000a0008636f72702d646e73000e00076272616e636831000f
        0008706565722d7365630013000477616e30abcd01000001000000000000076578616d706c6503636f6d0000010001
        """)
    static let tv2 = hexBytes("""
        4500008b123440004006c201cb007101c63364024e22753311223344000000009002faf0e73a0000
        020405b40402080a0000000000000000
        4c48dbc6ddf6670c1014003f00100004000000010002000d0a01010aac10021ec73801bb06000600106ba7b8109dad
        11d180b400c04fd430c800070004626c7565000a0003776562000e00076272616e636831
        """)
    static let tv3 = hexBytes("""
        45000082123440004011c1ffc6336402cb00710175314e20006e6a91
        4c48dbc6ddf6670c1014002500100004000000010004000dac1002140a01010a00359c4011000e000468756231
        000d00080000000000000005abcd81800001000100000000076578616d706c6503636f6d0000010001c00c0001
        00010000012c00045db8d822
        """)
    static let tv4 = hexBytes("""
        45000031123440004011c250c6336402cb00710175314e20001d43ea
        4c48dbc6ddf6670c10110004001800010300120000
        """)
    static let tv5 = hexBytes("""
        45000038123440004011c249cb007101c63364024e2675370024417f
        4c48dbc6ddf6670c100c00004c48dbc6ddf6670c6170702d64617461
        """)
    static let tv6 = hexBytes("""
        4500003f123440004011c242cb007101c63364024e267537002b0f5e
        4c48dbc6ddf6670c101a0000001a000a100004d22000049c00647274702d6672616d65
        """)
    static let all = [tv1, tv2, tv3, tv4, tv5, tv6]

    static let waypointA = IPAddress("203.0.113.1")!
    static let waypointB = IPAddress("198.51.100.2")!
    static let client = IPAddress("10.1.1.10")!
    static let dnsServer = IPAddress("172.16.2.20")!
    static let webServer = IPAddress("172.16.2.30")!
}

/// Runs `body` with a packet view of `bytes` in a fresh slot with the given head- and tailroom.
@discardableResult
func withPacket<R>(
    _ bytes: [UInt8], headroom: Int = 128, tailroom: Int = 128, _ body: (PacketBuffer) throws -> R
) throws -> R {
    let slot = PacketSlot(capacity: headroom + bytes.count + tailroom)
    return try withExtendedLifetime(slot) {
        try body(try slot.packet(headroom: headroom, copying: bytes))
    }
}

/// Parses `bytes` in a fresh slot and runs `body` on the parsed packet.
@discardableResult
func withParsed<R>(
    _ bytes: [UInt8], headroom: Int = 128, tailroom: Int = 128, _ body: (inout IPPacket) throws -> R
) throws -> R {
    try withPacket(bytes, headroom: headroom, tailroom: tailroom) { buffer in
        var packet = try IPPacket(buffer)
        return try body(&packet)
    }
}

/// SplitMix64: a small seeded generator so property tests are repeatable.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The one's complement sum by the textbook: big-endian 16-bit words, odd byte padded.
func referenceSum(_ bytes: some Collection<UInt8>) -> UInt16 {
    var sum: UInt32 = 0
    var high: UInt8?
    for b in bytes {
        if let h = high {
            sum += UInt32(h) << 8 | UInt32(b)
            high = nil
        } else {
            high = b
        }
    }
    if let h = high { sum += UInt32(h) << 8 }
    while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
    return UInt16(sum)
}

/// Builds an IPv4 header (IHL 5, ID 0x1234, DF, TTL 64, checksum 0) in front of `l4`.
func ipv4Packet(source: IPv4Address, destination: IPv4Address, proto: UInt8, l4: [UInt8]) -> [UInt8] {
    let total = 20 + l4.count
    var p: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0x12, 0x34, 0x40, 0, 64, proto, 0, 0]
    for a in [source.value, destination.value] {
        p += [UInt8(a >> 24), UInt8(a >> 16 & 0xff), UInt8(a >> 8 & 0xff), UInt8(a & 0xff)]
    }
    return p + l4
}

/// Builds an IPv6 header (hop limit 64) with `extensions` (already chained) in front of `l4`.
func ipv6Packet(source: IPv6Address, destination: IPv6Address, nextHeader: UInt8, extensions: [UInt8] = [], l4: [UInt8]) -> [UInt8] {
    let payload = extensions.count + l4.count
    var p: [UInt8] = [0x60, 0, 0, 0, UInt8(payload >> 8), UInt8(payload & 0xff), nextHeader, 64]
    p += source.bytes + destination.bytes
    return p + extensions + l4
}

/// A UDP header and payload (checksum 0, to be computed).
func udpSegment(source: UInt16, destination: UInt16, payload: [UInt8]) -> [UInt8] {
    let length = 8 + payload.count
    return be16(source) + be16(destination) + be16(UInt16(length)) + [0, 0] + payload
}

/// A TCP header with `options` (a multiple of 4 bytes) and payload (checksum 0).
func tcpSegment(
    source: UInt16, destination: UInt16, seq: UInt32, flags: UInt8, window: UInt16,
    options: [UInt8] = [], payload: [UInt8] = []
) -> [UInt8] {
    let dataOffset = UInt8((20 + options.count) / 4)
    return be16(source) + be16(destination) + be32(seq) + be32(0) + [dataOffset << 4, flags]
        + be16(window) + [0, 0, 0, 0] + options + payload
}

func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(v & 0xffff)) }

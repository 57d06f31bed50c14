// Byte-level helpers of the engine's packet assembly: big-endian loads and stores on raw
// packet memory, the IPv4 header the engine writes, and full L4 checksums.
//
// The engine builds every packet it sends as
//   [IPv4 header 20][L4 header][metadata?][inner L4 header?][payload (sealed?)][HMAC trailer?]
// directly in the slot, in front of the payload (headroom) and after it (tailroom), so the
// payload itself never moves. Checksums are computed over the finished packet.

@inline(__always) func ld8(_ p: UnsafeRawPointer, _ o: Int) -> UInt8 { p.load(fromByteOffset: o, as: UInt8.self) }
@inline(__always) func ld16(_ p: UnsafeRawPointer, _ o: Int) -> UInt16 {
    UInt16(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt16.self))
}
@inline(__always) func ld32(_ p: UnsafeRawPointer, _ o: Int) -> UInt32 {
    UInt32(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self))
}
@inline(__always) func ld64(_ p: UnsafeRawPointer, _ o: Int) -> UInt64 {
    UInt64(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt64.self))
}
@inline(__always) func st8(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt8) { p.storeBytes(of: v, toByteOffset: o, as: UInt8.self) }
@inline(__always) func st16(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt16) {
    p.storeBytes(of: v.bigEndian, toByteOffset: o, as: UInt16.self)
}
@inline(__always) func st32(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt32) {
    p.storeBytes(of: v.bigEndian, toByteOffset: o, as: UInt32.self)
}
@inline(__always) func st64(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt64) {
    p.storeBytes(of: v.bigEndian, toByteOffset: o, as: UInt64.self)
}

/// The IPv4 header fields the engine carries from the packet it received to the one it sends.
struct IPv4Carry {
    var tos: UInt8 = 0
    var identification: UInt16 = 0
    var dontFragment = true
    var ttl: UInt8 = 64
}

enum EngineWire {
    /// Writes a 20-byte IPv4 header (no options) with its checksum.
    @inline(__always)
    static func writeIPv4(_ p: UnsafeMutableRawPointer, totalLength: Int, proto: UInt8, source: UInt32, destination: UInt32,
                          carry: IPv4Carry) {
        st8(p, 0, 0x45)
        st8(p, 1, carry.tos)
        st16(p, 2, UInt16(totalLength))
        st16(p, 4, carry.identification)
        st16(p, 6, carry.dontFragment ? 0x4000 : 0)
        st8(p, 8, carry.ttl)
        st8(p, 9, proto)
        st16(p, 10, 0)
        st32(p, 12, source)
        st32(p, 16, destination)
        st16(p, 10, InternetChecksum.checksum(UnsafeRawBufferPointer(start: p, count: 20)))
    }

    /// Computes and stores the L4 checksum of a TCP, UDP or ICMP datagram that starts `l4`
    /// bytes into an IPv4 packet of `total` bytes (20-byte header at `p`).
    @inline(__always)
    static func finishL4Checksum(_ p: UnsafeMutableRawPointer, l4: Int, total: Int, proto: UInt8) {
        let length = total - l4
        let at: Int
        var wide: UInt64 = 0
        switch proto {
        case IPProtocolNumber.tcp: at = 16
        case IPProtocolNumber.udp: at = 6
        case IPProtocolNumber.icmp: at = 2
        default: return
        }
        st16(p, l4 + at, 0)
        if proto != IPProtocolNumber.icmp {
            wide = InternetChecksum.pseudoHeaderSum(
                source: IPv4Address(ld32(p, 12)), destination: IPv4Address(ld32(p, 16)), proto: proto, length: length)
        }
        wide &+= UInt64(InternetChecksum.sum(UnsafeRawBufferPointer(start: p + l4, count: length)))
        var c = ~InternetChecksum.fold(wide)
        if c == 0 && proto == IPProtocolNumber.udp { c = 0xFFFF }
        st16(p, l4 + at, c)
    }
}

/// Appends TLVs at a raw position (the engine writes its metadata blocks itself: fixed,
/// allocation-free, names as precomputed UTF-8 bytes).
struct TLVWriter {
    let base: UnsafeMutableRawPointer
    var at: Int

    @inline(__always) mutating func flag(_ type: UInt16) {
        st16(base, at, type); st16(base, at + 2, 0); at += 4
    }
    @inline(__always) mutating func u8(_ type: UInt16, _ v: UInt8) {
        st16(base, at, type); st16(base, at + 2, 1); st8(base, at + 4, v); at += 5
    }
    @inline(__always) mutating func u32(_ type: UInt16, _ v: UInt32) {
        st16(base, at, type); st16(base, at + 2, 4); st32(base, at + 4, v); at += 8
    }
    @inline(__always) mutating func u64(_ type: UInt16, _ v: UInt64) {
        st16(base, at, type); st16(base, at + 2, 8); st64(base, at + 4, v); at += 12
    }
    @inline(__always) mutating func bytes(_ type: UInt16, _ b: [UInt8]) {
        st16(base, at, type); st16(base, at + 2, UInt16(b.count))
        b.withUnsafeBytes { src in if let s = src.baseAddress { (base + at + 4).copyMemory(from: s, byteCount: src.count) } }
        at += 4 + b.count
    }
    @inline(__always) mutating func raw(_ type: UInt16, _ src: UnsafeRawPointer, _ count: Int) {
        st16(base, at, type); st16(base, at + 2, UInt16(count))
        (base + at + 4).copyMemory(from: src, byteCount: count)
        at += 4 + count
    }
    /// Context TLV (2 forward / 4 reverse, IPv4): src, dst, sport, dport, proto.
    @inline(__always) mutating func context4(_ type: UInt16, _ src: UInt32, _ dst: UInt32, _ sp: UInt16, _ dp: UInt16, _ proto: UInt8) {
        st16(base, at, type); st16(base, at + 2, 13)
        st32(base, at + 4, src); st32(base, at + 8, dst); st16(base, at + 12, sp); st16(base, at + 14, dp)
        st8(base, at + 16, proto)
        at += 17
    }
}

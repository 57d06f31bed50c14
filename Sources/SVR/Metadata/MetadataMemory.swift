// Raw-memory access for the metadata codec.
//
// This is the only file under Sources/SVR/Metadata that loads from or stores to raw pointers.
// Every function here trusts its offsets: the callers (header parse, TLV walk, value parsers,
// writer) check them against the buffer bounds first. The fuzz target (Fuzz/metadata) runs the
// decoder under AddressSanitizer to keep that promise honest.

/// Big-endian loads from a borrowed byte range.
enum MetadataMemory {
    @inline(__always)
    static func u8(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt8 {
        b.load(fromByteOffset: o, as: UInt8.self)
    }

    @inline(__always)
    static func u16(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt16 {
        UInt16(bigEndian: b.loadUnaligned(fromByteOffset: o, as: UInt16.self))
    }

    @inline(__always)
    static func u32(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt32 {
        UInt32(bigEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self))
    }

    @inline(__always)
    static func u64(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt64 {
        UInt64(bigEndian: b.loadUnaligned(fromByteOffset: o, as: UInt64.self))
    }

    @inline(__always)
    static func ipv4(_ b: UnsafeRawBufferPointer, _ o: Int) -> IPv4Address {
        IPv4Address(u32(b, o))
    }

    @inline(__always)
    static func ipv6(_ b: UnsafeRawBufferPointer, _ o: Int) -> IPv6Address {
        IPv6Address(high: u64(b, o), low: u64(b, o + 8))
    }

    /// The bytes in `range` as a String (allocates unless the string is small).
    static func string(_ b: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: b[range]), as: UTF8.self)
    }

    /// A copy of the bytes in `range`.
    static func bytes(_ b: UnsafeRawBufferPointer, _ range: Range<Int>) -> [UInt8] {
        Array(UnsafeRawBufferPointer(rebasing: b[range]))
    }

    /// Whether the bytes in `range` equal the UTF-8 of `s`, without allocating.
    static func equalsUTF8(_ b: UnsafeRawBufferPointer, _ range: Range<Int>, _ s: String) -> Bool {
        let slice = UnsafeRawBufferPointer(rebasing: b[range])
        return s.utf8.elementsEqual(slice)
    }

    /// Whether the bytes in `range` are well-formed UTF-8 (no overlongs, surrogates or code
    /// points above U+10FFFF). ASCII runs take one comparison per byte.
    static func isValidUTF8(_ b: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let c = u8(b, i)
            if c < 0x80 { i += 1; continue }
            let need: Int
            var lo: UInt8 = 0x80
            var hi: UInt8 = 0xBF
            switch c {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: need = 2
            case 0xED: need = 2; hi = 0x9F
            case 0xF0: need = 3; lo = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; hi = 0x8F
            default: return false
            }
            guard end - i > need else { return false }
            let c1 = u8(b, i + 1)
            guard c1 >= lo && c1 <= hi else { return false }
            for k in 2..<(need + 1) where !(0x80...0xBF).contains(u8(b, i + k)) { return false }
            i += need + 1
        }
        return true
    }
}

/// Sequential big-endian stores into a caller-provided buffer. The caller checks capacity before
/// each TLV (`MetadataWriter` does), so the stores themselves do not.
struct MetadataByteWriter {
    let buffer: UnsafeMutableRawBufferPointer
    var position: Int

    @inline(__always)
    mutating func u8(_ v: UInt8) {
        buffer.storeBytes(of: v, toByteOffset: position, as: UInt8.self)
        position += 1
    }

    @inline(__always)
    mutating func u16(_ v: UInt16) {
        buffer.storeBytes(of: v.bigEndian, toByteOffset: position, as: UInt16.self)
        position += 2
    }

    @inline(__always)
    mutating func u32(_ v: UInt32) {
        buffer.storeBytes(of: v.bigEndian, toByteOffset: position, as: UInt32.self)
        position += 4
    }

    @inline(__always)
    mutating func u64(_ v: UInt64) {
        buffer.storeBytes(of: v.bigEndian, toByteOffset: position, as: UInt64.self)
        position += 8
    }

    mutating func address(_ a: IPAddress) {
        switch a {
        case .v4(let v4): u32(v4.value)
        case .v6(let v6): u64(v6.high); u64(v6.low)
        }
    }

    mutating func bytes(_ src: UnsafeRawBufferPointer) {
        guard let s = src.baseAddress, !src.isEmpty else { return }
        (buffer.baseAddress! + position).copyMemory(from: s, byteCount: src.count)
        position += src.count
    }

    mutating func bytes(_ src: [UInt8]) {
        src.withUnsafeBytes { bytes($0) }
    }

    mutating func utf8(_ s: String) {
        let done: Void? = s.utf8.withContiguousStorageIfAvailable { bytes(UnsafeRawBufferPointer($0)) }
        if done == nil { for c in s.utf8 { u8(c) } }
    }

    /// Stores a big-endian UInt16 at an absolute offset (header length fields).
    @inline(__always)
    func patch16(_ v: UInt16, at offset: Int) {
        buffer.storeBytes(of: v.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inline(__always)
    func patch64(_ v: UInt64, at offset: Int) {
        buffer.storeBytes(of: v.bigEndian, toByteOffset: offset, as: UInt64.self)
    }
}

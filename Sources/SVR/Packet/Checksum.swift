// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//
// Full sums load unaligned 64-bit words in native byte order and add their two 32-bit halves
// into 64-bit accumulators (no carry handling inside the loop; 2^31 words before overflow).
// The one's complement sum does not depend on byte order (RFC 1071 §2(B)), so the folded
// native-order result is turned into the network-order value with one byte swap at the end.
//
// Values in and out of this API are network-order 16-bit values read as numbers (the checksum
// field 0xc1dc of TV1 is 0xc1dc here).

/// Internet checksum arithmetic. All functions are pure and allocation-free.
public enum InternetChecksum {
    /// The one's complement sum of `bytes` (folded to 16 bits, not complemented), as a
    /// network-order value. An odd trailing byte is padded with a zero byte.
    @inlinable
    public static func sum(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        guard let p = bytes.baseAddress else { return 0 }
        return UInt16(bigEndian: fold(nativeSum(p, bytes.count)))
    }

    /// The Internet checksum of `bytes`: the complement of their one's complement sum.
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        ~sum(bytes)
    }

    /// Folds a wide one's complement accumulator to 16 bits (end-around carries).
    @inlinable
    public static func fold(_ wide: UInt64) -> UInt16 {
        var s = (wide & 0xffff_ffff) &+ (wide >> 32)
        s = (s & 0xffff_ffff) &+ (s >> 32)
        s = (s & 0xffff) &+ (s >> 16)
        s = (s & 0xffff) &+ (s >> 16)
        return UInt16(truncatingIfNeeded: s)
    }

    /// The new checksum after a 16-bit field changed from `old` to `new` (RFC 1624 eqn. 3:
    /// HC' = ~(~HC + ~m + m')).
    @inlinable
    public static func update(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        ~fold(UInt64(~checksum) &+ UInt64(~old) &+ UInt64(new))
    }

    /// The new checksum after a 32-bit field changed from `old` to `new`.
    @inlinable
    public static func update(_ checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        ~fold(UInt64(~checksum) &+ delta(old: old, new: new))
    }

    /// The new checksum after an IPv6 address inside the covered data (or pseudo-header)
    /// changed from `old` to `new`.
    @inlinable
    public static func update(_ checksum: UInt16, old: IPv6Address, new: IPv6Address) -> UInt16 {
        ~fold(UInt64(~checksum) &+ delta(old: old, new: new))
    }

    /// The new checksum after changes whose combined `delta` values (from the `delta`
    /// functions, added together) are known. Lets one fold serve many field changes.
    @inlinable
    public static func update(_ checksum: UInt16, delta: UInt64) -> UInt16 {
        ~fold(UInt64(~checksum) &+ delta)
    }

    /// ~m + m' for a 16-bit field, unfolded (add several, then `update(_:delta:)`).
    @inlinable
    public static func delta(old: UInt16, new: UInt16) -> UInt64 {
        UInt64(~old) &+ UInt64(new)
    }

    /// ~m + m' for a 32-bit field, as two 16-bit halves, unfolded.
    @inlinable
    public static func delta(old: UInt32, new: UInt32) -> UInt64 {
        let o = ~old
        return UInt64(o >> 16) &+ UInt64(o & 0xffff) &+ UInt64(new >> 16) &+ UInt64(new & 0xffff)
    }

    /// ~m + m' for a 128-bit IPv6 address, as eight 16-bit words, unfolded.
    @inlinable
    public static func delta(old: IPv6Address, new: IPv6Address) -> UInt64 {
        words(~old.high) &+ words(~old.low) &+ words(new.high) &+ words(new.low)
    }

    /// Sum of the four 16-bit words of `x`, unfolded.
    @inlinable
    static func words(_ x: UInt64) -> UInt64 {
        (x >> 48) &+ (x >> 32 & 0xffff) &+ (x >> 16 & 0xffff) &+ (x & 0xffff)
    }

    /// The IPv4 pseudo-header sum (addresses, protocol, L4 length), unfolded.
    @inlinable
    public static func pseudoHeaderSum(source: IPv4Address, destination: IPv4Address, proto: UInt8, length: Int) -> UInt64 {
        UInt64(source.value >> 16) &+ UInt64(source.value & 0xffff)
            &+ UInt64(destination.value >> 16) &+ UInt64(destination.value & 0xffff)
            &+ UInt64(proto) &+ UInt64(UInt32(truncatingIfNeeded: length))
    }

    /// The IPv6 pseudo-header sum (RFC 8200 §8.1), unfolded.
    @inlinable
    public static func pseudoHeaderSum(source: IPv6Address, destination: IPv6Address, proto: UInt8, length: Int) -> UInt64 {
        let len = UInt32(truncatingIfNeeded: length)
        return words(source.high) &+ words(source.low) &+ words(destination.high) &+ words(destination.low)
            &+ UInt64(len >> 16) &+ UInt64(len & 0xffff) &+ UInt64(proto)
    }

    /// Native-order wide sum of `count` bytes at `p`.
    @inlinable
    static func nativeSum(_ p: UnsafeRawPointer, _ count: Int) -> UInt64 {
        var a0: UInt64 = 0
        var a1: UInt64 = 0
        var a2: UInt64 = 0
        var a3: UInt64 = 0
        var i = 0
        while count - i >= 32 {
            let w0 = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let w1 = p.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)
            let w2 = p.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)
            let w3 = p.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)
            a0 &+= (w0 & 0xffff_ffff) &+ (w0 >> 32)
            a1 &+= (w1 & 0xffff_ffff) &+ (w1 >> 32)
            a2 &+= (w2 & 0xffff_ffff) &+ (w2 >> 32)
            a3 &+= (w3 & 0xffff_ffff) &+ (w3 >> 32)
            i += 32
        }
        while count - i >= 8 {
            let w = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            a0 &+= (w & 0xffff_ffff) &+ (w >> 32)
            i += 8
        }
        if count - i >= 4 {
            a1 &+= UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            i += 4
        }
        if count - i >= 2 {
            a2 &+= UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt16.self))
            i += 2
        }
        if count - i == 1 {
            // A lone last byte is the high byte of a network-order word padded with zero.
            a3 &+= UInt64(UInt16(bigEndian: UInt16(p.load(fromByteOffset: i, as: UInt8.self)) << 8))
        }
        return a0 &+ a1 &+ a2 &+ a3
    }
}

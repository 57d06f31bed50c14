// Session UUIDs (random, version 4) and the fast generator that makes them.

import Glibc

// SessionUUID itself is defined with the metadata values (Metadata/MetadataValues.swift).

/// xoshiro256** seeded from /dev/urandom: UUIDs name sessions, they are not secrets, so the
/// kernel is asked once per table rather than once per session. (getrandom(2) is not in the
/// Glibc module map.)
struct SessionRandom {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init() {
        var seed: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var n = -1
        let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            n = withUnsafeMutableBytes(of: &seed) { read(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        if n != MemoryLayout.size(ofValue: seed) {
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            seed = (UInt64(bitPattern: Int64(ts.tv_nsec)) | 1, UInt64(bitPattern: Int64(ts.tv_sec)), 0x9E37_79B9_7F4A_7C15, UInt64(getpid()))
        }
        if seed == (0, 0, 0, 0) { seed.0 = 1 }
        s = seed
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        let result = (s.1 &* 5).rotatedLeft(7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3.rotatedLeft(45)
        return result
    }

    /// A random version-4, variant-1 UUID.
    mutating func uuid() -> SessionUUID {
        let h = next() & ~0xF000 | 0x4000
        let l = next() & ~(UInt64(0xC0) << 56) | UInt64(0x80) << 56
        return SessionUUID(high: h, low: l)
    }
}

fileprivate extension UInt64 {
    @inline(__always) func rotatedLeft(_ n: UInt64) -> UInt64 { self << n | self >> (64 - n) }
}

// The per-packet peer-path HMAC trailer of spec §6.3 (separate from payload sealing).
//
// Input: every byte after the L4 header up to the trailer (metadata block, if any, plus the
// payload as transmitted, i.e. after encryption). Time-based mode appends the 8-byte
// big-endian window floor(unix_seconds / 2) to that input (it is not transmitted); the
// receiver accepts the current window and the one before, so a recorded packet stops
// verifying 2–4 s later. The trailer is the first `trailerLength` bytes of the HMAC.

import Glibc

/// Which HMAC the trailer carries (security policy `hmac-cipher`).
public enum HMACAlgorithm: Sendable, CaseIterable {
    /// HMAC-SHA256 truncated to 16 bytes (the default).
    case sha256_128
    /// HMAC-SHA256, 32 bytes.
    case sha256
    /// HMAC-SHA1, 20 bytes.
    case sha1

    /// Bytes the trailer adds to a packet.
    public var trailerLength: Int {
        switch self {
        case .sha256_128: return 16
        case .sha256: return 32
        case .sha1: return 20
        }
    }
}

/// Security policy `hmac-mode` (disabled means: no `PacketAuthenticator`).
public enum HMACMode: Sendable {
    /// HMAC over the packet bytes only.
    case regular
    /// HMAC over the packet bytes ‖ floor(unix_seconds / 2) as 8 bytes big-endian.
    case timeBased
}

/// Appends and verifies §6.3 HMAC trailers with one peer key. One per thread per key: it
/// owns an OpenSSL MAC context (freed on deinit) and must not be shared between threads.
///
/// Buffers start at the first byte after the L4 header. Time is passed in (UNIX seconds) so
/// tests and the engine control it; the default reads `CLOCK_REALTIME_COARSE`.
public struct PacketAuthenticator: ~Copyable {
    public let algorithm: HMACAlgorithm
    public let mode: HMACMode
    private let mac: MacContext

    public init(key: SymmetricKey, algorithm: HMACAlgorithm = .sha256_128, mode: HMACMode = .timeBased) throws(CryptoError) {
        switch algorithm {
        case .sha256_128, .sha256: mac = try MacContext(digest: "SHA256", key: key.bytes)
        case .sha1: mac = try MacContext(digest: "SHA1", key: key.bytes)
        }
        self.algorithm = algorithm
        self.mode = mode
    }

    /// Bytes the trailer adds: reserve this much tailroom.
    public var trailerLength: Int { algorithm.trailerLength }

    /// The time window of a UNIX time: floor(seconds / 2).
    @inlinable
    public static func window(unixSeconds: UInt64) -> UInt64 { unixSeconds / 2 }

    /// Wall-clock UNIX seconds (`CLOCK_REALTIME_COARSE`: a vDSO read, no syscall).
    public static func currentUnixSeconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME_COARSE, &ts)
        return UInt64(max(ts.tv_sec, 0))
    }

    /// Appends the trailer after `buffer[0..<length]`.
    /// - Returns: the new length, `length + trailerLength`.
    /// - Throws: `.bufferTooSmall` when `buffer.count < length + trailerLength`; `.openSSL`.
    public mutating func appendTrailer(_ buffer: UnsafeMutableRawBufferPointer, length: Int,
                                       unixSeconds: UInt64 = currentUnixSeconds()) throws(CryptoError) -> Int {
        let t = trailerLength
        guard length >= 0, length + t <= buffer.count, let base = buffer.baseAddress else {
            throw .bufferTooSmall(needed: length + t, available: buffer.count)
        }
        let suffix: UInt64? = mode == .timeBased ? Self.window(unixSeconds: unixSeconds) : nil
        try mac.sign(base, length, suffix: suffix, tag: base + length, tagLength: t)
        return length + t
    }

    /// Verifies the trailer at the end of `buffer[0..<length]` (time-based: against the
    /// current window, then the previous one).
    /// - Returns: the length without the trailer.
    /// - Throws: `.authenticationFailed` if it does not verify; `.malformedInput` if `length`
    ///   is shorter than a trailer; `.openSSL`.
    public mutating func verifyTrailer(_ buffer: UnsafeRawBufferPointer, length: Int,
                                       unixSeconds: UInt64 = currentUnixSeconds()) throws(CryptoError) -> Int {
        let t = trailerLength
        guard length >= t, length <= buffer.count, let base = buffer.baseAddress else {
            throw .malformedInput(length: length)
        }
        let n = length - t
        switch mode {
        case .regular:
            if try mac.check(base, n, tag: base + n, tagLength: t) { return n }
        case .timeBased:
            let w = Self.window(unixSeconds: unixSeconds)
            if try mac.check(base, n, suffix: w, tag: base + n, tagLength: t) { return n }
            if w > 0, try mac.check(base, n, suffix: w - 1, tag: base + n, tagLength: t) { return n }
        }
        throw .authenticationFailed
    }
}

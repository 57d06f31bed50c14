// Errors of the crypto layer. Thrown with typed throws (`throws(CryptoError)`), so the
// per-packet path never boxes an existential and never allocates on failure.

internal import COpenSSL

/// The OpenSSL (or local) step that failed, for `CryptoError.openSSL`.
public enum CryptoOperation: String, Sendable {
    case cipherSetup, cipherSetIV, encrypt, decrypt, aeadTag
    case macSetup, mac
    case random
    case keyParse, publicKey, keyAgreement
    case kdf
}

/// Why a crypto operation failed.
public enum CryptoError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The tag or HMAC did not verify (tampered, wrong key, or — time-based HMAC — too old).
    /// OpenSSL leaves its error queue empty in this case, hence its own case: drop and count.
    case authenticationFailed
    /// The sealed input cannot be a sealed packet of this suite (too short, not a whole
    /// number of blocks, bad padding after a valid MAC). Also a drop-and-count condition.
    case malformedInput(length: Int)
    /// The caller's buffer cannot hold the output (`needed` bytes including tailroom).
    case bufferTooSmall(needed: Int, available: Int)
    /// The sealed output would not fit its length field (metadata Payload Length is 16 bits).
    case tooLong(length: Int, limit: Int)
    /// Key bytes of the wrong length or encoding (base64, raw key, serialized session key).
    case invalidKey
    /// A 64-bit nonce counter ran out (2^64 packets under one sealer); rekey.
    case nonceExhausted
    /// OpenSSL reported an error; `code` is the first `ERR_get_error()` value (0 if none).
    case openSSL(CryptoOperation, code: UInt)

    public var description: String {
        switch self {
        case .authenticationFailed: return "crypto: authentication failed"
        case .malformedInput(let n): return "crypto: malformed sealed input (\(n) bytes)"
        case .bufferTooSmall(let need, let have):
            return "crypto: buffer too small (\(need) bytes needed, \(have) available)"
        case .tooLong(let n, let limit): return "crypto: sealed length \(n) exceeds \(limit)"
        case .invalidKey: return "crypto: invalid key"
        case .nonceExhausted: return "crypto: nonce counter exhausted, rekey"
        case .openSSL(let op, let code):
            return "crypto: \(op.rawValue) failed: \(OpenSSLSys.errorString(code))"
        }
    }
}

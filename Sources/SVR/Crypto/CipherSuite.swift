// Cipher suites, symmetric keys and the per-session key material carried in metadata.

/// How a session payload (or a metadata payload-TLV section) is sealed.
///
/// Sealed layouts (all in place, the plaintext starts at byte 0 of the caller's buffer):
///
/// | Suite | Sealed bytes | Added bytes |
/// |---|---|---|
/// | `.aes256CbcHmacSha256_128` | `ciphertext(P) ‖ IV(16) ‖ tag(16)` | P − n + 32, at most 48 |
/// | `.aes256Gcm` | `ciphertext(n) ‖ nonce(12) ‖ tag(16)` | exactly 28 |
/// | `.none` | `plaintext(n)` | 0 |
///
/// For CBC, P = 16·(⌊n/16⌋ + 1) (PKCS#7 always adds 1…16 bytes), the IV is a fresh random
/// 16-byte value per packet (spec §6.2, O6: ciphertext followed by IV), and the tag is
/// HMAC-SHA256(macKey, IV ‖ ciphertext) truncated to its first 16 bytes (encrypt-then-MAC).
public enum CipherSuite: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// No payload encryption (sealed = plaintext). Id 0.
    case none = 0
    /// AES-256-CBC + HMAC-SHA256-128, encrypt-then-MAC; the SSR-compatible default. Id 1.
    case aes256CbcHmacSha256_128 = 1
    /// AES-256-GCM, 12-byte nonce, 16-byte tag; the fast suite. Id 2.
    case aes256Gcm = 2

    public static let `default` = CipherSuite.aes256CbcHmacSha256_128

    /// Upper bound of bytes `seal` adds: reserve this much tailroom after the plaintext.
    public var maxOverhead: Int {
        switch self {
        case .none: return 0
        case .aes256CbcHmacSha256_128: return 48
        case .aes256Gcm: return 28
        }
    }

    /// Exact sealed length for a plaintext of `plaintextLength` bytes.
    @inlinable
    public func sealedLength(plaintextLength n: Int) -> Int {
        switch self {
        case .none: return n
        case .aes256CbcHmacSha256_128: return (n / 16 + 1) * 16 + 32
        case .aes256Gcm: return n + 28
        }
    }

    /// Bytes of ready-to-use subkeys a session of this suite carries (TLV 46 after the suite
    /// id): CBC 64 (AES key ‖ MAC key), GCM 32, none 32 (unused).
    public var subkeyLength: Int { self == .aes256CbcHmacSha256_128 ? 64 : 32 }

    public var description: String {
        switch self {
        case .none: return "none"
        case .aes256CbcHmacSha256_128: return "aes-256-cbc+hmac-sha256-128"
        case .aes256Gcm: return "aes-256-gcm"
        }
    }
}

/// A 32-byte symmetric key (session key, peer metadata key, peer HMAC key).
/// `description` never shows the bytes; equality is constant time.
public struct SymmetricKey: Sendable, Equatable, CustomStringConvertible {
    public static let byteCount = 32

    /// The raw key bytes (exactly 32).
    public let bytes: [UInt8]

    /// Wraps 32 raw bytes; throws `.invalidKey` for any other length.
    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == Self.byteCount else { throw .invalidKey }
        self.bytes = bytes
    }

    /// A fresh key from OpenSSL's CSPRNG (`RAND_bytes`).
    public static func random() throws(CryptoError) -> SymmetricKey {
        try SymmetricKey(bytes: OpenSSLSys.randomBytes(count: byteCount))
    }

    public static func == (a: SymmetricKey, b: SymmetricKey) -> Bool {
        a.bytes.withUnsafeBytes { x in
            b.bytes.withUnsafeBytes { y in
                OpenSSLSys.constantTimeEqual(x.baseAddress!, y.baseAddress!, count: byteCount)
            }
        }
    }

    public var description: String { "SymmetricKey(<redacted>)" }

    /// A 32-byte subkey for one purpose: HKDF-SHA256(ikm: self, salt: "", info: label).
    func subkey(_ label: String) throws(CryptoError) -> [UInt8] {
        try OpenSSLSys.hkdfSHA256(ikm: bytes, salt: [], info: Array(label.utf8), count: Self.byteCount)
    }
}

/// The key material of one session, as it travels inside metadata (the metadata codec
/// carries these bytes as the value of TLV 46, in the payload-TLV section, which is sealed
/// with the peer metadata key). It carries the suite's ready-to-use subkeys, each drawn
/// independently from the CSPRNG, so neither router runs a KDF per session:
///
/// | Suite | Wire form | Bytes |
/// |---|---|---|
/// | `.aes256CbcHmacSha256_128` | `1 ‖ AES-256 key (32) ‖ HMAC-SHA256 key (32)` | 65 |
/// | `.aes256Gcm` | `2 ‖ AES-256-GCM key (32)` | 33 |
/// | `.none` | `0 ‖ unused (32)` | 33 |
public struct SessionKeyMaterial: Sendable, Equatable {
    /// Wire length for a suite: 1 + `suite.subkeyLength`.
    public static func encodedLength(suite: CipherSuite) -> Int { 1 + suite.subkeyLength }

    public var suite: CipherSuite
    /// The cipher key (AES-256-CBC or AES-256-GCM).
    public var key: SymmetricKey
    /// The payload MAC key (CBC suite only; nil otherwise).
    public var macKey: SymmetricKey?

    /// `macKey` is required for the CBC suite and ignored (dropped) for the others.
    public init(suite: CipherSuite, key: SymmetricKey, macKey: SymmetricKey? = nil) throws(CryptoError) {
        if suite == .aes256CbcHmacSha256_128 && macKey == nil { throw .invalidKey }
        self.suite = suite
        self.key = key
        self.macKey = suite == .aes256CbcHmacSha256_128 ? macKey : nil
    }

    /// New material for a session: the given suite and fresh random subkeys.
    public static func random(suite: CipherSuite = .default) throws(CryptoError) -> SessionKeyMaterial {
        try SessionKeyMaterial(suite: suite, key: .random(), macKey: suite == .aes256CbcHmacSha256_128 ? .random() : nil)
    }

    /// The wire form (`encodedLength(suite:)` bytes).
    public var encoded: [UInt8] { [suite.rawValue] + key.bytes + (macKey?.bytes ?? []) }

    /// Parses the wire form; `.invalidKey` for an unknown suite id or a length that is not the
    /// suite's.
    public init(encoded: some Collection<UInt8>) throws(CryptoError) {
        guard let first = encoded.first, let suite = CipherSuite(rawValue: first),
              encoded.count == Self.encodedLength(suite: suite)
        else { throw .invalidKey }
        let bytes = Array(encoded.dropFirst())
        try self.init(suite: suite, key: SymmetricKey(bytes: Array(bytes[0..<32])),
                      macKey: suite == .aes256CbcHmacSha256_128 ? SymmetricKey(bytes: Array(bytes[32..<64])) : nil)
    }
}

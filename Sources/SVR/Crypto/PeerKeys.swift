// Router identity keys (X25519) and the peer keys derived from them.
//
// Peer key derivation ("svrd peer key v1"), identical on both routers of a pair:
//   shared = X25519(ourPrivate, theirPublic)            (32 bytes; all-zero result refused)
//   (lo, hi) = the two public keys sorted bytewise      (so both sides build the same input)
//   salt = lo ‖ hi                                      (64 bytes: binds the pair's identities)
//   key(purpose) = HKDF-SHA256(ikm: shared, salt: salt,
//                              info: "svrd peer key v1" ‖ 0x00 ‖ purpose, length: 32)
// with purposes "metadata-encryption" (seals metadata payload-TLV sections, and with them
// the session keys of TLV 46) and "packet-hmac" (the §6.3 trailer). Different pairs have
// different shared secrets and salts, so no two pairs share a key, and the two purposes
// never share a key.
//
// Direction binding: the §6.3 trailer of svrd ↔ svrd packets is keyed per sender:
//   senderKey(pub) = HKDF-SHA256(ikm: shared, salt: salt,
//                                info: "svrd peer key v1" ‖ 0x00 ‖ "packet-hmac-sender" ‖ 0x00 ‖ pub)
// `hmacSendKey` = senderKey(our public key), `hmacReceiveKey` = senderKey(theirs): a packet
// one router signed never verifies at that router, so a packet reflected back to its sender
// (addresses and ports swapped) is refused. The pair's `hmacKey` stays for spec tests and tools.

/// An X25519 public key (32 bytes), configured for each peer as base64.
public struct X25519PublicKey: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == 32 else { throw .invalidKey }
        self.bytes = bytes
    }

    /// Parses strict base64 of exactly 32 bytes.
    public init(base64: some StringProtocol) throws(CryptoError) {
        guard let b = Base64.decode(base64) else { throw .invalidKey }
        try self.init(bytes: b)
    }

    public var base64: String { Base64.encode(bytes) }
    public var description: String { base64 }
}

/// A router's X25519 private key (32 bytes) with its public key. `description` is redacted.
public struct X25519PrivateKey: Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public let publicKey: X25519PublicKey

    /// Wraps 32 raw bytes (as stored by `svrd genkey`) and computes the public key.
    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == 32 else { throw .invalidKey }
        self.bytes = bytes
        publicKey = try X25519PublicKey(bytes: OpenSSLSys.x25519PublicKey(privateKey: bytes))
    }

    /// Parses strict base64 of exactly 32 bytes.
    public init(base64: some StringProtocol) throws(CryptoError) {
        guard let b = Base64.decode(base64) else { throw .invalidKey }
        try self.init(bytes: b)
    }

    /// A new key: 32 bytes from `RAND_bytes`, clamped as RFC 7748 §5 describes (what
    /// `wg genkey` stores too; X25519 clamps on use anyway).
    public static func generate() throws(CryptoError) -> X25519PrivateKey {
        var b = try OpenSSLSys.randomBytes(count: 32)
        b[0] &= 248
        b[31] = (b[31] & 127) | 64
        return try X25519PrivateKey(bytes: b)
    }

    public var base64: String { Base64.encode(bytes) }
    public var description: String { "X25519PrivateKey(public: \(publicKey.base64))" }
}

/// The symmetric keys two peers share, derived from X25519 + HKDF (see the file header).
public struct PeerKeys: Sendable, Equatable {
    /// Seals metadata payload-TLV sections to and from this peer (`PayloadCipher`).
    public let metadataKey: SymmetricKey
    /// Keys the §6.3 packet HMAC trailer on this peer's paths (`PacketAuthenticator`).
    public let hmacKey: SymmetricKey
    /// Keys the trailers this router sends to the peer (bound to our public key).
    public let hmacSendKey: SymmetricKey
    /// Keys the trailers this router accepts from the peer (bound to the peer's public key).
    public let hmacReceiveKey: SymmetricKey

    static let label = Array("svrd peer key v1".utf8)

    /// Derives the pair's keys. `A(privA, pubB) == B(privB, pubA)`.
    /// - Throws: `.openSSL(.keyAgreement, …)` for a low-order or all-zero peer public key.
    public init(privateKey: X25519PrivateKey, peerPublicKey: X25519PublicKey) throws(CryptoError) {
        let shared = try OpenSSLSys.x25519SharedSecret(privateKey: privateKey.bytes, publicKey: peerPublicKey.bytes)
        let ours = privateKey.publicKey.bytes
        let theirs = peerPublicKey.bytes
        let salt = ours.lexicographicallyPrecedes(theirs) ? ours + theirs : theirs + ours
        func derive(_ purpose: String, _ context: [UInt8] = []) throws(CryptoError) -> SymmetricKey {
            try SymmetricKey(bytes: OpenSSLSys.hkdfSHA256(
                ikm: shared, salt: salt, info: Self.label + [0] + Array(purpose.utf8) + context, count: 32))
        }
        metadataKey = try derive("metadata-encryption")
        hmacKey = try derive("packet-hmac")
        hmacSendKey = try derive("packet-hmac-sender", [0] + ours)
        hmacReceiveKey = try derive("packet-hmac-sender", [0] + theirs)
    }
}

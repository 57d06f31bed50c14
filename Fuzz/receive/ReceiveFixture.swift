// Fixed keys and modes shared by the `receive` fuzz harness (ReceiveFuzz.swift) and its seed
// generator (Fuzz/receive-seeds/main.swift), so the committed seeds verify and decrypt.
//
// Input format: byte 0 selects the mode, bytes 1... are one whole IP packet (as received on a
// WAN interface, HMAC trailer included).
//
//   bit 0     1 = compute a valid HMAC trailer over the fuzzed bytes first (overwrites the last
//             16 bytes of the L4 payload), so mutations get past the HMAC check
//   bits 1-2  suite sealing the metadata payload-TLV section (peer metadata key); CBC means
//             the engine's MetadataSectionCipher (AES-256-CBC, ciphertext ‖ IV, spec O6)
//   bits 3-4  suite sealing the session payload (session key)
//             (0 none, 1 AES-256-CBC+HMAC-SHA256-128, 2 AES-256-GCM, 3 = 1)
//   bit 5     0 = exact-size slot (no headroom/tailroom: ASan sees any access past the
//             packet), 1 = slot with 128 bytes headroom and 64 bytes tailroom

/// The receive path's fixed test configuration: keys, HMAC algorithm and time.
enum ReceiveFixture {
    /// HMAC key of spec TV7 (bytes 0x00...0x1f).
    static let hmacKey = key(from: 0x00)
    /// The peer metadata key (bytes 0x20...0x3f).
    static let metadataKey = key(from: 0x20)
    /// The session key (bytes 0x40...0x5f).
    static let sessionKey = key(from: 0x40)
    /// HMAC-SHA256-128 time-based, at the time of spec TV7 (window 850000000).
    static let algorithm = HMACAlgorithm.sha256_128
    static let mode = HMACMode.timeBased
    static let unixSeconds: UInt64 = 1_700_000_000
    static let headroom = 128
    static let tailroom = 64

    static let computeTrailer: UInt8 = 0x01
    static let roomySlot: UInt8 = 0x20

    static func metadataSuite(_ mode: UInt8) -> CipherSuite { suite(mode >> 1) }
    static func sessionSuite(_ mode: UInt8) -> CipherSuite { suite(mode >> 3) }
    static func modeByte(metadata: CipherSuite, session: CipherSuite, flags: UInt8 = 0) -> UInt8 {
        metadata.rawValue << 1 | session.rawValue << 3 | flags
    }

    static func suite(_ bits: UInt8) -> CipherSuite {
        switch bits & 3 {
        case 0: return .none
        case 2: return .aes256Gcm
        default: return .aes256CbcHmacSha256_128
        }
    }

    static func key(from first: UInt8) -> SymmetricKey {
        try! SymmetricKey(bytes: (0..<32).map { first + UInt8($0) })
    }
}

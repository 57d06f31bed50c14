// The payload-TLV section of metadata blocks toward one peer, as spec §6.2 and O6 recommend:
// AES-256-CBC with PKCS#7 padding and a fresh random IV per block, sent as
// `ciphertext ‖ IV`; the base header's Payload Length covers both.
//
// The section has no tag of its own: the §6.3 HMAC trailer covers the whole block as
// transmitted and the receiver verifies it before opening (encrypt-then-MAC at the packet
// level), so an altered section never reaches the decryption and padding errors tell an
// attacker nothing. Only open the section of a packet whose trailer verified.
//
// The contexts continue their CBC chains between blocks (see `CBCEngine.encrypt`): one
// `EVP_CipherUpdate` per block, no EVP re-init and no OpenSSL parameter calls.

/// Seals and opens metadata payload-TLV sections with a peer's metadata key, in place. One
/// per thread and peer (owns OpenSSL contexts; not thread-safe).
public struct MetadataSectionCipher: ~Copyable {
    /// The sealed length of a section of `n` plaintext bytes: padded to the next multiple of
    /// 16 (1–16 bytes of padding), plus the 16-byte IV.
    public static func sealedLength(plaintextLength n: Int) -> Int { (n / 16 + 1) * 16 + 16 }
    /// The most a section grows when sealed.
    public static let maxOverhead = 32

    let encrypt: CipherContext
    let decrypt: CipherContext
    /// The IV pool (`CBCEngine.poolSize` bytes), then the sealing and the opening chain.
    let pool: UnsafeMutableRawPointer
    var poolOffset = CBCEngine.poolSize  // empty: filled by the first seal

    /// - Parameter key: the peer pair's 32-byte metadata key (`PeerKeys.metadataKey`).
    public init(key: SymmetricKey) throws(CryptoError) {
        let enc = try CipherContext(cipher: "AES-256-CBC", key: key.bytes, encrypt: true)
        let dec = try CipherContext(cipher: "AES-256-CBC", key: key.bytes, encrypt: false)
        try enc.setIV(CBCEngine.zeroBlock)
        try dec.setIV(CBCEngine.zeroBlock)
        encrypt = enc
        decrypt = dec
        pool = .allocate(byteCount: CBCEngine.poolSize + 32, alignment: 64)
        pool.initializeMemory(as: UInt8.self, repeating: 0, count: CBCEngine.poolSize + 32)
    }

    deinit { pool.deallocate() }

    var sealChain: UnsafeMutableRawPointer { pool + CBCEngine.poolSize }
    var openChain: UnsafeMutableRawPointer { pool + CBCEngine.poolSize + 16 }

    /// Seals the section `[headerLength, headerLength + payloadLength)` of the block in place
    /// and writes the sealed length into the block's Payload Length field (bytes 10–11).
    ///
    /// `block` starts at the first cookie byte and must leave `maxOverhead` bytes of room
    /// after the section (overwritten).
    /// - Returns: the sealed section length (the new Payload Length).
    /// - Throws: `.malformedInput` for a header length outside the block, `.bufferTooSmall`
    ///   without room, `.tooLong` past 65,535 bytes, `.openSSL` if OpenSSL fails.
    public mutating func seal(inPlace block: UnsafeMutableRawBufferPointer, headerLength: Int,
                              payloadLength n: Int) throws(CryptoError) -> Int {
        guard headerLength >= 12, n >= 0, headerLength <= block.count, let start = block.baseAddress else {
            throw .malformedInput(length: headerLength)
        }
        let sealed = Self.sealedLength(plaintextLength: n)
        guard sealed <= 0xFFFF else { throw .tooLong(length: sealed, limit: 0xFFFF) }
        guard headerLength + sealed <= block.count else {
            throw .bufferTooSmall(needed: headerLength + sealed, available: block.count)
        }
        let base = start + headerLength
        let padded = sealed - 16
        try CBCEngine.encrypt(encrypt, chain: sealChain, base, plaintextLength: n, padded: padded, iv: base + padded,
                              pool: pool, poolOffset: &poolOffset, sequence: nil)
        block.storeBytes(of: UInt16(sealed).bigEndian, toByteOffset: 10, as: UInt16.self)
        return sealed
    }

    /// Opens the sealed section `[headerLength, headerLength + payloadLength)` in place (the
    /// header, Payload Length included, is left as received). Call it only after the packet's
    /// HMAC trailer verified.
    /// - Returns: the plaintext length; the TLVs are at `[headerLength, headerLength + result)`.
    /// - Throws: `.malformedInput` if the length cannot be a sealed section or the padding is
    ///   bad; `.openSSL` if OpenSSL fails.
    public mutating func open(inPlace block: UnsafeMutableRawBufferPointer, headerLength: Int,
                              payloadLength len: Int) throws(CryptoError) -> Int {
        guard headerLength >= 12, len >= 32, len % 16 == 0, headerLength + len <= block.count,
              let start = block.baseAddress
        else { throw .malformedInput(length: len) }
        let base = start + headerLength
        let padded = len - 16
        try CBCEngine.decrypt(decrypt, chain: openChain, base, padded: padded, iv: base + padded)
        guard let plain = CBCEngine.unpad(base, padded: padded) else { throw .malformedInput(length: len) }
        return plain
    }
}

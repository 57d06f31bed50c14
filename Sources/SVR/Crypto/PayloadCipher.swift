// Per-packet sealing and opening of a session payload (or of a metadata payload-TLV
// section) in place, in the caller's buffer.
//
// Seal, AES-256-CBC + HMAC-SHA256-128 (n plaintext bytes at buffer[0..<n]):
//   1. PKCS#7: write p = 16 - n % 16 bytes of value p at [n, P), P = n + p.
//   2. IV: the next 16 bytes of a per-cipher pool filled by RAND_bytes (refilled every 32
//      packets, so the CSPRNG is called once per 512 B, not per packet), written at [P, P+16).
//   3. Encrypt [0, P) in place with the IV (EVP padding off: no internal buffering/copy).
//   4. Tag = HMAC-SHA256(macKey, IV ‖ ciphertext)[0..<16], written at [P+16, P+32).
// Open verifies the tag first (constant time) and only then decrypts, so a forged packet
// leaves the buffer untouched and costs one HMAC.
//
// Seal, AES-256-GCM: nonce = 4-byte random prefix ‖ 8-byte counter (big-endian), both drawn
// at random when the cipher is created and the counter incremented per packet, so nonces
// never repeat within one PayloadCipher (it throws `.nonceExhausted` after 2^64 seals) and
// two PayloadCiphers with the same key (one per thread) collide only if their random 96-bit
// starting points land within each other's range: probability ≤ (ciphers² · packets) / 2^96.
// Layout `ciphertext ‖ nonce ‖ tag`; no AAD (the §6.3 packet HMAC covers the headers).
//
// Keys: `init(material:)` (and the engine's `install`) take the suite's ready subkeys as
// carried in TLV 46 (independent random keys, see SessionKeyMaterial). `init(suite:key:)`
// and `rekey(_:deriver:)` instead derive them from one 32-byte key with
// HKDF-SHA256(ikm: key, salt: "", info: label), labels "svrd payload v1 aes-256-cbc",
// "svrd payload v1 hmac-sha256", "svrd payload v1 aes-256-gcm".

/// An AES-GCM nonce sequence owned by the caller (e.g. one per session and direction):
/// nonce = prefix (4 bytes) ‖ counter (8 bytes, big-endian), the counter incremented before
/// each seal (wrapping). Start it at random values (`init(random:)`) so two sequences under
/// one key (a sender whose session state was re-created with the same key) do not overlap:
/// 2^64 seals of one sequence (58,000 years at 10 Mpps) would be needed to repeat a nonce.
public struct GCMNonceSequence: Sendable, Equatable {
    public var prefix: UInt32
    public var counter: UInt64

    public init(prefix: UInt32, counter: UInt64) {
        self.prefix = prefix
        self.counter = counter
    }

    /// A sequence starting at the 12 random bytes at `bytes` (prefix, then counter).
    public init(random bytes: UnsafeRawPointer) {
        self.init(prefix: bytes.loadUnaligned(as: UInt32.self), counter: bytes.loadUnaligned(fromByteOffset: 4, as: UInt64.self))
    }
}

/// Seals and opens payloads of one key, in place. One per thread per key: it owns OpenSSL
/// contexts (freed on deinit) and per-packet state, and must not be shared between threads.
///
/// Buffer contract for both directions: `buffer` starts at the first payload byte and its
/// `count` is the capacity available (payload plus tailroom). Reserve
/// `suite.maxOverhead` bytes of tailroom after the plaintext for `seal`.
public struct PayloadCipher: ~Copyable {
    public let suite: CipherSuite
    private let engine: PayloadEngine
    private var ivOffset: Int
    private var nonceCounter: UInt64
    private var noncesLeft: UInt64
    private let noncePrefix: UInt32

    /// Creates the contexts and derives the suite's subkeys from `key`.
    public init(suite: CipherSuite, key: SymmetricKey) throws(CryptoError) {
        var prefix: UInt32 = 0
        var counter: UInt64 = 0
        switch suite {
        case .none:
            engine = .none
        case .aes256CbcHmacSha256_128:
            engine = .cbc(try CBCEngine(key: key))
        case .aes256Gcm:
            let start = try OpenSSLSys.randomBytes(count: 12)
            prefix = start[0..<4].reduce(0) { $0 << 8 | UInt32($1) }
            counter = start[4..<12].reduce(0) { $0 << 8 | UInt64($1) }
            engine = .gcm(try GCMEngine(key: key))
        }
        self.suite = suite
        ivOffset = 0
        noncePrefix = prefix
        nonceCounter = counter
        noncesLeft = .max
    }

    /// Creates the contexts for session key material that carries ready subkeys (TLV 46):
    /// the keys are installed as they are, without a derivation.
    public init(material: SessionKeyMaterial) throws(CryptoError) {
        var subkeys = [UInt8](repeating: 0, count: 64)
        subkeys.replaceSubrange(0..<32, with: material.key.bytes)
        if let m = material.macKey { subkeys.replaceSubrange(32..<64, with: m.bytes) }
        try self.init(suite: material.suite, subkeys: subkeys)
    }

    /// Creates the contexts for the suite with `subkeys` (64 bytes, the layout of
    /// `deriveSubkeys`: CBC key ‖ MAC key, or GCM key ‖ unused).
    init(suite: CipherSuite, subkeys: [UInt8]) throws(CryptoError) {
        guard subkeys.count == 64 else { throw .invalidKey }
        var prefix: UInt32 = 0
        var counter: UInt64 = 0
        switch suite {
        case .none:
            engine = .none
        case .aes256CbcHmacSha256_128:
            engine = .cbc(try CBCEngine(encryptionKey: Array(subkeys[0..<32]), macKey: Array(subkeys[32..<64])))
        case .aes256Gcm:
            let start = try OpenSSLSys.randomBytes(count: 12)
            prefix = start[0..<4].reduce(0) { $0 << 8 | UInt32($1) }
            counter = start[4..<12].reduce(0) { $0 << 8 | UInt64($1) }
            engine = .gcm(try GCMEngine(key: Array(subkeys[0..<32])))
        }
        self.suite = suite
        ivOffset = 0
        noncePrefix = prefix
        nonceCounter = counter
        noncesLeft = .max
    }

    /// Seals `plaintextLength` bytes at the start of `buffer` in place.
    ///
    /// - Returns: the sealed length, `suite.sealedLength(plaintextLength:)`; the sealed bytes
    ///   are `buffer[0..<result]` (layouts: see `CipherSuite`).
    /// - Throws: `.bufferTooSmall` if `buffer.count` is less than the sealed length;
    ///   `.openSSL` if OpenSSL fails; `.nonceExhausted` (GCM, after 2^64 packets).
    public mutating func seal(inPlace buffer: UnsafeMutableRawBufferPointer, plaintextLength n: Int) throws(CryptoError) -> Int {
        try seal(buffer, n, nonce: nil)
    }

    /// Seals like `seal(inPlace:plaintextLength:)`, but an AES-GCM nonce comes from `nonce`
    /// (the caller's per-session state, advanced here) instead of this cipher's own counter,
    /// so a session keeps one nonce sequence whichever cached cipher seals its packets.
    /// The caller must never present the same nonce twice for one key. Other suites ignore it.
    ///
    /// AES-CBC uses the sequence too: the IV becomes AES-256(K, prefix ‖ counter ‖ "svr1")
    /// (see ReplayGuard.swift), which `open(inPlace:sealedLength:sequence:)` recovers.
    public mutating func seal(inPlace buffer: UnsafeMutableRawBufferPointer, plaintextLength n: Int,
                              nonce: inout GCMNonceSequence) throws(CryptoError) -> Int {
        guard suite != .none else { return try seal(buffer, n, nonce: nil) }
        nonce.counter &+= 1
        return try seal(buffer, n, nonce: (nonce.prefix, nonce.counter))
    }

    private mutating func seal(_ buffer: UnsafeMutableRawBufferPointer, _ n: Int, nonce explicit: (UInt32, UInt64)?) throws(CryptoError) -> Int {
        let total = suite.sealedLength(plaintextLength: n)
        guard n >= 0, total <= buffer.count else { throw .bufferTooSmall(needed: total, available: buffer.count) }
        guard let base = buffer.baseAddress, suite != .none else { return n }  // .none: nothing to do
        switch engine {
        case .none:
            return n
        case .cbc(let e):
            let padded = total - 32
            let iv = base + padded
            try CBCEngine.encrypt(e.encrypt, chain: e.encChain, base, plaintextLength: n, padded: padded,
                                  iv: iv, pool: e.ivPool, poolOffset: &ivOffset, sequence: explicit)
            try e.mac.sign(iv, 16, base, padded, tag: iv + 16, tagLength: 16)
            return total
        case .gcm(let e):
            let (prefix, counter): (UInt32, UInt64)
            if let explicit {
                (prefix, counter) = explicit
            } else {
                guard noncesLeft > 0 else { throw .nonceExhausted }
                noncesLeft -= 1
                nonceCounter &+= 1
                (prefix, counter) = (noncePrefix, nonceCounter)
            }
            let nonce = base + n
            nonce.storeBytes(of: prefix.bigEndian, as: UInt32.self)
            nonce.storeBytes(of: counter.bigEndian, toByteOffset: 4, as: UInt64.self)
            if e.pending.load(fromByteOffset: GCMEngine.encPendingFlag, as: UInt8.self) != 0 {
                try e.encrypt.rekey(e.pending, iv: nonce)  // key schedule and nonce in one init
                e.clearPending(encrypt: true)
            } else {
                try e.encrypt.setNonce(nonce)
            }
            if n > 0 { _ = try e.encrypt.update(base, count: n, op: .encrypt) }
            guard e.encrypt.finish(nonce) else { throw OpenSSLSys.error(.encrypt) }
            try e.encrypt.getTag(nonce + 12)
            return total
        }
    }

    /// Opens `sealedLength` sealed bytes at the start of `buffer` in place.
    ///
    /// - Returns: the plaintext length; the plaintext is `buffer[0..<result]`.
    /// - Throws: `.authenticationFailed` if the tag does not verify (tampering, wrong key);
    ///   `.malformedInput` if the length cannot be a sealed packet of this suite (or the
    ///   padding is bad under a valid tag); `.openSSL` if OpenSSL fails. After a throw the
    ///   buffer content is unspecified (never unauthenticated plaintext): drop the packet.
    public mutating func open(inPlace buffer: UnsafeMutableRawBufferPointer, sealedLength: Int) throws(CryptoError) -> Int {
        var ignored = PayloadSequence()
        return try open(inPlace: buffer, sealedLength: sealedLength, sequence: &ignored, decodeSequence: false)
    }

    /// Opens like `open(inPlace:sealedLength:)` and returns the sender's sequence in
    /// `sequence`: the GCM nonce, or the plaintext block of an AES-CBC IV (one more block
    /// decryption); `known` is false for a CBC IV whose check bytes do not match (a sender
    /// that draws IVs at random) and for the suite none.
    public mutating func open(inPlace buffer: UnsafeMutableRawBufferPointer, sealedLength: Int,
                              sequence: inout PayloadSequence) throws(CryptoError) -> Int {
        try open(inPlace: buffer, sealedLength: sealedLength, sequence: &sequence, decodeSequence: true)
    }

    private mutating func open(inPlace buffer: UnsafeMutableRawBufferPointer, sealedLength: Int,
                               sequence: inout PayloadSequence, decodeSequence: Bool) throws(CryptoError) -> Int {
        sequence.known = false
        let len = sealedLength
        guard len >= 0, len <= buffer.count else { throw .malformedInput(length: len) }
        guard let base = buffer.baseAddress, suite != .none else {
            if suite == .none { return len }
            throw .malformedInput(length: len)  // empty buffer
        }
        switch engine {
        case .none:
            return len
        case .cbc(let e):
            guard len >= 48, len % 16 == 0 else { throw .malformedInput(length: len) }
            let padded = len - 32
            let iv = base + padded
            guard try e.mac.check(iv, 16, base, padded, tag: iv + 16, tagLength: 16) else {
                throw .authenticationFailed
            }
            if decodeSequence {
                try CBCEngine.decodeIV(e.decrypt, chain: e.decChain, iv: iv, scratch: e.scratch, into: &sequence)
            }
            try CBCEngine.decrypt(e.decrypt, chain: e.decChain, base, padded: padded, iv: iv)
            guard let plain = CBCEngine.unpad(base, padded: padded) else { throw .malformedInput(length: len) }
            return plain
        case .gcm(let e):
            guard len >= 28 else { throw .malformedInput(length: len) }
            let n = len - 28
            let nonce = base + n
            if e.pending.load(fromByteOffset: GCMEngine.decPendingFlag, as: UInt8.self) != 0 {
                try e.decrypt.rekey(e.pending + 32, iv: nonce)
                e.clearPending(encrypt: false)
            } else {
                try e.decrypt.setNonce(nonce)
            }
            try e.decrypt.setTag(nonce + 12)
            if n > 0 { _ = try e.decrypt.update(base, count: n, op: .decrypt) }
            guard e.decrypt.finish(nonce) else {
                base.initializeMemory(as: UInt8.self, repeating: 0, count: n)  // no unverified plaintext
                OpenSSLSys.clearErrors()
                throw .authenticationFailed
            }
            sequence = PayloadSequence(prefix: UInt32(bigEndian: nonce.loadUnaligned(as: UInt32.self)),
                                       counter: UInt64(bigEndian: nonce.loadUnaligned(fromByteOffset: 4, as: UInt64.self)),
                                       known: true)
            return n
        }
    }
}

extension PayloadCipher {
    /// Re-keys this cipher in place for another session key of the same suite: derives the
    /// subkeys with `deriver` (the same HKDF as `init(suite:key:)`) and re-initialises the
    /// existing OpenSSL contexts, so switching sessions costs a few HMACs and key schedules
    /// instead of new contexts. `key` points at 32 bytes. The IV pool and the GCM nonce
    /// counter carry on.
    public mutating func rekey(_ key: UnsafeRawPointer, deriver: borrowing SubkeyDeriver) throws(CryptoError) {
        var subkeys: (DigestScratch, DigestScratch) = ((0, 0, 0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0, 0, 0))
        try withUnsafeMutableBytes(of: &subkeys) { (k) throws(CryptoError) in
            try deriveSubkeys(key, deriver: deriver, into: k.baseAddress!)
            try install(k.baseAddress!, sealing: true)
            try install(k.baseAddress!, sealing: false)
        }
    }

    /// Derives the subkeys of the 32-byte session key at `key` for this suite into `out`
    /// (64 bytes: CBC encryption key then MAC key; GCM key then 32 unused bytes).
    public func deriveSubkeys(_ key: UnsafeRawPointer, deriver: borrowing SubkeyDeriver,
                              into out: UnsafeMutableRawPointer) throws(CryptoError) {
        switch suite {
        case .none:
            return
        case .aes256CbcHmacSha256_128:
            try deriver.begin(key)
            try deriver.expand(label: SubkeyDeriver.cbcLabel, into: out)
            try deriver.expand(label: SubkeyDeriver.macLabel, into: out + 32)
        case .aes256Gcm:
            try deriver.begin(key)
            try deriver.expand(label: SubkeyDeriver.gcmLabel, into: out)
        }
    }

    /// Installs subkeys from `deriveSubkeys` into the sealing or the opening context only, so a
    /// router that only seals (or only opens) a session's first packet sets up one key
    /// schedule. For CBC the MAC key, shared by both directions, is installed too.
    public mutating func install(_ subkeys: UnsafeRawPointer, sealing: Bool) throws(CryptoError) {
        switch engine {
        case .none:
            return
        case .cbc(let e):
            // A key-only init: OpenSSL's CBC provider then restores the IV of the context's
            // last IV init (always the zero block here: creation, resynchronise), so the chain
            // restarts at zero without the IV-length query an IV costs.
            if sealing {
                try e.encrypt.rekey(subkeys)
                e.encChain.initializeMemory(as: UInt8.self, repeating: 0, count: 16)
            } else {
                try e.decrypt.rekey(subkeys)
                e.decChain.initializeMemory(as: UInt8.self, repeating: 0, count: 16)
            }
            try e.mac.rekey(subkeys + 32, count: 32)
        case .gcm(let e):
            // Deferred to the next seal/open, which sets key and nonce with one EVP init.
            let at = sealing ? 0 : 32
            (e.pending + at).copyMemory(from: subkeys, byteCount: 32)
            e.pending.storeBytes(of: 1, toByteOffset: sealing ? GCMEngine.encPendingFlag : GCMEngine.decPendingFlag, as: UInt8.self)
        }
    }
}

/// HKDF-SHA256 with an empty salt and a 32-byte output (RFC 5869: PRK = HMAC(0^32, ikm),
/// T(1) = HMAC(PRK, info ‖ 0x01)), the derivation `SymmetricKey.subkey(_:)` does through
/// `EVP_KDF`, on two reusable HMAC contexts (extract keyed once; expand re-keyed per input
/// key): no fetch and no allocation per call, one HMAC key setup per session key.
public struct SubkeyDeriver: ~Copyable {
    let extractor: MacContext
    let expander: MacContext
    let labels: UnsafeMutableRawPointer

    /// Offsets of the three labels (27 bytes each, followed by the counter byte 0x01).
    public static let cbcLabel = 0, macLabel = 64, gcmLabel = 128
    static let labelCount = 27

    public init() throws(CryptoError) {
        let x = try MacContext(digest: "SHA256", key: [UInt8](repeating: 0, count: 32))
        let y = try MacContext(digest: "SHA256", key: [UInt8](repeating: 0, count: 32))
        extractor = x
        expander = y
        labels = .allocate(byteCount: 192, alignment: 64)
        for (at, label) in [(Self.cbcLabel, "svrd payload v1 aes-256-cbc"), (Self.macLabel, "svrd payload v1 hmac-sha256"),
                            (Self.gcmLabel, "svrd payload v1 aes-256-gcm")] {
            var bytes = Array(label.utf8)
            precondition(bytes.count == Self.labelCount)
            bytes.append(1)
            bytes.withUnsafeBytes { (labels + at).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
    }

    deinit { labels.deallocate() }

    /// Extract: PRK = HMAC(0^32, 32 bytes at `ikm`); keys the expander with it.
    public func begin(_ ikm: UnsafeRawPointer) throws(CryptoError) {
        var prk: DigestScratch = (0, 0, 0, 0, 0, 0, 0, 0)
        try withUnsafeMutableBytes(of: &prk) { (p) throws(CryptoError) in
            try extractor.sign(ikm, 32, tag: p.baseAddress!, tagLength: 32)
            try expander.rekey(p.baseAddress!, count: 32)
        }
    }

    /// Expand: writes T(1) = HMAC(PRK, label ‖ 0x01) (32 bytes) to `out`.
    public func expand(label: Int, into out: UnsafeMutableRawPointer) throws(CryptoError) {
        try expander.sign(labels + label, Self.labelCount + 1, tag: out, tagLength: 32)
    }
}

extension PayloadCipher {
    /// Seals the payload-TLV section of a metadata block in place (spec §4.2, §6.2) and
    /// writes the sealed length into the block's Payload Length field (bytes 10–11).
    ///
    /// `block` starts at the first cookie byte; the plaintext TLVs are at
    /// `[headerLength, headerLength + payloadLength)` and `block.count` must leave
    /// `suite.maxOverhead` bytes of room after them (bytes there are overwritten).
    /// - Returns: the sealed section length (the new Payload Length, at most 65535).
    public mutating func sealMetadataPayload(inPlace block: UnsafeMutableRawBufferPointer, headerLength: Int,
                                             payloadLength: Int) throws(CryptoError) -> Int {
        guard headerLength >= 12, headerLength <= block.count else { throw .malformedInput(length: headerLength) }
        let sealedLength = suite.sealedLength(plaintextLength: payloadLength)
        guard sealedLength <= 0xFFFF else { throw .tooLong(length: sealedLength, limit: 0xFFFF) }
        let section = UnsafeMutableRawBufferPointer(rebasing: block[headerLength...])
        let sealed = try seal(inPlace: section, plaintextLength: payloadLength)
        block.storeBytes(of: UInt16(sealed).bigEndian, toByteOffset: 10, as: UInt16.self)
        return sealed
    }

    /// Opens the sealed payload-TLV section `[headerLength, headerLength + payloadLength)` of
    /// a metadata block in place. The header (including Payload Length) is left as received.
    /// - Returns: the plaintext length; the TLVs are at `[headerLength, headerLength + result)`.
    public mutating func openMetadataPayload(inPlace block: UnsafeMutableRawBufferPointer, headerLength: Int,
                                             payloadLength: Int) throws(CryptoError) -> Int {
        guard headerLength >= 12, headerLength <= block.count else { throw .malformedInput(length: headerLength) }
        let section = UnsafeMutableRawBufferPointer(rebasing: block[headerLength...])
        return try open(inPlace: section, sealedLength: payloadLength)
    }
}

// MARK: - Suite engines (own the OpenSSL contexts)

enum PayloadEngine: ~Copyable {
    case none
    case cbc(CBCEngine)
    case gcm(GCMEngine)
}

struct CBCEngine: ~Copyable {
    /// 32 IVs per RAND_bytes call (512 B: the 4,096 cached ciphers of a router stay small).
    static let poolSize = 512
    let encrypt: CipherContext
    let decrypt: CipherContext
    let mac: MacContext
    let ivPool: UnsafeMutableRawPointer
    /// The CBC chaining value each context continues from (its last ciphertext block, or the
    /// IV of its last init): 16 bytes each, after the IV pool.
    var encChain: UnsafeMutableRawPointer { ivPool + Self.poolSize }
    var decChain: UnsafeMutableRawPointer { ivPool + Self.poolSize + 16 }
    /// 16 bytes for an IV's plaintext block (sequenced IVs), after the chains.
    var scratch: UnsafeMutableRawPointer { ivPool + Self.poolSize + 32 }
    /// 16 zero bytes (a literal in the binary).
    static var zeroBlock: UnsafeRawPointer {
        UnsafeRawPointer(("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0" as StaticString).utf8Start)
    }

    /// `block[0..<16] ^= a[0..<16] ^ b[0..<16]`.
    @inline(__always)
    static func xor16(_ block: UnsafeMutableRawPointer, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer) {
        for j in stride(from: 0, to: 16, by: 8) {
            let v = block.loadUnaligned(fromByteOffset: j, as: UInt64.self)
                ^ a.loadUnaligned(fromByteOffset: j, as: UInt64.self) ^ b.loadUnaligned(fromByteOffset: j, as: UInt64.self)
            block.storeBytes(of: v, toByteOffset: j, as: UInt64.self)
        }
    }

    /// After a failed update the context's chain is unknown: restart it at a zero IV (same key).
    static func resynchronise(_ ctx: borrowing CipherContext, chain: UnsafeMutableRawPointer) {
        let ok = (try? ctx.setIV(zeroBlock)) != nil
        chain.initializeMemory(as: UInt8.self, repeating: 0, count: 16)
        if !ok { OpenSSLSys.clearErrors() }
    }

    /// AES-CBC of `n` plaintext bytes at `base` in place with a fresh IV, on a context that
    /// continues its chain from `chain` (its last ciphertext block): PKCS#7-pads to `padded`,
    /// takes the next IV from `pool` (refilled with `RAND_bytes` every 32 IVs) and writes it
    /// to `iv`; first block ⊕ chain ⊕ IV makes this exactly CBC with that IV, without an EVP
    /// re-init. `chain` then holds the last ciphertext block.
    @inline(__always)
    static func encrypt(_ ctx: borrowing CipherContext, chain: UnsafeMutableRawPointer, _ base: UnsafeMutableRawPointer,
                        plaintextLength n: Int, padded: Int, iv: UnsafeMutableRawPointer,
                        pool: UnsafeMutableRawPointer, poolOffset: inout Int, sequence: (UInt32, UInt64)?) throws(CryptoError) {
        (base + n).initializeMemory(as: UInt8.self, repeating: UInt8(padded - n), count: padded - n)
        if let sequence {
            let (prefix, counter) = sequence
            // IV = AES(K, prefix ‖ counter ‖ check): encrypt that block ⊕ chain on the chained
            // context in place at `iv`; the chain is then the IV itself, so the first payload
            // block needs no correction.
            iv.storeBytes(of: prefix.bigEndian, as: UInt32.self)
            iv.storeBytes(of: counter.bigEndian, toByteOffset: 4, as: UInt64.self)
            iv.storeBytes(of: PayloadSequence.cbcCheck.bigEndian, toByteOffset: 12, as: UInt32.self)
            xor16(iv, chain, zeroBlock)
            do throws(CryptoError) {
                _ = try ctx.update(iv, count: 16, op: .encrypt)
            } catch {
                resynchronise(ctx, chain: chain)
                throw error
            }
        } else {
            if poolOffset == poolSize {
                try OpenSSLSys.randomBytes(UnsafeMutableRawBufferPointer(start: pool, count: poolSize))
                poolOffset = 0
            }
            iv.copyMemory(from: pool + poolOffset, byteCount: 16)
            poolOffset += 16
            xor16(base, chain, iv)
        }
        do throws(CryptoError) {
            _ = try ctx.update(base, count: padded, op: .encrypt)
        } catch {
            resynchronise(ctx, chain: chain)
            throw error
        }
        chain.copyMemory(from: base + padded - 16, byteCount: 16)
    }

    /// Recovers the plaintext block of a sequenced IV: decrypts the IV (copied to `scratch`)
    /// on the chained context, so the chain becomes the IV and the payload that follows
    /// decrypts with it as `decrypt` expects.
    @inline(__always)
    static func decodeIV(_ ctx: borrowing CipherContext, chain: UnsafeMutableRawPointer, iv: UnsafeRawPointer,
                         scratch: UnsafeMutableRawPointer, into sequence: inout PayloadSequence) throws(CryptoError) {
        scratch.copyMemory(from: iv, byteCount: 16)
        do throws(CryptoError) {
            _ = try ctx.update(scratch, count: 16, op: .decrypt)
        } catch {
            resynchronise(ctx, chain: chain)
            throw error
        }
        xor16(scratch, chain, zeroBlock)
        chain.copyMemory(from: iv, byteCount: 16)
        let check = UInt32(bigEndian: scratch.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        sequence = PayloadSequence(prefix: UInt32(bigEndian: scratch.loadUnaligned(as: UInt32.self)),
                                   counter: UInt64(bigEndian: scratch.loadUnaligned(fromByteOffset: 4, as: UInt64.self)),
                                   known: check == PayloadSequence.cbcCheck)
    }

    /// The inverse of `encrypt`: decrypts `padded` bytes at `base` in place (IV at `iv`),
    /// continuing from `chain`. Padding is left for `unpad`.
    @inline(__always)
    static func decrypt(_ ctx: borrowing CipherContext, chain: UnsafeMutableRawPointer, _ base: UnsafeMutableRawPointer,
                        padded: Int, iv: UnsafeRawPointer) throws(CryptoError) {
        var last: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &last) { $0.baseAddress!.copyMemory(from: base + padded - 16, byteCount: 16) }
        do throws(CryptoError) {
            _ = try ctx.update(base, count: padded, op: .decrypt)
        } catch {
            resynchronise(ctx, chain: chain)
            throw error
        }
        xor16(base, chain, iv)
        withUnsafeBytes(of: &last) { chain.copyMemory(from: $0.baseAddress!, byteCount: 16) }
    }

    /// The plaintext length of `padded` decrypted bytes ending in PKCS#7 padding; nil if the
    /// padding is malformed.
    @inline(__always)
    static func unpad(_ base: UnsafeRawPointer, padded: Int) -> Int? {
        let pad = Int(base.load(fromByteOffset: padded - 1, as: UInt8.self))
        guard pad >= 1, pad <= 16, pad <= padded else { return nil }
        for i in padded - pad..<padded - 1 where base.load(fromByteOffset: i, as: UInt8.self) != UInt8(pad) { return nil }
        return padded - pad
    }

    init(key: SymmetricKey) throws(CryptoError) {
        try self.init(encryptionKey: key.subkey("svrd payload v1 aes-256-cbc"), macKey: key.subkey("svrd payload v1 hmac-sha256"))
    }

    init(encryptionKey encKey: [UInt8], macKey: [UInt8]) throws(CryptoError) {
        let enc = try CipherContext(cipher: "AES-256-CBC", key: encKey, encrypt: true)
        let dec = try CipherContext(cipher: "AES-256-CBC", key: encKey, encrypt: false)
        let mac = try MacContext(digest: "SHA256", key: macKey)
        let pool = UnsafeMutableRawPointer.allocate(byteCount: Self.poolSize + 48, alignment: 64)
        pool.initializeMemory(as: UInt8.self, repeating: 0, count: Self.poolSize + 48)  // chains, scratch: zero
        do throws(CryptoError) {
            try OpenSSLSys.randomBytes(UnsafeMutableRawBufferPointer(start: pool, count: Self.poolSize))
            try enc.setIV(Self.zeroBlock)
            try dec.setIV(Self.zeroBlock)
        } catch {
            pool.deallocate()
            throw error
        }
        encrypt = enc
        decrypt = dec
        self.mac = mac
        ivPool = pool
    }

    deinit { ivPool.deallocate() }
}

struct GCMEngine: ~Copyable {
    let encrypt: CipherContext
    let decrypt: CipherContext
    /// Keys installed but not yet set (sealing key at 0, opening key at 32) and their flags.
    let pending: UnsafeMutableRawPointer
    static let encPendingFlag = 64, decPendingFlag = 65

    func clearPending(encrypt: Bool) {
        (pending + (encrypt ? 0 : 32)).initializeMemory(as: UInt8.self, repeating: 0, count: 32)
        pending.storeBytes(of: 0, toByteOffset: encrypt ? Self.encPendingFlag : Self.decPendingFlag, as: UInt8.self)
    }

    deinit {
        pending.initializeMemory(as: UInt8.self, repeating: 0, count: 66)
        pending.deallocate()
    }

    init(key: SymmetricKey) throws(CryptoError) {
        try self.init(key: key.subkey("svrd payload v1 aes-256-gcm"))
    }

    init(key k: [UInt8]) throws(CryptoError) {
        // Fallible steps into locals first: a ~Copyable value cannot be half-initialised.
        let enc = try CipherContext(cipher: "AES-256-GCM", key: k, encrypt: true)
        let dec = try CipherContext(cipher: "AES-256-GCM", key: k, encrypt: false)
        encrypt = enc
        decrypt = dec
        pending = .allocate(byteCount: 66, alignment: 64)
        pending.initializeMemory(as: UInt8.self, repeating: 0, count: 66)
    }
}

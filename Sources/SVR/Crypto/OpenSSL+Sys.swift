// The only file of the crypto layer that talks to OpenSSL (libcrypto 3.x, EVP API) with raw
// pointers. Everything above it (PayloadCipher, PacketAuthenticator, keys) uses Swift types.
//
// Conventions:
// - Contexts (`EVP_CIPHER_CTX`, `EVP_MAC_CTX`) are owned by `~Copyable` structs, created and
//   keyed once, freed in `deinit`. Per packet only the IV is set; nothing is fetched,
//   allocated or looked up by name.
// - `OSSL_PARAM` arrays keep pointers to their key and value strings, so those strings are
//   `StaticString` literals (stable addresses in the binary), never bridged Swift Strings.
// - Failures are turned into `CryptoError.openSSL(op, code: ERR_get_error())` and the rest
//   of the thread's error queue is cleared, so the queue never grows.

internal import COpenSSL
internal import CShim

enum OpenSSLSys {
    /// The first queued OpenSSL error for `op`; clears the rest of the queue.
    @inline(never)
    static func error(_ op: CryptoOperation) -> CryptoError {
        let code = ERR_get_error()
        ERR_clear_error()
        return .openSSL(op, code: code)
    }

    /// Drops queued errors (after an expected failure such as a GCM tag mismatch).
    static func clearErrors() { ERR_clear_error() }

    /// OpenSSL's text for an error code ("error:1C800066:Provider routines::...").
    static func errorString(_ code: UInt) -> String {
        if code == 0 { return "no OpenSSL error queued" }
        var buf = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buf, buf.count)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A NUL-terminated C string for a literal; the address stays valid for the program's life.
    @inline(__always)
    static func cString(_ s: StaticString) -> UnsafeMutablePointer<CChar> {
        UnsafeMutablePointer(mutating: UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self))
    }

    /// Fills `buffer` from OpenSSL's CSPRNG (`RAND_bytes`).
    static func randomBytes(_ buffer: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        guard RAND_bytes(base.assumingMemoryBound(to: UInt8.self), Int32(buffer.count)) == 1 else {
            throw error(.random)
        }
    }

    static func randomBytes(count: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var failure: CryptoError?
        out.withUnsafeMutableBytes { raw in
            do throws(CryptoError) { try randomBytes(raw) } catch { failure = error }
        }
        if let failure { throw failure }
        return out
    }

    /// Constant-time equality of `count` bytes (`CRYPTO_memcmp`).
    @inline(__always)
    static func constantTimeEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Bool {
        CRYPTO_memcmp(a, b, count) == 0
    }

    // MARK: HKDF (control plane)

    /// HKDF-SHA256 (RFC 5869, extract then expand) through `EVP_KDF` "HKDF".
    static func hkdfSHA256(ikm: [UInt8], salt: [UInt8], info: [UInt8], count: Int) throws(CryptoError) -> [UInt8] {
        guard let kdf = EVP_KDF_fetch(nil, "HKDF", nil) else { throw error(.kdf) }
        let ctx = EVP_KDF_CTX_new(kdf)
        EVP_KDF_free(kdf)
        guard let ctx else { throw error(.kdf) }
        defer { EVP_KDF_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: count)
        // Copies with stable addresses for the duration of the derive call.
        var ikm = ikm, salt = salt, info = info
        let ok = ikm.withUnsafeMutableBytes { k in
            salt.withUnsafeMutableBytes { s in
                info.withUnsafeMutableBytes { i in
                    out.withUnsafeMutableBytes { o in
                        var params = [
                            OSSL_PARAM_construct_utf8_string(cString("digest"), cString("SHA256"), 0),
                            OSSL_PARAM_construct_octet_string(cString("key"), k.baseAddress, k.count),
                            OSSL_PARAM_construct_octet_string(cString("salt"), s.baseAddress, s.count),
                            OSSL_PARAM_construct_octet_string(cString("info"), i.baseAddress, i.count),
                            OSSL_PARAM_construct_end(),
                        ]
                        return EVP_KDF_derive(ctx, o.baseAddress!.assumingMemoryBound(to: UInt8.self), o.count, &params)
                    }
                }
            }
        }
        guard ok == 1 else { throw error(.kdf) }
        return out
    }

    // MARK: X25519 (control plane)

    private static func x25519Key(_ bytes: [UInt8], isPrivate: Bool) throws(CryptoError) -> OpaquePointer {
        guard bytes.count == 32 else { throw .invalidKey }
        let key = bytes.withUnsafeBufferPointer { b in
            isPrivate
                ? EVP_PKEY_new_raw_private_key_ex(nil, "X25519", nil, b.baseAddress, 32)
                : EVP_PKEY_new_raw_public_key_ex(nil, "X25519", nil, b.baseAddress, 32)
        }
        guard let key else { throw error(.keyParse) }
        return key
    }

    /// The X25519 public key of a 32-byte private key.
    static func x25519PublicKey(privateKey: [UInt8]) throws(CryptoError) -> [UInt8] {
        let key = try x25519Key(privateKey, isPrivate: true)
        defer { EVP_PKEY_free(key) }
        var out = [UInt8](repeating: 0, count: 32)
        var len = 32
        guard EVP_PKEY_get_raw_public_key(key, &out, &len) == 1, len == 32 else { throw error(.publicKey) }
        return out
    }

    /// X25519(privateKey, publicKey). OpenSSL refuses an all-zero result (a low-order or zero
    /// public key), which surfaces as `.openSSL(.keyAgreement, code:)`.
    static func x25519SharedSecret(privateKey: [UInt8], publicKey: [UInt8]) throws(CryptoError) -> [UInt8] {
        let priv = try x25519Key(privateKey, isPrivate: true)
        defer { EVP_PKEY_free(priv) }
        let peer = try x25519Key(publicKey, isPrivate: false)
        defer { EVP_PKEY_free(peer) }
        guard let ctx = EVP_PKEY_CTX_new_from_pkey(nil, priv, nil) else { throw error(.keyAgreement) }
        defer { EVP_PKEY_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: 32)
        var len = 32
        guard EVP_PKEY_derive_init(ctx) == 1, EVP_PKEY_derive_set_peer(ctx, peer) == 1,
              EVP_PKEY_derive(ctx, &out, &len) == 1, len == 32
        else { throw error(.keyAgreement) }
        return out
    }
}

// MARK: - Cipher context

/// An `EVP_CIPHER_CTX` keyed once for one direction. Per packet: `setIV`, `update` in place,
/// and for GCM the tag calls. Not thread-safe: one per thread.
struct CipherContext: ~Copyable {
    private let ctx: OpaquePointer

    /// - Parameters:
    ///   - cipher: an OpenSSL cipher name ("AES-256-CBC", "AES-256-GCM").
    ///   - padding: false disables EVP's PKCS#7 handling (we pad by hand, see PayloadCipher).
    init(cipher: StaticString, key: [UInt8], encrypt: Bool, padding: Bool = false) throws(CryptoError) {
        guard let c = EVP_CIPHER_fetch(nil, OpenSSLSys.cString(cipher), nil) else {
            throw OpenSSLSys.error(.cipherSetup)
        }
        defer { EVP_CIPHER_free(c) }
        guard Int(EVP_CIPHER_get_key_length(c)) == key.count else { throw .invalidKey }
        guard let ctx = EVP_CIPHER_CTX_new() else { throw OpenSSLSys.error(.cipherSetup) }
        // Padding is set on the provider's context directly, once: `EVP_CIPHER_CTX_set_padding`
        // would also flag the EVP context, and OpenSSL 3.0 then re-sends the setting (a
        // provider parameter round trip) on every later init. AEAD modes have no padding.
        let isCBC = String(describing: cipher).hasSuffix("-CBC")
        let ok = key.withUnsafeBufferPointer { k in
            guard EVP_CipherInit_ex2(ctx, c, k.baseAddress, nil, encrypt ? 1 : 0, nil) == 1 else { return false }
            guard isCBC else { return true }
            var pad: UInt32 = padding ? 1 : 0
            return withUnsafeMutablePointer(to: &pad) { p in
                var params = [OSSL_PARAM_construct_uint(OpenSSLSys.cString("padding"), p), OSSL_PARAM_construct_end()]
                return EVP_CIPHER_CTX_set_params(ctx, &params) == 1
            }
        }
        guard ok else {
            let e = OpenSSLSys.error(.cipherSetup)
            EVP_CIPHER_CTX_free(ctx)
            throw e
        }
        self.ctx = ctx
    }

    deinit { EVP_CIPHER_CTX_free(ctx) }

    /// Installs a new 32-byte key (same cipher and direction); no fetch, no allocation.
    @inline(__always)
    func rekey(_ key: UnsafeRawPointer) throws(CryptoError) {
        guard EVP_CipherInit_ex2(ctx, nil, key.assumingMemoryBound(to: UInt8.self), nil, -1, nil) == 1 else {
            throw OpenSSLSys.error(.cipherSetup)
        }
    }

    /// Installs a new 32-byte key and starts a message with `iv` in one init.
    @inline(__always)
    func rekey(_ key: UnsafeRawPointer, iv: UnsafeRawPointer) throws(CryptoError) {
        guard EVP_CipherInit_ex2(ctx, nil, key.assumingMemoryBound(to: UInt8.self), iv.assumingMemoryBound(to: UInt8.self),
                                 -1, nil) == 1
        else { throw OpenSSLSys.error(.cipherSetup) }
    }

    /// Starts a new message with this IV/nonce (the key schedule is kept).
    @inline(__always)
    func setIV(_ iv: UnsafeRawPointer) throws(CryptoError) {
        guard EVP_CipherInit_ex2(ctx, nil, nil, iv.assumingMemoryBound(to: UInt8.self), -1, nil) == 1 else {
            throw OpenSSLSys.error(.cipherSetIV)
        }
    }

    /// AES-GCM: starts a new message with this whole 12-byte nonce without an EVP re-init
    /// (`EVP_CTRL_GCM_SET_IV_FIXED` with length -1 copies the entire IV into the provider's
    /// context, which applies it before the next update or final; one parameter call instead
    /// of `EVP_CipherInit_ex2`'s parameter queries). The key must be set.
    @inline(__always)
    func setNonce(_ nonce: UnsafeRawPointer) throws(CryptoError) {
        guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IV_FIXED, -1, UnsafeMutableRawPointer(mutating: nonce)) == 1 else {
            throw OpenSSLSys.error(.cipherSetIV)
        }
    }

    /// Encrypts or decrypts `count` bytes in place; returns the bytes written.
    @inline(__always)
    func update(_ data: UnsafeMutableRawPointer, count: Int, op: CryptoOperation) throws(CryptoError) -> Int {
        var outl: Int32 = 0
        let p = data.assumingMemoryBound(to: UInt8.self)
        guard EVP_CipherUpdate(ctx, p, &outl, p, Int32(count)) == 1 else { throw OpenSSLSys.error(op) }
        return Int(outl)
    }

    /// `EVP_CipherFinal_ex`. For a GCM decrypt, false means the tag did not verify.
    @inline(__always)
    func finish(_ out: UnsafeMutableRawPointer) -> Bool {
        var outl: Int32 = 0
        return EVP_CipherFinal_ex(ctx, out.assumingMemoryBound(to: UInt8.self), &outl) == 1
    }

    /// AEAD: copies the 16-byte tag of the message just finished to `out`.
    @inline(__always)
    func getTag(_ out: UnsafeMutableRawPointer) throws(CryptoError) {
        guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out) == 1 else {
            throw OpenSSLSys.error(.aeadTag)
        }
    }

    /// AEAD: sets the expected 16-byte tag before decrypting.
    @inline(__always)
    func setTag(_ tag: UnsafeRawPointer) throws(CryptoError) {
        guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, UnsafeMutableRawPointer(mutating: tag)) == 1 else {
            throw OpenSSLSys.error(.aeadTag)
        }
    }
}

// MARK: - MAC context

/// HMAC (RFC 2104) over precomputed inner and outer digest states (`svr_hmac` in CShim:
/// OpenSSL's low-level `SHA256_CTX`/`SHA_CTX`, copied by value per message). Keying hashes
/// the two pad blocks once; a message costs its own blocks plus two finals, never
/// allocates (OpenSSL 3.0's `EVP_DigestInit_ex2` re-creates the provider context, one
/// malloc/free per init) and makes no provider calls. Not thread-safe: one per thread.
struct MacContext: ~Copyable {
    private let state: OpaquePointer
    /// Full digest length (32 for SHA-256, 20 for SHA-1).
    let digestLength: Int

    /// - Parameter digest: "SHA256" or "SHA1".
    init(digest: StaticString, key: [UInt8]) throws(CryptoError) {
        let name = String(describing: digest)
        let algorithm: Int32
        switch name {
        case "SHA256": algorithm = Int32(SVR_HMAC_SHA256)
        case "SHA1": algorithm = Int32(SVR_HMAC_SHA1)
        default: throw .openSSL(.macSetup, code: 0)
        }
        guard let h = svr_hmac_new(algorithm) else { throw .openSSL(.macSetup, code: 0) }
        key.withUnsafeBytes { k in svr_hmac_set_key(h, k.baseAddress, k.count) }
        state = h
        digestLength = Int(svr_hmac_digest_length(h))
    }

    deinit { svr_hmac_free(state) }

    /// Installs a new key (same digest); later messages use it. No allocation.
    @inline(__always)
    func rekey(_ key: UnsafeRawPointer, count: Int) throws(CryptoError) {
        svr_hmac_set_key(state, key, count)
    }

    /// HMAC(key, a ‖ b ‖ suffix) into `scratch` (64 bytes). `suffix`, when given, is
    /// appended as 8 bytes big-endian (the time window of §6.3).
    @inline(__always)
    private func digest(_ a: UnsafeRawPointer, _ aCount: Int, _ b: UnsafeRawPointer?, _ bCount: Int,
                        suffix: UInt64?, into scratch: UnsafeMutableRawPointer) {
        let out = scratch.assumingMemoryBound(to: UInt8.self)
        let bb = bCount > 0 ? b : nil
        if let suffix {
            withUnsafeBytes(of: suffix.bigEndian) { s in
                svr_hmac_compute(state, a, aCount, bb, bb == nil ? 0 : bCount, s.baseAddress, 8, out)
            }
        } else {
            svr_hmac_compute(state, a, aCount, bb, bb == nil ? 0 : bCount, nil, 0, out)
        }
    }

    /// Writes the first `tagLength` bytes of HMAC(key, a ‖ b ‖ suffix) to `tag`.
    @inline(__always)
    func sign(_ a: UnsafeRawPointer, _ aCount: Int, _ b: UnsafeRawPointer? = nil, _ bCount: Int = 0,
              suffix: UInt64? = nil, tag: UnsafeMutableRawPointer, tagLength: Int) throws(CryptoError) {
        var d: DigestScratch = (0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &d) { s in
            digest(a, aCount, b, bCount, suffix: suffix, into: s.baseAddress!)
            tag.copyMemory(from: s.baseAddress!, byteCount: tagLength)
        }
    }

    /// Whether the first `tagLength` bytes of HMAC(key, a ‖ b ‖ suffix) equal `tag`
    /// (constant-time comparison).
    @inline(__always)
    func check(_ a: UnsafeRawPointer, _ aCount: Int, _ b: UnsafeRawPointer? = nil, _ bCount: Int = 0,
               suffix: UInt64? = nil, tag: UnsafeRawPointer, tagLength: Int) throws(CryptoError) -> Bool {
        var d: DigestScratch = (0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &d) { s in
            digest(a, aCount, b, bCount, suffix: suffix, into: s.baseAddress!)
            return OpenSSLSys.constantTimeEqual(s.baseAddress!, tag, count: tagLength)
        }
    }
}

/// 64 bytes of stack scratch for a digest (no heap allocation per packet).
typealias DigestScratch = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

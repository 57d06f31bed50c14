import SVR
import TestSupport
import Testing

/// A heap buffer for in-place crypto tests: `bytes` at the start, `capacity` in total.
final class PacketScratch {
    private let storage: UnsafeMutableRawBufferPointer
    let raw: UnsafeMutableRawBufferPointer

    init(_ bytes: [UInt8], capacity: Int) {
        storage = .allocate(byteCount: max(capacity, 1), alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0xEE)
        storage.copyBytes(from: bytes)
        raw = UnsafeMutableRawBufferPointer(rebasing: storage[0..<capacity])
    }

    deinit { storage.deallocate() }

    func bytes(_ count: Int) -> [UInt8] { Array(raw[0..<count]) }
    func flip(byte: Int, bit: Int = 0) { raw[byte] ^= UInt8(1 << bit) }
}

private let testKey = try! SymmetricKey(bytes: Array(0x20..<0x40))
private let pattern: [UInt8] = (0..<2100).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }

@Suite struct CryptoPayloadTests {
    @Test(arguments: CipherSuite.allCases)
    func roundTripEveryLength(suite: CipherSuite) throws {
        var sealer = try PayloadCipher(suite: suite, key: testKey)
        var opener = try PayloadCipher(suite: suite, key: testKey)
        for n in 0...2000 {
            let plain = Array(pattern[0..<n])
            let buf = PacketScratch(plain, capacity: n + suite.maxOverhead)
            let sealed = try sealer.seal(inPlace: buf.raw, plaintextLength: n)
            #expect(sealed == suite.sealedLength(plaintextLength: n))
            #expect(sealed <= n + suite.maxOverhead)
            if suite != .none && n >= 16 { #expect(buf.bytes(16) != Array(plain[0..<16])) }
            let opened = try opener.open(inPlace: buf.raw, sealedLength: sealed)
            #expect(opened == n)
            #expect(buf.bytes(n) == plain, "suite \(suite) length \(n)")
        }
    }

    @Test func overheadAtBlockBoundaries() {
        let cbc = CipherSuite.aes256CbcHmacSha256_128
        #expect(cbc.sealedLength(plaintextLength: 0) == 48)
        #expect(cbc.sealedLength(plaintextLength: 15) == 48)
        #expect(cbc.sealedLength(plaintextLength: 16) == 64)
        #expect(cbc.sealedLength(plaintextLength: 1400) == 1440)
        #expect(CipherSuite.aes256Gcm.sealedLength(plaintextLength: 1400) == 1428)
        #expect(CipherSuite.none.sealedLength(plaintextLength: 1400) == 1400)
    }

    /// Sealed bytes built independently (Python `cryptography`, from the documented layout and
    /// HKDF labels) must open to the plaintext: pins the wire format, not just self-consistency.
    @Test func opensIndependentlyBuiltPackets() throws {
        let plain = Array("The quick brown fox jumps over the lazy dog, twice!".utf8)
        let cbc = hexBytes("""
            d9d23b41b490baa92bb1cab7256afdfc3c0c221ed58094dece5875b37d6b39862bf3de75dbd57b536068edb2c28f31f7
            8f99cf227b560f96d31e6c5835ea55b2 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf abe14e2f17c2b8f385bbc49f79a09272
            """)
        let gcm = hexBytes("""
            709eed3cf96e8d4dcf4db2e43afc4aae7ff745cda879b63ee3473dd4306daf38e1f5741f07ae621912881899892b993c1da4cc
            0102030400000000000000ff 15b67d87c607b78148b644de4deaeca2
            """)
        for (suite, sealed) in [(CipherSuite.aes256CbcHmacSha256_128, cbc), (.aes256Gcm, gcm)] {
            var opener = try PayloadCipher(suite: suite, key: testKey)
            let buf = PacketScratch(sealed, capacity: sealed.count)
            #expect(try opener.open(inPlace: buf.raw, sealedLength: sealed.count) == plain.count)
            #expect(buf.bytes(plain.count) == plain)
        }
    }

    @Test(arguments: [CipherSuite.aes256CbcHmacSha256_128, .aes256Gcm])
    func freshIVPerPacket(suite: CipherSuite) throws {
        var sealer = try PayloadCipher(suite: suite, key: testKey)
        var seen = Set<[UInt8]>()
        for _ in 0..<600 {  // crosses the CBC IV pool refill (256 IVs)
            let buf = PacketScratch(Array(pattern[0..<100]), capacity: 100 + suite.maxOverhead)
            let n = try sealer.seal(inPlace: buf.raw, plaintextLength: 100)
            seen.insert(buf.bytes(n))
        }
        #expect(seen.count == 600)
    }

    /// Offsets of a byte in the ciphertext, the IV/nonce and the tag of a 100-byte payload.
    static let tamperCases: [(CipherSuite, String, Int)] = [
        (.aes256CbcHmacSha256_128, "ciphertext", 5), (.aes256CbcHmacSha256_128, "last block", 111),
        (.aes256CbcHmacSha256_128, "IV", 112 + 3), (.aes256CbcHmacSha256_128, "tag", 128 + 15),
        (.aes256Gcm, "ciphertext", 5), (.aes256Gcm, "nonce", 100 + 11), (.aes256Gcm, "tag", 112 + 0),
    ]

    @Test(arguments: 0..<tamperCases.count)
    func tamperingIsAnAuthenticationFailure(index: Int) throws {
        let (suite, what, offset) = Self.tamperCases[index]
        var sealer = try PayloadCipher(suite: suite, key: testKey)
        var opener = try PayloadCipher(suite: suite, key: testKey)
        let buf = PacketScratch(Array(pattern[0..<100]), capacity: 100 + suite.maxOverhead)
        let n = try sealer.seal(inPlace: buf.raw, plaintextLength: 100)
        for bit in [0, 7] {
            let copy = PacketScratch(buf.bytes(n), capacity: n)
            copy.flip(byte: offset, bit: bit)
            #expect(throws: CryptoError.authenticationFailed, "\(suite) \(what) bit \(bit)") {
                try opener.open(inPlace: copy.raw, sealedLength: n)
            }
        }
        // The untouched packet still opens after failures (contexts are reusable).
        #expect(try opener.open(inPlace: buf.raw, sealedLength: n) == 100)
    }

    @Test func cbcRejectsForgeryWithoutTouchingTheBuffer() throws {
        var sealer = try PayloadCipher(suite: .aes256CbcHmacSha256_128, key: testKey)
        var opener = try PayloadCipher(suite: .aes256CbcHmacSha256_128, key: testKey)
        let buf = PacketScratch(Array(pattern[0..<64]), capacity: 64 + 48)
        let n = try sealer.seal(inPlace: buf.raw, plaintextLength: 64)
        buf.flip(byte: n - 1)
        let before = buf.bytes(n)
        #expect(throws: CryptoError.authenticationFailed) { try opener.open(inPlace: buf.raw, sealedLength: n) }
        #expect(buf.bytes(n) == before)
    }

    @Test(arguments: [CipherSuite.aes256CbcHmacSha256_128, .aes256Gcm])
    func wrongKeyIsAnAuthenticationFailure(suite: CipherSuite) throws {
        var sealer = try PayloadCipher(suite: suite, key: testKey)
        var other = try PayloadCipher(suite: suite, key: SymmetricKey.random())
        let buf = PacketScratch(Array(pattern[0..<300]), capacity: 300 + suite.maxOverhead)
        let n = try sealer.seal(inPlace: buf.raw, plaintextLength: 300)
        #expect(throws: CryptoError.authenticationFailed) { try other.open(inPlace: buf.raw, sealedLength: n) }
    }

    @Test func malformedLengthsAndSmallBuffers() throws {
        var cbc = try PayloadCipher(suite: .aes256CbcHmacSha256_128, key: testKey)
        var gcm = try PayloadCipher(suite: .aes256Gcm, key: testKey)
        let buf = PacketScratch(Array(pattern[0..<200]), capacity: 200)
        for n in [0, 16, 32, 47, 49, 63] {
            #expect(throws: CryptoError.malformedInput(length: n)) { try cbc.open(inPlace: buf.raw, sealedLength: n) }
        }
        for n in [0, 27] {
            #expect(throws: CryptoError.malformedInput(length: n)) { try gcm.open(inPlace: buf.raw, sealedLength: n) }
        }
        #expect(throws: CryptoError.malformedInput(length: 201)) { try gcm.open(inPlace: buf.raw, sealedLength: 201) }
        #expect(throws: CryptoError.bufferTooSmall(needed: 240, available: 200)) {
            try cbc.seal(inPlace: buf.raw, plaintextLength: 200)
        }
        #expect(throws: CryptoError.bufferTooSmall(needed: 228, available: 200)) {
            try gcm.seal(inPlace: buf.raw, plaintextLength: 200)
        }
        let empty = PacketScratch([], capacity: 0)
        var none = try PayloadCipher(suite: .none, key: testKey)
        #expect(try none.seal(inPlace: empty.raw, plaintextLength: 0) == 0)
        #expect(throws: CryptoError.malformedInput(length: 0)) { try cbc.open(inPlace: empty.raw, sealedLength: 0) }
    }

    @Test(arguments: [CipherSuite.aes256CbcHmacSha256_128, .aes256Gcm])
    func metadataPayloadSectionInPlace(suite: CipherSuite) throws {
        // TV1's metadata block: header length 20, payload TLVs 88 bytes.
        let block = hexBytes("""
            4c48dbc6ddf6670c 1014 0058 0010 0004 00000001
            0002000d0a01010aac1002149c4000351100060010f81d4fae7dec11d0a76500a0c91e6bf600070004626c7565
            000a0008636f72702d646e73000e00076272616e636831000f0008706565722d7365630013000477616e30
            """)
        var sealer = try PayloadCipher(suite: suite, key: testKey)
        var opener = try PayloadCipher(suite: suite, key: testKey)
        let buf = PacketScratch(block, capacity: block.count + suite.maxOverhead)
        let sealed = try sealer.sealMetadataPayload(inPlace: buf.raw, headerLength: 20, payloadLength: 88)
        #expect(sealed == suite.sealedLength(plaintextLength: 88))
        #expect(buf.bytes(10) == Array(block[0..<10]))
        #expect(buf.bytes(12)[10...] == [UInt8(sealed >> 8), UInt8(sealed & 0xFF)])
        #expect(buf.bytes(20) == Array(block[0..<10]) + [UInt8(sealed >> 8), UInt8(sealed & 0xFF)] + block[12..<20])
        #expect(try opener.openMetadataPayload(inPlace: buf.raw, headerLength: 20, payloadLength: sealed) == 88)
        #expect(buf.bytes(108)[20...] == block[20...])
    }

    @Test func sessionKeyMaterialWireForm() throws {
        let m = try SessionKeyMaterial.random(suite: .aes256Gcm)
        #expect(m.encoded.count == 33 && m.encoded[0] == 2)
        #expect(try SessionKeyMaterial(encoded: m.encoded) == m)
        #expect(try SessionKeyMaterial.random() != m)
        #expect(throws: CryptoError.invalidKey) { try SessionKeyMaterial(encoded: [9] + m.key.bytes) }
        #expect(throws: CryptoError.invalidKey) { try SessionKeyMaterial(encoded: m.encoded.dropLast()) }
        #expect(throws: CryptoError.invalidKey) { try SymmetricKey(bytes: [1, 2, 3]) }
        #expect("\(m.key)" == "SymmetricKey(<redacted>)")
    }

    /// CBC contexts keep their chain between packets (no EVP re-init per packet; the first
    /// block absorbs chain ⊕ IV). Cross-check against contexts on their first packet (plain
    /// CBC with the packet's IV): a long-lived sealer's packets open with fresh openers, and
    /// a long-lived opener opens fresh sealers' packets, across re-keys and a failed open.
    @Test func cbcChainedContextsMatchFreshOnes() throws {
        let m = try SessionKeyMaterial.random(suite: .aes256CbcHmacSha256_128)
        let m2 = try SessionKeyMaterial.random(suite: .aes256CbcHmacSha256_128)
        var sealer = try PayloadCipher(material: m)
        var opener = try PayloadCipher(material: m)
        for (i, n) in [0, 1, 15, 16, 17, 64, 100, 1400, 3, 48].enumerated() {
            let buf = PacketScratch(Array(pattern[i..<(i + n)]), capacity: n + 48)
            let sealed = try sealer.seal(inPlace: buf.raw, plaintextLength: n)
            var fresh = try PayloadCipher(material: m)
            let copy = buf.bytes(sealed)
            #expect(try fresh.open(inPlace: buf.raw, sealedLength: sealed) == n)
            #expect(buf.bytes(n) == Array(pattern[i..<(i + n)]))
            var freshSealer = try PayloadCipher(material: m)
            let buf2 = PacketScratch(Array(pattern[i..<(i + n)]), capacity: n + 48)
            let sealed2 = try freshSealer.seal(inPlace: buf2.raw, plaintextLength: n)
            #expect(try opener.open(inPlace: buf2.raw, sealedLength: sealed2) == n)
            #expect(buf2.bytes(n) == Array(pattern[i..<(i + n)]))
            // A forged packet leaves the opener's chain alone.
            let bad = PacketScratch(copy, capacity: sealed)
            bad.flip(byte: sealed - 1)
            #expect(throws: CryptoError.authenticationFailed) { _ = try opener.open(inPlace: bad.raw, sealedLength: sealed) }
        }
        // Re-keyed in place (the engine's cache): still plain CBC toward fresh contexts.
        let k2 = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 16)
        defer { k2.deallocate() }
        k2.copyBytes(from: m2.key.bytes + m2.macKey!.bytes)
        try sealer.install(k2.baseAddress!, sealing: true)
        try opener.install(k2.baseAddress!, sealing: false)
        for n in [100, 7, 1400] {
            let buf = PacketScratch(Array(pattern[0..<n]), capacity: n + 48)
            let sealed = try sealer.seal(inPlace: buf.raw, plaintextLength: n)
            var fresh = try PayloadCipher(material: m2)
            #expect(try fresh.open(inPlace: buf.raw, sealedLength: sealed) == n)
            #expect(buf.bytes(n) == Array(pattern[0..<n]))
            var freshSealer = try PayloadCipher(material: m2)
            let buf2 = PacketScratch(Array(pattern[0..<n]), capacity: n + 48)
            let sealed2 = try freshSealer.seal(inPlace: buf2.raw, plaintextLength: n)
            #expect(try opener.open(inPlace: buf2.raw, sealedLength: sealed2) == n)
            #expect(buf2.bytes(n) == Array(pattern[0..<n]))
        }
    }

    /// GCM sets a packet's nonce with one provider parameter (no EVP re-init) on a keyed
    /// context, and with the key in one EVP init after `install`: both must use the nonce that
    /// travels in the packet, so each opens the other's packets.
    @Test func gcmNonceSettingPathsAgree() throws {
        let m = try SessionKeyMaterial.random(suite: .aes256Gcm)
        let k = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 16)
        defer { k.deallocate() }
        k.copyBytes(from: m.key.bytes + [UInt8](repeating: 0, count: 32))
        var sealer = try PayloadCipher(material: m)
        var opener = try PayloadCipher(material: m)
        for n in [0, 1, 16, 64, 1400, 5] {
            let buf = PacketScratch(Array(pattern[0..<n]), capacity: n + 28)
            let sealed = try sealer.seal(inPlace: buf.raw, plaintextLength: n)
            var viaInit = try PayloadCipher(suite: .aes256Gcm, key: testKey)
            try viaInit.install(k.baseAddress!, sealing: false)
            #expect(try viaInit.open(inPlace: buf.raw, sealedLength: sealed) == n)
            #expect(buf.bytes(n) == Array(pattern[0..<n]))
            var sealerViaInit = try PayloadCipher(suite: .aes256Gcm, key: testKey)
            try sealerViaInit.install(k.baseAddress!, sealing: true)
            let buf2 = PacketScratch(Array(pattern[0..<n]), capacity: n + 28)
            let sealed2 = try sealerViaInit.seal(inPlace: buf2.raw, plaintextLength: n)
            #expect(try opener.open(inPlace: buf2.raw, sealedLength: sealed2) == n)
            #expect(buf2.bytes(n) == Array(pattern[0..<n]))
        }
    }

    @Test func sessionKeyMaterialCarriesReadySubkeys() throws {
        let c = try SessionKeyMaterial.random(suite: .aes256CbcHmacSha256_128)
        #expect(c.encoded.count == 65 && c.encoded[0] == 1 && c.macKey != nil && c.macKey != c.key)
        #expect(try SessionKeyMaterial(encoded: c.encoded) == c)
        #expect(throws: CryptoError.invalidKey) { try SessionKeyMaterial(encoded: c.encoded.dropLast(32)) }
        #expect(throws: CryptoError.invalidKey) { try SessionKeyMaterial(suite: .aes256CbcHmacSha256_128, key: testKey) }
        #expect(try SessionKeyMaterial(suite: .aes256Gcm, key: testKey, macKey: testKey).encoded.count == 33)
    }

    /// Ciphers built from ready subkeys interoperate, use the keys as given (no derivation:
    /// a cipher deriving from the same 32 bytes cannot open), and reject another MAC key.
    @Test(arguments: [CipherSuite.aes256CbcHmacSha256_128, .aes256Gcm])
    func readySubkeysRoundTrip(suite: CipherSuite) throws {
        let m = try SessionKeyMaterial.random(suite: suite)
        var sealer = try PayloadCipher(material: m)
        var opener = try PayloadCipher(material: SessionKeyMaterial(encoded: m.encoded))
        var deriving = try PayloadCipher(suite: suite, key: m.key)
        for n in [0, 1, 15, 16, 64, 1400] {
            let buf = PacketScratch(Array(pattern[0..<n]), capacity: n + suite.maxOverhead)
            let sealed = try sealer.seal(inPlace: buf.raw, plaintextLength: n)
            let copy = buf.bytes(sealed)
            #expect(throws: CryptoError.authenticationFailed) { _ = try deriving.open(inPlace: buf.raw, sealedLength: sealed) }
            buf.raw.copyBytes(from: copy)
            #expect(try opener.open(inPlace: buf.raw, sealedLength: sealed) == n)
            #expect(buf.bytes(n) == Array(pattern[0..<n]))
        }
        if suite == .aes256CbcHmacSha256_128 {
            var otherMAC = try PayloadCipher(material: SessionKeyMaterial(suite: suite, key: m.key, macKey: .random()))
            let buf = PacketScratch(Array(pattern[0..<64]), capacity: 64 + suite.maxOverhead)
            let sealed = try sealer.seal(inPlace: buf.raw, plaintextLength: 64)
            #expect(throws: CryptoError.authenticationFailed) { _ = try otherMAC.open(inPlace: buf.raw, sealedLength: sealed) }
        }
    }
}

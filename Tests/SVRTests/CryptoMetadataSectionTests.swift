// The metadata payload-TLV section cipher: AES-256-CBC, PKCS#7, `ciphertext ‖ IV` (spec
// §6.2, O6), checked against OpenSSL's plain AES-256-CBC with the transmitted IV.

import Testing

@testable import SVR

@Suite struct CryptoMetadataSectionTests {
    /// A 12-byte base header (cookie, header length 12, payload length `n`) then `n` TLV bytes.
    static func block(_ n: Int, room: Int = 64) -> [UInt8] {
        var b: [UInt8] = [0x4c, 0x48, 0xdb, 0xc6, 0xdd, 0xf6, 0x67, 0x0c, 0x10, 0x0c, UInt8(n >> 8), UInt8(n & 0xff)]
        b += (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        return b + [UInt8](repeating: 0, count: room)
    }

    /// Independent decryption: one fresh AES-256-CBC context with the IV that follows the
    /// ciphertext, EVP padding off, so the PKCS#7 padding shows.
    static func plainCBCDecrypt(key: SymmetricKey, section: ArraySlice<UInt8>) throws -> [UInt8] {
        let ct = Array(section.dropLast(16)), iv = Array(section.suffix(16))
        let ctx = try CipherContext(cipher: "AES-256-CBC", key: key.bytes, encrypt: false)
        var out = ct
        try iv.withUnsafeBytes { i in try ctx.setIV(i.baseAddress!) }
        _ = try out.withUnsafeMutableBytes { o in try ctx.update(o.baseAddress!, count: o.count, op: .decrypt) }
        return out
    }

    @Test func sealedSectionIsPlainCBCWithTheIVAfterIt() throws {
        let key = try SymmetricKey.random()
        var cipher = try MetadataSectionCipher(key: key)
        var ivs = Set<[UInt8]>()
        // Many blocks in a row: every one must decrypt on its own (the sealing context's
        // chain across blocks must not show on the wire).
        for n in [0, 1, 15, 16, 17, 31, 32, 60, 100, 0, 5] {
            var b = Self.block(n)
            let sealed = try b.withUnsafeMutableBytes { try cipher.seal(inPlace: $0, headerLength: 12, payloadLength: n) }
            #expect(sealed == (n / 16 + 1) * 16 + 16 && sealed == MetadataSectionCipher.sealedLength(plaintextLength: n))
            #expect(Int(b[10]) << 8 | Int(b[11]) == sealed)
            let section = b[12..<12 + sealed]
            ivs.insert(Array(section.suffix(16)))
            let pad = 16 - n % 16
            let expected = Array(Self.block(n)[12..<12 + n]) + [UInt8](repeating: UInt8(pad), count: pad)
            #expect(try Self.plainCBCDecrypt(key: key, section: section) == expected)
        }
        #expect(ivs.count == 11)
    }

    @Test func openRestoresTheTLVsAfterManyBlocksBothWays() throws {
        let key = try SymmetricKey.random()
        var sender = try MetadataSectionCipher(key: key), receiver = try MetadataSectionCipher(key: key)
        for n in 0..<70 {
            var b = Self.block(n)
            let sealed = try b.withUnsafeMutableBytes { try sender.seal(inPlace: $0, headerLength: 12, payloadLength: n) }
            let plain = try b.withUnsafeMutableBytes { try receiver.open(inPlace: $0, headerLength: 12, payloadLength: sealed) }
            #expect(plain == n && Array(b[12..<12 + n]) == Array(Self.block(n)[12..<12 + n]))
        }
    }

    @Test func badLengthsAndPaddingAreMalformedNotCrashes() throws {
        let key = try SymmetricKey.random()
        var cipher = try MetadataSectionCipher(key: key)
        var b = Self.block(40)
        for len in [0, 16, 31, 33, 47, 1000] {
            #expect(throws: CryptoError.self) {
                try b.withUnsafeMutableBytes { try cipher.open(inPlace: $0, headerLength: 12, payloadLength: len) }
            }
        }
        // A section whose last plaintext byte is not valid PKCS#7 (wrong key: random bytes).
        var other = try MetadataSectionCipher(key: try SymmetricKey.random())
        var failures = 0
        for _ in 0..<20 {
            var c = Self.block(40)
            let sealed = try c.withUnsafeMutableBytes { try cipher.seal(inPlace: $0, headerLength: 12, payloadLength: 40) }
            let r = c.withUnsafeMutableBytes { p in
                Result { () throws(CryptoError) in try other.open(inPlace: p, headerLength: 12, payloadLength: sealed) }
            }
            if case .failure(let e) = r {
                guard case .malformedInput = e else { Issue.record("unexpected \(e)"); continue }
                failures += 1
            }
        }
        #expect(failures >= 15)  // a wrong key yields valid-looking padding only by chance (≈ 1/256 + …)
        // No room after the section: refused before anything is written.
        var tight = Self.block(40, room: 0)
        #expect(throws: CryptoError.self) {
            try tight.withUnsafeMutableBytes { try cipher.seal(inPlace: $0, headerLength: 12, payloadLength: 40) }
        }
    }
}

import SVR
import TestSupport
import Testing

@Suite struct CryptoKeyTests {
    @Test func base64RFC4648Vectors() {
        let vectors = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
                       ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(encoded) == Array(plain.utf8))
        }
        let all = (0...255).map { UInt8($0) }
        #expect(Base64.decode(Base64.encode(all)) == all)
        #expect(Base64.encode([0xFB, 0xFF]) == "+/8=")
    }

    @Test(arguments: ["Zg=", "Zg", "Zh==", "Zm9=", "Zm9v\n", " Zm9v", "Zm9*", "Z===", "====", "Zm=v", "Zg==Zg==",
                      "Zm9v====", "Zm9-", "Zm9_"])
    func base64RejectsNonCanonicalText(text: String) {
        #expect(Base64.decode(text) == nil)
    }

    /// RFC 7748 §6.1 key pairs and shared secret.
    static let alicePrivate = hexBytes("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    static let bobPrivate = hexBytes("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")

    @Test func x25519PublicKeysMatchRFC7748() throws {
        let alice = try X25519PrivateKey(bytes: Self.alicePrivate)
        let bob = try X25519PrivateKey(bytes: Self.bobPrivate)
        #expect(hexString(alice.publicKey.bytes) == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        #expect(hexString(bob.publicKey.bytes) == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    }

    /// Expected keys computed independently (Python `cryptography` HKDF) from the documented
    /// derivation, so a change of label, salt order or purpose string fails here.
    @Test func peerKeysAreSymmetricAndPinned() throws {
        let alice = try X25519PrivateKey(bytes: Self.alicePrivate)
        let bob = try X25519PrivateKey(bytes: Self.bobPrivate)
        let ab = try PeerKeys(privateKey: alice, peerPublicKey: bob.publicKey)
        let ba = try PeerKeys(privateKey: bob, peerPublicKey: alice.publicKey)
        #expect(ab.metadataKey == ba.metadataKey && ab.hmacKey == ba.hmacKey)
        #expect(hexString(ab.metadataKey.bytes) == "f25af0216bddaeee5bbac04124149b972f1a4ded03cec64ed7c3e261e8d6b4f3")
        #expect(hexString(ab.hmacKey.bytes) == "3968b7a5cabc775a3cdc35d6e8b4ab9d69789603c1098ebc4596eca297a12859")
        // Per-sender trailer keys (direction binding): alice's send key is bob's receive key.
        #expect(hexString(ab.hmacSendKey.bytes) == "7b606abd16e81fc6198094efdcf68b9ab8b267956e41e2fa1dca606c6b581778")
        #expect(hexString(ab.hmacReceiveKey.bytes) == "3a1e190672ed5c6cacc564a30e7def8ad1d81a3791ac7a27e00c4c09c7599472")
        #expect(ab.hmacSendKey == ba.hmacReceiveKey && ab.hmacReceiveKey == ba.hmacSendKey)
        #expect(ab.hmacSendKey != ab.hmacReceiveKey && ab.hmacSendKey != ab.hmacKey)
    }

    @Test func generatedKeysDeriveDistinctPairKeys() throws {
        let a = try X25519PrivateKey.generate()
        let b = try X25519PrivateKey.generate()
        let c = try X25519PrivateKey.generate()
        let ab = try PeerKeys(privateKey: a, peerPublicKey: b.publicKey)
        let ba = try PeerKeys(privateKey: b, peerPublicKey: a.publicKey)
        #expect(ab.metadataKey == ba.metadataKey && ab.hmacKey == ba.hmacKey && ab.hmacSendKey == ba.hmacReceiveKey)
        let ac = try PeerKeys(privateKey: a, peerPublicKey: c.publicKey)
        let cb = try PeerKeys(privateKey: c, peerPublicKey: b.publicKey)
        #expect(ab.metadataKey != ac.metadataKey && ab.hmacKey != ac.hmacKey)
        #expect(ab.metadataKey != cb.metadataKey && ab.hmacKey != cb.hmacKey)
        #expect(ab.metadataKey != ab.hmacKey)
    }

    @Test func genkeyPubkeyRoundTripThroughBase64() throws {
        let key = try X25519PrivateKey.generate()
        #expect(key.bytes[0] & 7 == 0 && key.bytes[31] & 0xC0 == 0x40)  // clamped like `wg genkey`
        let text = key.base64
        #expect(text.utf8.count == 44 && text.hasSuffix("="))
        let parsed = try X25519PrivateKey(base64: text)
        #expect(parsed.bytes == key.bytes)
        #expect(parsed.publicKey == key.publicKey)
        #expect(try X25519PublicKey(base64: key.publicKey.base64) == key.publicKey)
        #expect(!"\(key)".contains(text))
        #expect(throws: CryptoError.invalidKey) { try X25519PrivateKey(base64: "Zm9v") }
        #expect(throws: CryptoError.invalidKey) { try X25519PublicKey(base64: text + "\n") }
    }

    @Test(arguments: [
        "0000000000000000000000000000000000000000000000000000000000000000",  // zero
        "0100000000000000000000000000000000000000000000000000000000000000",  // order 1
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",  // order 8
    ])
    func lowOrderPublicKeysAreRejected(hex: String) throws {
        let ours = try X25519PrivateKey.generate()
        let bad = try X25519PublicKey(bytes: hexBytes(hex))
        do {
            _ = try PeerKeys(privateKey: ours, peerPublicKey: bad)
            Issue.record("derivation with a low-order key succeeded")
        } catch {
            guard case .openSSL(.keyAgreement, let code) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(code != 0)
        }
    }
}

// The payload sequence carried by sealed payloads (replay protection): the GCM nonce, the
// plaintext block of an AES-CBC IV, and the fallback record for random IVs.

import Testing

@testable import SVR

private let sequenceKey = try! SymmetricKey(bytes: Array(0x40..<0x60))

@Suite struct CryptoSequenceTests {
    /// Sealing with a sequence and opening returns it; sequenced and random-IV seals can be
    /// mixed on the same chained contexts; the CBC IV is not the sequence block in clear.
    @Test(arguments: [CipherSuite.aes256CbcHmacSha256_128, .aes256Gcm])
    func sequenceRoundTrip(suite: CipherSuite) throws {
        var sealer = try PayloadCipher(suite: suite, key: sequenceKey)
        var opener = try PayloadCipher(suite: suite, key: sequenceKey)
        var seq = GCMNonceSequence(prefix: 0x8000_1234, counter: 1_000)
        for n in [0, 1, 15, 16, 17, 100, 1400] {
            for sequenced in [true, false] {
                let plain = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 13 + n) }
                let buf = PacketScratch(plain, capacity: n + suite.maxOverhead)
                let sealed = sequenced
                    ? try sealer.seal(inPlace: buf.raw, plaintextLength: n, nonce: &seq)
                    : try sealer.seal(inPlace: buf.raw, plaintextLength: n)
                if suite == .aes256CbcHmacSha256_128 {
                    let iv = buf.bytes(sealed - 16).suffix(16)
                    #expect(!iv.starts(with: [0x80, 0x00, 0x12, 0x34]), "the IV must not show the sequence")
                }
                var got = PayloadSequence()
                let opened = try opener.open(inPlace: buf.raw, sealedLength: sealed, sequence: &got)
                #expect(opened == n && buf.bytes(n) == plain)
                if sequenced {
                    #expect(got == PayloadSequence(prefix: 0x8000_1234, counter: seq.counter, known: true))
                } else {
                    #expect(got.known == (suite == .aes256Gcm))  // a random CBC IV carries none
                }
            }
        }
    }

    /// Recent-tag fallback: a tag seen in the same or the previous 2-second window is a
    /// replay; later it is new again.
    @Test func recentTagFilter() {
        let f = RecentTagFilter()
        #expect(f.accept(tag: 42, window: 10))
        #expect(!f.accept(tag: 42, window: 10))
        #expect(!f.accept(tag: 42, window: 11))
        #expect(f.accept(tag: 43, window: 11))
        #expect(f.accept(tag: 42, window: 13))
    }
}

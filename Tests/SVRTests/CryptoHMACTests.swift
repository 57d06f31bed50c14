import SVR
import TestSupport
import Testing

/// TV1's L4 payload (spec §12): the input of TV7.
private let tv1Payload = hexBytes("""
    4c48dbc6ddf6670c1014005800100004000000010002000d0a01010aac1002149c4000351100060010f81d4fae
    7dec11d0a76500a0c91e6bf600070004626c7565000a0008636f72702d646e73000e00076272616e636831000f
    0008706565722d7365630013000477616e30abcd01000001000000000000076578616d706c6503636f6d0000010001
    """)
private let tv7Key = try! SymmetricKey(bytes: Array(0..<32))

@Suite struct CryptoHMACTests {
    private func trailer(_ algorithm: HMACAlgorithm, _ mode: HMACMode, unixSeconds: UInt64) throws -> [UInt8] {
        var auth = try PacketAuthenticator(key: tv7Key, algorithm: algorithm, mode: mode)
        let buf = PacketScratch(tv1Payload, capacity: 137 + auth.trailerLength)
        let n = try auth.appendTrailer(buf.raw, length: 137, unixSeconds: unixSeconds)
        #expect(n == 137 + algorithm.trailerLength)
        #expect(buf.bytes(137) == tv1Payload)
        return Array(buf.bytes(n)[137...])
    }

    @Test func tv7RegularAndTimeBased() throws {
        #expect(hexString(try trailer(.sha256_128, .regular, unixSeconds: 0)) == "f791f1a9e7126bb9a6f01df6a6b2f907")
        // 1700000000 and 1700000001 are both window 850000000.
        for t: UInt64 in [1_700_000_000, 1_700_000_001] {
            #expect(hexString(try trailer(.sha256_128, .timeBased, unixSeconds: t)) == "92eb461a34ef4bb579b87943887ac3f5")
        }
        #expect(try trailer(.sha256_128, .timeBased, unixSeconds: 1_700_000_002) != hexBytes("92eb461a34ef4bb579b87943887ac3f5"))
    }

    @Test func fullLengthAlgorithms() throws {
        #expect(hexString(try trailer(.sha256, .regular, unixSeconds: 0))
            == "f791f1a9e7126bb9a6f01df6a6b2f90726d63162355715e6fad1572a16ff8f68")
        #expect(hexString(try trailer(.sha1, .regular, unixSeconds: 0)) == "e4dcdabffc1bcadda0632139003dd410e8f019a8")
    }

    @Test func timeBasedAcceptsCurrentAndPreviousWindowOnly() throws {
        var auth = try PacketAuthenticator(key: tv7Key, mode: .timeBased)
        let sentAt: UInt64 = 1_700_000_001  // window 850000000
        let buf = PacketScratch(tv1Payload, capacity: 137 + 16)
        let n = try auth.appendTrailer(buf.raw, length: 137, unixSeconds: sentAt)
        let view = UnsafeRawBufferPointer(buf.raw)
        for now: UInt64 in [sentAt - 1, sentAt, sentAt + 1, sentAt + 2] {  // window 850000000 or 850000001
            #expect(try auth.verifyTrailer(view, length: n, unixSeconds: now) == 137, "now \(now)")
        }
        for now: UInt64 in [sentAt + 3, sentAt + 100, sentAt - 2] {  // two windows later; or from the future
            #expect(throws: CryptoError.authenticationFailed, "now \(now)") {
                try auth.verifyTrailer(view, length: n, unixSeconds: now)
            }
        }
    }

    @Test func regularModeIgnoresTime() throws {
        var auth = try PacketAuthenticator(key: tv7Key, mode: .regular)
        let buf = PacketScratch(tv1Payload, capacity: 137 + 16)
        let n = try auth.appendTrailer(buf.raw, length: 137, unixSeconds: 5)
        #expect(try auth.verifyTrailer(UnsafeRawBufferPointer(buf.raw), length: n, unixSeconds: 1_000_000) == 137)
    }

    @Test func tamperedOrTruncatedPacketsFail() throws {
        var auth = try PacketAuthenticator(key: tv7Key)
        var other = try PacketAuthenticator(key: SymmetricKey.random())
        let buf = PacketScratch(tv1Payload, capacity: 137 + 16)
        let n = try auth.appendTrailer(buf.raw, length: 137, unixSeconds: 10)
        let view = UnsafeRawBufferPointer(buf.raw)
        #expect(throws: CryptoError.authenticationFailed) { try other.verifyTrailer(view, length: n, unixSeconds: 10) }
        for offset in [0, 60, 136, 137, 152] {
            buf.flip(byte: offset, bit: 3)
            #expect(throws: CryptoError.authenticationFailed, "offset \(offset)") {
                try auth.verifyTrailer(view, length: n, unixSeconds: 10)
            }
            buf.flip(byte: offset, bit: 3)
        }
        #expect(try auth.verifyTrailer(view, length: n, unixSeconds: 10) == 137)
        #expect(throws: CryptoError.authenticationFailed) { try auth.verifyTrailer(view, length: n - 1, unixSeconds: 10) }
        #expect(throws: CryptoError.malformedInput(length: 15)) { try auth.verifyTrailer(view, length: 15, unixSeconds: 10) }
        #expect(throws: CryptoError.bufferTooSmall(needed: 154, available: 153)) {
            try auth.appendTrailer(buf.raw, length: 138, unixSeconds: 10)
        }
    }

    @Test func wallClockIsPlausible() {
        #expect(PacketAuthenticator.currentUnixSeconds() > 1_700_000_000)
        #expect(PacketAuthenticator.window(unixSeconds: 1_700_000_001) == 850_000_000)
    }
}

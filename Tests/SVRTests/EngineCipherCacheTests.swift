// The engine's cipher cache re-keys OpenSSL contexts in place (`PayloadCipher.rekey`):
// the result must be the cipher `PayloadCipher(suite:key:)` builds for the same key.

import Testing

@testable import SVR

@Suite struct EngineCipherCacheTests {
    @Test(arguments: [CipherSuite.aes256CbcHmacSha256_128, .aes256Gcm])
    func rekeyedCipherMatchesAFreshOne(suite: CipherSuite) throws {
        let deriver = try SubkeyDeriver()
        var cached = try PayloadCipher(suite: suite, key: SymmetricKey.random())
        for _ in 0..<3 {
            let key = try SymmetricKey.random()
            try key.bytes.withUnsafeBytes { try cached.rekey($0.baseAddress!, deriver: deriver) }
            var fresh = try PayloadCipher(suite: suite, key: key)
            var buf = [UInt8](repeating: 0, count: 256)
            for i in 0..<100 { buf[i] = UInt8(i) }
            let sealed = try buf.withUnsafeMutableBytes { try cached.seal(inPlace: $0, plaintextLength: 100) }
            let opened = try buf.withUnsafeMutableBytes { try fresh.open(inPlace: $0, sealedLength: sealed) }
            #expect(opened == 100 && Array(buf[0..<100]) == (0..<100).map { UInt8($0) })
        }
    }

    @Test func subkeysAreRFC5869HKDF() throws {
        let key = try SymmetricKey.random()
        let deriver = try SubkeyDeriver()
        var out = [UInt8](repeating: 0, count: 32)
        try key.bytes.withUnsafeBytes { k in
            try out.withUnsafeMutableBytes { o in
                try deriver.begin(k.baseAddress!)
                try deriver.expand(label: SubkeyDeriver.gcmLabel, into: o.baseAddress!)
            }
        }
        #expect(out == (try key.subkey("svrd payload v1 aes-256-gcm")))
    }

    /// Many sessions through a small cache: every session still decrypts after evictions.
    @Test func sessionsSurviveCacheEvictions() throws {
        let net = try Topo.twoRouters(encryption: "aes-gcm")
        for port in UInt16(40000)..<40200 {
            net.sendLAN("A", Pkt.udp(Topo.client, port, Topo.dns, 53, marker))
        }
        for port in UInt16(40000)..<40200 {
            net.sendLAN("B", Pkt.udp(Topo.dns, 53, Topo.client, port, marker))
        }
        #expect(net.lan["B"]?.count == 200 && net.lan["A"]?.count == 200)
        #expect(net.drops.isEmpty)
    }
}

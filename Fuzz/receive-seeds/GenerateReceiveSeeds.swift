// Writes the seeds of the `receive` fuzz target to Fuzz/corpus/receive/ (run by
// `Fuzz/run.sh receive-seeds`): spec §12 packets sealed the way a sending router seals them,
// with the fixed keys of Fuzz/receive/ReceiveFixture.swift and a valid HMAC trailer.
//
// The bytes differ on every run (random CBC IVs and GCM nonces); the structure does not.
//
// Sender order: seal the original payload (session key), insert the metadata block with its
// payload-TLV section sealed (peer metadata key), append the §6.3 trailer, fix checksums.

import Glibc

@main
enum GenerateReceiveSeeds {
    static func main() throws {
        let dir = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Fuzz/corpus/receive"
        let cbc = CipherSuite.aes256CbcHmacSha256_128, gcm = CipherSuite.aes256Gcm
        // TV1: forward metadata, UDP DNS query (block 108 bytes, original payload 29).
        let tv1 = hex("""
            450000a5123440004011c1dccb007101c63364024e207531009168fa
            4c48dbc6ddf6670c1014005800100004000000010002000d0a01010aac1002149c4000351100060010f81d4fae
            7dec11d0a76500a0c91e6bf600070004626c7565000a0008636f72702d646e73000e00076272616e636831000f
            0008706565722d7365630013000477616e30abcd01000001000000000000076578616d706c6503636f6d0000010001
            """)
        // TV2: forward metadata as the whole payload of a TCP SYN.
        let tv2 = hex("""
            4500008b123440004006c201cb007101c63364024e22753311223344000000009002faf0e73a0000
            020405b40402080a0000000000000000
            4c48dbc6ddf6670c1014003f00100004000000010002000d0a01010aac10021ec73801bb06000600106ba7b8109dad
            11d180b400c04fd430c800070004626c7565000a0003776562000e00076272616e636831
            """)
        // TV3: reverse metadata, UDP DNS answer.
        let tv3 = hex("""
            45000082123440004011c1ffc6336402cb00710175314e20006e6a91
            4c48dbc6ddf6670c1014002500100004000000010004000dac1002140a01010a00359c4011000e000468756231
            000d00080000000000000005abcd81800001000100000000076578616d706c6503636f6d0000010001c00c0001
            00010000012c00045db8d822
            """)
        // TV5: false-positive header; TV6: path metrics header TLV, no payload TLVs.
        let tv5 = hex("45000038123440004011c249cb007101c63364024e2675370024417f4c48dbc6ddf6670c100c00004c48dbc6ddf6670c6170702d64617461")
        let tv6 = hex("4500003f123440004011c242cb007101c63364024e267537002b0f5e4c48dbc6ddf6670c101a0000001a000a100004d22000049c00647274702d6672616d65")
        // TV8 in an IPv6 UDP packet (2001:db8:a::1:20000 -> 2001:db8:b::2:30001), payload "v6".
        let tv8Block = hex("4c48dbc6ddf6670c100c00290003002520010db800010000000000000000001020010db80002000000000000000000209c40003511")
        let tv8 = hex("60000000" + "0000" + "1140" + "20010db8000a0000000000000000000120010db8000b00000000000000000002")
            .replacingLength(ipv6PayloadLength: 8 + tv8Block.count + 2)
            + [0x4e, 0x20, 0x75, 0x31, 0, UInt8(8 + tv8Block.count + 2), 0, 0] + tv8Block + Array("v6".utf8)

        let seeds: [(String, [UInt8], CipherSuite, CipherSuite, UInt8)] = [
            ("tv1-cbc", tv1, cbc, cbc, 0),
            ("tv1-gcm", tv1, gcm, gcm, 0),
            ("tv1-clear", tv1, .none, .none, 0),
            ("tv1-cbc-roomy", tv1, cbc, gcm, ReceiveFixture.roomySlot),
            ("tv2-syn-cbc", tv2, cbc, cbc, 0),
            ("tv3-reverse-gcm", tv3, gcm, cbc, 0),
            ("tv5-false-positive", tv5, cbc, cbc, ReceiveFixture.computeTrailer),
            ("tv6-metrics", tv6, gcm, gcm, 0),
            ("tv8-ipv6-cbc", tv8, cbc, cbc, 0),
            ("no-metadata-cbc", tv1, cbc, cbc, 0),
        ]
        for (name, clear, metadataSuite, sessionSuite, flags) in seeds {
            let packet = try seal(clear, metadataSuite: metadataSuite, sessionSuite: sessionSuite,
                                  keepMetadata: !name.hasPrefix("no-metadata"))
            let bytes = [ReceiveFixture.modeByte(metadata: metadataSuite, session: sessionSuite, flags: flags)] + packet
            let path = "\(dir)/\(name).bin"
            guard let f = fopen(path, "wb") else { throw GeneratorError.cannotWrite(path) }
            _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
            fclose(f)
            print("\(path): \(bytes.count) bytes")
        }
    }

    /// Turns a packet that carries a clear metadata block into the packet a sender puts on the wire.
    static func seal(_ clear: [UInt8], metadataSuite: CipherSuite, sessionSuite: CipherSuite,
                     keepMetadata: Bool) throws -> [UInt8] {
        let slot = PacketSlot(capacity: 1024)
        return try withExtendedLifetime(slot) {
            var packet = try IPPacket(slot.packet(headroom: 256, copying: clear))
            // Take the clear block out.
            let block: [UInt8] = try packet.withPayload { p in
                guard let h = try MetadataHeader.parse(UnsafeRawBufferPointer(p)) else { return [] }
                return Array(p[0..<h.blockLength])
            }
            try packet.stripAfterL4Header(count: block.count)
            // Seal the original payload with the session key.
            let n = packet.layout.payloadLength
            if n > 0 {
                var session = try PayloadCipher(suite: sessionSuite, key: ReceiveFixture.sessionKey)
                try packet.appendTrailer(count: sessionSuite.sealedLength(plaintextLength: n) - n) { _ in }
                _ = try packet.withPayload { p throws(CryptoError) in try session.seal(inPlace: p, plaintextLength: n) }
            }
            // Seal the block's payload-TLV section with the peer metadata key and put it back.
            if keepMetadata, !block.isEmpty {
                let h = try block.withUnsafeBytes { b in try MetadataHeader.parse(b)! }
                var sealed = block + [UInt8](repeating: 0, count: max(metadataSuite.maxOverhead, MetadataSectionCipher.maxOverhead))
                var length = h.blockLength
                if h.payloadLength > 0 {
                    let pl: Int
                    if metadataSuite == .aes256CbcHmacSha256_128 {
                        var meta = try MetadataSectionCipher(key: ReceiveFixture.metadataKey)
                        pl = try sealed.withUnsafeMutableBytes { b throws(CryptoError) in
                            try meta.seal(inPlace: b, headerLength: h.headerLength, payloadLength: h.payloadLength)
                        }
                    } else {
                        var meta = try PayloadCipher(suite: metadataSuite, key: ReceiveFixture.metadataKey)
                        pl = try sealed.withUnsafeMutableBytes { b throws(CryptoError) in
                            try meta.sealMetadataPayload(inPlace: b, headerLength: h.headerLength, payloadLength: h.payloadLength)
                        }
                    }
                    length = h.headerLength + pl
                }
                try sealed.withUnsafeBytes { b in try packet.insertAfterL4Header(UnsafeRawBufferPointer(rebasing: b[0..<length])) }
            }
            // The §6.3 trailer over everything after the L4 header.
            var auth = try PacketAuthenticator(key: ReceiveFixture.hmacKey, algorithm: ReceiveFixture.algorithm,
                                               mode: ReceiveFixture.mode)
            try packet.appendTrailer(count: auth.trailerLength) { _ in }
            _ = try packet.withPayload { p throws(CryptoError) in
                try auth.appendTrailer(p, length: p.count - auth.trailerLength, unixSeconds: ReceiveFixture.unixSeconds)
            }
            packet.recomputeChecksums()
            return packet.buffer.copyBytes()
        }
    }

    static func hex(_ s: String) -> [UInt8] {
        let digits = Array(s.utf8.filter { !$0.isWhitespaceASCII })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
    }
}

enum GeneratorError: Error { case cannotWrite(String) }

extension UInt8 {
    var isWhitespaceASCII: Bool { self == 0x20 || self == 0x0A || self == 0x0D || self == 0x09 }
}

extension [UInt8] {
    /// Sets the IPv6 payload length field (bytes 4-5) of a header.
    func replacingLength(ipv6PayloadLength n: Int) -> [UInt8] {
        var b = self
        b[4] = UInt8(n >> 8)
        b[5] = UInt8(n & 0xFF)
        return b
    }
}

import SVR
import TestSupport
import Testing

@Suite("Internet checksum")
struct PacketChecksumTests {
    @Test("RFC 1071 §3 example")
    func rfc1071Example() {
        let bytes = hexBytes("0001 f203 f4f5 f6f7")
        bytes.withUnsafeBytes { raw in
            #expect(InternetChecksum.sum(raw) == 0xddf2)
            #expect(InternetChecksum.checksum(raw) == 0x220d)
        }
        #expect(InternetChecksum.sum(UnsafeRawBufferPointer(start: nil, count: 0)) == 0)
    }

    @Test("Fast sum equals the textbook sum for every length 0...300 and unaligned starts")
    func fastEqualsReference() {
        var rng = SeededGenerator(seed: 1071)
        let data = (0..<320).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let ones = [UInt8](repeating: 0xff, count: 320)
        for source in [data, ones] {
            source.withUnsafeBytes { raw in
                for start in 0..<8 {
                    for length in 0...(300 - start) {
                        let slice = UnsafeRawBufferPointer(rebasing: raw[start..<start + length])
                        #expect(InternetChecksum.sum(slice) == referenceSum(source[start..<start + length]),
                                "start \(start) length \(length)")
                    }
                }
            }
        }
    }

    @Test("RFC 1624 incremental update equals recomputation (16-bit, 32-bit, IPv6 fields)")
    func incrementalEqualsFull() {
        var rng = SeededGenerator(seed: 1624)
        for round in 0..<2000 {
            var data = (0..<64).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if round % 10 == 0 { for i in 0..<64 { data[i] = 0 } }  // all-zero corner
            let before = ~referenceSum(data)
            let at = Int.random(in: 0..<24, using: &rng) * 2
            let oldField = data[at..<at + 16].map { $0 }
            for i in at..<at + 16 { data[i] = round % 3 == 0 ? 0xff : UInt8.random(in: 0...255, using: &rng) }
            let expected = ~referenceSum(data)
            func word(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
            let new = Array(data[at..<at + 16])
            // 16-bit
            var c16 = before
            for w in 0..<8 { c16 = InternetChecksum.update(c16, old: word(oldField, 2 * w), new: word(new, 2 * w)) }
            // 32-bit
            var c32 = before
            for w in 0..<4 {
                let o = UInt32(word(oldField, 4 * w)) << 16 | UInt32(word(oldField, 4 * w + 2))
                let n = UInt32(word(new, 4 * w)) << 16 | UInt32(word(new, 4 * w + 2))
                c32 = InternetChecksum.update(c32, old: o, new: n)
            }
            // 128-bit
            func address(_ b: [UInt8]) -> IPv6Address {
                IPv6Address(high: b[0..<8].reduce(0) { $0 << 8 | UInt64($1) }, low: b[8..<16].reduce(0) { $0 << 8 | UInt64($1) })
            }
            let c128 = InternetChecksum.update(before, old: address(oldField), new: address(new))
            // One's complement has two zeros: 0x0000 and 0xffff name the same sum.
            func same(_ a: UInt16, _ b: UInt16) -> Bool { a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0) }
            #expect(same(c16, expected) && same(c32, expected) && same(c128, expected), "round \(round)")
        }
    }

    @Test("Pseudo-header sums match the textbook sum of the pseudo-header bytes")
    func pseudoHeaders() {
        let s4 = IPv4Address(203, 0, 113, 1)
        let d4 = IPv4Address(198, 51, 100, 2)
        let bytes4 = hexBytes("cb007101 c6336402 00 11 0091")
        #expect(InternetChecksum.fold(InternetChecksum.pseudoHeaderSum(source: s4, destination: d4, proto: 17, length: 145))
                == referenceSum(bytes4))
        let s6 = IPv6Address("2001:db8:1::10")!
        let d6 = IPv6Address("fe80::ffff:1")!
        let bytes6 = s6.bytes + d6.bytes + hexBytes("00010005 000000 3a")
        #expect(InternetChecksum.fold(InternetChecksum.pseudoHeaderSum(source: s6, destination: d6, proto: 58, length: 65541))
                == referenceSum(bytes6))
    }
}

import SVR
import Testing

/// Longest-prefix match against a brute-force scan of the same prefixes.
@Suite struct SessionPrefixTableTests {
    typealias Kit = SessionTestKit

    /// A prefix as (high, low, length) over a left-aligned 128-bit key.
    struct Raw {
        var hi: UInt64
        var lo: UInt64
        var length: Int
        var value: UInt32

        func contains(_ h: UInt64, _ l: UInt64) -> Bool {
            let hm: UInt64 = length == 0 ? 0 : (length >= 64 ? ~0 : ~UInt64(0) << UInt64(64 - length))
            let lm: UInt64 = length <= 64 ? 0 : (length == 128 ? ~0 : ~UInt64(0) << UInt64(128 - length))
            return h & hm == hi && l & lm == lo
        }
    }

    static func bruteForce(_ ps: [Raw], _ h: UInt64, _ l: UInt64) -> UInt32? {
        var best: Raw?
        for p in ps where p.contains(h, l) && p.length >= (best?.length ?? -1) { best = p }
        return best?.value
    }

    /// Random prefixes grown from a small pool of bases, so many of them nest; addresses are
    /// half near a prefix (random host bits), half anywhere.
    static func randomSet(v6: Bool, count: Int, seed: UInt64) -> (prefixes: [(IPPrefix, UInt32)], raw: [Raw], probes: [(UInt64, UInt64)]) {
        var rng = Kit.Seeded(seed)
        let bits = v6 ? 128 : 32
        let bases = (0..<40).map { _ in (rng.next(), rng.next()) }
        var seen = Set<IPPrefix>()
        var prefixes: [(IPPrefix, UInt32)] = []
        var raw: [Raw] = []
        while prefixes.count < count {
            let (bh, bl) = rng.next() % 4 == 0 ? (rng.next(), rng.next()) : bases[Int(rng.next() % 40)]
            let len = Int(rng.next() % UInt64(bits + 1))
            let addr: IPAddress = v6 ? .v6(IPv6Address(high: bh, low: bl)) : .v4(IPv4Address(UInt32(truncatingIfNeeded: bh >> 32)))
            let p = IPPrefix(addr, length: len)!
            guard seen.insert(p).inserted else { continue }
            let value = UInt32(prefixes.count)
            prefixes.append((p, value))
            switch p.address {
            case .v4(let a): raw.append(Raw(hi: UInt64(a.value) << 32, lo: 0, length: len, value: value))
            case .v6(let a): raw.append(Raw(hi: a.high, lo: a.low, length: len, value: value))
            }
        }
        var probes: [(UInt64, UInt64)] = []
        for i in 0..<4000 {
            var h = rng.next()
            var l = v6 ? rng.next() : 0
            if i % 2 == 0 {
                let p = raw[Int(rng.next() % UInt64(raw.count))]
                let keep = p.length
                let hm: UInt64 = keep == 0 ? 0 : (keep >= 64 ? ~0 : ~UInt64(0) << UInt64(64 - keep))
                let lm: UInt64 = keep <= 64 ? 0 : (keep == 128 ? ~0 : ~UInt64(0) << UInt64(128 - keep))
                h = p.hi | (h & ~hm)
                l = p.lo | (l & ~lm)
            }
            if !v6 { h &= 0xFFFF_FFFF_0000_0000 }
            probes.append((h, l))
        }
        return (prefixes, raw, probes)
    }

    @Test(arguments: [(200, UInt64(1)), (3000, UInt64(2))])
    func ipv4MatchesBruteForce(count: Int, seed: UInt64) throws {
        let set = Self.randomSet(v6: false, count: count, seed: seed)
        let table = try PrefixTable(set.prefixes)
        #expect(table.count == count)
        var hits = 0
        for (h, _) in set.probes {
            let expected = Self.bruteForce(set.raw, h, 0)
            let got = table.lookup(IPv4Address(UInt32(truncatingIfNeeded: h >> 32)))
            #expect(got == expected, "address \(IPv4Address(UInt32(truncatingIfNeeded: h >> 32)))")
            if got != nil { hits += 1 }
        }
        #expect(hits > set.probes.count / 2)
    }

    @Test(arguments: [(300, UInt64(3)), (2000, UInt64(4))])
    func ipv6MatchesBruteForce(count: Int, seed: UInt64) throws {
        let set = Self.randomSet(v6: true, count: count, seed: seed)
        let table = try PrefixTable(set.prefixes)
        var hits = 0
        for (h, l) in set.probes {
            let got = table.lookup(IPv6Address(high: h, low: l))
            #expect(got == Self.bruteForce(set.raw, h, l))
            if got != nil { hits += 1 }
        }
        #expect(hits > set.probes.count / 2)
    }

    @Test func mixedFamiliesDefaultsAndHosts() throws {
        let table = try PrefixTable([
            (Kit.prefix("0.0.0.0/0"), 1), (Kit.prefix("10.0.0.0/8"), 2), (Kit.prefix("10.1.2.3/32"), 3),
            (Kit.prefix("2001:db8::/32"), 4), (Kit.prefix("2001:db8::1/128"), 5),
        ])
        #expect(table.lookup(Kit.ip("192.0.2.1")) == 1)
        #expect(table.lookup(Kit.ip("10.9.9.9")) == 2)
        #expect(table.lookup(Kit.ip("10.1.2.3")) == 3)
        #expect(table.lookup(Kit.ip("10.1.2.4")) == 2)
        #expect(table.lookup(Kit.ip("2001:db8::2")) == 4)
        #expect(table.lookup(Kit.ip("2001:db8::1")) == 5)
        // No IPv6 default: the IPv4 /0 does not leak into IPv6.
        #expect(table.lookup(Kit.ip("2001:db9::1")) == nil)
    }

    @Test func duplicatePrefixIsRejected() {
        #expect(throws: PrefixTableError.duplicatePrefix(Kit.prefix("10.0.0.0/8"))) {
            try PrefixTable([(Kit.prefix("10.0.0.0/8"), 1), (Kit.prefix("10.1.0.0/8"), 2)])
        }
        #expect(throws: PrefixTableError.valueOutOfRange) { try PrefixTable([(Kit.prefix("10.0.0.0/8"), UInt32.max)]) }
    }
}

import Testing

@testable import SVR

@Suite struct PortsTests {
    typealias Kit = SessionTestKit
    let tcp = IPProtocolNumber.tcp
    let udp = IPProtocolNumber.udp

    @Test func defaultSpaceIsLocalEvenRemoteOddAndEveryPairOnce() throws {
        var ports = WaypointPorts()
        let path = ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"))
        #expect(ports.capacity(path: path, wireProtocol: tcp) == 24576 * 24575)
        // The first 24,576 sessions each get their own local port (as before), the next ones
        // reuse the local ports with other remote ports: the pair stays unique.
        var pairs = Set<UInt32>()
        var locals = Set<UInt16>()
        for n in 0..<60000 {
            let p = try ports.allocate(path: path, wireProtocol: tcp)
            #expect(p.local % 2 == 0 && (16384...65534).contains(p.local))
            #expect(p.remote % 2 == 1 && (16385...65533).contains(p.remote))
            if n < 24576 { locals.insert(p.local) }
            pairs.insert(UInt32(p.local) << 16 | UInt32(p.remote))
        }
        #expect(locals.count == 24576)
        #expect(pairs.count == 60000)
        #expect(ports.inUse(path: path, wireProtocol: tcp) == 60000)
        // UDP (and everything carried as UDP) has its own space on the same path.
        #expect(try ports.allocate(path: path, wireProtocol: 1).local == 16384)
        #expect(ports.inUse(path: path, wireProtocol: udp) == 1)
    }

    @Test func tinyRangeWalksEveryPairThenExhaustsAndCountsThenRecovers() throws {
        var ports = WaypointPorts()
        let path = ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"),
                                 space: .ranges(local: 20000...20002, remote: 30000...30001))
        let got = try (0..<6).map { _ in try ports.allocate(path: path, wireProtocol: udp) }
        // Continuous round robin, no parity rule; the second round shifts the remote ports.
        #expect(got.map(\.local) == [20000, 20001, 20002, 20000, 20001, 20002])
        #expect(got.map(\.remote) == [30000, 30001, 30000, 30001, 30000, 30001])
        #expect(Set(got.map { "\($0.local)-\($0.remote)" }).count == 6)
        #expect(throws: WaypointPortRefusal.exhausted) { try ports.allocate(path: path, wireProtocol: udp) }
        #expect(throws: WaypointPortRefusal.exhausted) { try ports.allocate(path: path, wireProtocol: udp) }
        #expect(ports.exhaustedCount == 2)
        let freed = ports.release(path: path, wireProtocol: udp, localPort: 20001)
        let outside = ports.release(path: path, wireProtocol: udp, localPort: 19999)
        #expect(freed && !outside)
        #expect(ports.inUse(path: path, wireProtocol: udp) == 5)
        // The caller says which pair is free (the session table looks the tuple up).
        let again = try ports.allocate(path: path, wireProtocol: udp) { $0 == WaypointPortPair(local: 20001, remote: 30001) }
        #expect(again == WaypointPortPair(local: 20001, remote: 30001))
        for _ in 0..<6 { ports.release(path: path, wireProtocol: udp, localPort: 20000) }
        #expect(ports.inUse(path: path, wireProtocol: udp) == 0)
        let extra = ports.release(path: path, wireProtocol: udp, localPort: 20000)
        #expect(!extra, "nothing left to release")
    }

    @Test func pairsInUseAreSkippedUpToTheProbeLimit() throws {
        var ports = WaypointPorts()
        let path = ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"),
                                 space: .ranges(local: 1025...1124, remote: 1025...1124))
        // Pairs 1 and 2 of the walk are taken (e.g. sessions older than a turn): the next is used.
        let busy: Set<UInt16> = [1026, 1027]
        let p = try ports.allocate(path: path, wireProtocol: tcp) { _ in true }
        let q = try ports.allocate(path: path, wireProtocol: tcp) { !busy.contains($0.local) }
        #expect([p.local, q.local] == [1025, 1028])
        // Nothing free among `maxProbes` candidates: exhausted, counted, and the cursor moved on.
        #expect(throws: WaypointPortRefusal.exhausted) { try ports.allocate(path: path, wireProtocol: tcp) { _ in false } }
        #expect(ports.exhaustedCount == 1)
        #expect(try ports.allocate(path: path, wireProtocol: tcp).local == 1029 + UInt16(WaypointPorts.maxProbes))
        #expect(ports.inUse(path: path, wireProtocol: tcp) == 3)
    }

    @Test func evenOddChecksPairsOnlyOnceTheCursorWentRound() {
        var a = WaypointPorts.Allocator(.evenOdd, shard: 0, of: 1)
        var asked = 0
        // First turn: no pair of ours can be in use and a peer's sit on the other parity.
        _ = a.allocate { _ in asked += 1; return true }
        #expect(asked == 0)
        a.cursor = a.capacity - 1
        let last = a.allocate { _ in asked += 1; return false }
        #expect(last == WaypointPortPair(local: 65534, remote: 16385 + UInt16((24575 + 24574) % 24575) * 2) && asked == 0)
        // Second turn: every candidate is looked up.
        #expect(a.allocate { _ in asked += 1; return false } == nil)
        #expect(asked == WaypointPorts.maxProbes)
        // With port ranges, always.
        var r = WaypointPorts.Allocator(.ranges(local: 100...199, remote: 300...399), shard: 0, of: 1)
        #expect(r.allocate { _ in false } == nil)
    }

    @Test func allocationRotatesInsteadOfReusingAtOnce() throws {
        var ports = WaypointPorts()
        let path = ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"),
                                 space: .ranges(local: 1025...1124, remote: 1025...1124))
        let a = try ports.allocate(path: path, wireProtocol: tcp)
        let b = try ports.allocate(path: path, wireProtocol: tcp)
        ports.release(path: path, wireProtocol: tcp, localPort: a.local)
        let c = try ports.allocate(path: path, wireProtocol: tcp)
        #expect([a.local, b.local, c.local] == [1025, 1026, 1027])
        // After a round of local ports, 1025 comes back with the next remote port.
        for _ in 0..<97 { _ = try ports.allocate(path: path, wireProtocol: tcp) }
        #expect(try ports.allocate(path: path, wireProtocol: tcp) == WaypointPortPair(local: 1025, remote: 1026))
        #expect(ports.inUse(path: path, wireProtocol: tcp) == 100)
    }

    @Test func pathsAreIndependentAndUnknownPathsRefused() throws {
        var ports = WaypointPorts()
        let a = ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"))
        let b = ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.3"))
        #expect(a != b)
        #expect(ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2")) == a)
        #expect(ports.path(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.3")) == b)
        #expect(try ports.allocate(path: a, wireProtocol: tcp).local == 16384)
        #expect(try ports.allocate(path: b, wireProtocol: tcp).local == 16384)
        #expect(throws: WaypointPortRefusal.unknownPath) { try ports.allocate(path: PeerPathID(rawValue: 9), wireProtocol: tcp) }
    }

    @Test func shardsSplitTheLocalPortsWithoutOverlap() throws {
        var a = WaypointPorts(shard: 0, of: 2)
        var b = WaypointPorts(shard: 1, of: 2)
        let space = WaypointPortSpace.ranges(local: 5000...5009, remote: 6000...6009)
        let pa = a.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"), space: space)
        let pb = b.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"), space: space)
        #expect(a.capacity(path: pa, wireProtocol: udp) == 50 && b.capacity(path: pb, wireProtocol: udp) == 50)
        let fromA = try (0..<50).map { _ in try a.allocate(path: pa, wireProtocol: udp) }
        let fromB = try (0..<50).map { _ in try b.allocate(path: pb, wireProtocol: udp) }
        #expect(fromA.prefix(5).map(\.local) == [5000, 5002, 5004, 5006, 5008])
        #expect(fromB.prefix(5).map(\.local) == [5001, 5003, 5005, 5007, 5009])
        #expect(Set(fromA.map(\.local)).isDisjoint(with: fromB.map(\.local)))
        #expect(Set(fromA.map { "\($0.local)-\($0.remote)" }).count == 50)
        #expect(throws: WaypointPortRefusal.exhausted) { try a.allocate(path: pa, wireProtocol: udp) }
        let foreign = a.release(path: pa, wireProtocol: udp, localPort: 5001)
        let own = a.release(path: pa, wireProtocol: udp, localPort: 5004)
        #expect(!foreign && own)
        #expect(try a.allocate(path: pa, wireProtocol: udp).local == 5000)
        // Even/odd space split in three: still even, still disjoint.
        var c = WaypointPorts(shard: 2, of: 3)
        let pc = c.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"))
        let p = try c.allocate(path: pc, wireProtocol: tcp)
        #expect(p.local == 16384 + 2 * 2 && p.local % 2 == 0)
        #expect(try c.allocate(path: pc, wireProtocol: tcp).local == 16384 + 5 * 2)
    }
}

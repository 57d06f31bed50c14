import SVR
import Testing

@Suite struct PortsTests {
    typealias Kit = SessionTestKit
    let tcp = IPProtocolNumber.tcp
    let udp = IPProtocolNumber.udp

    @Test func defaultSpaceIsLocalEvenRemoteOddAndUnique() throws {
        var ports = WaypointPorts()
        let path = ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"))
        var locals = Set<UInt16>()
        for _ in 0..<24576 {
            let p = try ports.allocate(path: path, wireProtocol: tcp)
            #expect(p.local % 2 == 0 && (16384...65534).contains(p.local))
            #expect(p.remote % 2 == 1 && (16385...65533).contains(p.remote))
            locals.insert(p.local)
        }
        #expect(locals.count == 24576)
        #expect(throws: WaypointPortRefusal.exhausted) { try ports.allocate(path: path, wireProtocol: tcp) }
        #expect(ports.exhaustedCount == 1)
        // UDP (and everything carried as UDP) has its own space on the same path.
        #expect(try ports.allocate(path: path, wireProtocol: 1).local == 16384)
        #expect(ports.inUse(path: path, wireProtocol: udp) == 1)
    }

    @Test func tinyRangeExhaustsAndCountsThenRecovers() throws {
        var ports = WaypointPorts()
        let path = ports.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"),
                                 space: .ranges(local: 20000...20002, remote: 30000...30001))
        let got = try (0..<3).map { _ in try ports.allocate(path: path, wireProtocol: udp) }
        #expect(got.map(\.local) == [20000, 20001, 20002])
        // Continuous round robin, no parity rule.
        #expect(got.map(\.remote) == [30000, 30001, 30000])
        #expect(throws: WaypointPortRefusal.exhausted) { try ports.allocate(path: path, wireProtocol: udp) }
        #expect(throws: WaypointPortRefusal.exhausted) { try ports.allocate(path: path, wireProtocol: udp) }
        #expect(ports.exhaustedCount == 2)
        let freed = ports.release(path: path, wireProtocol: udp, localPort: 20001)
        let freedTwice = ports.release(path: path, wireProtocol: udp, localPort: 20001)
        let outside = ports.release(path: path, wireProtocol: udp, localPort: 19999)
        #expect(freed && !freedTwice && !outside)
        #expect(try ports.allocate(path: path, wireProtocol: udp) == WaypointPortPair(local: 20001, remote: 30001))
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
        // After wrapping around, the freed port is found again.
        for _ in 0..<97 { _ = try ports.allocate(path: path, wireProtocol: tcp) }
        #expect(try ports.allocate(path: path, wireProtocol: tcp).local == 1025)
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
        let fromA = try (0..<5).map { _ in try a.allocate(path: pa, wireProtocol: udp).local }
        let fromB = try (0..<5).map { _ in try b.allocate(path: pb, wireProtocol: udp).local }
        #expect(fromA == [5000, 5002, 5004, 5006, 5008])
        #expect(fromB == [5001, 5003, 5005, 5007, 5009])
        #expect(throws: WaypointPortRefusal.exhausted) { try a.allocate(path: pa, wireProtocol: udp) }
        let foreign = a.release(path: pa, wireProtocol: udp, localPort: 5001)
        let own = a.release(path: pa, wireProtocol: udp, localPort: 5004)
        #expect(!foreign && own)
        #expect(try a.allocate(path: pa, wireProtocol: udp).local == 5004)
        // Even/odd space split in three: still even, still disjoint.
        var c = WaypointPorts(shard: 2, of: 3)
        let pc = c.addPath(local: Kit.ip("203.0.113.1"), remote: Kit.ip("198.51.100.2"))
        let p = try c.allocate(path: pc, wireProtocol: tcp)
        #expect(p.local == 16384 + 2 * 2 && p.local % 2 == 0)
        #expect(try c.allocate(path: pc, wireProtocol: tcp).local == 16384 + 5 * 2)
    }
}

// `svrbench session [SESSIONS]`: longest-prefix match, first-packet session setup, session
// lookups and memory per session. Results and the command line are in docs/perf/session.md.

import Glibc
import SVR

enum SessionBench {
    static func run(_ args: [String]) {
        let sessions = args.first.flatMap { Int($0) } ?? 1_000_000
        let wall = nanos()
        lpm()
        table(sessions: sessions)
        print("thread CPU \(fmt(clock(), 2)) s, wall \(fmt(Double(nanos() - wall) / 1e9, 2)) s (times above are thread CPU time)")
    }

    // MARK: Helpers

    /// xorshift64*: deterministic inputs.
    struct Gen {
        var x: UInt64 = 0x2545_F491_4F6C_DD1D
        mutating func next() -> UInt64 {
            x ^= x >> 12
            x ^= x << 25
            x ^= x >> 27
            return x &* 0x2545_F491_4F6C_DD1D
        }
    }

    /// CPU time of this thread: the machine is shared, so wall time would count other
    /// processes' time slices (docs/perf/session.md gives both).
    static func clock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func nanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Resident set size in bytes (second field of /proc/self/statm, in pages).
    static func rss() -> Int {
        let fd = open("/proc/self/statm", O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 128)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return 0 }
        let fields = buf[0..<n].split(separator: UInt8(ascii: " "))
        guard fields.count > 1, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func fmt(_ v: Double, _ digits: Int = 1) -> String {
        var p = 1.0
        for _ in 0..<digits { p *= 10 }
        let r = (v * p).rounded() / p
        return "\(r)"
    }

    static func report(_ what: String, ops: Int, seconds: Double) {
        print("  \(what.padding(44)) \(fmt(Double(ops) / seconds / 1e6, 2)) M/s  \(fmt(seconds * 1e9 / Double(ops))) ns/op")
    }

    /// A prefix length drawn from a BGP-like distribution (mostly /24, /16–/23, a few longer).
    static func v4Length(_ g: inout Gen) -> Int {
        let r = g.next() % 100
        switch r {
        case 0..<55: return 24
        case 55..<70: return 22 + Int(g.next() % 2)
        case 70..<82: return 19 + Int(g.next() % 3)
        case 82..<92: return 16 + Int(g.next() % 3)
        case 92..<95: return 8 + Int(g.next() % 8)
        default: return 25 + Int(g.next() % 8)
        }
    }

    // MARK: (a) Longest-prefix match

    static func lpm() {
        var g = Gen()
        print("longest-prefix match (multibit trie, 16-bit root + 4-bit strides)")
        var p4: [(IPPrefix, UInt32)] = []
        var seen = Set<IPPrefix>()
        while p4.count < 100_000 {
            let p = IPPrefix(.v4(IPv4Address(UInt32(truncatingIfNeeded: g.next()))), length: v4Length(&g))!
            if seen.insert(p).inserted { p4.append((p, UInt32(p4.count))) }
        }
        var p6: [(IPPrefix, UInt32)] = []
        while p6.count < 10_000 {
            // Global unicast 2000::/3; lengths mostly /32–/48, some /56, /64 and hosts.
            let hi = 0x2000_0000_0000_0000 | g.next() >> 3
            let lens = [29, 32, 32, 36, 40, 44, 48, 48, 48, 56, 64, 128]
            let p = IPPrefix(.v6(IPv6Address(high: hi, low: g.next())), length: lens[Int(g.next() % UInt64(lens.count))])!
            if seen.insert(p).inserted { p6.append((p, UInt32(p6.count))) }
        }
        var t0 = clock()
        let t4 = try! PrefixTable(p4)
        let build4 = clock() - t0
        t0 = clock()
        let t6 = try! PrefixTable(p6)
        let build6 = clock() - t0
        print("  IPv4 100k prefixes: build \(fmt(build4 * 1e3)) ms, \(t4.memoryBytes / 1024) KiB;"
              + " IPv6 10k prefixes: build \(fmt(build6 * 1e3)) ms, \(t6.memoryBytes / 1024) KiB")

        // Half of the addresses fall inside a configured prefix, half are random.
        let n = 1 << 20
        var a4 = [IPv4Address](repeating: .any, count: n)
        var a6 = [IPv6Address](repeating: .any, count: n)
        for i in 0..<n {
            let r = UInt32(truncatingIfNeeded: g.next())
            if i & 1 == 0, case .v4(let base) = p4[Int(g.next() % UInt64(p4.count))].0.address {
                a4[i] = IPv4Address(base.value | r & 0xFF)
            } else {
                a4[i] = IPv4Address(r)
            }
            if i & 1 == 0, case .v6(let base) = p6[Int(g.next() % UInt64(p6.count))].0.address {
                a6[i] = IPv6Address(high: base.high, low: base.low | g.next() & 0xFF)
            } else {
                a6[i] = IPv6Address(high: 0x2000_0000_0000_0000 | g.next() >> 3, low: g.next())
            }
        }
        let rounds = 8
        var found = 0
        t0 = clock()
        for _ in 0..<rounds { for a in a4 where t4.lookup(a) != nil { found &+= 1 } }
        report("IPv4 lookup, 100k prefixes", ops: n * rounds, seconds: clock() - t0)
        t0 = clock()
        for _ in 0..<rounds { for a in a6 where t6.lookup(a) != nil { found &+= 1 } }
        report("IPv6 lookup, 10k prefixes", ops: n * rounds, seconds: clock() - t0)

        // The alternative considered: one hash set per prefix length, probed longest first
        // over a bitmap of the lengths present.
        var perLength = [[UInt32: UInt32]](repeating: [:], count: 33)
        var lengths: UInt64 = 0
        for (p, v) in p4 {
            guard case .v4(let a) = p.address else { continue }
            perLength[Int(p.length)][a.value] = v
            lengths |= 1 << UInt64(p.length)
        }
        t0 = clock()
        for _ in 0..<2 {
            for a in a4 {
                var m = lengths
                while m != 0 {
                    let l = 63 - m.leadingZeroBitCount
                    m &= ~(1 << UInt64(l))
                    let masked = l == 0 ? 0 : a.value & ~UInt32(0) << UInt32(32 - l)
                    if perLength[l][masked] != nil { found &+= 1; break }
                }
            }
        }
        report("IPv4, per-length hash tables (alternative)", ops: n * 2, seconds: clock() - t0)
        print("  (matches: \(found))")
    }

    // MARK: (b, c) Session setup, lookup and memory

    static func table(sessions: Int) {
        print("sessions: classify + allocate waypoint ports + insert, \(sessions) sessions")
        let tenants = 256
        let services = 200
        var tp: [(prefix: IPPrefix, tenant: TenantID)] = []
        for t in 0..<tenants {
            tp.append((IPPrefix(.v4(IPv4Address(10, UInt8(t), 0, 0)), length: 16)!, TenantID(rawValue: UInt16(t))))
        }
        var rules: [ServiceRule] = []
        for s in 0..<services {
            rules.append(ServiceRule(
                service: ServiceID(rawValue: UInt16(s)),
                prefixes: [IPPrefix(.v4(IPv4Address(172, 16 + UInt8(s / 100), UInt8(s % 100), 0)), length: 24)!],
                transports: [TransportMatch(proto: 6, ports: [443...443, 8000...8080]), TransportMatch(proto: 17, ports: [53...53])],
                allowedTenants: (0..<tenants).map { TenantID(rawValue: UInt16($0)) }))
        }
        let classifier = try! Classifier(tenantPrefixes: tp, services: rules)
        var routes = ServiceRouteTable(serviceCount: services)
        for s in 0..<services { routes.setRoute(ServiceID(rawValue: UInt16(s)), true) }

        do {
            let r0 = rss()
            let c0 = clock()
            let populated = SessionTable(SessionTableConfiguration(maxSessions: sessions, prefault: true))
            print("  table made with prefault: \(fmt((clock() - c0) * 1e3)) ms, RSS +\((rss() - r0) >> 20) MiB"
                  + " (\(populated.capacity) sessions)")
        }
        let before = rss()
        let t = SessionTable(SessionTableConfiguration(maxSessions: sessions))
        // 64 peer paths x (TCP, UDP), each 24,576 x 24,575 port pairs: far more than the table.
        let paths = (0..<64).map { p in
            t.ports.addPath(local: .v4(IPv4Address(203, 0, 113, 1)), remote: .v4(IPv4Address(198, 51, 100, UInt8(p + 1))))
        }
        var counters = ClassifierCounters()

        func original(_ i: Int) -> FiveTuple {
            let tenant = i & 0xFF
            let host = UInt32(i >> 8)
            let tcp = i & 0x100 == 0
            return FiveTuple(
                source: .v4(IPv4Address(0x0A00_0000 | UInt32(tenant) << 16 | (host >> 16) & 0xFFFF)),
                destination: .v4(IPv4Address(172, 16 + UInt8((i >> 3) % 2), UInt8((i >> 4) % 100), 20)),
                sourcePort: UInt16(truncatingIfNeeded: host | 1024), destinationPort: tcp ? 443 : 53,
                proto: tcp ? 6 : 17)
        }

        /// Runs first-packet processing for `sessions` flows; returns how many were inserted.
        func openAll(now: UInt64) -> Int {
            var inserted = 0
            for i in 0..<sessions {
                let o = original(i)
                guard case .allowed(let tenant, let service) = classifier.classify(o, interface: nil, routes: routes, counters: &counters) else { continue }
                let path = paths[i & 63]
                do {
                    let ports = try t.allocatePorts(path: path, wireProtocol: o.proto)
                    var n = NewSession(role: .ingress, tenant: tenant, service: service, original: o)
                    n.wanFromDownstream = FiveTuple(source: .v4(IPv4Address(198, 51, 100, UInt8((i & 63) + 1))),
                                                    destination: .v4(IPv4Address(203, 0, 113, 1)),
                                                    sourcePort: ports.remote, destinationPort: ports.local, proto: o.proto)
                    n.portLease = PortLease(path: path, wireProtocol: o.proto, localPort: ports.local)
                    n.tcpFlags = o.proto == 6 ? .syn : []
                    _ = try t.insert(n, now: now)
                    inserted += 1
                } catch {
                    continue
                }
            }
            return inserted
        }

        var now = nanos()
        var t0 = clock()
        let inserted = openAll(now: now)
        let insertTime = clock() - t0
        let after = rss()
        report("first packet: classify+ports+insert (cold)", ops: sessions, seconds: insertTime)
        print("  inserted \(inserted), refused: classifier \(counters.noTenant + counters.noService + counters.tenantNotAllowed + counters.noRoute),"
              + " table \(t.counters.refusedTableFull + t.counters.refusedDuplicateKey + t.counters.refusedPortsExhausted)")
        print("  memory: RSS +\((after - before) >> 20) MiB for \(inserted) sessions = \(fmt(Double(after - before) / Double(max(1, inserted)))) B/session"
              + " (reserved \(t.reservedBytes >> 20) MiB; index \(t.indexLoad.used)/\(t.indexLoad.slots) slots)")

        t0 = clock()
        for i in 0..<sessions {
            if case .allowed = classifier.classify(original(i), interface: nil, routes: routes, counters: &counters) { continue }
        }
        report("classify only", ops: sessions, seconds: clock() - t0)

        // Established-session lookups: keys in insertion order and shuffled.
        var keys = (0..<inserted).map { SessionKey(original($0), side: .lan) }
        var g = Gen()
        t0 = clock()
        var hits = 0
        for k in keys where t.lookup(k) != nil { hits &+= 1 }
        report("lookup, insertion order", ops: keys.count, seconds: clock() - t0)
        for i in stride(from: keys.count - 1, to: 0, by: -1) { keys.swapAt(i, Int(g.next() % UInt64(i + 1))) }
        t0 = clock()
        for k in keys where t.lookup(k) != nil { hits &+= 1 }
        report("lookup, random order", ops: keys.count, seconds: clock() - t0)
        now = nanos()
        t0 = clock()
        for k in keys {
            if let h = t.lookup(k) { t.recordPacket(h, bytes: 1400, tcpFlags: .ack, now: now) }
        }
        report("lookup + recordPacket, random order", ops: keys.count, seconds: clock() - t0)
        var misses = 0
        t0 = clock()
        for k in keys {
            var m = k
            m.packed ^= 1 << 40
            if t.lookup(m) == nil { misses &+= 1 }
        }
        report("lookup miss (new flow), random order", ops: keys.count, seconds: clock() - t0)
        print("  (hits \(hits), misses \(misses))")

        // Expiry: everything goes idle; drain with budgeted calls and track the worst call.
        let later = now + UInt64(SessionTimeouts().tcpEstablished + 10) * 1_000_000_000
        var calls: [Double] = []
        calls.reserveCapacity(sessions / 32)
        var expired = 0
        t0 = clock()
        while t.count > 0 {
            let c0 = clock()
            expired += t.expire(now: later, budget: 64)
            calls.append(clock() - c0)
        }
        let drain = clock() - t0
        calls.sort()
        print("  expiry: \(expired) sessions in \(fmt(drain * 1e3)) ms (\(fmt(drain * 1e9 / Double(max(1, expired)))) ns each),"
              + " \(calls.count) calls of budget 64: median \(fmt(calls[calls.count / 2] * 1e6)) us,"
              + " p99.9 \(fmt(calls[calls.count * 999 / 1000] * 1e6)) us, max \(fmt(calls[calls.count - 1] * 1e6)) us")
        var used = 0
        for p in paths { used += t.ports.inUse(path: p, wireProtocol: 6) + t.ports.inUse(path: p, wireProtocol: 17) }
        print("  waypoint ports still in use after expiry: \(used)")

        dictionaryIndex(keys)

        // Steady state: the same flows again into the now warm (already faulted-in) table.
        t0 = clock()
        let again = openAll(now: later)
        report("first packet: classify+ports+insert (warm)", ops: sessions, seconds: clock() - t0)
        print("  inserted \(again)")
    }

    /// The alternative to the custom index: a Swift `Dictionary` from key to row, two keys per
    /// session (the rows themselves would still be needed on top).
    static func dictionaryIndex(_ keys: [SessionKey]) {
        let before = rss()
        var d = [SessionKey: UInt32]()
        d.reserveCapacity(keys.count * 2)
        let t0 = clock()
        for (i, k) in keys.enumerated() {
            d[k] = UInt32(i)
            var w = k
            w.packed ^= 3 << 16
            d[w] = UInt32(i)
        }
        let insert = clock() - t0
        let after = rss()
        let t1 = clock()
        var hits = 0
        for k in keys where d[k] != nil { hits &+= 1 }
        let lookup = clock() - t1
        print("  Dictionary<SessionKey, UInt32> index (alternative): insert 2 keys \(fmt(insert * 1e9 / Double(keys.count))) ns/session,"
              + " lookup \(fmt(lookup * 1e9 / Double(keys.count))) ns (random order),"
              + " \(fmt(Double(after - before) / Double(keys.count))) B/session for the index alone (hits \(hits))")
    }
}

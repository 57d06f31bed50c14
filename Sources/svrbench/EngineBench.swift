// `svrbench engine [SESSIONS]`: the session engine end to end in memory, two routers (A
// ingress, B egress) on one core. Results and the command line are in docs/perf/engine.md.
//
//   new sessions/s   UDP first packets with distinct 5-tuples: A.handleLAN + B.handleWAN
//   established      1400-byte UDP packets of one session A → B, per suite: pps and Gbit/s
//   spread           the same round robin over 1,000 sessions (cipher cache hits and misses)
//   memory           RSS delta of B holding SESSIONS egress sessions, per session
//
// Rates are per second of thread CPU time (the machine is shared).

import Glibc
import SVR

enum EngineBench {
    static let about = "new sessions/s (A+B first packets), established pps/Gbit/s per suite, bytes/session [SESSIONS] [new|established|spread|memory] [SUITE]"

    static func run(_ args: [String]) {
        let sessions = args.first.flatMap { Int($0) } ?? 1_000_000
        let parts = Set(args.dropFirst())
        // Suite names among the parts select suites (e.g. `engine 1000 new aes-gcm`, for profiling).
        let allSuites = ["aes-cbc-hmac", "aes-gcm", "none"]
        let picked = allSuites.filter { parts.contains($0) }
        let suites = picked.isEmpty ? allSuites : picked
        let partNames = parts.subtracting(allSuites)
        func wants(_ p: String) -> Bool { partNames.isEmpty || partNames.contains(p) }
        print("svrbench engine: two routers in memory, one core; rates per CPU second (CLOCK_THREAD_CPUTIME_ID)")
        if wants("new") {
            print("\nnew sessions (UDP first packet at A, its wire packet at B; 64 B payload)")
            for suite in suites { newSessions(encryption: suite, count: 100_000) }
        }
        if wants("established") {
            print("\nestablished session A → B, 1400-byte IP packets (full pipeline on both routers)")
            for suite in suites { established(encryption: suite, packets: 200_000) }
        }
        if wants("spread") {
            print("\nestablished, 1400-byte packets A → B round robin over 1,000 sessions (cipher cache in use)")
            for suite in suites { established(encryption: suite, packets: 200_000, sessions: 1000) }
        }
        if wants("memory") {
            print("")
            memory(sessions: sessions)
        }
    }

    // MARK: Setup

    static func pair(encryption: String, maxSessions: Int, prefault: Bool = false) -> (SVRRouter, SVRRouter) {
        let ka = try! X25519PrivateKey.generate(), kb = try! X25519PrivateKey.generate()
        func toml(_ name: String, _ key: X25519PrivateKey, _ address: String, _ peer: String, _ peerKey: X25519PrivateKey,
                  _ peerAddress: String, route: String, prefixes: String) -> String {
            """
            [router]
            name = "\(name)"
            private-key = "\(key.base64)"
            [[interface]]
            name = "wan0"
            address = "\(address)"
            neighborhood = "internet"
            [[peer]]
            name = "\(peer)"
            public-key = "\(peerKey.publicKey.base64)"
            waypoints = ["\(peerAddress)"]
            [[tenant]]
            name = "blue"
            prefixes = [\(prefixes)]
            [[service-policy]]
            name = "pol"
            encryption = "\(encryption)"
            adaptive-encryption = false
            [[service]]
            name = "any-udp"
            prefixes = ["172.16.0.0/12"]
            protocol = "udp"
            tenants = ["blue"]
            service-policy = "pol"
            [[service-route]]
            service = "any-udp"
            \(route)
            """
        }
        let a = try! Config.parse(text: toml("A", ka, "203.0.113.1", "B", kb, "198.51.100.2", route: "peer = \"B\"",
                                             prefixes: "\"10.0.0.0/8\""), fileName: "a.toml")
        let b = try! Config.parse(text: toml("B", kb, "198.51.100.2", "A", ka, "203.0.113.1", route: "local = true",
                                             prefixes: ""), fileName: "b.toml")
        return (try! SVRRouter(config: a, maxSessions: maxSessions, prefault: prefault),
                try! SVRRouter(config: b, maxSessions: maxSessions, prefault: prefault))
    }

    /// A UDP/IPv4 packet 10.0.0.0/8 → 172.16.0.0/12 of `length` bytes, checksums valid.
    static func udpPacket(into p: UnsafeMutableRawPointer, length: Int, source: UInt32, destination: UInt32, sport: UInt16, dport: UInt16) {
        let bytes: [UInt8] = [0x45, 0, UInt8(length >> 8), UInt8(length & 0xff), 0x12, 0x34, 0x40, 0, 64, 17, 0, 0]
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: 12) }
        p.storeBytes(of: source.bigEndian, toByteOffset: 12, as: UInt32.self)
        p.storeBytes(of: destination.bigEndian, toByteOffset: 16, as: UInt32.self)
        p.storeBytes(of: sport.bigEndian, toByteOffset: 20, as: UInt16.self)
        p.storeBytes(of: dport.bigEndian, toByteOffset: 22, as: UInt16.self)
        p.storeBytes(of: UInt16(length - 20).bigEndian, toByteOffset: 24, as: UInt16.self)
        p.storeBytes(of: UInt16(0), toByteOffset: 26, as: UInt16.self)  // UDP checksum 0 (none)
        for i in 28..<length { p.storeBytes(of: UInt8(truncatingIfNeeded: i), toByteOffset: i, as: UInt8.self) }
        var ip = try! IPPacket(try! PacketBuffer(slot: p, capacity: length, offset: 0, count: length))
        ip.recomputeChecksums()
    }

    static let headroom = 512
    static let slotSize = 4096

    // MARK: New sessions

    static func newSessions(encryption: String, count: Int) {
        let batch = 20_000  // sessions per batch (the table holds one batch)
        let slot = UnsafeMutableRawPointer.allocate(byteCount: slotSize, alignment: 64)
        let packets = UnsafeMutableRawPointer.allocate(byteCount: batch * 92, alignment: 64)
        defer { slot.deallocate(); packets.deallocate() }
        let now = EngineTime(monotonicNanos: 1_000_000_000_000, unixSeconds: 1_700_000_000)
        var cpu = 0.0
        var done = 0, failed = 0
        var batchRates: [Double] = []
        // One warm pair (prefaulted tables, cipher cache in use), emptied between batches by
        // expiring every session (outside the timed loop), as a long-running router would be.
        let (a, b) = pair(encryption: encryption, maxSessions: batch, prefault: true)
        var later = now
        // One untimed batch first: fills both routers' cipher caches (4096 slots, each creating
        // its OpenSSL contexts once), as in a router that has been running for a while.
        var warm = min(batch, count)
        while done < count + warm {
            later = later.adding(seconds: 3600)
            while a.table.count > 0 || b.table.count > 0 { a.tick(now: later); b.tick(now: later) }
            let n = warm > 0 ? warm : min(batch, count - done)
            // The batch's first packets are built before the clock starts (building one costs
            // about as much as a tenth of the work measured); the loop copies each into the
            // packet slot, as a NIC or TUN read would have written it.
            for k in 0..<n {
                let id = UInt32(done + k)
                udpPacket(into: packets + k * 92, length: 92, source: 0x0A00_0000 | id, destination: 0xAC10_0014,
                          sport: UInt16(truncatingIfNeeded: 1024 + id), dport: 53)
            }
            let t0 = SessionBench.clock()
            for k in 0..<n {
                (slot + headroom).copyMemory(from: packets + k * 92, byteCount: 92)
                var p = try! PacketBuffer(slot: slot, capacity: slotSize, offset: headroom, count: 92)
                guard case .toWAN = a.handleLAN(&p, now: later) else { failed += 1; continue }
                var q = try! PacketBuffer(slot: slot, capacity: slotSize, offset: p.offset, count: p.count)
                guard case .toLAN = b.handleWAN(&q, interface: 0, now: later) else { failed += 1; continue }
            }
            if warm > 0 {
                warm = 0
                continue
            }
            let t = SessionBench.clock() - t0
            cpu += t
            batchRates.append(Double(n) / t)
            done += n
        }
        let rate = Double(count) / cpu
        // All sessions over all CPU time; the batches' spread shows the machine's noise.
        print("  \(encryption.padding(14)) \(SessionBench.fmt(rate / 1000, 1)) k sessions/s  \(SessionBench.fmt(cpu * 1e9 / Double(count), 0)) ns/session (A+B)"
            + "  batches of \(batch): \(SessionBench.fmt(batchRates.min()! / 1000, 0))–\(SessionBench.fmt(batchRates.max()! / 1000, 0))k"
            + (failed > 0 ? "  FAILED \(failed)" : ""))
    }

    // MARK: Established

    /// 1400-byte packets A → B round robin over `sessions` established sessions (after each
    /// one's metadata handshake). One session measures the pipeline; 1,000 also the cipher
    /// cache (each packet re-uses a different session's contexts, as on a busy router).
    static func established(encryption: String, packets: Int, sessions: Int = 1) {
        let (a, b) = pair(encryption: encryption, maxSessions: max(1024, 2 * sessions))
        let slot = UnsafeMutableRawPointer.allocate(byteCount: slotSize, alignment: 64)
        let template = UnsafeMutableRawPointer.allocate(byteCount: 1400, alignment: 64)
        defer { slot.deallocate(); template.deallocate() }
        let now = EngineTime(monotonicNanos: 1_000_000_000_000, unixSeconds: 1_700_000_000)
        udpPacket(into: template, length: 1400, source: 0x0A01_010A, destination: 0xAC10_0214, sport: 40000, dport: 53)
        // The UDP checksum is 0 (none) and the IP header does not cover ports: a session's
        // packet is the template with its own source port.
        func forward(_ s: Int) -> Bool {
            (slot + headroom).copyMemory(from: template, byteCount: 1400)
            (slot + headroom).storeBytes(of: UInt16(40000 + s).bigEndian, toByteOffset: 20, as: UInt16.self)
            var p = try! PacketBuffer(slot: slot, capacity: slotSize, offset: headroom, count: 1400)
            guard case .toWAN = a.handleLAN(&p, now: now) else { return false }
            var q = try! PacketBuffer(slot: slot, capacity: slotSize, offset: p.offset, count: p.count)
            guard case .toLAN = b.handleWAN(&q, interface: 0, now: now) else { return false }
            return true
        }
        // Handshake per session: forward (metadata), reverse (reverse metadata), forward without.
        for s in 0..<sessions {
            _ = forward(s)
            udpPacket(into: slot + headroom, length: 200, source: 0xAC10_0214, destination: 0x0A01_010A, sport: 53,
                      dport: UInt16(40000 + s))
            var r = try! PacketBuffer(slot: slot, capacity: slotSize, offset: headroom, count: 200)
            if case .toWAN = b.handleLAN(&r, now: now) {
                var q = try! PacketBuffer(slot: slot, capacity: slotSize, offset: r.offset, count: r.count)
                _ = a.handleWAN(&q, interface: 0, now: now)
            }
            _ = forward(s)
        }
        var failed = 0
        var s = 0
        let t0 = SessionBench.clock()
        for _ in 0..<packets {
            if !forward(s) { failed += 1 }
            s = s + 1 == sessions ? 0 : s + 1
        }
        let cpu = SessionBench.clock() - t0
        let pps = Double(packets) / cpu
        let label = sessions == 1 ? encryption.padding(14) : "\(encryption) ×\(sessions)".padding(20)
        print("  \(label) \(SessionBench.fmt(pps / 1e6, 3)) Mpps  \(SessionBench.fmt(pps * 1400 * 8 / 1e9, 2)) Gbit/s"
            + "  \(SessionBench.fmt(cpu * 1e9 / Double(packets), 0)) ns/packet (A+B)" + (failed > 0 ? "  FAILED \(failed)" : ""))
    }

    // MARK: Memory

    /// B holds `sessions` egress sessions; A's sessions are removed after each first packet so
    /// its waypoint ports never run out.
    static func memory(sessions: Int) {
        let (a, b) = pair(encryption: "aes-gcm", maxSessions: sessions)
        let slot = UnsafeMutableRawPointer.allocate(byteCount: slotSize, alignment: 64)
        defer { slot.deallocate() }
        let now = EngineTime(monotonicNanos: 1_000_000_000_000, unixSeconds: 1_700_000_000)
        let rss0 = SessionBench.rss()
        var failed = 0
        let t0 = SessionBench.clock()
        for k in 0..<sessions {
            let id = UInt32(k)
            let src = 0x0A00_0000 | id, sport = UInt16(truncatingIfNeeded: 1024 + (id >> 20))
            udpPacket(into: slot + headroom, length: 92, source: src, destination: 0xAC10_0014, sport: sport, dport: 53)
            var p = try! PacketBuffer(slot: slot, capacity: slotSize, offset: headroom, count: 92)
            guard case .toWAN = a.handleLAN(&p, now: now) else { failed += 1; continue }
            let key = SessionKey(v4Source: src, v4Destination: 0xAC10_0014, sourcePort: sport, destinationPort: 53, proto: 17, side: .lan)
            if let hit = a.table.lookup(key) { a.table.remove(hit.index) }
            var q = try! PacketBuffer(slot: slot, capacity: slotSize, offset: p.offset, count: p.count)
            guard case .toLAN = b.handleWAN(&q, interface: 0, now: now) else { failed += 1; continue }
        }
        let cpu = SessionBench.clock() - t0
        let delta = SessionBench.rss() - rss0
        print("memory: \(b.table.count) sessions in B: RSS +\(delta / 1_048_576) MiB = \(delta / max(1, b.table.count)) bytes/session"
            + (failed > 0 ? "  FAILED \(failed)" : ""))
        print("  (filling took \(SessionBench.fmt(cpu, 2)) CPU s: \(SessionBench.fmt(Double(sessions) / cpu / 1000, 1)) k sessions/s incl. A's removals)")
    }
}

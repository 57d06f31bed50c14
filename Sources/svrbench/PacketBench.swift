// `svrbench nat`: cost of the per-packet edits of the packet layer on 1400-byte packets:
// double-NAT rewrite with incremental checksums (with and without parsing), a full Internet
// checksum, and insert + strip of a 108-byte metadata block (TV1's size).
//
// Synchronous loops timed with clock_gettime(CLOCK_MONOTONIC); each loop folds its results
// into a value that is printed, and changes the packet every iteration, so the optimizer can
// neither drop nor hoist the work. Each case runs 5 times; the table shows the best and the
// median wall-clock run, and the best thread CPU time (on a shared machine the wall clock also
// counts time the thread waited for a core).

import Glibc
import SVR

enum PacketBench {
    static let packetSize = 1400
    static let metadataSize = 108

    static func run(_ args: [String]) {
        let scale = args.first.flatMap { Int($0) } ?? 1
        let lan4 = FiveTuple(
            source: IPAddress("10.1.1.10")!, destination: IPAddress("172.16.2.20")!,
            sourcePort: 40000, destinationPort: 53, proto: IPProtocolNumber.udp)
        let wan4 = FiveTuple(
            source: IPAddress("203.0.113.1")!, destination: IPAddress("198.51.100.2")!,
            sourcePort: 20000, destinationPort: 30001, proto: IPProtocolNumber.udp)
        var lanTCP = lan4
        lanTCP.proto = IPProtocolNumber.tcp
        var wanTCP = wan4
        wanTCP.proto = IPProtocolNumber.tcp

        print("packet layer, \(packetSize)-byte IPv4 packets, 5 runs per case")
        print("ns/op: CLOCK_MONOTONIC best and median; thread CPU time (CLOCK_THREAD_CPUTIME_ID) best")
        print("case".padding(46) + "best".padding(9) + "median".padding(9) + "cpu best")
        for (name, tuples) in [("udp", (lan4, wan4)), ("tcp", (lanTCP, wanTCP))] {
            let bytes = packet(tuples.0)
            row("double-NAT rewrite ipv4/\(name) (parsed)", 2_000_000 * scale, bytes) { buffer, n in
                var p = try IPPacket(buffer)
                var sink: UInt64 = 0
                for i in 0..<n {
                    try p.rewrite(to: i & 1 == 0 ? tuples.1 : tuples.0)
                    sink &+= UInt64(p.tuple.sourcePort)
                }
                return sink
            }
            row("parse + double-NAT rewrite ipv4/\(name)", 2_000_000 * scale, bytes) { buffer, n in
                var sink: UInt64 = 0
                for i in 0..<n {
                    var p = try IPPacket(buffer)
                    try p.rewrite(to: i & 1 == 0 ? tuples.1 : tuples.0)
                    sink &+= UInt64(p.layout.payloadOffset)
                }
                return sink
            }
        }
        row("full Internet checksum, \(packetSize) bytes", 1_000_000 * scale, packet(lan4)) { buffer, n in
            var sink: UInt64 = 0
            buffer.withUnsafeMutableBytes { raw in
                for i in 0..<n {
                    raw[40] = UInt8(truncatingIfNeeded: i)
                    sink &+= UInt64(InternetChecksum.checksum(UnsafeRawBufferPointer(raw)))
                }
            }
            return sink
        }
        let metadata = UnsafeMutableRawBufferPointer.allocate(byteCount: metadataSize, alignment: 8)
        metadata.initializeMemory(as: UInt8.self, repeating: 0x4c)
        defer { metadata.deallocate() }
        let block = UnsafeRawBufferPointer(metadata)
        for (name, tuple) in [("udp", lan4), ("tcp", lanTCP)] {
            row("insert+strip \(metadataSize) B metadata ipv4/\(name)", 500_000 * scale, packet(tuple)) { buffer, n in
                var p = try IPPacket(buffer)
                var sink: UInt64 = 0
                for _ in 0..<n {
                    try p.insertAfterL4Header(block)
                    sink &+= UInt64(p.buffer.count)
                    try p.stripAfterL4Header(count: block.count)
                }
                return sink
            }
        }
    }

    /// Runs `body` (which loops `iterations` times) 5 times on a fresh copy of `bytes` and
    /// prints the best and median time per iteration.
    static func row(
        _ name: String, _ iterations: Int, _ bytes: [UInt8],
        _ body: (PacketBuffer, Int) throws -> UInt64
    ) {
        let slot = PacketSlot(capacity: 256 + bytes.count + 256)
        var times: [Double] = []
        var cpuTimes: [Double] = []
        var sink: UInt64 = 0
        withExtendedLifetime(slot) {
            for _ in 0..<5 {
                do {
                    let buffer = try slot.packet(headroom: 256, copying: bytes)
                    let start = now(CLOCK_MONOTONIC)
                    let cpuStart = now(CLOCK_THREAD_CPUTIME_ID)
                    sink &+= try body(buffer, iterations)
                    cpuTimes.append(Double(now(CLOCK_THREAD_CPUTIME_ID) - cpuStart) / Double(iterations))
                    times.append(Double(now(CLOCK_MONOTONIC) - start) / Double(iterations))
                } catch {
                    print("\(name): \(error)")
                    exit(1)
                }
            }
        }
        times.sort()
        print(name.padding(46) + format(times[0]).padding(9) + format(times[2]).padding(9)
            + format(cpuTimes.min()!).padding(9) + "(sink \(sink & 0xff))")
    }

    static func now(_ clock: clockid_t) -> UInt64 {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func format(_ ns: Double) -> String {
        let tenths = Int((ns * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// A `packetSize`-byte IPv4 packet of `tuple` (UDP, or TCP ACK|PSH) with valid checksums.
    static func packet(_ tuple: FiveTuple) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: packetSize)
        for i in 0..<packetSize { b[i] = UInt8(truncatingIfNeeded: i &* 7) }
        func put16(_ v: UInt16, _ at: Int) { b[at] = UInt8(v >> 8); b[at + 1] = UInt8(v & 0xff) }
        func put32(_ v: UInt32, _ at: Int) { put16(UInt16(v >> 16), at); put16(UInt16(v & 0xffff), at + 2) }
        b[0] = 0x45
        b[1] = 0
        put16(UInt16(packetSize), 2)
        put32(0x1234_4000, 4)
        b[8] = 64
        b[9] = tuple.proto
        if case .v4(let s) = tuple.source, case .v4(let d) = tuple.destination {
            put32(s.value, 12)
            put32(d.value, 16)
        }
        put16(tuple.sourcePort, 20)
        put16(tuple.destinationPort, 22)
        if tuple.proto == IPProtocolNumber.udp {
            put16(UInt16(packetSize - 20), 24)
        } else {
            b[32] = 0x50
            b[33] = 0x18
        }
        let slot = PacketSlot(capacity: packetSize)
        return withExtendedLifetime(slot) {
            do {
                var p = try IPPacket(try slot.packet(headroom: 0, copying: b))
                p.recomputeChecksums()
                return p.buffer.copyBytes()
            } catch {
                print("bench packet: \(error)")
                exit(1)
            }
        }
    }
}

// Root tests against the real kernel. Each test has its own network namespace
// (TestNamespace, removed in a defer) and creates its devices inside it; a device
// disappears with its last fd, and the namespace with it.

import Glibc
import TestSupport
import Testing
import TunIO

private let tunAddr = ipv4("10.77.0.1")
private let remote = ipv4("10.78.0.5")

/// Opens `config` in `ns` and gives it 10.77.0.1/24 and a route for 10.78.0.0/24.
private func openRouted(_ ns: TestNamespace, _ config: TunConfiguration) throws -> TunDevice {
    let dev = try openTun(in: ns, config)
    try ns.check("ip addr add 10.77.0.1/24 dev \(dev.name) && ip link set \(dev.name) up && ip route add 10.78.0.0/24 dev \(dev.name)")
    return dev
}

@Suite(.serialized) struct TunKernelTests {
    @Test(.enabled(if: isRoot)) func packetRoutedIntoTheTunIsReadIntact() throws {
        let ns = try TestNamespace("ta")
        defer { ns.close() }
        var dev = try openRouted(ns, TunConfiguration(name: "svrt0"))
        var q = try dev.requireQueue(0)
        let payload = Array("svr tun read test: 0123456789".utf8)
        let sock = try ns.run { try udpSocket(bind: 0, port: 40001) }
        defer { close(sock) }
        try udpSend(sock, payload, to: remote, port: 4000)

        var batch = PacketBatch(capacity: 16)
        let got = try #require(receive(&q, &batch) { isUDP($0, dstPort: 4000) })
        let p = got.packet
        #expect(p.count == 28 + payload.count)
        #expect(p[0] == 0x45)                                 // IPv4, IHL 5
        #expect(Int(be16(p, 2)) == p.count)                   // total length
        #expect(p[8] == 64 && p[9] == 17)                     // TTL, UDP
        #expect(be32(p, 12) == tunAddr && be32(p, 16) == remote)
        #expect(p.withUnsafeBytes { InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<20])) } == 0)
        #expect(be16(p, 20) == 40001 && be16(p, 22) == 4000)
        #expect(Int(be16(p, 24)) == 8 + payload.count)
        #expect(Array(p[28...]) == payload)
        #expect(p.withUnsafeBytes { udpChecksumSum($0) } == 0)
        // The packet sits after the headroom, 64-byte aligned, in its slot.
        #expect(batch.dataOffset(at: got.slot) == batch.headroom)
        #expect(Int(bitPattern: batch.unsafePacket(at: got.slot).baseAddress!) % 64 == 0)
        let stats = q.stats
        #expect(stats == TunQueueStats())
    }

    @Test(.enabled(if: isRoot)) func packetWrittenToTheTunReachesASocket() throws {
        let ns = try TestNamespace("tb")
        defer { ns.close() }
        var dev = try openRouted(ns, TunConfiguration(name: "svrt0"))
        let q = try dev.requireQueue(0)
        let sock = try ns.run { try udpSocket(bind: tunAddr, port: 4001) }
        defer { close(sock) }

        let good = udpPacket(src: remote, srcPort: 5555, dst: tunAddr, dstPort: 4001, payload: Array("good packet".utf8))
        var bad = udpPacket(src: remote, srcPort: 5555, dst: tunAddr, dstPort: 4001, payload: Array("bad checksum".utf8))
        bad[27] ^= 0x5a  // the kernel must drop this one
        var batch = PacketBatch(capacity: 4)
        for (i, p) in [bad, good].enumerated() {
            batch.setPacket(at: i, offset: batch.headroom, length: p.count)
            p.withUnsafeBytes { batch.unsafePacket(at: i).copyMemory(from: $0) }
        }
        batch.count = 2
        #expect(try q.write(batch) == 2)

        let r = try #require(udpReceive(sock))
        #expect(r.payload == Array("good packet".utf8))
        #expect(r.from == remote && r.port == 5555)
        #expect(udpReceive(sock, timeoutMs: 200) == nil)  // the corrupted one never arrives

        // A write from the middle of the batch sends the rest only.
        #expect(try q.write(batch, from: 1) == 1)
        #expect(udpReceive(sock)?.payload == Array("good packet".utf8))
    }

    @Test(.enabled(if: isRoot)) func twoQueuesBothCarryTraffic() throws {
        let ns = try TestNamespace("tc")
        defer { ns.close() }
        var dev = try openRouted(ns, TunConfiguration(name: "svrt0", queues: 2))
        let (multiQueue, queueCount) = (dev.isMultiQueue, dev.queueCount)
        #expect(multiQueue && queueCount == 2)
        #expect(ns.linkJSON("svrt0")?.contains("\"multi_queue\":true") == true)
        var q0 = try dev.requireQueue(0)
        var q1 = try dev.requireQueue(1)
        let queue1Again = dev.queueIsAvailable(1)
        #expect(!queue1Again)
        let indices = (q0.index, q1.index)
        #expect(indices == (0, 1))
        let sock = try ns.run { try udpSocket(bind: tunAddr, port: 4002) }
        defer { close(sock) }

        // Each queue writes a packet of its own flow; the socket answers; tun's automatic
        // flow steering sends the answer of a flow to the queue that wrote into it.
        let peer0 = try roundTrip(&q0, sock: sock, peer: ipv4("10.78.0.10"), port: 7000)
        let peer1 = try roundTrip(&q1, sock: sock, peer: ipv4("10.78.0.11"), port: 7001)
        #expect(peer0 == "reply to queue 0")
        #expect(peer1 == "reply to queue 1")

        // More queues can attach to a multi-queue device; a single-queue open cannot.
        let single = try openError(in: ns, TunConfiguration(name: "svrt0"))
        #expect(single?.kind == .nameInUse && single?.errno == EINVAL)
        let third = try openTun(in: ns, TunConfiguration(name: "svrt0", multiQueue: true))
        let thirdName = third.name
        #expect(thirdName == "svrt0")
    }

    /// Writes a UDP packet from `peer:port` to the socket through `queue`, has the socket
    /// answer, and reads the answer from the same queue; returns the answer's payload.
    private func roundTrip(_ queue: inout TunQueue, sock: Int32, peer: UInt32, port: UInt16) throws -> String? {
        var batch = PacketBatch(capacity: 8)
        let p = udpPacket(src: peer, srcPort: port, dst: tunAddr, dstPort: 4002, payload: Array("from queue \(queue.index)".utf8))
        batch.setPacket(at: 0, offset: batch.headroom, length: p.count)
        p.withUnsafeBytes { batch.unsafePacket(at: 0).copyMemory(from: $0) }
        batch.count = 1
        guard try queue.write(batch) == 1 else { return nil }
        guard let r = udpReceive(sock), r.payload == Array("from queue \(queue.index)".utf8) else { return nil }
        try udpSend(sock, Array("reply to queue \(queue.index)".utf8), to: r.from, port: r.port)
        guard let answer = try receive(&queue, &batch, where: { isUDP($0, dstPort: port) }) else { return nil }
        return String(decoding: answer.packet[28...], as: UTF8.self)
    }

    @Test(.enabled(if: isRoot)) func virtioHeaderModeReportsPartialChecksumAndSegmentation() throws {
        let ns = try TestNamespace("td")
        defer { ns.close() }
        let all: TunOffloads = [.checksum, .tso4, .tso6, .uso4, .uso6]
        var dev = try openRouted(ns, TunConfiguration(name: "svrt0", virtioHeader: true, offloads: all))
        let (virtio, offloads) = (dev.hasVirtioHeader, dev.offloads)
        #expect(virtio)
        #expect(offloads.contains(.checksum))
        #expect(offloads.isSubset(of: all))
        #expect(ns.linkJSON("svrt0")?.contains("\"vnet_hdr\":true") == true)
        var q = try dev.requireQueue(0)
        let sock = try ns.run { try udpSocket(bind: 0, port: 40002) }
        defer { close(sock) }

        // A small datagram: one packet, checksum left to us (NEEDS_CSUM at the UDP field).
        let payload = Array("checksum offload".utf8)
        try udpSend(sock, payload, to: remote, port: 4003)
        var batch = PacketBatch(capacity: 8, maxPacketSize: 65535)
        let got = try #require(receive(&q, &batch) { isUDP($0, dstPort: 4003) })
        let h = batch.virtioHeader(at: got.slot)
        #expect(h.needsChecksum)
        #expect(h.gso == VirtioNetHeader.GSOType.none)
        #expect(h.checksumStart == 20 && h.checksumOffset == 6)
        #expect(Array(got.packet[28...]) == payload)
        var packet = got.packet
        #expect(packet.withUnsafeMutableBytes { h.completeChecksum(in: $0) })
        #expect(packet.withUnsafeBytes { udpChecksumSum($0) } == 0)

        // UDP GSO (UDP_SEGMENT): with USO accepted (Linux 6.2+), one 64 KiB-capable read gets
        // the whole super-packet and the header says how to cut it.
        if kernelVersion() >= (6, 2) {
            #expect(offloads == all)
        }
        if offloads.isSuperset(of: [.uso4, .uso6]) {
            var segment: Int32 = 400
            #expect(setsockopt(sock, 17 /* SOL_UDP */, 103 /* UDP_SEGMENT */, &segment, 4) == 0)
            let big = (0..<1000).map { UInt8($0 & 0xff) }
            try udpSend(sock, big, to: remote, port: 4004)
            let sp = try #require(receive(&q, &batch) { isUDP($0, dstPort: 4004) })
            let gh = batch.virtioHeader(at: sp.slot)
            #expect(gh.gso == .udpL4 && gh.gsoSize == 400)
            #expect(sp.packet.count == 28 + 1000)
            #expect(Array(sp.packet[28...]) == big)
        }

        // Writes carry a header too: an all-zero one means "complete packet, no offload".
        let sock2 = try ns.run { try udpSocket(bind: tunAddr, port: 4005) }
        defer { close(sock2) }
        let p = udpPacket(src: remote, srcPort: 5556, dst: tunAddr, dstPort: 4005, payload: Array("vnet write".utf8))
        batch.setPacket(at: 0, offset: batch.headroom, length: p.count)
        p.withUnsafeBytes { batch.unsafePacket(at: 0).copyMemory(from: $0) }
        batch.setVirtioHeader(VirtioNetHeader(), at: 0)
        batch.count = 1
        #expect(try q.write(batch) == 1)
        #expect(udpReceive(sock2)?.payload == Array("vnet write".utf8))
    }

    @Test(.enabled(if: isRoot)) func openErrorsAreTyped() throws {
        let ns = try TestNamespace("te")
        defer { ns.close() }
        let dev = try openTun(in: ns, TunConfiguration(name: "svrt0"))
        // Single-queue device already attached.
        let busy = try openError(in: ns, TunConfiguration(name: "svrt0"))
        #expect(busy?.kind == .nameInUse && busy?.errno == EBUSY)
        #expect(busy?.description.contains("already attached") == true)
        // Same name, other flags (multi-queue).
        let mismatch = try openError(in: ns, TunConfiguration(name: "svrt0", multiQueue: true))
        #expect(mismatch?.kind == .nameInUse && mismatch?.errno == EINVAL)
        // A name taken by a device of another kind (a persistent TAP).
        try ns.check("ip tuntap add dev svrtap0 mode tap")
        defer { ns.sh("ip link del svrtap0") }
        let tap = try openError(in: ns, TunConfiguration(name: "svrtap0"))
        #expect(tap?.kind == .nameInUse && tap?.errno == EINVAL)
        // Bad name and missing clone device, checked for real inside the namespace too.
        #expect(try openError(in: ns, TunConfiguration(name: "svr with space"))?.kind == .invalidName)
        let missing = try openError(in: ns, TunConfiguration(name: "svrt1", clonePath: "/nonexistent/tun"))
        #expect(missing?.kind == .tunUnavailable && missing?.errno == ENOENT)
        #expect(ns.linkJSON("svrt1") == nil)
        _ = consume dev
    }

    @Test(.enabled(if: isRoot)) func closingTheLastFdRemovesTheDevice() throws {
        let ns = try TestNamespace("tf")
        defer { ns.close() }
        let single = try openTun(in: ns, TunConfiguration(name: "svrt0"))
        #expect(ns.linkJSON("svrt0") != nil)
        single.close()
        #expect(ns.linkJSON("svrt0") == nil)

        // Multi-queue: the device lives while any queue fd is open.
        var multi = try openTun(in: ns, TunConfiguration(name: "svrt1", queues: 2))
        let q0 = try multi.requireQueue(0)
        multi.close()  // closes queue 1, which was not taken
        #expect(ns.linkJSON("svrt1") != nil)
        q0.close()
        #expect(ns.linkJSON("svrt1") == nil)
    }

    @Test(.enabled(if: isRoot)) func mtuIsSetAndReadBack() throws {
        let ns = try TestNamespace("tg")
        defer { ns.close() }
        let dev = try openTun(in: ns, TunConfiguration(name: "svrt0", mtu: 1380))
        #expect(ns.linkJSON("svrt0")?.contains("\"mtu\":1380,") == true)
        let (before, after) = try ns.run { () throws -> (Int, Int) in
            let before = try dev.mtu()
            try dev.setMTU(9000)
            return (before, try dev.mtu())
        }
        #expect(before == 1380 && after == 9000)
        #expect(ns.linkJSON("svrt0")?.contains("\"mtu\":9000,") == true)
        #expect(throws: TunError.self) { try dev.setMTU(20) }
    }

    @Test(.enabled(if: isRoot)) func waitTimesOutAndIsWokenForShutdown() throws {
        let ns = try TestNamespace("tw")
        defer { ns.close() }
        var dev = try openRouted(ns, TunConfiguration(name: "svrt0"))
        var q = try dev.requireQueue(0)
        let wakeup = try TunWakeup()
        q.wakeup = wakeup

        let start = ContinuousClock.now
        #expect(try q.wait(timeout: .milliseconds(100)) == .timedOut)
        #expect(ContinuousClock.now - start >= .milliseconds(95))

        // Another thread wakes the waiter, which would otherwise wait 10 s.
        spawnDetached {
            usleep(100_000)
            wakeup.wake()
        }
        let t0 = ContinuousClock.now
        #expect(try q.wait(timeout: .seconds(10)) == .woken)
        #expect(ContinuousClock.now - t0 < .seconds(5))
        #expect(try q.wait(timeout: nil) == .woken)  // sticky until reset

        // Readable once a packet is queued.
        wakeup.reset()
        let sock = try ns.run { try udpSocket(bind: 0, port: 40003) }
        defer { close(sock) }
        try udpSend(sock, [1, 2, 3], to: remote, port: 4006)
        #expect(try q.wait(timeout: .seconds(3)) == .readable)
        var batch = PacketBatch(capacity: 4)
        #expect(try q.read(into: &batch) >= 1)
        #expect(try q.read(into: &batch) == 0)  // EAGAIN is "no more", not an error
    }
}

@Suite(.serialized) struct TunKernelEdgeTests {
    @Test(.enabled(if: isRoot)) func oversizedPacketsAreDroppedAndCounted() throws {
        let ns = try TestNamespace("to")
        defer { ns.close() }
        var dev = try openRouted(ns, TunConfiguration(name: "svrt0"))
        var q = try dev.requireQueue(0)
        let sock = try ns.run { try udpSocket(bind: 0, port: 40004) }
        defer { close(sock) }
        try udpSend(sock, [UInt8](repeating: 7, count: 400), to: remote, port: 4007)  // 428 bytes
        try udpSend(sock, [UInt8](repeating: 8, count: 40), to: remote, port: 4007)   // 68 bytes
        var batch = PacketBatch(capacity: 4, maxPacketSize: 100)
        let got = try #require(receive(&q, &batch) { isUDP($0, dstPort: 4007) })
        #expect(got.packet.count == 68 && got.packet[28] == 8)
        let stats = q.stats
        #expect(stats.oversizedReads == 1)
    }

    @Test(.enabled(if: isRoot)) func badPacketsGiveShortCountsThenTypedErrors() throws {
        let ns = try TestNamespace("tx")
        defer { ns.close() }
        var dev = try openRouted(ns, TunConfiguration(name: "svrt0"))
        let q = try dev.requireQueue(0)
        let good = udpPacket(src: remote, srcPort: 5557, dst: tunAddr, dstPort: 4008, payload: [1, 2, 3])
        var batch = PacketBatch(capacity: 3)
        batch.setPacket(at: 0, offset: batch.headroom, length: good.count)
        good.withUnsafeBytes { batch.unsafePacket(at: 0).copyMemory(from: $0) }
        // Slot 1: not IPv4 or IPv6 (first nibble 0), which a TUN refuses with EINVAL.
        batch.setPacket(at: 1, offset: batch.headroom, length: 40)
        batch.unsafePacket(at: 1).initializeMemory(as: UInt8.self, repeating: 0)
        batch.setPacket(at: 2, offset: batch.headroom, length: good.count)
        good.withUnsafeBytes { batch.unsafePacket(at: 2).copyMemory(from: $0) }
        batch.count = 3
        #expect(try q.write(batch) == 1)  // stops before the bad packet
        #expect {
            _ = try q.write(batch, from: 1)
        } throws: { error in
            let e = error as! TunError
            return e.kind == .writeFailed && e.errno == EINVAL && e.device == "svrt0"
        }
        #expect(try q.write(batch, from: 2) == 1)  // skipping it
    }

    @Test(.enabled(if: isRoot)) func deletedDeviceWakesTheReaderWithAnError() throws {
        let ns = try TestNamespace("tz")
        defer { ns.close() }
        var dev = try openTun(in: ns, TunConfiguration(name: "svrt0"))
        var q = try dev.requireQueue(0)
        try ns.check("ip link del svrt0")
        #expect(try q.wait(timeout: .seconds(2)) == .readable)
        var batch = PacketBatch(capacity: 2)
        #expect {
            _ = try q.read(into: &batch)
        } throws: { error in
            let e = error as! TunError
            return e.kind == .readFailed && e.description.contains("device was deleted")
        }
    }
}

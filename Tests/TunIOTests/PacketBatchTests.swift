// Unit tests that need no root: PacketBatch geometry, virtio header, checksums,
// configuration checks and error mapping.

import Glibc
import TestSupport
import Testing
@testable import TunIO

@Suite struct PacketBatchTests {
    @Test func defaultGeometryIsAlignedWithHeadroomAndTailroom() {
        let b = PacketBatch(capacity: 4)
        #expect(b.headroom == 128 && b.tailroom == 64 && b.maxPacketSize == 1500)
        #expect(b.slotSize % 64 == 0)
        #expect(b.slotSize >= 128 + 1500 + 64 && b.slotSize < 128 + 1500 + 64 + 64)
        #expect(b.count == 0)
        for i in 0..<4 {
            let slot = b.unsafeSlot(at: i)
            #expect(Int(bitPattern: slot.baseAddress!) % 64 == 0)
            #expect(slot.count == b.slotSize)
            #expect(b.dataOffset(at: i) == 128 && b.length(at: i) == 0)
            // The packet starts right after the headroom, so also 64-byte aligned.
            #expect(Int(bitPattern: b.unsafePacket(at: i).baseAddress!) % 64 == 0)
            #expect(b.unsafePacket(at: i).baseAddress! == slot.baseAddress! + 128)
        }
        // Slots do not overlap.
        #expect(b.unsafeSlot(at: 1).baseAddress! - b.unsafeSlot(at: 0).baseAddress! == b.slotSize)
    }

    @Test func customGeometry() {
        let b = PacketBatch(capacity: 1, maxPacketSize: 9000, headroom: 0, tailroom: 0)
        #expect(b.slotSize == 9024)  // 9000 rounded up to 64
        #expect(b.availableHeadroom(at: 0) == 0)
        #expect(b.availableTailroom(at: 0) == 9024)
        // A slot always has a byte behind maxPacketSize (reads use it to detect truncation).
        let exact = PacketBatch(capacity: 1, maxPacketSize: 64, headroom: 0, tailroom: 0)
        #expect(exact.slotSize == 128)
        let odd = PacketBatch(capacity: 2, maxPacketSize: 100, headroom: 10, tailroom: 3)
        #expect(odd.slotSize == 128)
        #expect(odd.dataOffset(at: 1) == 10)
    }

    @Test func packetGrowsIntoHeadroomAndTailroomInPlace() {
        var b = PacketBatch(capacity: 2, maxPacketSize: 1500, headroom: 128, tailroom: 64)
        b.setPacket(at: 1, offset: 128, length: 100)
        let original = b.unsafePacket(at: 1)
        for j in 0..<100 { original[j] = UInt8(j) }

        let header = b.prepend(28, at: 1)
        #expect(header.count == 28)
        #expect(header.baseAddress! + 28 == original.baseAddress!)
        header.initializeMemory(as: UInt8.self, repeating: 0xee)
        #expect(b.dataOffset(at: 1) == 100 && b.length(at: 1) == 128)
        #expect(b.availableHeadroom(at: 1) == 100)

        let trailer = b.append(32, at: 1)
        #expect(trailer.baseAddress! == original.baseAddress! + 100)
        trailer.initializeMemory(as: UInt8.self, repeating: 0xaa)
        #expect(b.length(at: 1) == 160)
        #expect(b.availableTailroom(at: 1) == b.slotSize - 100 - 160)

        let whole = Array(b.unsafePacket(at: 1))
        #expect(whole[0..<28].allSatisfy { $0 == 0xee })
        #expect(Array(whole[28..<128]) == (0..<100).map { UInt8($0) })
        #expect(whole[128...].allSatisfy { $0 == 0xaa })

        b.removeFirst(28, at: 1)
        b.removeLast(32, at: 1)
        #expect(b.dataOffset(at: 1) == 128 && b.length(at: 1) == 100)
        #expect(Array(b.unsafePacket(at: 1)) == (0..<100).map { UInt8($0) })
        // The other slot is untouched.
        #expect(b.dataOffset(at: 0) == 128 && b.length(at: 0) == 0)

        b.count = 2
        b.removeAll()
        #expect(b.count == 0 && b.dataOffset(at: 1) == 128 && b.length(at: 1) == 0)
    }

    @Test func virtioHeaderRoundTripsThroughTheBatch() {
        var b = PacketBatch(capacity: 3)
        #expect(b.virtioHeader(at: 2) == VirtioNetHeader())
        let h = VirtioNetHeader(flags: 1, gsoType: 5, headerLength: 28, gsoSize: 1200, checksumStart: 20, checksumOffset: 6)
        b.setVirtioHeader(h, at: 2)
        #expect(b.virtioHeader(at: 2) == h)
        #expect(b.virtioHeader(at: 2).gso == .udpL4 && b.virtioHeader(at: 2).needsChecksum)
        #expect(b.virtioHeader(at: 1) == VirtioNetHeader())
    }

    @Test func virtioHeaderWireLayout() {
        // struct virtio_net_hdr in host (little-endian) order.
        let bytes = hexBytes("01 81 36 00 a8 05 14 00 10 00")
        let h = bytes.withUnsafeBytes { VirtioNetHeader($0) }
        #expect(h.flags == 1 && h.gsoType == 0x81 && h.gso == .tcpv4)
        #expect(h.headerLength == 54 && h.gsoSize == 1448 && h.checksumStart == 20 && h.checksumOffset == 16)
        var out = [UInt8](repeating: 0, count: 10)
        out.withUnsafeMutableBytes { h.encode(into: $0) }
        #expect(out == bytes)
    }
}

@Suite struct ChecksumTests {
    @Test func ipv4HeaderChecksumMatchesKnownValue() {
        // Well-known example header; its checksum is 0xb861.
        var h = hexBytes("4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7")
        #expect(h.withUnsafeBytes { InternetChecksum.checksum($0) } == 0xb861)
        h[10] = 0xb8
        h[11] = 0x61
        #expect(h.withUnsafeBytes { InternetChecksum.checksum($0) } == 0)
        // An odd length pads with a zero byte.
        #expect([UInt8]([0x01]).withUnsafeBytes { InternetChecksum.checksum($0) } == ~UInt16(0x0100))
    }

    @Test func completeChecksumFinishesAPartialUDPChecksum() {
        let full = udpPacket(src: ipv4("10.0.0.1"), srcPort: 1000, dst: ipv4("10.0.0.2"), dstPort: 2000,
                             payload: Array("odd-length payload!".utf8))
        // What the kernel hands over with NEEDS_CSUM: the folded pseudo-header sum, not
        // complemented, in the checksum field.
        var partial = full
        let udpLen = full.count - 20
        let pseudo = Array(full[12..<20]) + [0, 17, UInt8(udpLen >> 8), UInt8(udpLen & 0xff)]
        let folded = ~pseudo.withUnsafeBytes { InternetChecksum.checksum($0) }
        partial[26] = UInt8(folded >> 8)
        partial[27] = UInt8(folded & 0xff)
        #expect(partial != full)
        let h = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, checksumStart: 20, checksumOffset: 6)
        #expect(partial.withUnsafeMutableBytes { h.completeChecksum(in: $0) })
        #expect(partial == full)
        // Offsets beyond the packet are refused and nothing is written.
        let bad = VirtioNetHeader(flags: 1, checksumStart: 20, checksumOffset: 200)
        #expect(!partial.withUnsafeMutableBytes { bad.completeChecksum(in: $0) })
        #expect(partial == full)
    }
}

@Suite struct ConfigurationAndErrorTests {
    @Test(arguments: ["", "abcdefghijklmnop", "svr bad", "svr/x", "svr:1", ".", "..", "svr\u{e9}", "svr\t"])
    func badNamesAreRejectedBeforeAnySyscall(_ name: String) {
        // Also a non-existent clone path: if the name check did not come first, the error
        // would be tunUnavailable.
        let config = TunConfiguration(name: name, clonePath: "/nonexistent/svr-tun")
        #expect {
            _ = try TunDevice(config)
        } throws: { error in
            let e = error as! TunError
            return e.kind == .invalidName && e.errno == 0 && e.description.contains("invalid device name")
        }
    }

    @Test func goodNamesPass() throws {
        for name in ["svr0", "svrtun%d", "svr-lan.1_a", "abcdefghijklmno"] {
            try TunConfiguration.validateName(name)
        }
    }

    @Test func missingCloneDeviceIsTunUnavailable() {
        let config = TunConfiguration(name: "svrmissing0", clonePath: "/nonexistent/svr-tun")
        #expect {
            _ = try TunDevice(config)
        } throws: { error in
            let e = error as! TunError
            return e.kind == .tunUnavailable && e.errno == ENOENT && e.operation == "open /nonexistent/svr-tun"
                && e.description.contains("No such file or directory")
        }
    }

    @Test func inconsistentConfigurationsAreRejected() {
        let bad: [TunConfiguration] = [
            TunConfiguration(name: "svr0", queues: 0),
            TunConfiguration(name: "svr0", queues: 300),
            TunConfiguration(name: "svr0", queues: 2, multiQueue: false),
            TunConfiguration(name: "svr0", offloads: [.checksum]),
            TunConfiguration(name: "svr0", virtioHeader: true, offloads: [.tso4]),
            TunConfiguration(name: "svr0", mtu: 20),
        ]
        for c in bad {
            #expect(throws: TunError.self) { try c.validate() }
            do { try c.validate() } catch { #expect(error.kind == .invalidConfiguration) }
        }
        #expect(TunConfiguration(name: "svr0", queues: 4).multiQueue)
        #expect(!TunConfiguration(name: "svr0").multiQueue)
    }

    @Test func errnoMapsToKinds() {
        #expect(TunError.kindForOpen(errno: ENOENT, deviceExisted: false) == .tunUnavailable)
        #expect(TunError.kindForOpen(errno: ENODEV, deviceExisted: false) == .tunUnavailable)
        #expect(TunError.kindForOpen(errno: EPERM, deviceExisted: false) == .permissionDenied)
        #expect(TunError.kindForOpen(errno: EACCES, deviceExisted: true) == .permissionDenied)
        #expect(TunError.kindForOpen(errno: EBUSY, deviceExisted: true) == .nameInUse)
        #expect(TunError.kindForOpen(errno: EINVAL, deviceExisted: true) == .nameInUse)
        #expect(TunError.kindForOpen(errno: EINVAL, deviceExisted: false) == .ioctlFailed)
        let e = TunError(.permissionDenied, operation: "TUNSETIFF queue 0", device: "svr0", errno: EPERM)
        #expect(e.description == "tun svr0: TUNSETIFF queue 0 failed: permission denied (needs CAP_NET_ADMIN): Operation not permitted (errno 1)")
    }

    @Test func offloadsDescribeThemselves() {
        #expect(TunOffloads([.checksum, .tso4, .uso6]).description == "[csum,tso4,uso6]")
        #expect(TunOffloads().description == "[]")
    }

    @Test func wakeupIsStickyUntilReset() throws {
        let w = try TunWakeup()
        #expect(!w.isWoken)
        w.wake()
        w.wake()
        #expect(w.isWoken)
        #expect(w.isWoken)  // not consumed by looking
        w.reset()
        #expect(!w.isWoken)
    }
}

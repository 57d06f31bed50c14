// WanFilter through the real kernel, without root: the program is attached to one end of an
// AF_UNIX datagram socket pair, where the kernel runs it on each datagram with offset 0 at
// its first byte — exactly where an AF_PACKET SOCK_DGRAM socket has the IPv4 header — and
// silently drops what it rejects. (The pkt_type of such datagrams is PACKET_HOST, as for
// unicast frames to this host.) So each case below is a verdict of the kernel's BPF
// interpreter on our generated program.

import Glibc
import TestSupport
import Testing
@testable import TunIO

private let wp = ipv4("10.91.0.1")
private let peer = ipv4("10.91.0.2")

/// A socket pair with `filter` on the receiving end.
private final class FilteredPair {
    let tx: Int32
    let rx: Int32

    init(_ filter: WanFilter) throws {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw TestSupportError("socketpair: errno \(errno)")
        }
        let rc = WanSys.attach(filter, to: fds[1])
        guard rc == 0 else {
            close(fds[0]); close(fds[1])
            throw TestSupportError("SO_ATTACH_FILTER: errno \(-rc)")
        }
        tx = fds[0]
        rx = fds[1]
    }

    deinit {
        close(tx)
        close(rx)
    }

    /// Sends `packet` and tells whether the filter let it through (whole).
    func passes(_ packet: [UInt8]) -> Bool {
        let sent = packet.withUnsafeBytes { send(tx, $0.baseAddress, $0.count, 0) }
        precondition(sent == packet.count, "send on a socket pair failed")
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { recv(rx, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        return n == packet.count && Array(buf[0..<n]) == packet
    }
}

@Suite struct WanIOFilterTests {
    @Test func defaultFilterAcceptsWaypointTrafficOnly() throws {
        let f = try FilteredPair(.ipv4(destination: wp))
        let payload = Array(repeating: UInt8(0xa5), count: 80)
        // accepted: UDP and TCP to the waypoint range and to 1280, range bounds included
        #expect(f.passes(udp4(peer, 16385, wp, 16384, payload)))
        #expect(f.passes(udp4(peer, 16385, wp, 65535, payload)))
        #expect(f.passes(udp4(peer, 1280, wp, 1280, [1, 2, 3])))
        #expect(f.passes(tcpSyn4(peer, 16384, wp, 20001, payload: payload)))
        #expect(f.passes(ipv4Packet(src: peer, dst: wp, proto: 6, l4: tcpSegment(srcPort: 1, dstPort: 1280, seq: 7, flags: 0x10))))
        // a header with options: the ports are found behind them
        #expect(f.passes(ipv4Packet(src: peer, dst: wp, proto: 17, l4: udpSegment(srcPort: 9, dstPort: 30000, payload: payload),
                                    options: [1, 1, 1, 0])))
        #expect(!f.passes(ipv4Packet(src: peer, dst: wp, proto: 17, l4: udpSegment(srcPort: 30000, dstPort: 9, payload: payload),
                                     options: [1, 1, 1, 0])))
        // a first fragment carries the ports and passes
        #expect(f.passes(ipv4Packet(src: peer, dst: wp, proto: 17, l4: udpSegment(srcPort: 9, dstPort: 30000, payload: payload), fragment: 0x2000)))

        // rejected: ports outside, other destination, other protocols
        #expect(!f.passes(udp4(peer, 16385, wp, 16383, payload)))
        #expect(!f.passes(udp4(peer, 16385, wp, 1279, payload)))
        #expect(!f.passes(udp4(peer, 16385, wp, 1281, payload)))
        #expect(!f.passes(udp4(peer, 20000, wp, 53, payload)))              // source port in range does not count
        #expect(!f.passes(udp4(peer, 16385, ipv4("10.91.0.3"), 20000, payload)))
        #expect(!f.passes(udp4(wp, 16385, peer, 20000, payload)))           // our own send seen on the wire
        #expect(!f.passes(ipv4Packet(src: peer, dst: wp, proto: 1, l4: [8, 0, 0, 0, 0x4e, 0x20, 0x4e, 0x20])))  // ICMP
        #expect(!f.passes(ipv4Packet(src: peer, dst: wp, proto: 132, l4: udpSegment(srcPort: 1, dstPort: 20000, payload: []))))  // SCTP
        // rejected: a later fragment (its first bytes are payload, not ports)
        #expect(!f.passes(ipv4Packet(src: peer, dst: wp, proto: 17, l4: udpSegment(srcPort: 9, dstPort: 30000, payload: payload), fragment: 0x0001)))
        #expect(!f.passes(ipv4Packet(src: peer, dst: wp, proto: 17, l4: udpSegment(srcPort: 9, dstPort: 30000, payload: payload), fragment: 0x20b9)))
        // rejected: malformed — truncated before the ports, IHL < 5, not version 4
        let whole = udp4(peer, 16385, wp, 20000, payload)
        #expect(!f.passes(Array(whole[0..<21])))
        #expect(f.passes(Array(whole[0..<24])))  // the ports are there: accepted (the engine validates lengths)
        var shortIHL = whole
        shortIHL[0] = 0x44
        #expect(!f.passes(shortIHL))
        var v6 = whole
        v6[0] = 0x65
        #expect(!f.passes(v6))
    }

    @Test func icmpFragmentationNeededPassesWhenAskedFor() throws {
        let f = try FilteredPair(.ipv4(destination: wp, protocols: [.udp, .tcp, .icmpFragmentationNeeded]))
        let quoted = udp4(wp, 16384, peer, 16385, Array(repeating: 1, count: 40))
        let fragNeeded = ipv4Packet(src: ipv4("10.91.0.9"), dst: wp, proto: 1, l4: [3, 4, 0, 0, 0, 0, 0x05, 0x00] + quoted)
        #expect(f.passes(fragNeeded))
        #expect(f.passes(udp4(peer, 16385, wp, 16384, [1, 2, 3])))  // the rest unchanged
        #expect(!f.passes(ipv4Packet(src: peer, dst: wp, proto: 1, l4: [3, 3, 0, 0, 0, 0, 0, 0] + quoted)))  // port unreachable
        #expect(!f.passes(ipv4Packet(src: peer, dst: wp, proto: 1, l4: [8, 0, 0, 0, 0x4e, 0x20, 0x4e, 0x20])))  // echo
        #expect(!f.passes(ipv4Packet(src: peer, dst: ipv4("10.91.0.3"), proto: 1, l4: [3, 4, 0, 0, 0, 0, 0x05, 0x00] + quoted)))
        #expect(!f.passes(ipv4Packet(src: peer, dst: wp, proto: 1, l4: [3, 4, 0, 0, 0, 0, 0x05, 0x00] + quoted, fragment: 0x2000)))
        // without the option, no ICMP at all (the default filter above)
        #expect(!(try FilteredPair(.ipv4(destination: wp))).passes(fragNeeded))
    }

    @Test func protocolsAndSeveralPortRanges() throws {
        let f = try FilteredPair(.ipv4(destination: wp, protocols: .udp, ports: [100...200, 300...300, 400...500, 1000...1000]))
        for (port, expected) in [(99, false), (100, true), (150, true), (200, true), (201, false), (299, false), (300, true),
                                 (301, false), (399, false), (400, true), (500, true), (501, false), (1000, true), (1001, false)] {
            #expect(f.passes(udp4(peer, 5, wp, UInt16(port), [0])) == expected, "port \(port)")
        }
        #expect(!f.passes(tcpSyn4(peer, 5, wp, 150, payload: [])))  // TCP not asked for
        let tcpOnly = try FilteredPair(.ipv4(destination: wp, protocols: .tcp, ports: [7...7]))
        #expect(tcpOnly.passes(tcpSyn4(peer, 5, wp, 7, payload: [])))
        #expect(!tcpOnly.passes(udp4(peer, 5, wp, 7, [0])))
    }

    @Test func ipv6FilterAcceptsWaypointTrafficWithoutExtensionHeadersOnly() throws {
        let a = ipv6("fd00:91::1")
        let b = ipv6("fd00:91::2")
        let f = try FilteredPair(.ipv6(destination: a))
        let payload = Array(repeating: UInt8(0x5a), count: 80)
        #expect(f.passes(udp6(b, 16385, a, 16384, payload)))
        #expect(f.passes(udp6(b, 16385, a, 65535, payload)))
        #expect(f.passes(udp6(b, 1280, a, 1280, [1])))
        #expect(f.passes(tcpSyn6(b, 16384, a, 20001, payload: payload)))
        #expect(!f.passes(udp6(b, 16385, a, 16383, payload)))
        #expect(!f.passes(udp6(b, 16385, ipv6("fd00:91::3"), 20000, payload)))
        #expect(!f.passes(udp6(b, 16385, ipv6("fd01:91::1"), 20000, payload)))   // differs in the first word only
        #expect(!f.passes(udp6(b, 16385, ipv6("fd00:91::1:1"), 20000, payload)))  // differs in the third word only
        #expect(!f.passes(ipv6Packet(src: b, dst: a, nextHeader: 17, l4: udpSegment(srcPort: 1, dstPort: 20000, payload: []), extensionHeader: 44)))
        #expect(!f.passes(ipv6Packet(src: b, dst: a, nextHeader: 58, l4: [128, 0, 0, 0, 0x4e, 0x20, 0x4e, 0x20])))  // ICMPv6
        #expect(!f.passes(Array(udp6(b, 16385, a, 20000, payload)[0..<42])))   // cut before the port
        #expect(!f.passes(udp4(ipv4("10.91.0.2"), 16385, ipv4("10.91.0.1"), 20000, payload)))
        var v4nibble = udp6(b, 16385, a, 20000, payload)
        v4nibble[0] = 0x45
        #expect(!f.passes(v4nibble))
        let v4 = try WanFilter.ipv4(destination: ipv4("10.91.0.1"))
        let v6 = try WanFilter.ipv6(destination: a)
        #expect(v6.isIPv6 && !v4.isIPv6 && v6.etherType == 0x86dd && v4.etherType == 0x0800)
        #expect(throws: WanIOError.self) { try WanFilter.ipv6(destination: [1, 2, 3, 4]) }
    }

    @Test func theProgramIsTheDocumentedOne() throws {
        let p = try WanFilter.ipv4(destination: 0x0a5b_0001, ports: [16384...65535, 1280...1280]).instructions
        #expect(p.count == 19)
        // 17 is `ret #0` (drop), 18 is `ret #-1` (accept); jumps count from the next instruction
        #expect(p[0] == .init(code: 0x20, k: 0xffff_f004))                      // ld #pkttype
        #expect(p[1] == .init(code: 0x15, jt: 0, jf: 15, k: 0))                 // jeq #PACKET_HOST
        #expect(p[2] == .init(code: 0x30, k: 0))                                // ldb [0]
        #expect(p[3] == .init(code: 0x35, jt: 0, jf: 13, k: 0x45) && p[4] == .init(code: 0x25, jt: 12, jf: 0, k: 0x4f))
        #expect(p[5] == .init(code: 0x20, k: 16))                               // ld [16]
        #expect(p[6] == .init(code: 0x15, jt: 0, jf: 10, k: 0x0a5b_0001))       // jeq #waypoint
        #expect(p[7] == .init(code: 0x30, k: 9))                                // ldb [9]
        #expect(p[8] == .init(code: 0x15, jt: 1, jf: 0, k: 17) && p[9] == .init(code: 0x15, jt: 0, jf: 7, k: 6))
        #expect(p[10] == .init(code: 0x28, k: 6))                               // ldh [6]
        #expect(p[11] == .init(code: 0x45, jt: 5, jf: 0, k: 0x1fff))            // jset #0x1fff
        #expect(p[12] == .init(code: 0xb1) && p[13] == .init(code: 0x48, k: 2)) // ldxb 4*([0]&0xf); ldh [x+2]
        #expect(p[14] == .init(code: 0x35, jt: 0, jf: 1, k: 16384) && p[15] == .init(code: 0x25, jt: 0, jf: 2, k: 65535))
        #expect(p[16] == .init(code: 0x15, jt: 1, jf: 0, k: 1280))
        #expect(p[17] == .init(code: 0x06, k: 0) && p[18] == .init(code: 0x06, k: 0xffff_ffff))
    }

    @Test func badFilterParametersAreTyped() {
        #expect(throws: WanIOError.self) { try WanFilter.ipv4(destination: wp, ports: []) }
        #expect(throws: WanIOError.self) { try WanFilter.ipv4(destination: wp, protocols: []) }
        let many = (0..<65).map { UInt16($0 * 10)...UInt16($0 * 10 + 1) }
        do {
            _ = try WanFilter.ipv4(destination: wp, ports: many)
            Issue.record("65 ranges accepted")
        } catch {
            #expect(error.kind == .invalidConfiguration && error.errno == 0)
        }
        // 64 ranges fit in 8-bit jumps
        #expect((try? WanFilter.ipv4(destination: wp, ports: Array(many.prefix(64)))) != nil)
    }

    @Test func partialChecksumIsCompleted() {
        for original in [udp4(peer, 16384, wp, 16385, Array("partial".utf8)),
                         tcpSyn4(peer, 16384, wp, 16385, payload: Array(repeating: 7, count: 81))] {
            // CHECKSUM_PARTIAL leaves the folded pseudo-header sum (not complemented) in the field.
            var p = original
            let field = p[9] == 6 ? 36 : 26
            p[field] = 0
            p[field + 1] = 0
            let pseudo: [UInt8] = Array(p[12..<20]) + [0, p[9], UInt8((p.count - 20) >> 8), UInt8((p.count - 20) & 0xff)]
            let partial = ~pseudo.withUnsafeBytes { InternetChecksum.checksum($0) }
            p[field] = UInt8(partial >> 8)
            p[field + 1] = UInt8(partial & 0xff)
            #expect(p != original)
            let done = p.withUnsafeMutableBytes { WanReceiver.completeChecksum($0) }
            #expect(done && p == original)
        }
        // IPv6: the pseudo-header has the 16-byte addresses and a 32-bit length.
        let original6 = udp6(ipv6("fd00:91::2"), 16384, ipv6("fd00:91::1"), 16385, Array("partial v6".utf8))
        var p6 = original6
        let pseudo6: [UInt8] = Array(p6[8..<40]) + [0, 0, 0, UInt8(p6.count - 40), 0, 0, 0, 17]
        let partial6 = ~pseudo6.withUnsafeBytes { InternetChecksum.checksum($0) }
        p6[46] = UInt8(partial6 >> 8)
        p6[47] = UInt8(partial6 & 0xff)
        #expect(p6 != original6)
        #expect(p6.withUnsafeMutableBytes { WanReceiver.completeChecksum($0) } && p6 == original6)
        var icmp = ipv4Packet(src: peer, dst: wp, proto: 1, l4: [8, 0, 0, 0, 0, 1, 0, 1])
        #expect(!icmp.withUnsafeMutableBytes { WanReceiver.completeChecksum($0) })
    }
}

// Helpers for the WAN I/O tests: hand-built IPv4 packets (any protocol, TCP with flags and
// payload, fragments), a raw-socket sender independent of WanSender, two namespaces joined
// by a veth pair, and opening receivers/senders inside a namespace.

import Glibc
import TestSupport
@testable import TunIO

// ---- packets --------------------------------------------------------------------------

/// An IPv4 packet with a correct header checksum and, for TCP/UDP, a correct L4 checksum.
/// `l4` is the L4 header and payload with a zero checksum field; `options` (a multiple of 4
/// bytes) lengthen the IP header; `fragment` is the flags/offset word (default DF).
func ipv4Packet(src: UInt32, dst: UInt32, proto: UInt8, l4: [UInt8], id: UInt16 = 0x4242,
                fragment: UInt16 = 0x4000, options: [UInt8] = []) -> [UInt8] {
    let hl = 20 + options.count
    var p = [UInt8](repeating: 0, count: hl) + l4
    func put16(_ v: UInt16, _ at: Int) { p[at] = UInt8(v >> 8); p[at + 1] = UInt8(v & 0xff) }
    p[0] = 0x40 | UInt8(hl / 4)
    put16(UInt16(p.count), 2)
    put16(id, 4)
    put16(fragment, 6)
    p[8] = 64
    p[9] = proto
    for i in 0..<4 { p[12 + i] = UInt8(truncatingIfNeeded: src >> (24 - 8 * UInt32(i))) }
    for i in 0..<4 { p[16 + i] = UInt8(truncatingIfNeeded: dst >> (24 - 8 * UInt32(i))) }
    p.replaceSubrange(20..<hl, with: options)
    put16(p.withUnsafeBytes { InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<hl])) }, 10)
    if fragment & 0x3fff == 0 {  // a whole datagram (not a fragment): fill in the L4 checksum
        if let field = proto == 6 ? hl + 16 : proto == 17 ? hl + 6 : nil {
            var c = l4Checksum(p)
            if proto == 17 && c == 0 { c = 0xffff }
            put16(c, field)
        }
    }
    return p
}

/// The TCP/UDP checksum over pseudo-header and segment of an IPv4 packet, with the checksum
/// field as it is: 0 for a packet whose checksum is right, the value to store if the field is 0.
func l4Checksum(_ p: [UInt8]) -> UInt16 {
    let hl = Int(p[0] & 0x0f) * 4
    let len = p.count - hl
    let pseudo: [UInt8] = Array(p[12..<20]) + [0, p[9], UInt8(len >> 8), UInt8(len & 0xff)]
    let s = pseudo.withUnsafeBytes { InternetChecksum.sum($0) }
    return p.withUnsafeBytes { InternetChecksum.finish(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: $0[hl...]), initial: s)) }
}

/// A UDP header + payload (checksum 0, filled by `ipv4Packet`).
func udpSegment(srcPort: UInt16, dstPort: UInt16, payload: [UInt8]) -> [UInt8] {
    let len = 8 + payload.count
    return [UInt8(srcPort >> 8), UInt8(srcPort & 0xff), UInt8(dstPort >> 8), UInt8(dstPort & 0xff),
            UInt8(len >> 8), UInt8(len & 0xff), 0, 0] + payload
}

/// A TCP header (20 bytes, no options) + payload with the given flags (0x02 SYN, 0x10 ACK…).
func tcpSegment(srcPort: UInt16, dstPort: UInt16, seq: UInt32, ack: UInt32 = 0, flags: UInt8, payload: [UInt8] = []) -> [UInt8] {
    var h = [UInt8](repeating: 0, count: 20)
    h[0] = UInt8(srcPort >> 8); h[1] = UInt8(srcPort & 0xff)
    h[2] = UInt8(dstPort >> 8); h[3] = UInt8(dstPort & 0xff)
    for i in 0..<4 { h[4 + i] = UInt8(truncatingIfNeeded: seq >> (24 - 8 * UInt32(i))) }
    for i in 0..<4 { h[8 + i] = UInt8(truncatingIfNeeded: ack >> (24 - 8 * UInt32(i))) }
    h[12] = 5 << 4
    h[13] = flags
    h[14] = 0xff; h[15] = 0xff  // window
    return h + payload
}

func udp4(_ src: UInt32, _ sport: UInt16, _ dst: UInt32, _ dport: UInt16, _ payload: [UInt8], id: UInt16 = 0x4242) -> [UInt8] {
    ipv4Packet(src: src, dst: dst, proto: 17, l4: udpSegment(srcPort: sport, dstPort: dport, payload: payload), id: id)
}

func tcpSyn4(_ src: UInt32, _ sport: UInt16, _ dst: UInt32, _ dport: UInt16, payload: [UInt8]) -> [UInt8] {
    ipv4Packet(src: src, dst: dst, proto: 6, l4: tcpSegment(srcPort: sport, dstPort: dport, seq: 0x1000_0001, flags: 0x02, payload: payload))
}

/// Destination port of an IPv4 TCP/UDP packet.
func dstPort(_ p: [UInt8]) -> UInt16 { be16(p, Int(p[0] & 0x0f) * 4 + 2) }

// ---- a raw socket in the test (not WanSender) ----------------------------------------

/// An IPPROTO_RAW socket; create it inside `ns.run` so it sends in that namespace.
func rawSocket() throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_RAW))
    guard fd >= 0 else { throw TestSupportError("socket raw: errno \(errno)") }
    return fd
}

/// Sends a whole IPv4 packet through a raw socket to the destination in its header.
func rawSend(_ fd: Int32, _ packet: [UInt8]) throws {
    var sa = sockaddrIn(be32(packet, 16), 0)
    let n = packet.withUnsafeBytes { buf in
        withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, buf.baseAddress, buf.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }
    guard n == packet.count else { throw TestSupportError("raw sendto: \(n), errno \(errno)") }
}

// ---- two namespaces joined by a veth pair ---------------------------------------------

let wanA = ipv4("10.91.0.1")       // the waypoint, on svrv0 in namespace a
let wanOther = ipv4("10.91.0.3")   // another address of namespace a (not a waypoint)
let wanB = ipv4("10.91.0.2")       // the peer, on svrv1 in namespace b

/// Namespaces `a` (svrv0: 10.91.0.1 and 10.91.0.3) and `b` (svrv1: 10.91.0.2) joined by a
/// veth pair. `close()` removes both (the veth goes with them).
final class WanPair {
    let a: TestNamespace
    let b: TestNamespace

    /// With `ipv6`, IPv6 is on and the links also get fd00:91::1 and fd00:91::3 (a) and
    /// fd00:91::2 (b), without duplicate address detection.
    init(_ tag: String, ipv6: Bool = false) throws {
        a = try TestNamespace("\(tag)a", ipv6: ipv6)
        do {
            b = try TestNamespace("\(tag)b", ipv6: ipv6)
        } catch {
            a.close()
            throw error
        }
        do {
            try a.check("ip link add svrv0 type veth peer name svrv1 netns \(b.name)")
            try a.check("ip addr add 10.91.0.1/24 dev svrv0 && ip addr add 10.91.0.3/24 dev svrv0 && ip link set svrv0 up")
            try b.check("ip addr add 10.91.0.2/24 dev svrv1 && ip link set svrv1 up")
            if ipv6 {
                try a.check("ip -6 addr add fd00:91::1/64 dev svrv0 nodad && ip -6 addr add fd00:91::3/64 dev svrv0 nodad")
                try b.check("ip -6 addr add fd00:91::2/64 dev svrv1 nodad")
            }
        } catch {
            close()
            throw error
        }
    }

    func close() {
        a.close()
        b.close()
    }
}

/// Opens a receiver inside `ns`.
func openReceiver(in ns: TestNamespace, _ interface: String, _ filter: WanFilter, maxBatch: Int = 128) throws -> WanReceiver {
    let holder = Holder<WanReceiver>()
    try ns.run { holder.value = try WanReceiver(interface: interface, filter: filter, maxBatch: maxBatch) }
    return holder.value.take()!
}

/// Opens a sender inside `ns`.
func openSender(in ns: TestNamespace, _ interface: String?, maxBatch: Int = 128) throws -> WanSender {
    let holder = Holder<WanSender>()
    try ns.run { holder.value = try WanSender(interface: interface, maxBatch: maxBatch) }
    return holder.value.take()!
}

/// Reads from `rx` for `window` (or until `until` packets arrived) and returns copies of
/// all packets received, in order.
func collect(_ rx: inout WanReceiver, window: Duration = .seconds(1), until: Int = .max) throws -> [[UInt8]] {
    var batch = PacketBatch(capacity: 64, maxPacketSize: 2048)
    var out: [[UInt8]] = []
    let deadline = ContinuousClock.now + window
    while ContinuousClock.now < deadline && out.count < until {
        let n = try rx.read(into: &batch)
        for i in 0..<n { out.append(Array(batch.unsafePacket(at: i))) }
        if n == 0 { _ = try rx.wait(timeout: .milliseconds(20)) }
    }
    return out
}

/// Fills `batch` with `packets` (slot i = packet i, at offset headroom).
func fill(_ batch: inout PacketBatch, _ packets: [[UInt8]]) {
    for (i, p) in packets.enumerated() {
        batch.setPacket(at: i, offset: batch.headroom, length: p.count)
        p.withUnsafeBytes { batch.unsafePacket(at: i).copyMemory(from: $0) }
    }
    batch.count = packets.count
}

// ---- IPv6 -----------------------------------------------------------------------------

/// An IPv6 address from text with "::" (no embedded IPv4), as 16 bytes.
func ipv6(_ s: String) -> [UInt8] {
    let halves = s.split(separator: "::", maxSplits: 1, omittingEmptySubsequences: false).map {
        $0.split(separator: ":").map { UInt16($0, radix: 16)! }
    }
    let groups = halves.count == 1 ? halves[0] : halves[0] + [UInt16](repeating: 0, count: 8 - halves[0].count - halves[1].count) + halves[1]
    return groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
}

/// An IPv6 packet; for TCP/UDP directly behind the header, a correct L4 checksum (the field
/// in `l4` must be 0). `extensionHeader`: a next-header value (e.g. 44, fragment) whose
/// 8-byte header is put in front of `l4`.
func ipv6Packet(src: [UInt8], dst: [UInt8], nextHeader: UInt8, l4: [UInt8], extensionHeader: UInt8? = nil) -> [UInt8] {
    var body = l4
    var first = nextHeader
    if let ext = extensionHeader {
        body = [nextHeader, 0, 0, 0, 0, 0, 0, 1] + l4  // a fragment header: offset 0, M=0, id 1
        first = ext
    }
    var p: [UInt8] = [0x60, 0, 0, 0, UInt8(body.count >> 8), UInt8(body.count & 0xff), first, 64] + src + dst + body
    if extensionHeader == nil, let field = nextHeader == 6 ? 56 : nextHeader == 17 ? 46 : nil {
        let len = p.count - 40
        let pseudo: [UInt8] = src + dst + [0, 0, UInt8(len >> 8), UInt8(len & 0xff), 0, 0, 0, nextHeader]
        let s = pseudo.withUnsafeBytes { InternetChecksum.sum($0) }
        var c = p.withUnsafeBytes { InternetChecksum.finish(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: $0[40...]), initial: s)) }
        if nextHeader == 17 && c == 0 { c = 0xffff }
        p[field] = UInt8(c >> 8)
        p[field + 1] = UInt8(c & 0xff)
    }
    return p
}

func udp6(_ src: [UInt8], _ sport: UInt16, _ dst: [UInt8], _ dport: UInt16, _ payload: [UInt8]) -> [UInt8] {
    ipv6Packet(src: src, dst: dst, nextHeader: 17, l4: udpSegment(srcPort: sport, dstPort: dport, payload: payload))
}

func tcpSyn6(_ src: [UInt8], _ sport: UInt16, _ dst: [UInt8], _ dport: UInt16, payload: [UInt8]) -> [UInt8] {
    ipv6Packet(src: src, dst: dst, nextHeader: 6, l4: tcpSegment(srcPort: sport, dstPort: dport, seq: 0x2000_0001, flags: 0x02, payload: payload))
}

let wan6A = ipv6("fd00:91::1")
let wan6Other = ipv6("fd00:91::3")
let wan6B = ipv6("fd00:91::2")

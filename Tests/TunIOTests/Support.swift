// Helpers for the TunIO tests: opening a device inside a test namespace, hand-built
// IPv4/UDP packets with correct checksums, and UDP sockets.

import Glibc
import TestSupport
import TunIO

/// Carries a noncopyable value out of a closure run on another thread.
final class Holder<T: ~Copyable>: @unchecked Sendable {
    var value: T?
    init() {}
}

/// Opens a TUN device on a thread inside `ns`, so the device belongs to that namespace.
func openTun(in ns: TestNamespace, _ config: TunConfiguration) throws -> TunDevice {
    let holder = Holder<TunDevice>()
    try ns.run { holder.value = try TunDevice(config) }
    return holder.value.take()!
}

/// Opens a TUN device inside `ns` and returns the error it throws (nil if it opened).
func openError(in ns: TestNamespace, _ config: TunConfiguration) throws -> TunError? {
    try ns.run { () -> TunError? in
        do throws(TunError) {
            _ = try TunDevice(config)
            return nil
        } catch {
            return error
        }
    }
}

extension TestNamespace {
    /// Runs a command inside the namespace and throws with its output if it fails.
    func check(_ command: String) throws {
        let r = sh(command)
        guard r.status == 0 else { throw TestSupportError("`\(command)` failed (\(r.status)): \(r.output)") }
    }

    /// The JSON object of `ip -d -j link show` for `device`, or nil if it does not exist.
    func linkJSON(_ device: String) -> String? {
        let r = sh("ip -d -j link show dev \(device)")
        return r.status == 0 && r.output.contains("\"ifname\":\"\(device)\"") ? r.output : nil
    }
}

/// An IPv4 address from dotted quad, host order.
func ipv4(_ s: String) -> UInt32 {
    s.split(separator: ".").reduce(0) { $0 << 8 | UInt32($1)! }
}

/// Builds an IPv4/UDP packet with correct IP header and UDP checksums.
func udpPacket(src: UInt32, srcPort: UInt16, dst: UInt32, dstPort: UInt16, payload: [UInt8], ttl: UInt8 = 64) -> [UInt8] {
    let udpLen = 8 + payload.count
    var p = [UInt8](repeating: 0, count: 20 + udpLen)
    func put16(_ v: UInt16, _ at: Int) { p[at] = UInt8(v >> 8); p[at + 1] = UInt8(v & 0xff) }
    func put32(_ v: UInt32, _ at: Int) { put16(UInt16(v >> 16), at); put16(UInt16(v & 0xffff), at + 2) }
    p[0] = 0x45
    put16(UInt16(p.count), 2)
    put16(0x1234, 4)
    put16(0x4000, 6)  // DF
    p[8] = ttl
    p[9] = 17
    put32(src, 12)
    put32(dst, 16)
    put16(p.withUnsafeBytes { InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<20])) }, 10)
    put16(srcPort, 20)
    put16(dstPort, 22)
    put16(UInt16(udpLen), 24)
    p.replaceSubrange(28..., with: payload)
    var c = p.withUnsafeBytes { udpChecksumSum($0) }
    c = c == 0 ? 0xffff : c
    put16(c, 26)
    return p
}

/// The UDP checksum over pseudo-header and UDP segment of an IPv4/UDP packet (IHL 5), with
/// the checksum field as it is: 0 when the packet's checksum is right and the field is set,
/// the value to store when the field is 0.
func udpChecksumSum(_ p: UnsafeRawBufferPointer) -> UInt16 {
    let udpLen = p.count - 20
    var pseudo = [UInt8](repeating: 0, count: 12)
    for i in 0..<8 { pseudo[i] = p[12 + i] }
    pseudo[9] = 17
    pseudo[10] = UInt8(udpLen >> 8)
    pseudo[11] = UInt8(udpLen & 0xff)
    let s = pseudo.withUnsafeBytes { InternetChecksum.sum($0) }
    return InternetChecksum.finish(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: p[20...]), initial: s))
}

func be16(_ p: [UInt8], _ at: Int) -> UInt16 { UInt16(p[at]) << 8 | UInt16(p[at + 1]) }
func be32(_ p: [UInt8], _ at: Int) -> UInt32 { UInt32(be16(p, at)) << 16 | UInt32(be16(p, at + 2)) }

// ---- UDP sockets (the fd works from any thread once created inside the namespace) --------

/// A UDP socket bound to `addr:port` (host order); call inside `ns.run`. Returns the fd.
func udpSocket(bind addr: UInt32, port: UInt16) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TestSupportError("socket: errno \(errno)") }
    var sa = sockaddrIn(addr, port)
    let rc = withUnsafePointer(to: &sa) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else {
        let e = errno
        close(fd)
        throw TestSupportError("bind: errno \(e)")
    }
    return fd
}

func sockaddrIn(_ addr: UInt32, _ port: UInt16) -> sockaddr_in {
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_port = port.bigEndian
    sa.sin_addr.s_addr = addr.bigEndian
    return sa
}

/// Sends `payload` from socket `fd` to `addr:port` (host order).
func udpSend(_ fd: Int32, _ payload: [UInt8], to addr: UInt32, port: UInt16) throws {
    var sa = sockaddrIn(addr, port)
    let n = payload.withUnsafeBytes { buf in
        withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, buf.baseAddress, buf.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }
    guard n == payload.count else { throw TestSupportError("sendto: \(n), errno \(errno)") }
}

/// Receives one datagram within `timeoutMs`; returns payload and sender (host order), or nil.
func udpReceive(_ fd: Int32, timeoutMs: Int32 = 2000) -> (payload: [UInt8], from: UInt32, port: UInt16)? {
    var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    guard poll(&pfd, 1, timeoutMs) == 1 else { return nil }
    var buf = [UInt8](repeating: 0, count: 65536)
    var sa = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let n = buf.withUnsafeMutableBytes { b in
        withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, b.baseAddress, b.count, 0, $0, &len) }
        }
    }
    guard n >= 0 else { return nil }
    return (Array(buf[0..<n]), UInt32(bigEndian: sa.sin_addr.s_addr), UInt16(bigEndian: sa.sin_port))
}

/// Reads from `queue` until a packet matching `match` arrives or `timeout` passes; returns
/// a copy of the packet and the slot it was in.
func receive(
    _ queue: inout TunQueue, _ batch: inout PacketBatch, timeout: Duration = .seconds(3),
    where match: ([UInt8]) -> Bool
) throws -> (packet: [UInt8], slot: Int)? {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        let n = try queue.read(into: &batch)
        for i in 0..<n {
            let p = Array(batch.unsafePacket(at: i))
            if match(p) { return (p, i) }
        }
        if n == 0 { _ = try queue.wait(timeout: .milliseconds(50)) }
    }
    return nil
}

/// True if `p` is IPv4/UDP to `dstPort`.
func isUDP(_ p: [UInt8], dstPort: UInt16) -> Bool {
    p.count >= 28 && p[0] == 0x45 && p[9] == 17 && be16(p, 22) == dstPort
}

/// Starts a detached pthread running `body`.
func spawnDetached(_ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    let rc = pthread_create(&thread, nil, { arg in
        Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create failed")
    pthread_detach(thread)
}

extension TunDevice {
    /// Takes queue `index` or throws (`#require` does not take noncopyable values).
    mutating func requireQueue(_ index: Int) throws -> TunQueue {
        guard let q = takeQueue(index) else { throw TestSupportError("queue \(index) of \(name) not available") }
        return q
    }

    /// True if queue `index` can still be taken (takes and closes it if so).
    mutating func queueIsAvailable(_ index: Int) -> Bool {
        guard let q = takeQueue(index) else { return false }
        q.close()
        return true
    }
}

/// The running kernel's (major, minor) version, from uname(2).
func kernelVersion() -> (Int, Int) {
    var u = utsname()
    uname(&u)
    let release = withUnsafeBytes(of: &u.release) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
    let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
    return parts.count == 2 ? (parts[0], parts[1]) : (0, 0)
}

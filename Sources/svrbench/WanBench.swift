// svrbench wan: packets per second through WAN I/O, send and receive, one core each, against
// the same done with a plain UDP socket (what a UDP-only design would get).
//
//   svrbench wan send IF SRC DST [--mode raw|udp|udpgso] [--sizes 64,1400] [--batches 1,32,128] [--seconds S]
//   svrbench wan recv IF ADDR    [--mode raw|udp] [--batch 128] [--seconds S] [--drain F]
//
// send, raw: WanSender bound to IF sends IPv4/UDP packets SRC:16384 -> DST:16385 of `size`
//   bytes (whole IP packet) with sendmmsg batches of `batch`.
// send, udp: a UDP socket bound to SRC:16384 sends datagrams of `size - 28` bytes (the same
//   IP packet size) to DST:16385 with sendmmsg, one destination address per message.
// send, udpgso: the same socket with UDP_SEGMENT = size - 28: each message carries up to 64
//   datagrams that the kernel segments (what a UDP-only design can add; AF_PACKET and raw
//   sockets cannot), at most 64 KiB per message (47 datagrams of 1372 bytes).
// recv, raw: WanReceiver on IF with the default waypoint filter for ADDR, recvmmsg batches.
// recv, udp: a UDP socket bound to ADDR:16385, recvmmsg batches.
//
// Columns: pkts/s and Gbit/s (IP bytes, wall clock); cpu-ns/pkt = the thread's CPU time (user
// + system) per packet; dropped = sends dropped under back-pressure (send) or packets the
// kernel dropped because the receive buffer was full (recv, raw mode: PACKET_STATISTICS).
// A receive run lasts `seconds` from its first packet. With `--drain F` it measures the cost
// of receiving alone: after the first packet it stops reading for F seconds while the sender
// fills the socket buffer (256 MB), then times draining it with full batches until empty.
//
// The machine set-up (namespaces, veth, nft rules) is made by hand; docs/perf/wan.md has the
// commands. The benchmark never runs `ip` or `nft`.

internal import CShim
import Glibc
import TunIO

enum WanBench {
    static let about = "WAN I/O send/recv pkts/s: raw socket + AF_PACKET vs a UDP socket (run in namespaces; see docs/perf/wan.md)"

    static func run(_ args: [String]) {
        var positional: [String] = []
        var mode = "raw"
        var sizes = [64, 1400]
        var batches = [1, 32, 128]
        var seconds = 2.0
        var drain = 0.0
        var i = 0
        func list(_ s: String) -> [Int] { s.split(separator: ",").compactMap { Int($0) } }
        while i < args.count {
            let a = args[i]
            if a.hasPrefix("--") {
                guard i + 1 < args.count else { usage() }
                let v = args[i + 1]
                switch a {
                case "--mode": mode = v
                case "--sizes": sizes = list(v).filter { (48...1500).contains($0) }
                case "--batches", "--batch": batches = list(v).filter { (1...1024).contains($0) }
                case "--seconds": seconds = Double(v) ?? seconds
                case "--drain": drain = Double(v) ?? drain
                default: usage()
                }
                i += 2
            } else {
                positional.append(a)
                i += 1
            }
        }
        guard ["raw", "udp", "udpgso"].contains(mode) else { usage() }
        switch (positional.first, positional.count) {
        case ("send", 4):
            guard let src = parseIPv4(positional[2]), let dst = parseIPv4(positional[3]) else { usage() }
            print("WAN send (\(mode)) on \(positional[1]), \(seconds) s per row")
            print("mode  size(B)  batch     pkts/s   Gbit/s   ns/pkt  cpu-ns/pkt   dropped")
            for size in sizes {
                for b in batches {
                    printRow(mode, size, b, send(mode: mode, interface: positional[1], src: src, dst: dst, size: size, batch: b, seconds: seconds))
                }
            }
        case ("recv", 3):
            guard let addr = parseIPv4(positional[2]) else { usage() }
            let b = batches.last ?? 128
            print("WAN recv (\(mode)) on \(positional[1]), \(seconds) s from the first packet")
            print("mode  size(B)  batch     pkts/s   Gbit/s   ns/pkt  cpu-ns/pkt   dropped")
            let r = receive(mode: mode, interface: positional[1], address: addr, batch: b, seconds: seconds, drain: drain)
            printRow(mode, r.packets > 0 ? Int(r.bytes / r.packets) : 0, b, r)
        default:
            usage()
        }
    }

    private static func usage() -> Never {
        print("""
            usage: svrbench wan send IF SRC DST [--mode raw|udp|udpgso] [--sizes 64,1400] [--batches 1,32,128] [--seconds S]
                   svrbench wan recv IF ADDR    [--mode raw|udp] [--batch 128] [--seconds S] [--drain F]
            """)
        exit(2)
    }

    struct Result {
        var packets = 0
        var bytes = 0
        var seconds = 0.0
        var cpuSeconds = 0.0
        var dropped = 0
        var error: String?
    }

    private static func printRow(_ mode: String, _ size: Int, _ batch: Int, _ r: Result) {
        if let e = r.error {
            print("\(mode) \(size) \(batch): failed: \(e)")
            return
        }
        let pps = Double(r.packets) / max(r.seconds, 1e-9)
        let gbps = Double(r.bytes) * 8 / max(r.seconds, 1e-9) / 1e9
        let cols = [pad(mode, 4), pad(String(size), 8), pad(String(batch), 6), pad(String(Int(pps)), 10),
                    pad(fixed(gbps, 3), 8), pad(String(Int(1e9 / max(pps, 1))), 8),
                    pad(String(Int(r.cpuSeconds * 1e9 / Double(max(r.packets, 1)))), 11), pad(String(r.dropped), 9)]
        print(cols.joined(separator: " "))
    }

    // ---- send ------------------------------------------------------------------------------

    private static func send(mode: String, interface: String, src: UInt32, dst: UInt32, size: Int, batch: Int, seconds: Double) -> Result {
        var result = Result()
        var packets = PacketBatch(capacity: batch, maxPacketSize: 1500)
        for i in 0..<batch {
            packets.setPacket(at: i, offset: packets.headroom, length: size)
            writeUDP(into: packets.unsafePacket(at: i), src: src, dst: dst, id: UInt16(i + 1))
        }
        packets.count = batch
        let start = now()
        let cpuStart = now(CLOCK_THREAD_CPUTIME_ID)
        do {
            if mode == "raw" {
                var tx = try WanSender(interface: interface, maxBatch: batch)
                while now() - start < seconds {
                    result.packets += try tx.send(packets)
                }
                result.dropped = Int(tx.stats.droppedBackPressure + tx.stats.droppedRefused)
            } else {
                let udp = try UDPBatchSocket(bind: src, port: 16384, capacity: batch)
                // Messages and the datagrams (segments) each carries.
                var messages = batch
                var segments = [Int](repeating: 1, count: batch)
                let segment = size - 28
                let contiguous = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * segment, alignment: 64)
                defer { contiguous.deallocate() }
                if mode == "udpgso" {
                    var value = Int32(segment)
                    guard setsockopt(udp.fd, Int32(IPPROTO_UDP), 103 /* UDP_SEGMENT */, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                        throw UDPBatchSocket.Failure(description: "UDP_SEGMENT: errno \(errno)")
                    }
                    contiguous.initializeMemory(as: UInt8.self, repeating: 0x5a)
                    let perMessage = Swift.min(64, 65507 / segment)  // a datagram is at most 64 KiB
                    messages = (batch + perMessage - 1) / perMessage
                    for j in 0..<messages {
                        segments[j] = Swift.min(perMessage, batch - perMessage * j)
                        udp.set(j, UnsafeMutableRawBufferPointer(rebasing: contiguous[0..<segments[j] * segment]), to: dst, port: 16385)
                    }
                } else {
                    for i in 0..<batch {
                        let p = packets.unsafePacket(at: i)
                        udp.set(i, UnsafeMutableRawBufferPointer(rebasing: p[28...]), to: dst, port: 16385)
                    }
                }
                while now() - start < seconds {
                    let n = udp.send(count: messages)
                    if n < 0 {
                        guard n == -Int(EAGAIN) || n == -Int(ENOBUFS) else {
                            result.error = "sendmmsg: errno \(-n)"
                            break
                        }
                        result.dropped += batch
                    } else {
                        for j in 0..<messages { if j < n { result.packets += segments[j] } else { result.dropped += segments[j] } }
                    }
                }
            }
        } catch {
            result.error = "\(error)"
        }
        result.seconds = now() - start
        result.cpuSeconds = now(CLOCK_THREAD_CPUTIME_ID) - cpuStart
        result.bytes = result.packets * size
        return result
    }

    // ---- receive ---------------------------------------------------------------------------

    private static func receive(mode: String, interface: String, address: UInt32, batch: Int, seconds: Double, drain: Double) -> Result {
        var result = Result()
        var start = 0.0
        var cpuStart = 0.0
        let buffer = drain > 0 ? 256 << 20 : 8 << 20
        /// In drain mode: sleeps `drain` seconds and restarts the clocks; the run ends when empty.
        func pause() {
            guard drain > 0 else { return }
            usleep(UInt32(drain * 1e6))
            start = now()
            cpuStart = now(CLOCK_THREAD_CPUTIME_ID)
        }
        do {
            if mode == "raw" {
                var rx = try WanReceiver(interface: interface, filter: .ipv4(destination: address), receiveBufferBytes: buffer, maxBatch: batch)
                var packets = PacketBatch(capacity: batch, maxPacketSize: 1500)
                while result.packets == 0 {  // the clock starts with the first packet
                    if try rx.read(into: &packets) > 0 {
                        start = now()
                        cpuStart = now(CLOCK_THREAD_CPUTIME_ID)
                        _ = try rx.takeKernelDrops()
                        result.packets = 1
                    } else {
                        _ = try rx.wait(timeout: .milliseconds(100))
                    }
                }
                result.packets = 0
                pause()
                while now() - start < seconds {
                    let n = try rx.read(into: &packets)
                    if n == 0 && drain > 0 { break }
                    if n == 0 { _ = try rx.wait(timeout: .milliseconds(10)); continue }
                    result.packets += n
                    for i in 0..<n { result.bytes += packets.length(at: i) }
                }
                result.dropped = try rx.takeKernelDrops()
            } else {
                let udp = try UDPBatchSocket(bind: address, port: 16385, capacity: batch, buffer: Int32(buffer))
                var first = true
                while true {
                    let n = udp.receive(count: batch)
                    if n > 0 {
                        if first {
                            start = now()
                            cpuStart = now(CLOCK_THREAD_CPUTIME_ID)
                            first = false
                            pause()
                            continue
                        }
                        result.packets += n
                        for i in 0..<n { result.bytes += udp.length(i) + 28 }
                    } else if drain > 0 && !first {
                        break
                    } else {
                        udp.wait(milliseconds: 10)
                    }
                    if !first && now() - start >= seconds { break }
                }
            }
        } catch {
            result.error = "\(error)"
        }
        result.seconds = now() - start
        result.cpuSeconds = now(CLOCK_THREAD_CPUTIME_ID) - cpuStart
        return result
    }

    // ---- a batched UDP socket (the comparison) -----------------------------------------------

    /// A non-blocking UDP socket with `capacity` preallocated messages for sendmmsg/recvmmsg.
    private final class UDPBatchSocket {
        let fd: Int32
        let capacity: Int
        let messages: UnsafeMutablePointer<svr_mmsghdr>
        let iovecs: UnsafeMutablePointer<iovec>
        let addresses: UnsafeMutablePointer<sockaddr_in>
        let buffers: UnsafeMutableRawPointer

        struct Failure: Error, CustomStringConvertible { let description: String }

        init(bind address: UInt32, port: UInt16, capacity: Int, buffer: Int32 = 8 << 20) throws {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
            var size = buffer
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
            var sa = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: port.bigEndian,
                                 sin_addr: in_addr(s_addr: address.bigEndian), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
            let rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else {
                let e = errno
                close(fd)
                throw Failure(description: "bind: errno \(e)")
            }
            self.fd = fd
            self.capacity = capacity
            messages = .allocate(capacity: capacity)
            iovecs = .allocate(capacity: capacity)
            addresses = .allocate(capacity: capacity)
            addresses.initialize(repeating: sockaddr_in(), count: capacity)
            buffers = .allocate(byteCount: 2048 * capacity, alignment: 64)
            for i in 0..<capacity {
                (iovecs + i).initialize(to: iovec(iov_base: buffers + 2048 * i, iov_len: 2048))
                var h = msghdr()
                h.msg_iov = iovecs + i
                h.msg_iovlen = 1
                (messages + i).initialize(to: svr_mmsghdr(msg_hdr: h, msg_len: 0))
            }
        }

        deinit {
            close(fd)
            messages.deallocate()
            iovecs.deallocate()
            addresses.deallocate()
            buffers.deallocate()
        }

        /// Message `i` sends `payload` to `address:port`.
        func set(_ i: Int, _ payload: UnsafeMutableRawBufferPointer, to address: UInt32, port: UInt16) {
            addresses[i] = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: port.bigEndian,
                                       sin_addr: in_addr(s_addr: address.bigEndian), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
            iovecs[i] = iovec(iov_base: payload.baseAddress, iov_len: payload.count)
            messages[i].msg_hdr.msg_name = UnsafeMutableRawPointer(addresses + i)
            messages[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
        }

        func send(count: Int) -> Int { Int(svr_sendmmsg(fd, messages, UInt32(count), 0)) }
        func receive(count: Int) -> Int { Int(svr_recvmmsg(fd, messages, UInt32(count), 0)) }
        func length(_ i: Int) -> Int { Int(messages[i].msg_len) }

        func wait(milliseconds: Int32) {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, milliseconds)
        }
    }

    // ---- packets, numbers, time ----------------------------------------------------------

    /// An IPv4/UDP packet filling `p`: src:16384 -> dst:16385, correct checksums.
    private static func writeUDP(into p: UnsafeMutableRawBufferPointer, src: UInt32, dst: UInt32, id: UInt16) {
        for i in 0..<p.count { p[i] = UInt8(truncatingIfNeeded: i) }
        p.storeBytes(of: UInt16(0x4500).bigEndian, toByteOffset: 0, as: UInt16.self)
        p.storeBytes(of: UInt16(p.count).bigEndian, toByteOffset: 2, as: UInt16.self)
        p.storeBytes(of: id.bigEndian, toByteOffset: 4, as: UInt16.self)
        p.storeBytes(of: UInt16(0x4000).bigEndian, toByteOffset: 6, as: UInt16.self)  // DF
        p.storeBytes(of: UInt16(0x4011).bigEndian, toByteOffset: 8, as: UInt16.self)  // TTL 64, UDP
        p.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
        p.storeBytes(of: src.bigEndian, toByteOffset: 12, as: UInt32.self)
        p.storeBytes(of: dst.bigEndian, toByteOffset: 16, as: UInt32.self)
        p.storeBytes(of: InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: p[0..<20])).bigEndian, toByteOffset: 10, as: UInt16.self)
        p.storeBytes(of: UInt16(16384).bigEndian, toByteOffset: 20, as: UInt16.self)
        p.storeBytes(of: UInt16(16385).bigEndian, toByteOffset: 22, as: UInt16.self)
        p.storeBytes(of: UInt16(p.count - 20).bigEndian, toByteOffset: 24, as: UInt16.self)
        p.storeBytes(of: UInt16(0), toByteOffset: 26, as: UInt16.self)
        var pseudo = (src.bigEndian, dst.bigEndian, UInt16(17).bigEndian, UInt16(p.count - 20).bigEndian)
        let s = withUnsafeBytes(of: &pseudo) { InternetChecksum.sum($0) }
        var c = InternetChecksum.finish(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: p[20...]), initial: s))
        if c == 0 { c = 0xffff }
        p.storeBytes(of: c.bigEndian, toByteOffset: 26, as: UInt16.self)
    }

    private static func parseIPv4(_ s: String) -> UInt32? {
        let parts = s.split(separator: ".").compactMap { UInt8($0) }
        guard parts.count == 4 else { return nil }
        return parts.reduce(0) { $0 << 8 | UInt32($1) }
    }

    // Formatting and clocks are TunBench's.
    private static func pad(_ s: String, _ n: Int) -> String { TunBench.pad(s, n) }
    private static func fixed(_ v: Double, _ digits: Int) -> String { TunBench.fixed(v, digits) }
    private static func now(_ clock: clockid_t = CLOCK_MONOTONIC) -> Double { TunBench.now(clock) }
}

// WanReceiver: receives the whole IP packets (IPv4 or IPv6, one family per receiver)
// addressed to one waypoint on one WAN interface, in batches, through an AF_PACKET socket
// with a kernel filter.
//
// Why AF_PACKET: svrd needs the IP and L4 headers of every waypoint packet (it rewrites them
// in place) for UDP and TCP alike, and the host stack must never see those packets. A packet
// socket bound to the interface and to ETH_P_IP gets a copy of each IPv4 packet before IP
// input; nftables then drops the original at prerouting priority -300 (raw), so the host
// never answers (no RST, no ICMP port unreachable) and conntrack never sees it. The rules
// are in docs/wan-io.md. The BPF program (`WanFilter`) runs in the kernel, so only waypoint
// packets are copied to user space.
//
// Loop of a data-plane thread (the same shape as a TunQueue's):
//
//   var rx = try WanReceiver(interface: "eth0", filter: .ipv4(destination: waypoint))
//   rx.wakeup = shutdown
//   var batch = PacketBatch(capacity: 128, maxPacketSize: 1500)
//   while true {
//       let n = try rx.read(into: &batch)         // non-blocking: 0...capacity packets
//       if n == 0 {
//           if try rx.wait(timeout: .milliseconds(100)) == .woken { break }
//           continue
//       }
//       ... slots 0..<n hold whole IPv4 packets at offset `headroom` ...
//   }
//
// Checksums: a packet that reaches the interface with its L4 checksum not yet computed
// (CHECKSUM_PARTIAL: sent by a local container or VM over veth/virtio with checksum
// offload) is reported by PACKET_AUXDATA; `read` completes its TCP/UDP checksum in place,
// so every packet handed over carries the bytes a real wire would have carried.
//
// IPv6: a second receiver with a `WanFilter.ipv6` filter (bound to ETH_P_IPV6); everything
// above holds for it, with "IPv6" for "IPv4".
//
// Not handled yet: packets GRO merged into one superpacket larger than the batch's
// maxPacketSize (counted as oversized; turn GRO off on the WAN interface or use a
// maxPacketSize of 65535), IPv4 fragments after the first and IPv6 packets with extension
// headers (filtered out).
//
// Threads: one thread owns a receiver and its batches; only `wakeup` is shared.

import Glibc

/// Counters of one receiver. Owned by its thread.
public struct WanReceiverStats: Sendable, Equatable {
    /// Packets handed over by `read`.
    public var packets: UInt64 = 0
    /// Packets longer than the batch's maxPacketSize (truncated by the kernel), dropped.
    public var oversized: UInt64 = 0
    /// Packets whose TCP/UDP checksum was left to offload and completed by `read`.
    public var checksumsCompleted: UInt64 = 0
    public init() {}
}

/// A filtered AF_PACKET socket on one interface, owned by one data-plane thread.
public struct WanReceiver: ~Copyable, @unchecked Sendable {
    // @unchecked: the receiver owns its fd and message arrays alone; being noncopyable, it
    // can only be moved to another thread, never shared.

    /// The interface the socket is bound to.
    public let interface: String
    /// Its index in the namespace where the receiver was opened.
    public let interfaceIndex: Int32
    /// The filter attached to the socket.
    public let filter: WanFilter
    /// The receive buffer the kernel granted, in bytes (SO_RCVBUF reads back twice the
    /// requested size).
    public let receiveBufferBytes: Int
    /// Most packets one `read` takes (the message arrays are this long).
    public let maxBatch: Int
    /// The signal `wait(timeout:)` also listens to (share one with every queue).
    public var wakeup: TunWakeup?
    /// Counters (see `WanReceiverStats`).
    public private(set) var stats = WanReceiverStats()

    let fd: Int32
    private let messages: WanMessages

    /// Opens the socket on `interface` (in the calling thread's network namespace),
    /// attaches `filter` and binds to the interface and the filter's ethertype.
    /// - Parameters:
    ///   - receiveBufferBytes: requested with SO_RCVBUFFORCE (root), else SO_RCVBUF (capped
    ///     by net.core.rmem_max). 0 keeps the default.
    ///   - maxBatch: most packets per `read` (1...1024).
    public init(interface: String, filter: WanFilter, receiveBufferBytes: Int = 8 << 20, maxBatch: Int = 128) throws(WanIOError) {
        try WanIOError.validate(interface: interface)
        guard (1...1024).contains(maxBatch) else {
            throw WanIOError(.invalidConfiguration, operation: "open receiver", interface: interface, detail: "maxBatch must be 1...1024")
        }
        let index = TunSys.interfaceIndex(name: interface)
        guard index > 0 else {
            throw WanIOError(WanIOError.kindForSetup(errno: -index), operation: "if_nametoindex", interface: interface, errno: -index)
        }
        let (fd, step) = WanSys.openPacketSocket(ifindex: index, filter: filter, receiveBuffer: receiveBufferBytes)
        guard fd >= 0 else {
            throw WanIOError(WanIOError.kindForSetup(errno: -fd), operation: step, interface: interface, errno: -fd)
        }
        self.interface = interface
        self.interfaceIndex = index
        self.filter = filter
        self.receiveBufferBytes = WanSys.socketBuffer(fd: fd, send: false)
        self.maxBatch = maxBatch
        self.fd = fd
        self.messages = WanMessages(capacity: maxBatch, for: .receive)
    }

    deinit { TunSys.close(fd) }

    /// Closes the socket (same as letting the receiver go out of scope).
    public consuming func close() {}

    public typealias WaitResult = TunQueue.WaitResult

    /// Receives the packets waiting (up to `min(batch.capacity, maxBatch)`) with one
    /// recvmmsg and returns how many (also `batch.count`). Slot `i` holds a whole IP
    /// packet at offset `headroom`. The previous contents of the batch are overwritten.
    /// Returns 0 when nothing is waiting (EAGAIN). Oversized packets are dropped and counted.
    /// When the interface goes down, one read throws `.interfaceDown`; later reads return
    /// 0 until it is up again, then packets arrive again on the same receiver.
    public mutating func read(into batch: inout PacketBatch) throws(WanIOError) -> Int {
        let want = Swift.min(batch.capacity, maxBatch)
        let readSize = batch.maxPacketSize + 1  // one more byte tells a truncated packet
        for i in 0..<want { messages.setBuffer(i, batch.readPointer(at: i), count: readSize) }
        let r = messages.receive(fd: fd, count: want)
        if r < 0 {
            let e = Int32(-r)
            batch.count = 0
            if e == EAGAIN { return 0 }
            let kind: WanIOError.Kind = e == ENETDOWN ? .interfaceDown : e == ENODEV || e == ENXIO ? .interfaceNotFound : .receiveFailed
            throw WanIOError(kind, operation: "recvmmsg", interface: interface, errno: e)
        }
        var n = 0
        for i in 0..<r {
            let m = messages.received(i)
            if m.truncated || m.length > batch.maxPacketSize {
                stats.oversized &+= 1
                continue
            }
            if n != i {  // close the gap a dropped packet left (rare: only after a drop)
                batch.readPointer(at: n).copyMemory(from: batch.readPointer(at: i), byteCount: m.length)
            }
            batch.setPacket(at: n, offset: batch.headroom, length: m.length)
            if m.status >= 0 && m.status & WanSys.checksumNotReady != 0 {
                if Self.completeChecksum(batch.unsafePacket(at: n)) { stats.checksumsCompleted &+= 1 }
            }
            n += 1
        }
        stats.packets &+= UInt64(n)
        batch.count = n
        return n
    }

    /// Blocks until packets are waiting, `wakeup` fires, or `timeout` passes — exactly
    /// `TunQueue.wait(timeout:)`.
    public func wait(timeout: Duration?) throws(WanIOError) -> WaitResult {
        let (result, e) = TunSys.wait(fd: fd, wakeFD: wakeup?.fd ?? -1, timeout: timeout)
        guard let result else { throw WanIOError(.waitFailed, operation: "poll", interface: interface, errno: e) }
        return result
    }

    /// Packets the kernel dropped because the receive buffer was full, since the previous
    /// call (PACKET_STATISTICS; reading resets the kernel's counter). Not per packet: call it
    /// from the thread's periodic housekeeping.
    public func takeKernelDrops() throws(WanIOError) -> Int {
        let r = WanSys.packetDrops(fd: fd)
        guard r >= 0 else { throw WanIOError(.receiveFailed, operation: "PACKET_STATISTICS", interface: interface, errno: Int32(-r)) }
        return r
    }

    /// Completes the TCP or UDP checksum of an IPv4 or IPv6 packet whose checksum field
    /// holds only the pseudo-header sum (CHECKSUM_PARTIAL): the checksum is the complement of
    /// the sum of the L4 segment with that field as it is. False if the packet is not a whole
    /// TCP/UDP segment right behind the IP header (then it is left as it is).
    static func completeChecksum(_ p: UnsafeMutableRawBufferPointer) -> Bool {
        guard p.count >= 20 else { return false }
        let l4: Int
        let proto: UInt8
        switch p[0] >> 4 {
        case 4:
            l4 = Int(p[0] & 0x0f) * 4
            proto = p[9]
            guard l4 >= 20, p[6] & 0x3f == 0, p[7] == 0 else { return false }  // no fragments
        case 6:
            l4 = 40
            proto = p[6]
        default:
            return false
        }
        let field: Int
        switch proto {
        case 6: field = l4 + 16
        case 17: field = l4 + 6
        default: return false
        }
        guard field + 2 <= p.count else { return false }
        var c = InternetChecksum.finish(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: p[l4...])))
        if proto == 17 && c == 0 { c = 0xffff }
        p[field] = UInt8(c >> 8)
        p[field + 1] = UInt8(c & 0xff)
        return true
    }
}

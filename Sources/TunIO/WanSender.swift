// WanSender: sends whole IPv4 (or IPv6) packets that svrd built itself (source = its
// waypoint, any ports, TCP with any flags and sequence numbers) through a raw IPPROTO_RAW
// socket, in batches of one sendmmsg.
//
// With IPPROTO_RAW the kernel takes the packet as it is (IP_HDRINCL): it routes it by the
// destination address (restricted to `interface` with SO_BINDTODEVICE), resolves the
// neighbour and queues it. For IPv4 it only fills in the header checksum and total length
// (and an ID if the header has 0); the L4 header and payload go out byte for byte. IPv6
// packets (an AF_INET6 sender) go out as built. The packet does
// pass the netfilter output and postrouting hooks, so an output rule at priority -300 must
// `notrack` waypoint traffic (docs/wan-io.md) or conntrack would create state for it.
// A packet larger than the route's MTU is refused (EMSGSIZE), never fragmented.
//
// Errors: per-packet refusals (EMSGSIZE, no route, a firewall drop...) skip that packet and
// count it; back-pressure (EAGAIN, ENOBUFS: socket buffer or qdisc full) drops the rest of
// the batch and counts it — the caller does not retry and does not spin; only failures of
// the socket itself (interface gone, a bad fd) are thrown.
//
// Threads: one thread owns a sender; nothing here allocates, locks or logs per packet.

import Glibc

/// Counters of one sender. Owned by its thread.
public struct WanSenderStats: Sendable, Equatable {
    /// Packets the kernel accepted.
    public var sent: UInt64 = 0
    /// Slots that were not a packet of the sender's family with a plausible header (not sent).
    public var droppedInvalid: UInt64 = 0
    /// Packets refused one by one (too big for the route, no route, a firewall...).
    public var droppedRefused: UInt64 = 0
    /// The errno of the latest refused packet (0 if none yet).
    public var lastRefusedErrno: Int32 = 0
    /// Packets dropped because the socket buffer or the device queue was full.
    public var droppedBackPressure: UInt64 = 0
    public init() {}
}

/// A raw IP socket (one family) sending whole packets, owned by one data-plane thread.
public struct WanSender: ~Copyable, @unchecked Sendable {
    // @unchecked: the sender owns its fd and message arrays alone; being noncopyable, it can
    // only be moved to another thread, never shared.

    /// The interface sends are restricted to (SO_BINDTODEVICE), or nil for any.
    public let interface: String?
    /// Whether this sender takes IPv6 packets (an AF_INET6 socket) instead of IPv4.
    public let isIPv6: Bool
    /// The send buffer the kernel granted, in bytes.
    public let sendBufferBytes: Int
    /// Most packets per sendmmsg (longer batches take several calls).
    public let maxBatch: Int
    /// Counters (see `WanSenderStats`).
    public private(set) var stats = WanSenderStats()

    let fd: Int32
    private let messages: WanMessages
    /// Slot index of each message of the sendmmsg being built.
    private let slots: UnsafeMutablePointer<Int>

    /// Opens the raw socket in the calling thread's network namespace.
    /// - Parameters:
    ///   - ipv6: send IPv6 packets (AF_INET6, IPV6_HDRINCL implied) instead of IPv4. One
    ///     sender carries one family.
    ///   - interface: restricts routing to this interface (SO_BINDTODEVICE); nil: the
    ///     routing table decides.
    ///   - sendBufferBytes: SO_SNDBUFFORCE (root), else SO_SNDBUF. 0 keeps the default.
    ///   - maxBatch: most packets per sendmmsg (1...1024).
    public init(ipv6: Bool = false, interface: String? = nil, sendBufferBytes: Int = 8 << 20, maxBatch: Int = 128) throws(WanIOError) {
        let name = interface ?? ""
        if let interface { try WanIOError.validate(interface: interface) }
        guard (1...1024).contains(maxBatch) else {
            throw WanIOError(.invalidConfiguration, operation: "open sender", interface: name, detail: "maxBatch must be 1...1024")
        }
        let (fd, step) = WanSys.openRawSocket(ipv6: ipv6, interface: interface, sendBuffer: sendBufferBytes)
        guard fd >= 0 else {
            throw WanIOError(WanIOError.kindForSetup(errno: -fd), operation: step, interface: name, errno: -fd)
        }
        self.interface = interface
        self.isIPv6 = ipv6
        self.sendBufferBytes = WanSys.socketBuffer(fd: fd, send: true)
        self.maxBatch = maxBatch
        self.fd = fd
        self.messages = WanMessages(capacity: maxBatch, for: ipv6 ? .sendIPv6 : .sendIPv4)
        self.slots = .allocate(capacity: maxBatch)
        self.slots.initialize(repeating: 0, count: maxBatch)
    }

    deinit {
        TunSys.close(fd)
        slots.deallocate()
    }

    /// Closes the socket (same as letting the sender go out of scope).
    public consuming func close() {}

    /// Sends the packets of slots `start..<batch.count` (each slot's offset and length; each
    /// packet goes to the destination address in its own header) and returns how many the
    /// kernel accepted. The others are counted in `stats`: invalid slots and per-packet
    /// refusals are skipped, and on back-pressure the rest of the batch is dropped. Throws
    /// only when the socket itself fails; packets sent before that are in `stats.sent`.
    public mutating func send(_ batch: borrowing PacketBatch, from start: Int = 0) throws(WanIOError) -> Int {
        precondition(start >= 0 && start <= batch.count, "send start out of range")
        var sent = 0
        var next = start
        while next < batch.count {
            // Build up to maxBatch messages from the next slots, skipping invalid ones.
            var m = 0
            while next < batch.count && m < maxBatch {
                let p = batch.unsafePacket(at: next)
                if isIPv6 ? Self.isPlausibleIPv6(p) : Self.isPlausibleIPv4(p) {
                    messages.setBuffer(m, p.baseAddress!, count: p.count)
                    if isIPv6 {
                        messages.setDestination(m, ipv6: p.baseAddress! + 24)
                    } else {
                        messages.setDestination(m, networkOrderAddress: p.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
                    }
                    slots[m] = next
                    m += 1
                } else {
                    stats.droppedInvalid &+= 1
                }
                next += 1
            }
            var k = 0
            while k < m {
                let r = messages.send(fd: fd, from: k, count: m - k)
                if r > 0 {
                    k += r
                    sent += r
                    stats.sent &+= UInt64(r)
                    continue
                }
                // Message k failed (sendmmsg reports an error only for its first message).
                let e = Int32(-r)
                switch e {
                case EAGAIN, ENOBUFS:
                    stats.droppedBackPressure &+= UInt64(m - k + batch.count - next)
                    return sent
                case EMSGSIZE, EINVAL, ENETUNREACH, EHOSTUNREACH, EHOSTDOWN, ENETDOWN, EPERM, EACCES, EADDRNOTAVAIL, ENOPROTOOPT:
                    stats.droppedRefused &+= 1
                    stats.lastRefusedErrno = e
                    k += 1
                default:
                    let kind: WanIOError.Kind = e == ENODEV || e == ENXIO ? .interfaceNotFound : .sendFailed
                    throw WanIOError(kind, operation: "sendmmsg", interface: interface ?? "", errno: e,
                                     detail: "slot \(slots[k]), \(sent) packets sent before")
                }
            }
        }
        return sent
    }

    /// Version 4, IHL >= 5 and within the packet, at most 64 KiB.
    @inline(__always)
    static func isPlausibleIPv4(_ p: UnsafeMutableRawBufferPointer) -> Bool {
        p.count >= 20 && p.count <= 65535 && p[0] >> 4 == 4 && p[0] & 0x0f >= 5 && Int(p[0] & 0x0f) * 4 <= p.count
    }

    /// Version 6, the 40-byte header present, the payload length matching the packet (no
    /// jumbograms). The IPv4 path has the kernel set the total length; for IPv6 a wrong
    /// payload length is refused here instead of relying on the kernel.
    @inline(__always)
    static func isPlausibleIPv6(_ p: UnsafeMutableRawBufferPointer) -> Bool {
        p.count >= 40 && p.count <= 65535 + 40 && p[0] >> 4 == 6
            && Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt16.self))) == p.count - 40
    }
}

extension WanSender {
    /// The MTU of device `name` in the calling thread's namespace (SIOCGIFMTU); nil when the
    /// device does not exist. svrd starts its peer paths' MTU from it.
    public static func deviceMTU(_ name: String) -> Int? {
        let rc = TunSys.getMTU(name: name)
        return rc > 0 ? Int(rc) : nil
    }
}

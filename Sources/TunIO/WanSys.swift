// WanSys: the syscalls and C-shim calls of WAN I/O, and the preallocated mmsghdr/iovec/
// sockaddr arrays they use — the only WAN file that handles C structs and raw pointers.
// Same conventions as TunSys: results are values or -errno, EINTR is retried in the shim.

internal import CShim
import Glibc

enum WanSys {
    static let auxdataSpace = Int(SVR_WAN_AUXDATA_SPACE)
    static let checksumNotReady = Int32(SVR_TP_STATUS_CSUMNOTREADY)

    /// Opens the filtered AF_PACKET socket (see svr_wan_packet_open). Returns (fd or -errno,
    /// name of the failed step).
    static func openPacketSocket(ifindex: Int32, filter: WanFilter, receiveBuffer: Int) -> (fd: Int32, step: String) {
        var step: Int32 = 0
        let fd = filter.instructions.withUnsafeBufferPointer { insns in
            insns.withMemoryRebound(to: svr_bpf_insn.self) {
                svr_wan_packet_open(ifindex, filter.etherType, $0.baseAddress, UInt32($0.count),
                                    Int32(clamping: receiveBuffer), &step)
            }
        }
        return (fd, stepName(step, family: "AF_PACKET"))
    }

    /// Opens the IPPROTO_RAW socket (see svr_wan_raw_open).
    static func openRawSocket(ipv6: Bool, interface: String?, sendBuffer: Int) -> (fd: Int32, step: String) {
        var step: Int32 = 0
        let fd = svr_wan_raw_open(ipv6 ? 1 : 0, interface, Int32(clamping: sendBuffer), &step)
        return (fd, stepName(step, family: ipv6 ? "AF_INET6 SOCK_RAW IPPROTO_RAW" : "AF_INET SOCK_RAW IPPROTO_RAW"))
    }

    /// Attaches `filter` to any socket (tests use it on a Unix datagram socket).
    static func attach(_ filter: WanFilter, to fd: Int32) -> Int32 {
        filter.instructions.withUnsafeBufferPointer { insns in
            insns.withMemoryRebound(to: svr_bpf_insn.self) { svr_wan_attach_filter(fd, $0.baseAddress, UInt32($0.count)) }
        }
    }

    static func socketBuffer(fd: Int32, send: Bool) -> Int { Int(svr_wan_socket_buffer(fd, send ? 1 : 0)) }

    private static func stepName(_ step: Int32, family: String) -> String {
        switch step {
        case Int32(SVR_WAN_STEP_SOCKET): "socket \(family)"
        case Int32(SVR_WAN_STEP_FILTER): "SO_ATTACH_FILTER"
        case Int32(SVR_WAN_STEP_BUFFER): "SO_RCVBUFFORCE/SO_SNDBUFFORCE"
        case Int32(SVR_WAN_STEP_AUXDATA): "PACKET_AUXDATA"
        case Int32(SVR_WAN_STEP_BIND): "bind"
        case Int32(SVR_WAN_STEP_BINDTODEVICE): "SO_BINDTODEVICE"
        default: "setup"
        }
    }
}

/// `capacity` preallocated mmsghdr + iovec pairs (one iovec per message), with either a
/// PACKET_AUXDATA control buffer per message (receive) or a destination address per message
/// (send: a sockaddr_in6-sized slot, used as sockaddr_in for IPv4).
/// Owned by one receiver or sender; freed with it.
final class WanMessages {
    let capacity: Int
    private let messages: UnsafeMutablePointer<svr_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let control: UnsafeMutableRawPointer?
    private let addresses: UnsafeMutablePointer<sockaddr_in6>?

    enum Purpose { case receive, sendIPv4, sendIPv6 }

    init(capacity: Int, for purpose: Purpose) {
        self.capacity = capacity
        messages = .allocate(capacity: capacity)
        iovecs = .allocate(capacity: capacity)
        iovecs.initialize(repeating: iovec(iov_base: nil, iov_len: 0), count: capacity)
        switch purpose {
        case .receive:
            let c = UnsafeMutableRawPointer.allocate(byteCount: WanSys.auxdataSpace * capacity, alignment: 16)
            c.initializeMemory(as: UInt8.self, repeating: 0, count: WanSys.auxdataSpace * capacity)
            control = c
            addresses = nil
        case .sendIPv4, .sendIPv6:
            control = nil
            let a = UnsafeMutablePointer<sockaddr_in6>.allocate(capacity: capacity)
            a.initialize(repeating: sockaddr_in6(), count: capacity)
            addresses = a
        }
        let nameLength = purpose == .sendIPv6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size
        for i in 0..<capacity {
            var h = msghdr()
            h.msg_iov = iovecs + i
            h.msg_iovlen = 1
            if let control {
                h.msg_control = control + i * WanSys.auxdataSpace
                h.msg_controllen = WanSys.auxdataSpace
            }
            if let addresses {
                h.msg_name = UnsafeMutableRawPointer(addresses + i)
                h.msg_namelen = socklen_t(nameLength)
            }
            (messages + i).initialize(to: svr_mmsghdr(msg_hdr: h, msg_len: 0))
        }
    }

    deinit {
        messages.deallocate()
        iovecs.deallocate()
        control?.deallocate()
        addresses?.deallocate()
    }

    /// Points message `i` at `count` bytes at `base` and resets what the kernel reports.
    @inline(__always)
    func setBuffer(_ i: Int, _ base: UnsafeMutableRawPointer, count: Int) {
        iovecs[i] = iovec(iov_base: base, iov_len: count)
        messages[i].msg_hdr.msg_flags = 0
        if control != nil { messages[i].msg_hdr.msg_controllen = WanSys.auxdataSpace }
    }

    /// Sets the destination of message `i` (IPv4 address in network byte order, as in the
    /// packet header).
    @inline(__always)
    func setDestination(_ i: Int, networkOrderAddress: UInt32) {
        UnsafeMutableRawPointer(addresses! + i).storeBytes(
            of: sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: 0,
                            sin_addr: in_addr(s_addr: networkOrderAddress), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0)),
            as: sockaddr_in.self)
    }

    /// Sets the IPv6 destination of message `i` to the 16 bytes at `address`.
    @inline(__always)
    func setDestination(_ i: Int, ipv6 address: UnsafeRawPointer) {
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyMemory(from: UnsafeRawBufferPointer(start: address, count: 16)) }
        addresses![i] = sa
    }

    /// Bytes received into message `i`, whether the kernel truncated it, and the
    /// PACKET_AUXDATA status (-1 if absent).
    @inline(__always)
    func received(_ i: Int) -> (length: Int, truncated: Bool, status: Int32) {
        let m = messages + i
        let truncated = m.pointee.msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0
        return (Int(m.pointee.msg_len), truncated, svr_wan_auxdata_status(&m.pointee.msg_hdr))
    }

    /// recvmmsg(MSG_DONTWAIT) into messages 0..<count. Returns the number received or -errno.
    @inline(never)
    func receive(fd: Int32, count: Int) -> Int {
        Int(svr_recvmmsg(fd, messages, UInt32(count), 0))
    }

    /// sendmmsg(MSG_DONTWAIT) of messages start..<start+count. Returns the number sent or -errno.
    @inline(never)
    func send(fd: Int32, from start: Int, count: Int) -> Int {
        Int(svr_sendmmsg(fd, messages + start, UInt32(count), 0))
    }
}

extension WanSys {
    /// Receive-buffer overflow drops since the previous call (PACKET_STATISTICS), or -errno.
    static func packetDrops(fd: Int32) -> Int { Int(svr_wan_packet_drops(fd)) }
}

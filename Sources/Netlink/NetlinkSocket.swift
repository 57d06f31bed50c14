// A netlink socket over libmnl (NETLINK_ROUTE or NETLINK_NETFILTER), shared by the rtnetlink
// and nftables layers. All unsafe pointer work on the socket lives here and in
// NetlinkMessage.swift. Control plane only: a socket is used by one thread at a time.

internal import CNetlink
import Glibc

/// Which netlink family a socket speaks.
public enum NetlinkProtocol: Sendable {
    case route
    case netfilter

    var bus: Int32 {
        switch self {
        case .route: NETLINK_ROUTE
        case .netfilter: NETLINK_NETFILTER
        }
    }
}

/// One parsed message of a reply (valid only inside the handler it is passed to).
public struct NetlinkReplyMessage {
    public let type: UInt16
    public let flags: UInt16
    public let sequence: UInt32
    /// The bytes after the 16-byte nlmsghdr.
    public let payload: UnsafeRawBufferPointer
}

/// An open netlink socket. Closes on deinit. Not thread-safe: one owner at a time.
public final class NetlinkSocket {
    private let nl: OpaquePointer
    public let netlinkProtocol: NetlinkProtocol
    /// The port id the kernel assigned (0 until bound).
    public let portID: UInt32
    private var nextSequence: UInt32
    private let receiveBuffer: UnsafeMutableRawBufferPointer

    /// Opens and binds a socket. `groups` is the multicast group bitmask to join (legacy
    /// bitmask form; use `joinGroup` for group numbers above 32).
    public init(_ proto: NetlinkProtocol, groups: UInt32 = 0) throws(NetlinkError) {
        guard let nl = mnl_socket_open2(proto.bus, Int32(SOCK_CLOEXEC.rawValue)) else {
            throw NetlinkError(operation: "open netlink socket (\(proto))", errno: Glibc.errno)
        }
        if mnl_socket_bind(nl, groups, pid_t(MNL_SOCKET_AUTOPID)) < 0 {
            let e = Glibc.errno
            mnl_socket_close(nl)
            throw NetlinkError(operation: "bind netlink socket (\(proto))", errno: e)
        }
        var one: Int32 = 1
        // Extended acks give us the kernel's error text; capped acks keep error replies small.
        _ = mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        self.nl = nl
        self.netlinkProtocol = proto
        self.portID = mnl_socket_get_portid(nl)
        // Sequence numbers start from the time so replies to an older socket cannot match.
        self.nextSequence = UInt32(truncatingIfNeeded: time(nil))
        self.receiveBuffer = .allocate(byteCount: 1 << 16, alignment: 16)
    }

    deinit {
        mnl_socket_close(nl)
        receiveBuffer.deallocate()
    }

    /// The socket's file descriptor (for poll).
    public var fileDescriptor: Int32 { mnl_socket_get_fd(nl) }

    /// Joins a multicast group by number (RTNLGRP_*, NFNLGRP_*).
    public func joinGroup(_ group: UInt32) throws(NetlinkError) {
        var g = group
        if mnl_socket_setsockopt(nl, Int32(NETLINK_ADD_MEMBERSHIP), &g, socklen_t(4)) < 0 {
            throw NetlinkError(operation: "join netlink group \(group)", errno: Glibc.errno)
        }
    }

    /// Reserves and returns the next sequence number (`count` consecutive ones for batches).
    public func allocateSequence(count: UInt32 = 1) -> UInt32 {
        let s = nextSequence
        nextSequence &+= count
        return s
    }

    /// Sends raw bytes (one message or a batch).
    public func send(_ bytes: UnsafeRawBufferPointer, operation: @autoclosure () -> String) throws(NetlinkError) {
        let n = mnl_socket_sendto(nl, bytes.baseAddress, bytes.count)
        if n < 0 { throw NetlinkError(operation: operation(), errno: Glibc.errno) }
    }

    /// Sends `message` (its sequence and port id are filled in here) and waits for the ACK.
    /// For a dump or a request that answers with data, `handler` sees every data message.
    public func request(
        _ message: inout NetlinkMessage, operation: @autoclosure () -> String,
        handler: ((NetlinkReplyMessage) throws(NetlinkError) -> Void)? = nil
    ) throws(NetlinkError) {
        let seq = allocateSequence()
        message.setSequence(seq)
        try message.withBytes { (b) throws(NetlinkError) in try send(b, operation: operation()) }
        try receive(until: seq...seq, operation: operation(), handler: handler)
    }

    /// Receives replies until every sequence number in `sequences` was acknowledged (an
    /// NLMSG_ERROR with error 0, or NLMSG_DONE for a dump). The first kernel error is thrown
    /// after the remaining acks of the batch have been drained.
    public func receive(
        until sequences: ClosedRange<UInt32>, operation: @autoclosure () -> String,
        handler: ((NetlinkReplyMessage) throws(NetlinkError) -> Void)? = nil
    ) throws(NetlinkError) {
        var pending = Set(sequences)
        var firstError: NetlinkError?
        while !pending.isEmpty {
            let n = mnl_socket_recvfrom(nl, receiveBuffer.baseAddress, receiveBuffer.count)
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw NetlinkError(operation: operation(), errno: Glibc.errno, detail: "receiving the reply")
            }
            try forEachMessage(received: Int(n), operation: operation()) { (message, pid) throws(NetlinkError) in
                let (type, flags, seq, payload) = (message.type, message.flags, message.sequence, message.payload)
                // Messages for other sockets or older requests are ignored.
                guard pid == portID || pid == 0, sequences.contains(seq) else { return }
                switch Int32(type) {
                case NLMSG_ERROR:
                    pending.remove(seq)
                    guard payload.count >= 4 else { return }
                    let err = payload.loadUnaligned(fromByteOffset: 0, as: Int32.self)
                    if err != 0, firstError == nil {
                        firstError = NetlinkError(
                            operation: operation(), errno: -err,
                            kernelMessage: Self.extendedAckMessage(payload, flags: flags))
                    }
                case NLMSG_DONE:
                    pending.remove(seq)
                case NLMSG_NOOP:
                    return
                default:
                    if let handler, firstError == nil { try handler(message) }
                }
            }
        }
        if let firstError { throw firstError }
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) for one datagram of unsolicited
    /// messages (multicast notifications of joined groups) and passes each message to
    /// `handler`, whatever its sequence number. Returns false on timeout. Throws ENOBUFS when
    /// the kernel dropped notifications because the socket buffer was full.
    public func receiveNotifications(
        timeoutMilliseconds: Int32, handler: (NetlinkReplyMessage) throws(NetlinkError) -> Void
    ) throws(NetlinkError) -> Bool {
        var pfd = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pfd, 1, timeoutMilliseconds)
        if ready < 0 {
            if Glibc.errno == EINTR { return false }
            throw NetlinkError(operation: "wait for netlink notifications", errno: Glibc.errno)
        }
        if ready == 0 { return false }
        let n = mnl_socket_recvfrom(nl, receiveBuffer.baseAddress, receiveBuffer.count)
        if n < 0 {
            if Glibc.errno == EINTR || Glibc.errno == EAGAIN { return false }
            throw NetlinkError(operation: "receive netlink notifications", errno: Glibc.errno)
        }
        try forEachMessage(received: Int(n), operation: "receive netlink notifications") {
            (message, _) throws(NetlinkError) in try handler(message)
        }
        return true
    }

    /// Splits the first `received` bytes of the receive buffer into messages.
    private func forEachMessage(
        received end: Int, operation: @autoclosure () -> String,
        _ body: (NetlinkReplyMessage, _ portID: UInt32) throws(NetlinkError) -> Void
    ) throws(NetlinkError) {
        var offset = 0
        while offset + 16 <= end {
            let base = UnsafeRawBufferPointer(rebasing: receiveBuffer[offset..<end])
            let len = Int(base.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
            guard len >= 16, len <= base.count else {
                throw NetlinkError(operation: operation(), errno: 0, detail: "malformed netlink reply (length \(len))")
            }
            let message = NetlinkReplyMessage(
                type: base.loadUnaligned(fromByteOffset: 4, as: UInt16.self),
                flags: base.loadUnaligned(fromByteOffset: 6, as: UInt16.self),
                sequence: base.loadUnaligned(fromByteOffset: 8, as: UInt32.self),
                payload: UnsafeRawBufferPointer(rebasing: base[16..<len]))
            offset += (len + 3) & ~3
            try body(message, base.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        }
    }

    /// Reads NLMSGERR_ATTR_MSG from an error payload (struct nlmsgerr, then TLVs when
    /// NLM_F_ACK_TLVS is set; with NETLINK_CAP_ACK the echoed request is only its header).
    private static func extendedAckMessage(_ payload: UnsafeRawBufferPointer, flags: UInt16) -> String? {
        guard Int32(flags) & NLM_F_ACK_TLVS != 0 else { return nil }
        var offset = 4 + 16  // error + echoed nlmsghdr
        if Int32(flags) & NLM_F_CAPPED == 0, payload.count >= 8 {
            offset = 4 + Int(payload.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        }
        while offset + 4 <= payload.count {
            let alen = Int(payload.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let atype = payload.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self) & 0x3fff
            guard alen >= 4, offset + alen <= payload.count else { return nil }
            if Int(atype) == Int(NLMSGERR_ATTR_MSG.rawValue) {
                let bytes = payload[(offset + 4)..<(offset + alen)].prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
            offset += (alen + 3) & ~3
        }
        return nil
    }
}

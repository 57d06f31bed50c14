// Errors of the Netlink module: one type for rtnetlink and nftables, carrying the operation,
// errno and the kernel's extended-ack message when it sent one.

import Glibc

/// A netlink operation failed.
public struct NetlinkError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was being done, e.g. "add route 10.0.0.0/8 table 100" or "open NETLINK_ROUTE socket".
    public var operation: String
    /// The errno the kernel (or libc) returned; 0 when the failure was not an errno.
    public var errno: Int32
    /// The kernel's extended-ack text (NLMSGERR_ATTR_MSG), if any.
    public var kernelMessage: String?
    /// For failures that are not errnos: a description (malformed reply, unexpected message).
    public var detail: String?

    public init(operation: String, errno: Int32, kernelMessage: String? = nil, detail: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.kernelMessage = kernelMessage
        self.detail = detail
    }

    /// True for "no such object" answers (ENOENT, ESRCH, ENODEV, EADDRNOTAVAIL).
    public var isNotFound: Bool { [ENOENT, ESRCH, ENODEV, EADDRNOTAVAIL].contains(errno) }
    /// True when the object already exists (EEXIST).
    public var isExists: Bool { errno == EEXIST }
    /// True when the caller lacks CAP_NET_ADMIN (EPERM, EACCES).
    public var isPermission: Bool { errno == EPERM || errno == EACCES }

    public var description: String {
        var s = operation + ": "
        if errno != 0 { s += String(cString: strerror(errno)) + " (errno \(errno))" }
        if let m = kernelMessage, !m.isEmpty { s += " — kernel says: \(m)" }
        if let d = detail { s += (errno != 0 ? "; " : "") + d }
        return s
    }
}

// WanIOError: the error type of WAN I/O (WanReceiver, WanSender, WanFilter), shaped like
// TunError: what was attempted (operation), on which interface, the errno the kernel
// returned (0 when the check happened before any syscall) and, in `description`, the cause
// in words.

import Glibc

/// A failure of a WAN socket operation.
public struct WanIOError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is; switch on it to react.
    public enum Kind: Sendable, Equatable {
        /// The interface name is empty, too long or has characters the kernel refuses.
        /// Checked before any syscall, so `errno` is 0.
        case invalidName
        /// No interface of that name (or index) exists in the calling thread's network
        /// namespace (ENODEV, ENXIO), or it disappeared while in use.
        case interfaceNotFound
        /// The interface went down or was deleted while the socket was in use (ENETDOWN,
        /// reported once). A receiver stays bound: it receives again when an interface that
        /// went down comes back up; a deleted interface never comes back (open a new one).
        case interfaceDown
        /// The caller lacks CAP_NET_RAW (AF_PACKET, raw sockets) or CAP_NET_ADMIN
        /// (SO_RCVBUFFORCE) (EPERM, EACCES).
        case permissionDenied
        /// A parameter is inconsistent (no ports, too many port ranges, batch size out of
        /// range). Checked before any syscall, so `errno` is 0.
        case invalidConfiguration
        /// Another socket setup call failed (socket, SO_ATTACH_FILTER, bind, setsockopt).
        case setupFailed
        /// recvmmsg(2) failed with something other than EAGAIN.
        case receiveFailed
        /// sendmmsg(2) failed with an error that is neither back-pressure nor specific to
        /// one packet (those are counted in `WanSenderStats` instead).
        case sendFailed
        /// poll(2) failed.
        case waitFailed
    }

    public let kind: Kind
    /// The operation, e.g. `"socket AF_PACKET"`, `"SO_ATTACH_FILTER"`, `"recvmmsg"`.
    public let operation: String
    /// The interface name, or "" if none is involved.
    public let interface: String
    /// The errno reported by the kernel, or 0 if the error was found before any syscall.
    public let errno: Int32
    /// Extra words about the cause.
    public let detail: String

    public init(_ kind: Kind, operation: String, interface: String, errno: Int32 = 0, detail: String = "") {
        self.kind = kind
        self.operation = operation
        self.interface = interface
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        var s = "wan \(interface.isEmpty ? "(any interface)" : interface): \(operation) failed: \(Self.summary(kind))"
        if !detail.isEmpty { s += " (\(detail))" }
        if errno != 0 { s += ": \(String(cString: strerror(errno))) (errno \(errno))" }
        return s
    }

    private static func summary(_ kind: Kind) -> String {
        switch kind {
        case .invalidName: "invalid interface name"
        case .interfaceNotFound: "no such interface"
        case .interfaceDown: "interface went down"
        case .permissionDenied: "permission denied (needs CAP_NET_RAW, CAP_NET_ADMIN)"
        case .invalidConfiguration: "invalid configuration"
        case .setupFailed: "socket setup failed"
        case .receiveFailed: "receive failed"
        case .sendFailed: "send failed"
        case .waitFailed: "wait failed"
        }
    }

    /// The kind for an errno from a setup call.
    static func kindForSetup(errno e: Int32) -> Kind {
        switch e {
        case ENODEV, ENXIO: .interfaceNotFound
        case EPERM, EACCES: .permissionDenied
        default: .setupFailed
        }
    }

    /// Checks an interface name (TunConfiguration's rules, which are the kernel's and stricter).
    static func validate(interface name: String) throws(WanIOError) {
        do throws(TunError) {
            try TunConfiguration.validateName(name)
        } catch {
            throw WanIOError(.invalidName, operation: "validate name", interface: name, detail: error.detail)
        }
    }
}

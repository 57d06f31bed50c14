// TunError: the one error type of TunIO. Every failure says what was attempted (operation),
// on which device, the errno the kernel returned (0 when the check happened before any
// syscall) and, in `description`, what went wrong in words.

import Glibc

/// A failure of a TUN operation.
public struct TunError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is; switch on it to react (retry, report, give up).
    public enum Kind: Sendable, Equatable {
        /// The clone device (normally `/dev/net/tun`) is missing or has no driver
        /// (ENOENT, ENODEV, ENXIO): the `tun` module is not loaded or the path is wrong.
        case tunUnavailable
        /// The caller lacks CAP_NET_ADMIN or file permission (EPERM, EACCES).
        case permissionDenied
        /// The name belongs to a device this open cannot attach to: a single-queue device
        /// that is already attached (EBUSY), or an existing device whose flags differ from
        /// the requested ones (EINVAL on attach).
        case nameInUse
        /// The device name is empty, too long or has characters the kernel refuses. Checked
        /// before any syscall, so `errno` is 0.
        case invalidName
        /// The configuration or an argument is inconsistent (for example offloads without a
        /// virtio header). Checked before any syscall, so `errno` is 0.
        case invalidConfiguration
        /// Another ioctl or setup call failed.
        case ioctlFailed
        /// read(2)/readv(2) on a queue failed with something other than EAGAIN.
        case readFailed
        /// write(2)/writev(2) on a queue failed with something other than EAGAIN.
        case writeFailed
        /// poll(2) or the wakeup eventfd failed.
        case waitFailed
    }

    public let kind: Kind
    /// The operation, e.g. `"open /dev/net/tun"`, `"TUNSETIFF"`, `"SIOCSIFMTU"`, `"read"`.
    public let operation: String
    /// The device name (as requested, or as the kernel named it), or "" if not known.
    public let device: String
    /// The errno reported by the kernel, or 0 if the error was found before any syscall.
    public let errno: Int32
    /// Extra words about the cause, when there is more to say than the kind and errno.
    public let detail: String

    public init(_ kind: Kind, operation: String, device: String, errno: Int32 = 0, detail: String = "") {
        self.kind = kind
        self.operation = operation
        self.device = device
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        var s = "tun \(device.isEmpty ? "(unnamed)" : device): \(operation) failed: \(Self.summary(kind))"
        if !detail.isEmpty { s += " (\(detail))" }
        if errno != 0 { s += ": \(String(cString: strerror(errno))) (errno \(errno))" }
        return s
    }

    private static func summary(_ kind: Kind) -> String {
        switch kind {
        case .tunUnavailable: "TUN clone device missing or tun driver not loaded"
        case .permissionDenied: "permission denied (needs CAP_NET_ADMIN)"
        case .nameInUse: "device name in use by an incompatible device"
        case .invalidName: "invalid device name"
        case .invalidConfiguration: "invalid configuration"
        case .ioctlFailed: "ioctl failed"
        case .readFailed: "read failed"
        case .writeFailed: "write failed"
        case .waitFailed: "wait failed"
        }
    }

    /// Maps an errno from opening the clone device or TUNSETIFF to a kind. `deviceExisted`
    /// tells whether a device of that name existed before the call: then EINVAL means the
    /// flags did not match the existing device, which is a name clash.
    static func kindForOpen(errno e: Int32, deviceExisted: Bool) -> Kind {
        switch e {
        case ENOENT, ENODEV, ENXIO: .tunUnavailable
        case EPERM, EACCES: .permissionDenied
        case EBUSY, EEXIST: .nameInUse
        case EINVAL where deviceExisted: .nameInUse
        default: .ioctlFailed
        }
    }
}

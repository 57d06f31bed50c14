// TunDevice: creates or attaches a TUN device and owns its queue fds until they are taken.
//
// Life cycle: `TunDevice(config)` opens `config.queues` fds with TUNSETIFF (IFF_TUN |
// IFF_NO_PI, plus IFF_VNET_HDR / IFF_MULTI_QUEUE as asked), negotiates offloads and sets the
// MTU. Each data-plane thread then takes one queue with `takeQueue(_:)` and owns it. A fd is
// closed when its owner (the device for queues not taken, or the `TunQueue`) is destroyed;
// when the last fd of a non-persistent device closes, the kernel deletes the device along
// with its addresses and routes.
//
// Namespaces: the device is created in the network namespace of the calling thread. `mtu()`
// and `setMTU(_:)` address the device by name through a socket of the calling thread's
// namespace, so call them from a thread in the device's namespace (svrd: any thread).

import Glibc

/// An open TUN device: its name, what the kernel agreed to, and the queue fds not yet taken.
public struct TunDevice: ~Copyable {
    /// The kernel's name for the device (differs from the request only for `%d` templates).
    public let name: String
    /// Whether packets carry a virtio-net header (IFF_VNET_HDR).
    public let hasVirtioHeader: Bool
    /// Whether the device was opened with IFF_MULTI_QUEUE.
    public let isMultiQueue: Bool
    /// The offloads the kernel accepted (a subset of the requested ones; see `init`).
    public let offloads: TunOffloads
    /// Number of queues opened.
    public let queueCount: Int

    /// Queue fds; -1 once taken.
    private var fds: [Int32]

    /// Opens the device described by `config`: creates it if no device of that name exists
    /// in the calling thread's namespace, attaches to it otherwise.
    ///
    /// Offloads: TUNSETOFFLOAD refuses the whole request (EINVAL) if any flag is unknown to
    /// the kernel, so on EINVAL this retries without the newest flags (USO, then UFO, then
    /// TSO-ECN), and `offloads` reports the set that was accepted.
    public init(_ config: TunConfiguration) throws(TunError) {
        try config.validate()
        var flags = TunSys.iffTun | TunSys.iffNoPI
        if config.virtioHeader { flags |= TunSys.iffVnetHdr }
        if config.multiQueue { flags |= TunSys.iffMultiQueue }

        // All fallible work happens on locals; on failure the fds opened so far are closed
        // (deleting the device if this call created it).
        var opened: [Int32] = []
        opened.reserveCapacity(config.queues)
        func closeOpened() { for fd in opened { TunSys.close(fd) } }

        let existed = TunSys.interfaceIndex(name: config.name) > 0
        var kernelName = config.name
        for q in 0..<config.queues {
            let r = TunSys.openQueue(path: config.clonePath, name: kernelName, flags: flags)
            if r.fd < 0 {
                closeOpened()
                let e = -r.fd
                let op = e == ENOENT || e == ENODEV || e == ENXIO || e == EACCES ? "open \(config.clonePath)" : "TUNSETIFF queue \(q)"
                var detail = ""
                if e == EINVAL && (existed || q > 0) {
                    detail = "an existing device of this name has other flags (TUN/TAP, multi-queue, virtio header)"
                } else if e == EBUSY {
                    detail = "the device is already attached and not multi-queue"
                }
                throw TunError(TunError.kindForOpen(errno: e, deviceExisted: existed || q > 0),
                               operation: op, device: kernelName, errno: e, detail: detail)
            }
            opened.append(r.fd)
            kernelName = r.name
        }

        var accepted: TunOffloads = []
        if config.virtioHeader {
            // A fresh device starts with no offloads; asking for [] is meaningful too (it
            // turns off what an earlier owner of an attached device enabled).
            let fallbacks: [TunOffloads] = [[], [.uso4, .uso6], [.uso4, .uso6, .ufo], [.uso4, .uso6, .ufo, .tsoECN]]
            var lastErrno: Int32 = 0
            var done = false
            for drop in fallbacks {
                let attempt = config.offloads.subtracting(drop)
                if drop != [] && attempt == config.offloads { continue }
                let rc = TunSys.setOffload(fd: opened[0], offloads: attempt.rawValue)
                if rc == 0 {
                    accepted = attempt
                    done = true
                    break
                }
                lastErrno = -rc
                if lastErrno != EINVAL { break }
            }
            if !done {
                closeOpened()
                throw TunError(.ioctlFailed, operation: "TUNSETOFFLOAD \(config.offloads)", device: kernelName, errno: lastErrno)
            }
        }

        if let mtu = config.mtu {
            let rc = TunSys.setMTU(name: kernelName, mtu: mtu)
            if rc < 0 {
                closeOpened()
                throw TunError(.ioctlFailed, operation: "SIOCSIFMTU \(mtu)", device: kernelName, errno: -rc)
            }
        }

        self.name = kernelName
        self.hasVirtioHeader = config.virtioHeader
        self.isMultiQueue = config.multiQueue
        self.offloads = accepted
        self.queueCount = config.queues
        self.fds = opened
    }

    deinit {
        for fd in fds where fd >= 0 { TunSys.close(fd) }
    }

    /// Closes every queue fd not yet taken (same as letting the device go out of scope).
    public consuming func close() {}

    /// Hands queue `index` to the caller, who then owns its fd. Returns nil if the index is
    /// out of range or the queue was already taken.
    public mutating func takeQueue(_ index: Int) -> TunQueue? {
        guard index >= 0, index < fds.count, fds[index] >= 0 else { return nil }
        let fd = fds[index]
        fds[index] = -1
        return TunQueue(fd: fd, deviceName: name, index: index, hasVirtioHeader: hasVirtioHeader)
    }

    /// The device's MTU (SIOCGIFMTU, in the calling thread's namespace).
    public func mtu() throws(TunError) -> Int {
        let rc = TunSys.getMTU(name: name)
        guard rc >= 0 else { throw TunError(.ioctlFailed, operation: "SIOCGIFMTU", device: name, errno: -rc) }
        return Int(rc)
    }

    /// Sets the device's MTU (SIOCSIFMTU, in the calling thread's namespace).
    public func setMTU(_ mtu: Int) throws(TunError) {
        guard (68...65535).contains(mtu) else {
            throw TunError(.invalidConfiguration, operation: "SIOCSIFMTU", device: name, detail: "mtu must be 68...65535, got \(mtu)")
        }
        let rc = TunSys.setMTU(name: name, mtu: mtu)
        guard rc == 0 else { throw TunError(.ioctlFailed, operation: "SIOCSIFMTU \(mtu)", device: name, errno: -rc) }
    }
}

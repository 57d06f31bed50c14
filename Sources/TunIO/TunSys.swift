// TunSys: every syscall and C-shim call of TunIO, and the only place (with PacketBatch's
// slab) that handles raw pointers for the kernel.
//
// Conventions (swift-nio System.swift, swift-system Syscalls.swift): each wrapper returns
// the result or -errno, reading errno right after the call in an @inline(never) function so
// nothing can run in between; EINTR is retried here; EAGAIN is left to the caller, which
// treats it as "nothing more to do", not as an error.

internal import CShim
import Glibc

enum TunSys {
    // ---- flags --------------------------------------------------------------------------
    static let iffTun = Int32(SVR_IFF_TUN)
    static let iffNoPI = Int32(SVR_IFF_NO_PI)
    static let iffVnetHdr = Int32(SVR_IFF_VNET_HDR)
    static let iffMultiQueue = Int32(SVR_IFF_MULTI_QUEUE)
    static let virtioHeaderSize = Int(SVR_VNET_HDR_LEN)

    // ---- device setup ------------------------------------------------------------------
    /// Opens the clone device and runs TUNSETIFF. Returns (fd, kernel's name) or (-errno, "").
    static func openQueue(path: String, name: String, flags: Int32) -> (fd: Int32, name: String) {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(SVR_IFNAMSIZ)) { out in
            out.initialize(repeating: 0)
            let fd = svr_tun_open(path, name, flags, out.baseAddress!)
            guard fd >= 0 else { return (fd, "") }
            let kernelName = String(decoding: UnsafeRawBufferPointer(out).prefix { $0 != 0 }, as: UTF8.self)
            return (fd, kernelName)
        }
    }

    static func setOffload(fd: Int32, offloads: UInt32) -> Int32 { svr_tun_set_offload(fd, offloads) }
    static func setMTU(name: String, mtu: Int) -> Int32 { svr_if_set_mtu(name, Int32(clamping: mtu)) }
    static func getMTU(name: String) -> Int32 { svr_if_get_mtu(name) }
    static func interfaceIndex(name: String) -> Int32 { svr_if_index(name) }
    static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    // ---- wakeup eventfd ----------------------------------------------------------------
    static func eventfdOpen() -> Int32 { svr_eventfd_open() }
    static func eventfdSignal(_ fd: Int32) -> Int32 { svr_eventfd_signal(fd) }
    static func eventfdDrain(_ fd: Int32) -> Int32 { svr_eventfd_drain(fd) }

    // ---- data path ---------------------------------------------------------------------
    /// Runs `call` (a read/write-style syscall returning -1 and setting errno on failure)
    /// until it does not fail with EINTR; returns its result or -errno. Inlined into the
    /// @inline(never) wrappers below, so errno is read right after the call.
    @inline(__always)
    private static func retryingEINTR(_ call: () -> Int) -> Int {
        while true {
            let n = call()
            if n >= 0 { return n }
            let e = Glibc.errno
            if e != EINTR { return -Int(e) }
        }
    }

    /// read(2) of one packet. Returns the byte count or -errno.
    @inline(never)
    static func read(fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int) -> Int {
        retryingEINTR { Glibc.read(fd, buffer, count) }
    }

    /// write(2) of one packet. Returns the byte count or -errno.
    @inline(never)
    static func write(fd: Int32, from buffer: UnsafeRawPointer, count: Int) -> Int {
        retryingEINTR { Glibc.write(fd, buffer, count) }
    }

    /// readv(2) of a virtio-net header and the packet behind it. Returns the total byte
    /// count (header included) or -errno.
    @inline(never)
    static func readv(
        fd: Int32, header: UnsafeMutableRawPointer, headerCount: Int,
        into buffer: UnsafeMutableRawPointer, count: Int
    ) -> Int {
        vectored(Glibc.readv, fd: fd, header, headerCount, buffer, count)
    }

    /// writev(2) of a virtio-net header and a packet. Returns the byte count or -errno.
    @inline(never)
    static func writev(
        fd: Int32, header: UnsafeRawPointer, headerCount: Int,
        from buffer: UnsafeRawPointer, count: Int
    ) -> Int {
        vectored(Glibc.writev, fd: fd, UnsafeMutableRawPointer(mutating: header), headerCount,
                 UnsafeMutableRawPointer(mutating: buffer), count)
    }

    /// readv/writev over two pieces, with a stack-allocated iovec pair.
    @inline(__always)
    private static func vectored(
        _ call: (Int32, UnsafePointer<iovec>?, Int32) -> Int, fd: Int32,
        _ first: UnsafeMutableRawPointer, _ firstCount: Int,
        _ second: UnsafeMutableRawPointer, _ secondCount: Int
    ) -> Int {
        var iov = (iovec(iov_base: first, iov_len: firstCount), iovec(iov_base: second, iov_len: secondCount))
        return withUnsafeMutableBytes(of: &iov) { raw in
            let vec = UnsafePointer(raw.baseAddress!.assumingMemoryBound(to: iovec.self))
            return retryingEINTR { call(fd, vec, 2) }
        }
    }

    /// The blocking wait of a data-plane thread (`TunQueue.wait`, `WanReceiver.wait`): polls
    /// `fd` and, if >= 0, `wakeFD` for up to `timeout` (nil: indefinitely; millisecond
    /// resolution, a positive timeout under 1 ms waits 1 ms). Returns the result, or nil and
    /// the errno. The wakeup is checked first: shutdown wins over pending packets.
    static func wait(fd: Int32, wakeFD: Int32, timeout: Duration?) -> (TunQueue.WaitResult?, errno: Int32) {
        let ms: Int32
        if let timeout {
            let (s, atto) = timeout.components
            if s < 0 || (s == 0 && atto <= 0) {
                ms = 0
            } else {
                let total = s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000
                ms = Int32(clamping: total)
            }
        } else {
            ms = -1
        }
        let r = poll(fd: fd, wakeFD: wakeFD, timeoutMilliseconds: ms)
        if r < 0 { return (nil, -r) }
        if r & pollWoken != 0 { return (.woken, 0) }
        if r & pollReadable != 0 { return (.readable, 0) }
        return (.timedOut, 0)
    }

    /// Result bits of `poll(fd:wakeFD:timeoutMilliseconds:)`.
    static let pollReadable: Int32 = 1
    static let pollWoken: Int32 = 2

    /// poll(2) for input on `fd` and, if >= 0, on `wakeFD`. Returns a mask of
    /// `pollReadable`/`pollWoken` (0 on timeout) or -errno. Errors and hang-ups on `fd` count
    /// as readable, so that the following read reports them. EINTR returns 0 (the caller
    /// loops or re-checks its deadline).
    @inline(never)
    static func poll(fd: Int32, wakeFD: Int32, timeoutMilliseconds: Int32) -> Int32 {
        let interesting = Int16(POLLIN | POLLERR | POLLHUP)
        var fds = (
            pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
        )
        let n = withUnsafeMutableBytes(of: &fds) { raw in
            Glibc.poll(raw.baseAddress!.assumingMemoryBound(to: pollfd.self), wakeFD >= 0 ? 2 : 1, timeoutMilliseconds)
        }
        if n < 0 {
            let e = Glibc.errno
            return e == EINTR ? 0 : -e
        }
        var mask: Int32 = 0
        if fds.0.revents & interesting != 0 { mask |= pollReadable }
        if wakeFD >= 0, fds.1.revents & interesting != 0 { mask |= pollWoken }
        return mask
    }
}

// TunWakeup: wakes data-plane threads blocked in `TunQueue.wait(timeout:)`, for shutdown.
//
// Closing an fd does not wake a thread polling it, so shutdown needs its own signal: an
// eventfd that every queue of a device polls next to its TUN fd. `wake()` is sticky — the
// counter is not consumed by waiters — so one call wakes every thread, now and later, until
// `reset()`.

/// A wakeup signal (eventfd) that can be shared by all queues and fired from any thread.
public final class TunWakeup: Sendable {
    let fd: Int32

    /// Creates the eventfd.
    public init() throws(TunError) {
        let fd = TunSys.eventfdOpen()
        guard fd >= 0 else {
            throw TunError(.waitFailed, operation: "eventfd", device: "", errno: -fd)
        }
        self.fd = fd
    }

    deinit { TunSys.close(fd) }

    /// Wakes every waiter, now and until `reset()`. Safe from any thread, any number of times.
    public func wake() {
        // Only EBADF could fail here, and this object owns the fd for its whole life.
        _ = TunSys.eventfdSignal(fd)
    }

    /// True if `wake()` was called since the last `reset()`.
    public var isWoken: Bool {
        TunSys.poll(fd: fd, wakeFD: -1, timeoutMilliseconds: 0) & TunSys.pollReadable != 0
    }

    /// Clears the signal so that waiters block again.
    public func reset() { _ = TunSys.eventfdDrain(fd) }
}

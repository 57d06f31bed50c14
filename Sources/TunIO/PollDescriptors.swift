// The file descriptors a data-plane thread polls. svrd's data plane waits on one TUN queue,
// several WAN receivers and a wakeup at once (one poll(2) over all of them), which the
// one-fd `wait(timeout:)` of each type cannot do. The descriptors stay owned by their
// objects: poll them, never read, write or close them.

extension TunQueue {
    /// The queue's fd, for poll(2) (POLLIN) only.
    public var pollDescriptor: Int32 { fd }
}

extension WanReceiver {
    /// The packet socket's fd, for poll(2) (POLLIN) only.
    public var pollDescriptor: Int32 { fd }
}

extension TunWakeup {
    /// The eventfd that becomes readable when `wake()` is called, for poll(2) only.
    public var pollDescriptor: Int32 { fd }
}

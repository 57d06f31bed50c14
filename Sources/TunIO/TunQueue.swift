// TunQueue: one queue (fd) of a TUN device, owned by one data-plane thread.
//
// Loop of a data-plane thread:
//
//   var batch = PacketBatch(capacity: 128, maxPacketSize: mtu)
//   while true {
//       let n = try queue.read(into: &batch)          // non-blocking: 0...capacity packets
//       if n == 0 {
//           if try queue.wait(timeout: .milliseconds(100)) == .woken { break }   // shutdown
//           continue
//       }
//       ... process slots 0..<n in place (they stay valid until the next read) ...
//   }
//
// The fd is non-blocking, so read and write never block; `wait` is the only blocking call
// and returns early when the queue's `wakeup` fires. Nothing here allocates, locks or logs
// per packet; errors are typed and thrown only for real failures (EAGAIN is "no more").

import Glibc

/// Counters a queue keeps about packets it could not deliver. Owned by the queue's thread.
public struct TunQueueStats: Sendable, Equatable {
    /// Packets longer than the batch's `maxPacketSize`, dropped. (The kernel truncates a
    /// packet to the read buffer; reads ask for one byte more than `maxPacketSize` to tell.)
    public var oversizedReads: UInt64 = 0
    /// Reads shorter than the virtio-net header (dropped).
    public var runtReads: UInt64 = 0
    public init() {}
}

/// One TUN queue: an fd owned by one thread, closed when the queue is destroyed.
public struct TunQueue: ~Copyable, Sendable {
    /// Name of the device this queue belongs to.
    public let deviceName: String
    /// Index of the queue among those opened together.
    public let index: Int
    /// Whether each packet on this fd is preceded by a virtio-net header.
    public let hasVirtioHeader: Bool
    /// The signal `wait(timeout:)` also listens to (set one shared signal on every queue).
    public var wakeup: TunWakeup?
    /// Drop counters (see `TunQueueStats`).
    public private(set) var stats = TunQueueStats()

    let fd: Int32

    init(fd: Int32, deviceName: String, index: Int, hasVirtioHeader: Bool) {
        self.fd = fd
        self.deviceName = deviceName
        self.index = index
        self.hasVirtioHeader = hasVirtioHeader
    }

    deinit { TunSys.close(fd) }

    /// Closes the fd (same as letting the queue go out of scope).
    public consuming func close() {}

    /// What ended a `wait(timeout:)`.
    public enum WaitResult: Sendable, Equatable {
        /// The queue has packets (or an error, which the next read reports).
        case readable
        /// The timeout passed with nothing to read.
        case timedOut
        /// `wakeup` fired (checked first: shutdown wins over pending packets).
        case woken
    }

    /// Reads packets into `batch` until the kernel has no more (EAGAIN) or the batch is
    /// full, and returns how many (also `batch.count`). Slot `i` gets offset `headroom` and
    /// the packet's length; with a virtio header, `batch.virtioHeader(at: i)` holds it.
    /// The previous contents of the batch are overwritten: views into it become invalid.
    ///
    /// Packets longer than `batch.maxPacketSize` are dropped and counted in `stats`.
    /// An error after at least one packet was read ends the batch early without throwing;
    /// a persistent error is thrown by the next call.
    public mutating func read(into batch: inout PacketBatch) throws(TunError) -> Int {
        let max = batch.maxPacketSize
        let readSize = max + 1  // see TunQueueStats.oversizedReads; the slot has room for it
        let hdr = TunSys.virtioHeaderSize
        var n = 0
        while n < batch.capacity {
            let got: Int
            if hasVirtioHeader {
                let r = TunSys.readv(fd: fd, header: batch.virtioPointer(at: n), headerCount: hdr,
                                     into: batch.readPointer(at: n), count: readSize)
                if r == 0 { break }  // no packet (never seen; guards against a busy loop)
                if r > 0 && r < hdr {
                    stats.runtReads &+= 1
                    continue
                }
                got = r < 0 ? r : r - hdr
            } else {
                got = TunSys.read(fd: fd, into: batch.readPointer(at: n), count: readSize)
                if got == 0 { break }
            }
            if got < 0 {
                let e = Int32(-got)
                if e == EAGAIN || n > 0 { break }
                throw TunError(.readFailed, operation: "read", device: deviceName, errno: e,
                               detail: e == EBADFD || e == EIO ? "device was deleted" : "")
            }
            if got > max {
                stats.oversizedReads &+= 1
                continue
            }
            batch.setPacket(at: n, offset: batch.headroom, length: got)
            n += 1
        }
        batch.count = n
        return n
    }

    /// Writes the packets of slots `start..<batch.count` (each slot's offset and length;
    /// with a virtio header, each slot's `virtioHeader`) and returns how many the kernel
    /// took. A short count means the packet at `start + result` failed: with EAGAIN (no
    /// buffer space) or any error after the first packet, the count is returned; call again
    /// from that index to retry it, or from the one after to skip it. An error on the first
    /// packet is thrown.
    public func write(_ batch: borrowing PacketBatch, from start: Int = 0) throws(TunError) -> Int {
        precondition(start >= 0 && start <= batch.count, "write start out of range")
        let hdr = TunSys.virtioHeaderSize
        var i = start
        while i < batch.count {
            let len = batch.length(at: i)
            let r: Int
            if hasVirtioHeader {
                r = TunSys.writev(fd: fd, header: batch.virtioPointer(at: i), headerCount: hdr,
                                  from: batch.packetPointer(at: i), count: len)
            } else {
                r = TunSys.write(fd: fd, from: batch.packetPointer(at: i), count: len)
            }
            if r < 0 {
                let e = Int32(-r)
                if e == EAGAIN || i > start { break }
                throw TunError(.writeFailed, operation: "write \(len) bytes", device: deviceName, errno: e,
                               detail: e == EINVAL ? "not a valid packet for this device" : "")
            }
            i += 1
        }
        return i - start
    }

    /// Blocks until the queue is readable, `wakeup` fires, or `timeout` passes (nil: wait
    /// indefinitely). Millisecond resolution; a positive timeout under 1 ms waits 1 ms. A
    /// signal interrupting the wait (EINTR) ends it early as `.timedOut`.
    public func wait(timeout: Duration?) throws(TunError) -> WaitResult {
        let (result, e) = TunSys.wait(fd: fd, wakeFD: wakeup?.fd ?? -1, timeout: timeout)
        guard let result else { throw TunError(.waitFailed, operation: "poll", device: deviceName, errno: e) }
        return result
    }
}

// svrbench tun: packets per second through a TUN device, write + read.
//
// Columns: pkts/s and Gbit/s (wall clock, all queues together); ns/pkt = 1e9 / pkts/s;
// cpu-ns/pkt = CPU time of the worker threads per packet (user + kernel time in their
// syscalls, which includes the kernel's IP/ICMP work done inline in write(2)), less
// sensitive to a loaded machine than wall clock; lost = replies that did not come back
// within 50 ms; other-queue = replies to the other worker's requests read by a worker.
//
// What one "packet" is: one ICMP echo request (an IPv4 packet of the given size, written to
// the TUN with one write(2)) whose echo reply the kernel routes back into the TUN and the
// benchmark reads (one read(2) per packet, batched up to the batch size). So each counted
// packet is a full round trip: TUN write -> kernel IPv4 receive -> ICMP echo -> route -> TUN
// queue -> read. The rate is completed round trips per second; Gbit/s counts the request
// bytes once.
//
// Per batch a worker writes `batch` requests, then reads replies (non-blocking reads until
// EAGAIN, poll in between) until all have come back. With 2 queues (IFF_MULTI_QUEUE) there
// are two workers, each on its own thread, queue and source address; tun's flow steering
// sends each reply to the queue that wrote the request.
//
// Isolation: everything runs in a private network namespace made by a dedicated thread with
// unshare(CLONE_NEWNET); the namespace (and the device) disappear when the fds close and the
// thread ends. The device is configured with ioctls (SIOCSIFADDR/SIOCSIFNETMASK, SIOCSIFFLAGS)
// through the C shim — no `ip`, no netlink.

internal import CShim
import Glibc
import Synchronization
import TunIO

enum TunBench {
    static let about = "TUN write+read round trips/s (ICMP echo via the kernel), 1-2 queues, batch 1-128"

    static func run(_ args: [String]) {
        var seconds = 1.0
        var queues = [1, 2]
        var sizes = [64, 1400]
        var batches = [1, 8, 32, 128]
        var i = 0
        func list(_ s: String) -> [Int] { s.split(separator: ",").compactMap { Int($0) } }
        while i + 1 < args.count {
            switch args[i] {
            case "--seconds": seconds = Double(args[i + 1]) ?? seconds
            case "--queues": queues = list(args[i + 1]).filter { (1...8).contains($0) }
            case "--sizes": sizes = list(args[i + 1]).filter { (64...1500).contains($0) }
            case "--batches": batches = list(args[i + 1]).filter { (1...256).contains($0) }
            default: print("unknown option \(args[i]) (options: --seconds S --queues 1,2 --sizes 64,1400 --batches 1,8,32,128)")
                exit(2)
            }
            i += 2
        }
        guard getuid() == 0 else {
            print("svrbench tun needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for unshare)")
            exit(1)
        }
        print("TUN write+read: one packet = ICMP echo request written + echo reply read; \(seconds) s per row")
        print("queues  size(B)  batch     pkts/s   Gbit/s   ns/pkt  cpu-ns/pkt   lost  other-queue")
        for q in queues {
            for size in sizes {
                for b in batches {
                    let r = measure(queues: q, size: size, batch: b, seconds: seconds)
                    if let error = r.error {
                        print("\(q)       \(size)  \(b): failed: \(error)")
                        continue
                    }
                    let pps = Double(r.packets) / r.seconds
                    let row = [
                        pad(String(q), 6), pad(String(size), 8), pad(String(b), 6),
                        pad(String(Int(pps)), 10), pad(fixed(pps * Double(size) * 8 / 1e9, 3), 8),
                        pad(String(Int(1e9 / max(pps, 1))), 8),
                        pad(String(Int(r.cpuSeconds * 1e9 / Double(max(r.packets, 1)))), 11), pad(String(r.lost), 6), pad(String(r.foreign), 12),
                    ]
                    print(row.joined(separator: " "))
                }
            }
        }
    }

    static func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? s : String(repeating: " ", count: n - s.count) + s
    }

    static func fixed(_ v: Double, _ digits: Int) -> String {
        let scale = Double([1, 10, 100, 1000, 10000][digits])
        let n = Int((v * scale).rounded())
        let frac = String(n % Int(scale))
        return "\(n / Int(scale)).\(String(repeating: "0", count: digits - frac.count))\(frac)"
    }

    // ---- one measurement -----------------------------------------------------------------

    struct Result: Sendable {
        var packets = 0
        var lost = 0
        var foreign = 0
        var seconds = 0.0
        /// CPU time of the worker threads (user + system, which includes the kernel's work
        /// done in the write and read syscalls).
        var cpuSeconds = 0.0
        var error: String?
    }

    /// Runs one configuration in a fresh namespace and returns the summed worker results.
    static func measure(queues: Int, size: Int, batch: Int, seconds: Double) -> Result {
        let out = Mutex(Result())
        let outBox = Shared(out)
        let t = startThread {
            let r = runInPrivateNamespace(queues: queues, size: size, batch: batch, seconds: seconds)
            outBox.value.withLock { $0 = r }
        }
        pthread_join(t, nil)
        return outBox.value.withLock { $0 }
    }

    /// Body of the namespace thread: unshare, create and configure the device, run workers.
    private static func runInPrivateNamespace(queues: Int, size: Int, batch: Int, seconds: Double) -> Result {
        var result = Result()
        let rc = svr_unshare_net()
        guard rc == 0 else {
            result.error = "unshare(CLONE_NEWNET): \(String(cString: strerror(-rc)))"
            return result
        }
        var device: TunDevice
        do {
            device = try TunDevice(TunConfiguration(name: "svrb0", queues: queues, mtu: 1500))
        } catch {
            result.error = "\(error)"
            return result
        }
        let local = ipv4(198, 18, 0, 1)
        var setup = svr_if_set_ipv4(device.name, local.bigEndian, 24)
        if setup == 0 { setup = svr_if_set_up(device.name, 1) }
        guard setup == 0 else {
            result.error = "configuring \(device.name): \(String(cString: strerror(-setup)))"
            return result
        }

        let results = Shared(Mutex([Result]()))
        var threads: [pthread_t] = []
        for index in 0..<queues {
            guard let q = device.takeQueue(index) else { break }
            let handoff = Shared(Mutex<TunQueue?>(q))
            threads.append(startThread {
                var queue = handoff.value.withLock { $0.take() }!
                let r = worker(queue: &queue, source: ipv4(198, 18, 0, UInt8(2 + index)), destination: local,
                               id: UInt16(index + 1), size: size, batch: batch, seconds: seconds)
                results.value.withLock { $0.append(r) }
            })
        }
        for t in threads { pthread_join(t, nil) }
        let all = results.value.withLock { $0 }
        for r in all {
            result.packets += r.packets
            result.lost += r.lost
            result.foreign += r.foreign
            result.seconds = max(result.seconds, r.seconds)
            result.cpuSeconds += r.cpuSeconds
            if let e = r.error { result.error = e }
        }
        return result
    }

    /// One data-plane thread: write `batch` echo requests, read until their replies are back.
    private static func worker(
        queue: inout TunQueue, source: UInt32, destination: UInt32, id: UInt16,
        size: Int, batch: Int, seconds: Double
    ) -> Result {
        var result = Result()
        var tx = PacketBatch(capacity: batch, maxPacketSize: 1500)
        var rx = PacketBatch(capacity: batch, maxPacketSize: 1500)
        for slot in 0..<batch {
            tx.setPacket(at: slot, offset: tx.headroom, length: size)
            writeEchoRequest(into: tx.unsafePacket(at: slot), source: source, destination: destination, id: id, sequence: UInt16(slot))
        }
        tx.count = batch
        do {
            // Warm-up, not counted: the first reply of a flow can reach the wrong queue,
            // because tun learns a flow's queue only after the write that carried it.
            _ = try roundTrips(queue: &queue, tx: tx, rx: &rx, id: id, until: now() + 0.1)
            let start = now()
            let cpuStart = now(CLOCK_THREAD_CPUTIME_ID)
            let r = try roundTrips(queue: &queue, tx: tx, rx: &rx, id: id, until: start + seconds)
            result.seconds = now() - start
            result.cpuSeconds = now(CLOCK_THREAD_CPUTIME_ID) - cpuStart
            result.packets = r.done
            result.lost = r.lost
            result.foreign = r.foreign
        } catch {
            result.error = "\(error)"
        }
        return result
    }

    /// Writes the batch, reads until every reply is back (or 50 ms pass without one),
    /// repeats until `end`. Returns round trips completed, replies not seen on this queue,
    /// and replies to another queue's requests that arrived here.
    private static func roundTrips(
        queue: inout TunQueue, tx: borrowing PacketBatch, rx: inout PacketBatch, id: UInt16, until end: Double
    ) throws(TunError) -> (done: Int, lost: Int, foreign: Int) {
        var done = 0
        var lost = 0
        var foreign = 0
        while now() < end {
            let sent = try queue.write(tx)
            var waiting = sent
            while waiting > 0 {
                let n = try queue.read(into: &rx)
                for i in 0..<n {
                    switch echoReplyID(rx.unsafePacket(at: i)) {
                    case id: waiting -= 1
                    case nil: break
                    default: foreign += 1
                    }
                }
                if n == 0, try queue.wait(timeout: .milliseconds(50)) == .timedOut { break }
            }
            done += sent - max(waiting, 0)
            lost += max(waiting, 0)
        }
        return (done, lost, foreign)
    }

    // ---- packets -------------------------------------------------------------------------

    private static func ipv4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> UInt32 {
        UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Writes an IPv4 ICMP echo request filling `p` (20-byte header, 8-byte ICMP header,
    /// payload), with correct checksums.
    private static func writeEchoRequest(
        into p: UnsafeMutableRawBufferPointer, source: UInt32, destination: UInt32, id: UInt16, sequence: UInt16
    ) {
        for i in 0..<p.count { p[i] = UInt8(truncatingIfNeeded: i) }
        p.storeBytes(of: UInt16(0x4500).bigEndian, toByteOffset: 0, as: UInt16.self)  // v4, IHL 5, TOS 0
        p.storeBytes(of: UInt16(p.count).bigEndian, toByteOffset: 2, as: UInt16.self)
        p.storeBytes(of: UInt32(0x0000_4000).bigEndian, toByteOffset: 4, as: UInt32.self)  // id 0, DF
        p.storeBytes(of: UInt16(0x4001).bigEndian, toByteOffset: 8, as: UInt16.self)  // TTL 64, ICMP
        p.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
        p.storeBytes(of: source.bigEndian, toByteOffset: 12, as: UInt32.self)
        p.storeBytes(of: destination.bigEndian, toByteOffset: 16, as: UInt32.self)
        let ipSum = InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: p[0..<20]))
        p.storeBytes(of: ipSum.bigEndian, toByteOffset: 10, as: UInt16.self)
        p.storeBytes(of: UInt32(0x0800_0000).bigEndian, toByteOffset: 20, as: UInt32.self)  // echo request, csum 0
        p.storeBytes(of: id.bigEndian, toByteOffset: 24, as: UInt16.self)
        p.storeBytes(of: sequence.bigEndian, toByteOffset: 26, as: UInt16.self)
        let icmpSum = InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: p[20...]))
        p.storeBytes(of: icmpSum.bigEndian, toByteOffset: 22, as: UInt16.self)
    }

    /// The ICMP id of an IPv4 echo reply, or nil for any other packet.
    private static func echoReplyID(_ p: UnsafeMutableRawBufferPointer) -> UInt16? {
        guard p.count >= 28, p[0] == 0x45, p[9] == 1, p[20] == 0 else { return nil }
        return UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 24, as: UInt16.self))
    }

    // ---- threads and time ----------------------------------------------------------------

    /// Shares a noncopyable Sendable value (a Mutex) between threads.
    private final class Shared<T: ~Copyable & Sendable>: Sendable {
        let value: T
        init(_ value: consuming T) { self.value = value }
    }

    private final class ThreadBody: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// Starts a pthread running `body`; join it with pthread_join.
    private static func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        return thread
    }

    static func now(_ clock: clockid_t = CLOCK_MONOTONIC) -> Double {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

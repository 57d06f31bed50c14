// The data-plane thread: one thread owns the engine, the LAN TUN queue, the WAN receivers
// and senders, and every packet buffer; nothing else touches them.
//
// Loop:
//   1. poll(2) on the TUN queue, each WAN receiver and the wakeup eventfd (≤ 50 ms).
//   2. Wakeup: stop if asked to; answer a pending snapshot request (mailbox).
//   3. TUN readable: read a batch (≤ 128), hand each packet to `engine.handleLAN`, then send
//      the batch out in runs of consecutive packets with the same disposition: `.toWAN(i)`
//      runs with WAN sender i (one sendmmsg), `.toLAN` runs back to the TUN. No copies.
//   4. Each readable WAN receiver: the same with `engine.handleWAN`.
//   5. Every 50 ms: `engine.tick`, then `drainGenerated` (each generated packet is sent at
//      once from a one-slot batch); every second: kernel drop counters of the receivers, and
//      a copy of the engine's counters for the main thread's log events (EventMonitor).
//
// Per packet there is no allocation, no lock and no logging; the only shared state is the
// `DataPlaneControl` (an eventfd, two atomics, and a mutex taken once per control request).

import Glibc
import Logging
import SVR
import Synchronization
import TunIO

/// I/O counters of the daemon (beside the engine's own counters).
struct IOCounters: Sendable, Equatable {
    var tunReadPackets: UInt64 = 0
    var tunWrittenPackets: UInt64 = 0
    /// Packets the TUN did not take (queue full or an error).
    var tunWriteDrops: UInt64 = 0
    var wanReceived: [UInt64] = []
    var wanSent: [UInt64] = []
    var wanSendDrops: [UInt64] = []
    var wanKernelDrops: [UInt64] = []
    /// `.toWAN` to an interface without a sender.
    var wanNoSender: UInt64 = 0
}

/// What a snapshot request returns.
struct DataPlaneSnapshot: Sendable {
    var engine: EngineSnapshot
    var io: IOCounters
    var interfaces: [String]
}

/// Shared between the data-plane thread and the others (control thread, main thread).
final class DataPlaneControl: Sendable {
    let wakeup: TunWakeup
    let stopRequested = Atomic<Bool>(false)
    /// Set once the loop runs (readiness).
    let running = Atomic<Bool>(false)
    /// Loop iterations of the data-plane thread (at least 20 a second, also when idle): the
    /// systemd watchdog is fed only while it advances.
    let heartbeat = Atomic<UInt64>(0)
    /// Set when the loop ended with an error.
    let failed = Atomic<Bool>(false)
    private let mailbox = Mutex<Mailbox>(Mailbox())
    /// The engine's counters, copied by the data-plane thread once a second (a lock once a
    /// second, not per packet): the main thread derives its log events from them.
    private let published = Mutex<EngineCounters?>(nil)

    private struct Mailbox {
        var requested: UInt64 = 0
        var answered: UInt64 = 0
        var answer: DataPlaneSnapshot?
    }

    init() throws(DaemonFailure) {
        do { wakeup = try TunWakeup() } catch { throw DaemonFailure(.setup, "cannot create the wakeup eventfd: \(error)") }
    }

    func stop() {
        stopRequested.store(true, ordering: .releasing)
        wakeup.wake()
    }

    /// Asks the data-plane thread for a snapshot and waits for it (nil after `timeoutMs`).
    func requestSnapshot(timeoutMs: Int = 3000) -> DataPlaneSnapshot? {
        let generation = mailbox.withLock { m -> UInt64 in
            m.requested += 1
            return m.requested
        }
        wakeup.wake()
        for _ in 0..<timeoutMs {
            let answer = mailbox.withLock { m -> DataPlaneSnapshot? in m.answered >= generation ? m.answer : nil }
            if let answer { return answer }
            if failed.load(ordering: .acquiring) || !running.load(ordering: .acquiring) { return nil }
            usleep(1000)
        }
        return nil
    }

    /// The counters of the last second (nil before the first second).
    func latestCounters() -> EngineCounters? { published.withLock { $0 } }

    func publish(_ counters: EngineCounters) { published.withLock { $0 = counters } }

    /// Data-plane side: the generation of a pending request, if any.
    func pendingRequest() -> UInt64? {
        mailbox.withLock { m in m.requested > m.answered ? m.requested : nil }
    }

    func answer(_ generation: UInt64, _ snapshot: DataPlaneSnapshot) {
        mailbox.withLock { m in
            m.answer = snapshot
            m.answered = generation
        }
    }
}

final class ReceiverBox {
    var rx: WanReceiver
    let interface: Int
    init(_ rx: consuming WanReceiver, interface: Int) { self.rx = rx; self.interface = interface }
}

final class SenderBox {
    var tx: WanSender
    init(_ tx: consuming WanSender) { self.tx = tx }
}

final class TunBox {
    var queue: TunQueue
    init(_ queue: consuming TunQueue) { self.queue = queue }
}

/// Everything the data-plane thread owns. Built on the main thread, then moved into the
/// thread (`sending`) and used only there.
final class DataPlane {
    static let batchSize = 128
    private static let tickNanos: UInt64 = 50_000_000
    private static let housekeepingNanos: UInt64 = 1_000_000_000
    private static let skip: Int32 = -1
    private static let lan: Int32 = -2

    let control: DataPlaneControl
    let engine: any PacketEngine
    let logger: Logger
    let tun: TunBox
    let receivers: [ReceiverBox]
    /// Indexed by config interface index; nil for an interface without a sender.
    let senders: [SenderBox?]
    let interfaceNames: [String]
    let maxPacketSize: Int
    private var io = IOCounters()
    private let dest: UnsafeMutablePointer<Int32>
    private var gen: PacketBatch

    init(control: DataPlaneControl, engine: any PacketEngine, logger: Logger, tun: TunBox, receivers: [ReceiverBox],
         senders: [SenderBox?], interfaceNames: [String], maxPacketSize: Int) {
        self.control = control
        self.engine = engine
        self.logger = logger
        self.tun = tun
        self.receivers = receivers
        self.senders = senders
        self.interfaceNames = interfaceNames
        self.maxPacketSize = maxPacketSize
        self.dest = .allocate(capacity: Self.batchSize)
        self.dest.initialize(repeating: Self.skip, count: Self.batchSize)
        // Generated packets include whole datagrams after reassembly (up to 64 KiB).
        self.gen = PacketBatch(capacity: 1, maxPacketSize: 65536, headroom: 256, tailroom: 128)
        let n = interfaceNames.count
        io.wanReceived = Array(repeating: 0, count: n)
        io.wanSent = Array(repeating: 0, count: n)
        io.wanSendDrops = Array(repeating: 0, count: n)
        io.wanKernelDrops = Array(repeating: 0, count: n)
    }

    deinit { dest.deallocate() }

    /// The thread body: runs until `control.stop()` or a fatal I/O error (then it sets
    /// `control.failed` and sends SIGTERM to the process so the main thread cleans up).
    func run() {
        do throws(DaemonFailure) {
            try loop()
        } catch {
            logger.critical("data plane stopped", metadata: ["error": "\(error)"])
            control.failed.store(true, ordering: .releasing)
            control.running.store(false, ordering: .releasing)
            kill(getpid(), SIGTERM)
        }
    }

    private func loop() throws(DaemonFailure) {
        // Headroom for the SVR headers and metadata pushed in front, tailroom for IV/MAC/padding.
        var lanBatch = PacketBatch(capacity: Self.batchSize, maxPacketSize: maxPacketSize, headroom: 256, tailroom: 128)
        var wanBatch = PacketBatch(capacity: Self.batchSize, maxPacketSize: max(maxPacketSize, 1500) + 256, headroom: 128, tailroom: 128)
        let nfds = 2 + receivers.count
        let pfds = UnsafeMutablePointer<pollfd>.allocate(capacity: nfds)
        defer { pfds.deallocate() }
        pfds[0] = pollfd(fd: control.wakeup.pollDescriptor, events: Int16(POLLIN), revents: 0)
        pfds[1] = pollfd(fd: tun.queue.pollDescriptor, events: Int16(POLLIN), revents: 0)
        for (k, r) in receivers.enumerated() {
            pfds[2 + k] = pollfd(fd: r.rx.pollDescriptor, events: Int16(POLLIN), revents: 0)
        }
        var now = EngineTime.now()
        var lastTick = now.monotonicNanos
        var lastHousekeeping = now.monotonicNanos
        control.running.store(true, ordering: .releasing)

        while true {
            for i in 0..<nfds { pfds[i].revents = 0 }
            let r = poll(pfds, nfds_t(nfds), 50)
            control.heartbeat.wrappingAdd(1, ordering: .relaxed)
            if r < 0 && errno != EINTR { throw DaemonFailure(.runtime, "poll: \(String(cString: strerror(errno)))") }
            now = EngineTime.now()

            if pfds[0].revents != 0 {
                control.wakeup.reset()
                if control.stopRequested.load(ordering: .acquiring) { break }
                if let generation = control.pendingRequest() {
                    control.answer(generation, DataPlaneSnapshot(engine: engine.snapshot(now: now), io: io, interfaces: interfaceNames))
                }
            }
            if pfds[1].revents != 0 {
                let n: Int
                do { n = try tun.queue.read(into: &lanBatch) } catch {
                    throw DaemonFailure(.runtime, "reading the LAN TUN: \(error)")
                }
                if n > 0 {
                    io.tunReadPackets &+= UInt64(n)
                    for i in 0..<n {
                        dest[i] = classify(&lanBatch, i) { engine.handleLAN(&$0, now: now) }
                    }
                    try flush(&lanBatch, n)
                    try drainGenerated()  // SVR fragments, reassembled datagrams, ICMP errors
                }
            }
            for (k, box) in receivers.enumerated() where pfds[2 + k].revents != 0 {
                let n: Int
                do { n = try box.rx.read(into: &wanBatch) } catch {
                    // A link going down is reported once (ENETDOWN) and the socket receives
                    // again when it comes back up: not a reason to stop. Anything else is.
                    guard error.kind == .interfaceDown || error.errno == ENETDOWN else {
                        throw DaemonFailure(.runtime, "receiving on \(box.rx.interface): \(error)")
                    }
                    logger.warning("WAN interface went down; waiting for it to come back", metadata: ["interface": "\(box.rx.interface)"])
                    continue
                }
                guard n > 0 else { continue }
                io.wanReceived[box.interface] &+= UInt64(n)
                let interface = box.interface
                for i in 0..<n {
                    dest[i] = classify(&wanBatch, i) { engine.handleWAN(&$0, interface: interface, now: now) }
                }
                try flush(&wanBatch, n)
                try drainGenerated()
            }
            if now.monotonicNanos &- lastTick >= Self.tickNanos {
                lastTick = now.monotonicNanos
                engine.tick(now: now)
                try drainGenerated()
            }
            if now.monotonicNanos &- lastHousekeeping >= Self.housekeepingNanos {
                lastHousekeeping = now.monotonicNanos
                for box in receivers {
                    if let d = try? box.rx.takeKernelDrops() { io.wanKernelDrops[box.interface] &+= UInt64(d) }
                }
                control.publish(engine.counters)
            }
        }
        control.running.store(false, ordering: .releasing)
    }

    /// Runs the engine on slot `i` and returns its destination code.
    @inline(__always)
    private func classify(_ batch: inout PacketBatch, _ i: Int, _ handle: (inout PacketBuffer) -> Disposition) -> Int32 {
        let slot = batch.unsafeSlot(at: i)
        guard var packet = try? PacketBuffer(slot: slot.baseAddress!, capacity: slot.count, offset: batch.dataOffset(at: i),
                                             count: batch.length(at: i)) else { return Self.skip }
        let d = handle(&packet)
        batch.setPacket(at: i, offset: packet.offset, length: packet.count)
        return code(d)
    }

    @inline(__always)
    private func code(_ d: Disposition) -> Int32 {
        switch d {
        case .toWAN(let interface): Int32(truncatingIfNeeded: interface)
        case .toLAN: Self.lan
        case .consumed, .drop: Self.skip
        }
    }

    /// Sends slots 0..<n by runs of equal destination (see the top of the file).
    private func flush(_ batch: inout PacketBatch, _ n: Int) throws(DaemonFailure) {
        var i = 0
        while i < n {
            let d = dest[i]
            if d == Self.skip { i += 1; continue }
            var j = i + 1
            while j < n && dest[j] == d { j += 1 }
            batch.count = j
            try send(batch, from: i, to: d)
            i = j
        }
        batch.count = n
    }

    private func send(_ batch: borrowing PacketBatch, from start: Int, to d: Int32) throws(DaemonFailure) {
        let count = batch.count - start
        if d == Self.lan {
            var at = start
            while at < batch.count {
                do {
                    let w = try tun.queue.write(batch, from: at)
                    io.tunWrittenPackets &+= UInt64(w)
                    at += w
                    if at < batch.count {  // EAGAIN or an error after the first: drop that one
                        io.tunWriteDrops &+= 1
                        at += 1
                    }
                } catch {
                    // EIO: the TUN is down (an administrator); EBADFD: it was deleted under us.
                    if error.errno == EBADFD { throw DaemonFailure(.runtime, "writing to the LAN TUN: \(error)") }
                    io.tunWriteDrops &+= 1
                    at += 1
                }
            }
            return
        }
        let k = Int(d)
        guard k >= 0, k < senders.count, let box = senders[k] else {
            io.wanNoSender &+= UInt64(count)
            return
        }
        do {
            let sent = try box.tx.send(batch, from: start)
            io.wanSent[k] &+= UInt64(sent)
            io.wanSendDrops[k] &+= UInt64(count - sent)
        } catch {
            throw DaemonFailure(.runtime, "sending on \(interfaceNames[k]): \(error)")
        }
    }

    private func drainGenerated() throws(DaemonFailure) {
        var failure: DaemonFailure?
        let slot = gen.unsafeSlot(at: 0)
        engine.drainGenerated(into: slot, headroom: gen.headroom) { packet, d in
            guard failure == nil else { return }
            let c = code(d)
            guard c != Self.skip else { return }
            gen.setPacket(at: 0, offset: packet.offset, length: packet.count)
            gen.count = 1
            do throws(DaemonFailure) { try send(gen, from: 0, to: c) } catch { failure = error }
        }
        if let failure { throw failure }
    }
}

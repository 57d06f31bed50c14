// Reassembly: a fixed table of datagrams being put back together from fragments, with all
// memory allocated once (no allocation per packet).
//
// Used twice by the engine (SVRRouter+MTU.swift): for IPv4 fragments of a LAN datagram
// (key: source, destination, protocol, identification) and for the pieces of an SVR packet
// that a peer fragmented (key: the peer's address and the fragment TLV's extended ID).
//
// Each slot owns `headroom + prefix + maxLength + tailroom` bytes: the fragment data goes at
// `headroom + prefix + offset`; `prefix` bytes in front are left for a header the caller
// writes once the datagram is whole (the rebuilt IPv4 header of a LAN datagram), and the
// headroom/tailroom let the engine process the result in place like any packet in a slot.
// A bitmap with one bit per 8-byte unit says what has arrived, so overlapping or duplicate
// fragments are detected exactly (the datagram is then discarded: RFC 5722's rule for IPv6,
// applied to IPv4 too — overlaps are an attack, never a normal network's doing).
//
// Bounds: at most `slots` datagrams at once; each at most `maxLength` bytes; an incomplete
// datagram is discarded after `timeoutNanos` or when its slot is needed for a new datagram
// (the oldest goes). Every discarded datagram is reported with a reason the engine counts.

/// The key of a datagram being reassembled.
struct ReassemblyKey: Equatable {
    var a: UInt32
    var b: UInt32
    var id: UInt32
    var proto: UInt8
}

/// What adding a fragment did.
enum ReassemblyResult: Equatable {
    /// Stored; more is missing.
    case incomplete
    /// The datagram is whole: `length` bytes (without the prefix) in slot `slot`.
    case complete(slot: Int, length: Int)
    /// The fragment (and the datagram it belonged to, if any) was discarded.
    case dropped(DropReason)
}

final class Reassembly {
    let slots: Int
    let maxLength: Int
    let prefix: Int
    let timeoutNanos: UInt64
    static let headroom = 256
    static let tailroom = 128
    let slotBytes: Int
    let memory: UnsafeMutableRawPointer
    /// One bit per 8-byte unit, `words` UInt64 per slot.
    let bitmap: UnsafeMutablePointer<UInt64>
    let words: Int
    var keys: [ReassemblyKey]
    var inUse: [Bool]
    var started: [UInt64]
    /// Bytes received so far, and the total length once the last fragment arrived (-1 before).
    var received: [Int]
    var total: [Int]
    /// Highest bitmap word touched (cleared on reuse).
    var highWord: [Int]
    var active = 0
    /// Datagrams discarded by `expire` (timed out), to be counted by the caller.
    var expired: UInt64 = 0

    init(slots: Int, maxLength: Int, prefix: Int, timeoutNanos: UInt64) {
        self.slots = slots
        self.maxLength = maxLength
        self.prefix = prefix
        self.timeoutNanos = timeoutNanos
        slotBytes = (Self.headroom + prefix + maxLength + Self.tailroom + 63) & ~63
        memory = .allocate(byteCount: slots * slotBytes, alignment: 64)
        words = (maxLength + 8 * 64 - 1) / (8 * 64)
        bitmap = .allocate(capacity: slots * words)
        bitmap.initialize(repeating: 0, count: slots * words)
        keys = Array(repeating: ReassemblyKey(a: 0, b: 0, id: 0, proto: 0), count: slots)
        inUse = Array(repeating: false, count: slots)
        started = Array(repeating: 0, count: slots)
        received = Array(repeating: 0, count: slots)
        total = Array(repeating: -1, count: slots)
        highWord = Array(repeating: 0, count: slots)
    }

    deinit {
        memory.deallocate()
        bitmap.deallocate()
    }

    /// Where slot `s`'s datagram starts (its prefix), with `headroom` bytes before it.
    func start(_ s: Int) -> UnsafeMutableRawPointer { memory + s * slotBytes + Self.headroom }

    /// Adds `length` bytes at `offset` of the datagram `key`; `more` is the more-fragments
    /// flag (false: this fragment ends the datagram).
    func add(_ key: ReassemblyKey, offset: Int, data: UnsafeRawPointer, length: Int, more: Bool, now: UInt64) -> ReassemblyResult {
        // Bounds: a non-last fragment is a multiple of 8 bytes; nothing empty; nothing past the end.
        guard length > 0, !more || length & 7 == 0, offset & 7 == 0 else { return .dropped(.fragmentInvalid) }
        guard offset + length <= maxLength else {
            if let s = find(key) { release(s) }
            return .dropped(.fragmentOversized)
        }
        var slot = find(key)
        if slot == nil {
            slot = claim(key, now: now)
        }
        guard let s = slot else { return .dropped(.fragmentTimeout) }
        if total[s] >= 0 && (offset + length > total[s] || (!more && offset + length != total[s])) {
            release(s)
            return .dropped(.fragmentInvalid)
        }
        if !more {
            // The end must not lie before data already received.
            let endUnit = (offset + length + 7) / 8
            if anySet(s, from: endUnit, to: maxLength / 8 + 1) { release(s); return .dropped(.fragmentInvalid) }
            total[s] = offset + length
        }
        let first = offset / 8, last = (offset + length + 7) / 8
        if anySet(s, from: first, to: last) {
            release(s)
            return .dropped(.fragmentInvalid)
        }
        setBits(s, from: first, to: last)
        (start(s) + prefix + offset).copyMemory(from: data, byteCount: length)
        received[s] += length
        if total[s] >= 0 && received[s] == total[s] {
            return .complete(slot: s, length: total[s])
        }
        return .incomplete
    }

    /// Frees slot `s` (after its datagram was used or discarded).
    func release(_ s: Int) {
        guard inUse[s] else { return }
        inUse[s] = false
        active -= 1
        let b = bitmap + s * words
        for w in 0...min(highWord[s], words - 1) { b[w] = 0 }
        highWord[s] = 0
    }

    /// Discards datagrams older than the timeout; returns how many.
    @discardableResult
    func expire(now: UInt64) -> Int {
        guard active > 0 else { return 0 }
        var n = 0
        for s in 0..<slots where inUse[s] && now &- started[s] > timeoutNanos {
            release(s)
            n += 1
        }
        expired &+= UInt64(n)
        return n
    }

    private func find(_ key: ReassemblyKey) -> Int? {
        guard active > 0 else { return nil }
        for s in 0..<slots where inUse[s] && keys[s] == key { return s }
        return nil
    }

    /// A free slot for `key`, or the oldest one (its datagram discarded and counted as expired).
    private func claim(_ key: ReassemblyKey, now: UInt64) -> Int? {
        var victim = -1
        for s in 0..<slots {
            if !inUse[s] { victim = s; break }
            if victim < 0 || started[s] < started[victim] { victim = s }
        }
        guard victim >= 0 else { return nil }
        if inUse[victim] { release(victim); expired &+= 1 }
        inUse[victim] = true
        active += 1
        keys[victim] = key
        started[victim] = now
        received[victim] = 0
        total[victim] = -1
        highWord[victim] = 0
        return victim
    }

    private func anySet(_ s: Int, from: Int, to: Int) -> Bool {
        let b = bitmap + s * words
        let hi = min(to, words * 64)
        var u = from
        while u < hi {
            if u & 63 == 0 && u + 64 <= hi {
                if b[u >> 6] != 0 { return true }
                u += 64
                continue
            }
            if b[u >> 6] & (1 << UInt64(u & 63)) != 0 { return true }
            u += 1
        }
        return false
    }

    private func setBits(_ s: Int, from: Int, to: Int) {
        let b = bitmap + s * words
        var u = from
        while u < to {
            if u & 63 == 0 && u + 64 <= to {
                b[u >> 6] = ~0
                u += 64
                continue
            }
            b[u >> 6] |= 1 << UInt64(u & 63)
            u += 1
        }
        highWord[s] = max(highWord[s], (to - 1) >> 6)
    }
}

/// Packets the engine produces outside the packet it was handed (SVR fragments toward a
/// peer, whole datagrams after reassembly, ICMP errors to the LAN): a byte arena allocated
/// once, filled during a batch and emptied by `drainGenerated`.
final class OutputQueue {
    static let arenaSize = 1 << 19
    static let maxEntries = 1024
    let arena: UnsafeMutableRawPointer
    var offsets: [Int]
    var lengths: [Int]
    /// -1: to the LAN; otherwise the WAN interface.
    var targets: [Int]
    var count = 0
    var used = 0

    init() {
        arena = .allocate(byteCount: Self.arenaSize, alignment: 64)
        offsets = Array(repeating: 0, count: Self.maxEntries)
        lengths = Array(repeating: 0, count: Self.maxEntries)
        targets = Array(repeating: 0, count: Self.maxEntries)
    }

    deinit { arena.deallocate() }

    /// Room for a packet of up to `maxLength` bytes, or nil when the queue is full.
    func reserve(_ maxLength: Int) -> UnsafeMutableRawPointer? {
        guard count < Self.maxEntries, used + maxLength <= Self.arenaSize else { return nil }
        return arena + used
    }

    /// Commits the packet written at the last `reserve` (`length` bytes).
    func commit(_ length: Int, target: Int) {
        offsets[count] = used
        lengths[count] = length
        targets[count] = target
        count += 1
        used = (used + length + 63) & ~63
    }

    func reset() {
        count = 0
        used = 0
    }
}

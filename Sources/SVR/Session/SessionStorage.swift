// The session table's preallocated memory. This is the only file of the session code that
// holds unsafe pointers: fixed-capacity arrays of plain (bitwise-copyable) values, allocated
// zeroed once and freed by their owner. Indices are checked by the callers (they come from
// the table's own free list and hash index), and again by `assert` in debug builds.

import Glibc

/// A fixed-capacity array of trivial values in one zeroed allocation. Not reference counted:
/// the owner calls `free()` exactly once (from its `deinit`).
struct FixedArray<Element: BitwiseCopyable> {
    let base: UnsafeMutablePointer<Element>
    let count: Int

    /// Maps `count` zeroed elements, page aligned (so 64-byte rows sit on cache lines). The
    /// kernel commits pages only when they are touched, so a large preallocated table costs
    /// memory in proportion to its use.
    init(zeroed count: Int) {
        let size = max(1, count) * MemoryLayout<Element>.stride
        let raw = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let raw, raw != MAP_FAILED else { fatalError("session table: cannot map \(size) bytes") }
        base = raw.bindMemory(to: Element.self, capacity: max(1, count))
        self.count = count
    }

    func free() { munmap(base, max(1, count) * MemoryLayout<Element>.stride) }

    @inline(__always)
    subscript(i: Int) -> Element {
        get {
            assert(i >= 0 && i < count)
            return base[i]
        }
        nonmutating _modify {
            assert(i >= 0 && i < count)
            yield &base[i]
        }
    }

    func fill(_ value: Element) { base.update(repeating: value, count: count) }
}

/// Everything the table keeps for one session: 256 bytes, four cache lines. The first line
/// holds what every packet reads or writes (last seen, counters, state, peer, key handle), so a
/// packet touches its index slot, the line(s) of the key that matched, and this line.
struct SessionRow: BitwiseCopyable {
    // Line 0: per packet.
    var lastSeen: UInt64
    var packetsForward: UInt64
    var packetsReverse: UInt64
    var bytesForward: UInt64
    var bytesReverse: UInt64
    var peer: UInt32
    var keyHandle: UInt32
    var tenant: UInt16
    var service: UInt16
    var state: UInt8
    var role: UInt8
    /// Low nibble: keys present (bit per `SessionKeyRole`); high nibble: keys in the index.
    var masks: UInt8
    /// bit 0: FIN forward, bit 1: FIN reverse, bit 2: the port lease is UDP, bit 7: in use.
    var flags: UInt8
    /// Port lease: path raw value + 1 (0 = no lease), and the local port.
    var leasePath: UInt32
    var leasePort: UInt16
    /// Timer-wheel slot the row is linked into.
    var wheelSlot: UInt16
    // Lines 1–3: keys by role, then what only setup, expiry and display read.
    var key0: SessionKey
    var key1: SessionKey
    var key2: SessionKey
    var key3: SessionKey
    var uuidHigh: UInt64
    var uuidLow: UInt64
    var created: UInt64
    var wheelNext: UInt32
    var wheelPrev: UInt32

    @inline(__always)
    func key(_ role: Int) -> SessionKey {
        switch role {
        case 0: key0
        case 1: key1
        case 2: key2
        default: key3
        }
    }

    @inline(__always)
    mutating func setKey(_ role: Int, _ k: SessionKey) {
        switch role {
        case 0: key0 = k
        case 1: key1 = k
        case 2: key2 = k
        default: key3 = k
        }
    }
}

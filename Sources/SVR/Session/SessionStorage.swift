// The session table's preallocated memory. This is the only file of the session code that
// holds unsafe pointers: fixed-capacity arrays of plain (bitwise-copyable) values, allocated
// zeroed once and freed by their owner. Indices are checked by the callers (they come from
// the table's own free list and hash index), and again by the subscript.

import Glibc

/// A fixed-capacity array of trivial values in one zeroed allocation. Not reference counted:
/// the owner calls `free()` exactly once (from its `deinit`).
struct FixedArray<Element: BitwiseCopyable> {
    let base: UnsafeMutablePointer<Element>
    let count: Int

    /// Maps `count` zeroed elements, page aligned (so 64-byte rows sit on cache lines). The
    /// kernel commits pages only when they are touched, so a large preallocated table costs
    /// memory in proportion to its use, unless `populate` commits them all now (no page
    /// faults later on the packet path).
    init(zeroed count: Int, populate: Bool = false) {
        let size = max(1, count) * MemoryLayout<Element>.stride
        let flags = MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0)
        let raw = mmap(nil, size, PROT_READ | PROT_WRITE, flags, -1, 0)
        guard let raw, raw != MAP_FAILED else { fatalError("session table: cannot map \(size) bytes") }
        base = raw.bindMemory(to: Element.self, capacity: max(1, count))
        self.count = count
    }

    func free() { munmap(base, max(1, count) * MemoryLayout<Element>.stride) }

    /// Bounds-checked like `Array` (one predictable compare), so a stale or corrupt index
    /// traps instead of touching memory outside the mapping.
    @inline(__always)
    subscript(i: Int) -> Element {
        get {
            precondition(UInt(bitPattern: i) < UInt(bitPattern: count), "index out of range")
            return base[i]
        }
        nonmutating _modify {
            precondition(UInt(bitPattern: i) < UInt(bitPattern: count), "index out of range")
            yield &base[i]
        }
    }

    func fill(_ value: Element) { base.update(repeating: value, count: count) }

    /// Starts loading the cache lines of element `i` (a hint: an index out of range is
    /// clamped, nothing faults).
    @inline(__always)
    func prefetch(_ i: Int) {
        let p = UnsafeRawPointer(base + min(max(i, 0), max(count - 1, 0)))
        for line in stride(from: 0, to: MemoryLayout<Element>.size, by: 64) { Prefetch.line(p + line) }
    }
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

/// An open-addressing hash index of 32-bit row references, with linear probing. A slot holds
/// the low 32 bits of the key's hash (home bucket and filter) in its high half and the
/// reference (never 0) in its low half; 0 is an empty slot. Keys live in the rows, so a probe
/// asks the caller whether a reference's key matches. Deletion shifts later entries of the
/// cluster back (no tombstones), so probes do not lengthen with churn.
struct SlotIndex {
    let slots: FixedArray<UInt64>
    let mask: Int
    private(set) var used = 0

    /// An index of at least `minimumSlots` slots (rounded up to a power of two).
    init(minimumSlots: Int, populate: Bool) {
        var n = 16
        while n < minimumSlots { n <<= 1 }
        slots = FixedArray(zeroed: n, populate: populate)
        mask = n - 1
    }

    var count: Int { mask + 1 }

    func free() { slots.free() }

    /// The slot of the first reference with this hash that `matches` accepts.
    @inline(__always)
    func find(_ h: UInt64, _ matches: (UInt32) -> Bool) -> Int? {
        let tag = h & 0xFFFF_FFFF
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let s = slots[i]
            if s == 0 { return nil }
            if s >> 32 == tag && matches(UInt32(truncatingIfNeeded: s)) { return i }
            i = (i + 1) & mask
        }
    }

    @inline(__always)
    func reference(at slot: Int) -> UInt32 { UInt32(truncatingIfNeeded: slots[slot]) }

    /// Starts loading the home slot of hash `h` (a probe for it follows soon).
    @inline(__always)
    func prefetch(_ h: UInt64) { slots.prefetch(Int(truncatingIfNeeded: h) & mask) }

    /// Adds a reference; the caller keeps the index under 3/4 full.
    mutating func insert(_ h: UInt64, _ ref: UInt32) {
        var i = Int(truncatingIfNeeded: h) & mask
        while slots[i] != 0 { i = (i + 1) & mask }
        slots[i] = (h & 0xFFFF_FFFF) << 32 | UInt64(ref)
        used += 1
    }

    /// Removes a reference that is present under hash `h`.
    mutating func remove(_ h: UInt64, _ ref: UInt32) {
        var hole = Int(truncatingIfNeeded: h) & mask
        while UInt32(truncatingIfNeeded: slots[hole]) != ref { hole = (hole + 1) & mask }
        // Pull later entries of the cluster into the hole when their home bucket allows, so
        // every entry stays reachable from its home.
        var j = hole
        while true {
            j = (j + 1) & mask
            let s = slots[j]
            if s == 0 { break }
            let home = Int(truncatingIfNeeded: s >> 32) & mask
            if (hole - home) & mask < (j - home) & mask {
                slots[hole] = s
                hole = j
            }
        }
        slots[hole] = 0
        used -= 1
    }
}

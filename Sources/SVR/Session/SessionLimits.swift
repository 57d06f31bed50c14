// Session limits per tenant and per source address, checked when a session is created and
// given back when it ends (expiry, removal), so one LAN host or one tenant cannot take the
// whole session table.
//
//   per source  concurrent sessions and new sessions per second of one (tenant, original
//               source address): the client address of the session's original 5-tuple,
//               under its tenant (tenants may use overlapping address spaces);
//   per tenant  concurrent sessions of one tenant.
//
// Memory is preallocated when the table is made: a counter per tenant ID, and an open-
// addressing hash of source entries with room for one entry per session at most half full
// (an entry exists only while its source has a live session, so it can never overflow).
// Lookups use a random seed per table, so remote senders cannot aim addresses at one bucket.
// Deletion shifts later entries back (no tombstones). Nothing is allocated afterwards.
//
// The rate is a GCRA (a token bucket of one second's worth of sessions): a source may open
// `newPerSecond` sessions at once and then `newPerSecond` a second. Its state lives in the
// source's entry, so a source without live sessions starts again with a full bucket.

/// Limits on concurrent and new sessions; 0 switches a limit off.
public struct SessionLimits: Sendable, Equatable {
    /// Concurrent sessions of one source address (per tenant).
    public var maxPerSource: Int
    /// New sessions per second of one source address (bursts of up to this many at once).
    public var newPerSecondPerSource: Int
    /// Concurrent sessions of one tenant.
    public var maxPerTenant: Int

    public init(maxPerSource: Int = 0, newPerSecondPerSource: Int = 0, maxPerTenant: Int = 0) {
        self.maxPerSource = maxPerSource
        self.newPerSecondPerSource = newPerSecondPerSource
        self.maxPerTenant = maxPerTenant
    }

    /// No limit (only the table's capacity).
    public static let none = SessionLimits()

    var perSource: Bool { maxPerSource > 0 || newPerSecondPerSource > 0 }
}

/// One source's counters: 32 bytes.
struct SourceEntry: BitwiseCopyable {
    var addressHigh: UInt64
    var addressLow: UInt64
    /// Theoretical arrival time of the next session (GCRA), caller clock in nanoseconds.
    var nextAllowed: UInt64
    /// Live sessions; 0 = empty slot.
    var sessions: UInt32
    var tenant: UInt16
}

/// The counters behind `SessionLimits` (one per session table, same thread).
struct SessionLimiter {
    let limits: SessionLimits
    private let tenants: FixedArray<UInt32>
    private let sources: FixedArray<SourceEntry>
    private let mask: Int
    private let seed: (UInt64, UInt64)
    /// Nanoseconds between sessions at the allowed rate, and the burst tolerance.
    private let interval: UInt64
    private let tolerance: UInt64
    /// Sources with at least one live session.
    private(set) var sourceCount = 0

    init(_ limits: SessionLimits, capacity: Int, seed: (UInt64, UInt64), populate: Bool) {
        self.limits = limits
        tenants = FixedArray(zeroed: limits.maxPerTenant > 0 ? Int(UInt16.max) + 1 : 1, populate: populate)
        var n = 16
        if limits.perSource { while n < capacity * 2 { n <<= 1 } }
        sources = FixedArray(zeroed: n, populate: populate)
        mask = n - 1
        self.seed = seed
        let rate = UInt64(max(1, limits.newPerSecondPerSource))
        interval = 1_000_000_000 / rate
        tolerance = 1_000_000_000 - min(interval, 1_000_000_000)
    }

    func free() {
        tenants.free()
        sources.free()
    }

    /// Bytes mapped for the counters (committed as they are used).
    var reservedBytes: Int { tenants.count * 4 + sources.count * MemoryLayout<SourceEntry>.stride }

    /// Why a session of `tenant` from the source address (`high`, `low`: `SessionKey` words)
    /// may not start now, or nil after counting it. Allocation-free.
    @inline(__always)
    mutating func admit(tenant: UInt16, high: UInt64, low: UInt64, now: UInt64) -> SessionRefusal? {
        if limits.maxPerTenant > 0 && Int(tenants[Int(tenant)]) >= limits.maxPerTenant { return .tenantLimit }
        if limits.perSource {
            let i = slot(tenant, high, low)
            let fresh = sources[i].sessions == 0
            if !fresh && limits.maxPerSource > 0 && Int(sources[i].sessions) >= limits.maxPerSource { return .sourceLimit }
            var next = fresh ? now : max(sources[i].nextAllowed, now)
            if limits.newPerSecondPerSource > 0 {
                if next - now > tolerance { return .sourceRateLimit }
                next += interval
            }
            if fresh {
                sources[i] = SourceEntry(addressHigh: high, addressLow: low, nextAllowed: next, sessions: 1, tenant: tenant)
                sourceCount += 1
            } else {
                sources[i].nextAllowed = next
                sources[i].sessions += 1
            }
        }
        if limits.maxPerTenant > 0 { tenants[Int(tenant)] += 1 }
        return nil
    }

    /// Gives back the session counted by `admit` for the same tenant and address.
    mutating func release(tenant: UInt16, high: UInt64, low: UInt64) {
        if limits.maxPerTenant > 0 && tenants[Int(tenant)] > 0 { tenants[Int(tenant)] -= 1 }
        guard limits.perSource else { return }
        let i = slot(tenant, high, low)
        guard sources[i].sessions != 0 else { return }  // not counted (a bug in the caller)
        sources[i].sessions -= 1
        guard sources[i].sessions == 0 else { return }
        sourceCount -= 1
        // Backward shift: pull later entries of the cluster into the hole when their home
        // allows, so every entry stays reachable from its home.
        var hole = i
        var j = i
        while true {
            j = (j + 1) & mask
            guard sources[j].sessions != 0 else { break }
            let h = home(sources[j].addressHigh, sources[j].addressLow)
            if (hole - h) & mask < (j - h) & mask {
                sources[hole] = sources[j]
                hole = j
            }
        }
        sources[hole].sessions = 0
    }

    /// Live sessions counted for a source (tests, diagnostics).
    func sessions(tenant: UInt16, high: UInt64, low: UInt64) -> Int {
        limits.perSource ? Int(sources[slot(tenant, high, low)].sessions) : 0
    }

    /// Live sessions counted for a tenant (0 when the tenant limit is off).
    func sessions(tenant: UInt16) -> Int { limits.maxPerTenant > 0 ? Int(tenants[Int(tenant)]) : 0 }

    /// Starts loading the home slot of a source (a first packet's `admit` follows soon).
    @inline(__always)
    func prefetch(high: UInt64, low: UInt64) {
        if limits.perSource { sources.prefetch(home(high, low)) }
    }

    /// The slot of the source's entry, or the empty slot where it would go.
    @inline(__always)
    private func slot(_ tenant: UInt16, _ high: UInt64, _ low: UInt64) -> Int {
        var i = home(high, low)
        while sources[i].sessions != 0 {
            if sources[i].addressLow == low && sources[i].addressHigh == high && sources[i].tenant == tenant { return i }
            i = (i + 1) & mask
        }
        return i
    }

    @inline(__always)
    /// Home slot by address alone (the tenant is compared in the entry), so it can be
    /// prefetched before the packet is classified.
    private func home(_ high: UInt64, _ low: UInt64) -> Int {
        let m = (high ^ seed.0).multipliedFullWidth(by: (low ^ seed.1) | 1)
        let h = (m.high ^ m.low).multipliedFullWidth(by: 0x9E37_79B9_7F4A_7C15)
        return Int(truncatingIfNeeded: h.high ^ h.low) & mask
    }
}

// The session table of one data-plane thread.
//
// Layout (all preallocated for `maxSessions` when the table is made; nothing is allocated
// afterwards, on any path):
//   rows    one 256-byte `SessionRow` per session: a first cache line with everything a
//           packet updates or needs (counters, last seen, state, peer, key handle), then up
//           to four lookup keys, UUID, creation time, timer links;
//   free    a stack of free row indices;
//   index   open addressing with linear probing over `UInt64` slots (`SlotIndex`), at most
//           50% full with two keys per session: the high half of a slot is the low 32 bits
//           of the key's hash (home bucket and filter), the low half (row + 1) << 2 | key
//           role. The key itself is compared in the row, which a hit touches anyway.
//           Deletion shifts later entries back (no tombstones), so probe lengths do not grow
//           with churn.
//   uuids   a second `SlotIndex` from session UUID to row, for metadata that names an
//           existing session (migration to another peer path, spec §8.2; delete session).
//   wheel   4,096 one-second slots of doubly linked rows. A row sits in the slot of its
//           deadline (last seen + timeout of its state). Packets only update "last seen"; a
//           row whose slot comes due but that has seen traffic since is moved to its new
//           deadline then (lazy rescheduling). A state change to a shorter timeout (FIN, RST)
//           reschedules at once. `expire(now:budget:_:)` examines at most `budget` rows or
//           empty slots per call, so the data-plane loop can call it every iteration.
//
// Key roles: each session is reachable from up to four keys; which two are registered
// depends on the router's role in the session:
//   ingress  lanOriginal (client → server on our LAN) and wanFromDownstream (peer → us, replies)
//   egress   wanFromUpstream (peer → us, forward) and lanReply (server → client, on our LAN)
//   transit  wanFromUpstream and wanFromDownstream
// The role of the key that matched tells the caller the direction of the packet.
//
// Limits: `insert` also checks `SessionLimits` (sessions per source address and tenant, new
// sessions per second per source; SessionLimits.swift) and every end of a session gives its
// count back, in the same place that releases its waypoint ports.
//
// Thread safety: none. A table belongs to one thread (it may be `sending` to it).

import Glibc

/// What this router is for a session.
public enum SessionRole: UInt8, Sendable {
    /// First SVR router: the client's packets arrive on our LAN.
    case ingress
    /// Last SVR router: we restore the original addresses and deliver to the server.
    case egress
    /// An intermediate SVR router (multi-hop).
    case transit
}

/// The four lookup keys a session can have. Forward-flow keys have the smaller raw values.
public enum SessionKeyRole: UInt8, Sendable, CaseIterable {
    /// Client → server as seen on our LAN (ingress; always stored as the original 5-tuple).
    case lanOriginal = 0
    /// Peer → us carrying the forward flow (egress, transit).
    case wanFromUpstream = 1
    /// Server → client (or → our source-NAT address) as seen on our LAN (egress).
    case lanReply = 2
    /// Peer → us carrying the reverse flow (ingress, transit).
    case wanFromDownstream = 3

    /// Whether packets matching this key travel client → server.
    @inlinable public var isForward: Bool { rawValue < 2 }
    public var side: SessionSide { self == .lanOriginal || self == .lanReply ? .lan : .wan }
}

/// A row of the session table. Valid until the session is removed or expires.
public struct SessionIndex: Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
}

/// The result of a lookup: the session and the key role that matched.
public struct SessionHit: Hashable, Sendable {
    public var index: SessionIndex
    public var role: SessionKeyRole
    public init(index: SessionIndex, role: SessionKeyRole) {
        self.index = index
        self.role = role
    }
}

/// Waypoint ports a session holds, released when it ends.
public struct PortLease: Sendable, Equatable {
    public var path: PeerPathID
    public var wireProtocol: UInt8
    public var localPort: UInt16
    public init(path: PeerPathID, wireProtocol: UInt8, localPort: UInt16) {
        self.path = path
        self.wireProtocol = wireProtocol
        self.localPort = localPort
    }
}

/// Everything needed to create a session.
public struct NewSession: Sendable {
    public var role: SessionRole
    public var tenant: TenantID
    public var service: ServiceID
    /// Peer router (an index the caller defines).
    public var peer: UInt32 = 0
    /// Per-session key (an index/handle into the caller's key store).
    public var keyHandle: UInt32 = 0
    /// The original 5-tuple, client → server, as the client sent it.
    public var original: FiveTuple
    /// LAN interface (zone) for the LAN keys.
    public var lanZone: UInt16 = 0
    /// Egress: the server's replies as they arrive on our LAN; nil means `original.reversed`.
    public var lanReply: FiveTuple?
    /// Egress, transit: peer → us tuple of the forward flow.
    public var wanFromUpstream: FiveTuple?
    /// Ingress, transit: peer → us tuple of the reverse flow (the mirror of what we send).
    public var wanFromDownstream: FiveTuple?
    /// Waypoint ports to release when the session ends (from `allocatePorts`).
    public var portLease: PortLease?
    /// Flags of the first packet (TCP): a SYN starts the handshake, anything else is picked up
    /// as established.
    public var tcpFlags: TCPFlags = []
    /// The UUID from metadata, or nil to generate a random one.
    public var uuid: SessionUUID?

    public init(role: SessionRole, tenant: TenantID, service: ServiceID, original: FiveTuple) {
        self.role = role
        self.tenant = tenant
        self.service = service
        self.original = original
    }
}

/// Why a session was not created.
public enum SessionRefusal: Error, Sendable, Equatable {
    /// `maxSessions` reached.
    case tableFull
    /// Another session already owns one of the keys.
    case duplicateKey(SessionKeyRole)
    /// Another session already has this UUID.
    case duplicateUUID
    /// The session index does not name a live session (it ended meanwhile).
    case noSuchSession
    /// No free local waypoint port on the path.
    case portsExhausted
    /// The path was never registered with `ports.addPath`.
    case unknownPath
    /// The session's source address has `SessionLimits.maxPerSource` sessions.
    case sourceLimit
    /// The session's source address opened `SessionLimits.newPerSecondPerSource` sessions
    /// within the last second.
    case sourceRateLimit
    /// The session's tenant has `SessionLimits.maxPerTenant` sessions.
    case tenantLimit
}

/// Why a session ended.
public enum SessionEnd: UInt8, Sendable {
    case idleTimeout
    case removed
}

/// Per-thread session counters (plain fields; the owner aggregates them).
public struct SessionCounters: Sendable, Equatable {
    public var inserted: UInt64 = 0
    public var refusedTableFull: UInt64 = 0
    /// A key or the UUID already belonged to another session.
    public var refusedDuplicateKey: UInt64 = 0
    public var refusedPortsExhausted: UInt64 = 0
    /// Refused by `SessionLimits` (per source: concurrent, rate; per tenant).
    public var refusedSourceLimit: UInt64 = 0
    public var refusedSourceRate: UInt64 = 0
    public var refusedTenantLimit: UInt64 = 0
    public var expired: UInt64 = 0
    public var removed: UInt64 = 0
    public init() {}

    public mutating func add(_ o: SessionCounters) {
        inserted &+= o.inserted
        refusedTableFull &+= o.refusedTableFull
        refusedDuplicateKey &+= o.refusedDuplicateKey
        refusedPortsExhausted &+= o.refusedPortsExhausted
        refusedSourceLimit &+= o.refusedSourceLimit
        refusedSourceRate &+= o.refusedSourceRate
        refusedTenantLimit &+= o.refusedTenantLimit
        expired &+= o.expired
        removed &+= o.removed
    }
}

/// A copy of one session, for `show sessions`, metadata and expiry reports.
public struct SessionInfo: Sendable, Equatable {
    public var index: SessionIndex
    public var uuid: SessionUUID
    public var role: SessionRole
    public var tenant: TenantID
    public var service: ServiceID
    public var peer: UInt32
    public var keyHandle: UInt32
    public var state: SessionState
    public var finForward: Bool
    public var finReverse: Bool
    /// Metadata handshake done for the packets this router sends (spec §2.5).
    public var metadataAcknowledged: Bool
    /// The original 5-tuple (client → server).
    public var original: FiveTuple
    public var lanReply: SessionKey?
    public var wanFromUpstream: SessionKey?
    public var wanFromDownstream: SessionKey?
    public var portLease: PortLease?
    public var packetsForward: UInt64
    public var packetsReverse: UInt64
    public var bytesForward: UInt64
    public var bytesReverse: UInt64
    /// Caller clock, nanoseconds.
    public var created: UInt64
    public var lastSeen: UInt64
    /// Set in expiry and removal reports.
    public var end: SessionEnd?

    /// The waypoint tuple we send on (local waypoint:port → remote waypoint:port, wire
    /// protocol): toward the egress for an ingress router, back toward the ingress otherwise.
    public var waypointOutbound: FiveTuple? {
        (role == .egress ? wanFromUpstream : wanFromDownstream)?.tuple.reversed
    }
}

/// Sizing and timeouts of a session table.
public struct SessionTableConfiguration: Sendable {
    /// Maximum number of sessions; more are refused and counted.
    public var maxSessions: Int
    public var timeouts: SessionTimeouts
    /// This table's share of the local waypoint ports when several threads serve the same
    /// peer paths (see `WaypointPorts.init(shard:of:)`).
    public var portShard: Int
    public var portShards: Int
    /// Commit all the table's memory when it is made (about 310 B × `maxSessions`) instead of
    /// as sessions first use it, so the packet path never takes a page fault.
    public var prefault: Bool
    /// Sessions per source address and per tenant (checked by `insert`).
    public var limits: SessionLimits
    public init(maxSessions: Int, timeouts: SessionTimeouts = SessionTimeouts(), portShard: Int = 0, of portShards: Int = 1,
                prefault: Bool = false, limits: SessionLimits = .none) {
        self.maxSessions = maxSessions
        self.limits = limits
        self.timeouts = timeouts
        self.portShard = portShard
        self.portShards = portShards
        self.prefault = prefault
    }
}

/// The session table of one data-plane thread (see the file header for the design).
public final class SessionTable {
    static let none = UInt32.max
    static let nanosPerSecond: UInt64 = 1_000_000_000
    static let wheelSize = 4096
    static let live: UInt8 = 0x80
    static let metadataAck: UInt8 = 0x08

    /// Maximum number of sessions.
    public let capacity: Int
    /// Sessions in the table.
    public private(set) var count = 0
    public private(set) var counters = SessionCounters()
    /// Waypoint port allocators; sessions' leases go back here when they end.
    public var ports: WaypointPorts
    /// Idle timeouts; a change applies to each session from its next deadline check.
    public var timeouts: SessionTimeouts {
        didSet { for s in SessionState.allCases { timeoutNanos[Int(s.rawValue)] = UInt64(timeouts.timeout(for: s)) * Self.nanosPerSecond } }
    }

    private let rows: FixedArray<SessionRow>
    private let freeRows: FixedArray<UInt32>
    private var freeCount: Int
    private var keyIndex: SlotIndex
    private var uuidIndex: SlotIndex
    private let wheel: FixedArray<UInt32>
    /// Next wheel tick to process (seconds); UInt64.max until the first call with a clock.
    private var wheelTick = UInt64.max
    /// Next row to examine in the current tick's slot when a call ran out of budget.
    private var wheelResume = SessionTable.none
    private let timeoutNanos: FixedArray<UInt64>
    private let seed: (UInt64, UInt64, UInt64)
    private var random = SessionRandom()
    private var limiter: SessionLimiter

    public init(_ configuration: SessionTableConfiguration) {
        assert(MemoryLayout<SessionRow>.stride == 256, "SessionRow should be four cache lines")
        capacity = max(1, min(configuration.maxSessions, 1 << 29))
        rows = FixedArray(zeroed: capacity, populate: configuration.prefault)
        freeRows = FixedArray(zeroed: capacity)
        for i in 0..<capacity { freeRows[i] = UInt32(capacity - 1 - i) }
        freeCount = capacity
        keyIndex = SlotIndex(minimumSlots: capacity * 4, populate: configuration.prefault)
        uuidIndex = SlotIndex(minimumSlots: capacity * 2, populate: configuration.prefault)
        wheel = FixedArray(zeroed: Self.wheelSize)
        wheel.fill(Self.none)
        timeoutNanos = FixedArray(zeroed: SessionState.allCases.count)
        timeouts = configuration.timeouts
        ports = WaypointPorts(shard: configuration.portShard, of: configuration.portShards)
        seed = (random.next(), random.next(), random.next())
        limiter = SessionLimiter(configuration.limits, capacity: capacity, seed: (random.next(), random.next()),
                                 populate: configuration.prefault)
        for s in SessionState.allCases { timeoutNanos[Int(s.rawValue)] = UInt64(timeouts.timeout(for: s)) * Self.nanosPerSecond }
    }

    deinit {
        rows.free()
        freeRows.free()
        keyIndex.free()
        uuidIndex.free()
        wheel.free()
        timeoutNanos.free()
        limiter.free()
    }

    // MARK: Per packet

    /// Starts loading `key`'s home slot in the index: call it when the packet's key is known
    /// and other work (e.g. verifying its HMAC) comes before the `lookup`.
    @inline(__always)
    public func prefetch(_ key: SessionKey) { keyIndex.prefetch(key.hash(seed)) }

    /// Finds the session a packet belongs to. Allocation-free.
    @inline(__always)
    public func lookup(_ key: SessionKey) -> SessionHit? {
        guard let slot = find(key, key.hash(seed)) else { return nil }
        let ref = Int(keyIndex.reference(at: slot))
        return SessionHit(index: SessionIndex(rawValue: UInt32((ref >> 2) - 1)), role: SessionKeyRole(rawValue: UInt8(ref & 3))!)
    }

    /// Accounts a packet of a session found by `lookup`: counters, last seen and (TCP) state.
    /// Returns the state after the packet. Allocation-free.
    @discardableResult
    public func recordPacket(_ hit: SessionHit, bytes: Int, tcpFlags: TCPFlags = [], now: UInt64) -> SessionState {
        let i = Int(hit.index.rawValue)
        rows[i].lastSeen = now
        if hit.role.isForward {
            rows[i].packetsForward &+= 1
            rows[i].bytesForward &+= UInt64(bytes)
        } else {
            rows[i].packetsReverse &+= 1
            rows[i].bytesReverse &+= UInt64(bytes)
        }
        let old = SessionState(rawValue: rows[i].state)!
        guard old.rawValue <= SessionState.tcpReset.rawValue else { return old }
        var fins = rows[i].flags & 3
        let new = tcpTransition(old, forward: hit.role.isForward, flags: tcpFlags.rawValue, fins: &fins)
        rows[i].flags = rows[i].flags & ~3 | fins
        if new != old {
            rows[i].state = new.rawValue
            unlink(i)
            link(i)
        }
        return new
    }

    /// A lookup key of a session, e.g. the waypoint tuple to rewrite a packet to.
    @inline(__always)
    public func key(_ index: SessionIndex, _ role: SessionKeyRole) -> SessionKey? {
        let i = Int(index.rawValue)
        return rows[i].masks & (1 << role.rawValue) != 0 ? rows[i].key(Int(role.rawValue)) : nil
    }

    public func tenant(_ index: SessionIndex) -> TenantID { TenantID(rawValue: rows[Int(index.rawValue)].tenant) }
    public func service(_ index: SessionIndex) -> ServiceID { ServiceID(rawValue: rows[Int(index.rawValue)].service) }
    public func peer(_ index: SessionIndex) -> UInt32 { rows[Int(index.rawValue)].peer }
    public func keyHandle(_ index: SessionIndex) -> UInt32 { rows[Int(index.rawValue)].keyHandle }
    public func state(_ index: SessionIndex) -> SessionState { SessionState(rawValue: rows[Int(index.rawValue)].state)! }
    public func uuid(_ index: SessionIndex) -> SessionUUID {
        SessionUUID(high: rows[Int(index.rawValue)].uuidHigh, low: rows[Int(index.rawValue)].uuidLow)
    }

    /// Whether the metadata handshake is done for the packets this router sends in the session
    /// (ingress: reverse metadata or TLV 18 received; egress: a forward packet without
    /// metadata received; spec §2.5).
    @inline(__always)
    public func metadataAcknowledged(_ index: SessionIndex) -> Bool {
        rows[Int(index.rawValue)].flags & Self.metadataAck != 0
    }

    /// Records the metadata handshake state (false re-triggers metadata, spec §2.6).
    public func setMetadataAcknowledged(_ index: SessionIndex, _ done: Bool) {
        let i = Int(index.rawValue)
        rows[i].flags = done ? rows[i].flags | Self.metadataAck : rows[i].flags & ~Self.metadataAck
    }

    // MARK: Metadata naming an existing session

    /// The live session with this UUID.
    public func lookup(uuid: SessionUUID) -> SessionIndex? {
        findUUID(uuid).map { SessionIndex(rawValue: uuidIndex.reference(at: $0) - 1) }
    }

    /// Moves a session to a new tuple for one of its keys: a new peer path after failover or
    /// migration (spec §8.2; `wanFromDownstream` at the ingress with new ports in `lease`,
    /// `wanFromUpstream` at the egress with `lease` nil), or a new reply tuple. The old key
    /// leaves the index, the old port lease is released and `lease` becomes the session's, and
    /// metadata is no longer acknowledged, so the caller sends it again. On refusal nothing
    /// changes and `lease` is released. The original 5-tuple (`lanOriginal`) cannot change.
    public func replaceKey(_ index: SessionIndex, _ role: SessionKeyRole, with tuple: FiveTuple, lease: PortLease?) throws(SessionRefusal) {
        precondition(role != .lanOriginal, "the original 5-tuple identifies the session")
        let i = Int(index.rawValue)
        let r = Int(role.rawValue)
        let ref = UInt32((i + 1) << 2 | r)
        let key = SessionKey(tuple, side: role.side, zone: role.side == .lan ? rows[i].key0.zone : 0)
        let h = key.hash(seed)
        let indexed = i < capacity && rows[i].masks >> 4 & UInt8(1 << r) != 0
        do throws(SessionRefusal) {
            guard i < capacity, rows[i].flags & Self.live != 0 else { throw .noSuchSession }
            if let slot = find(key, h), keyIndex.reference(at: slot) != ref { throw .duplicateKey(role) }
            guard indexed || keyIndex.used < keyIndex.count / 4 * 3 else { throw .tableFull }
        } catch {
            if case .duplicateKey = error { counters.refusedDuplicateKey &+= 1 }
            if let l = lease { ports.release(path: l.path, wireProtocol: l.wireProtocol, localPort: l.localPort) }
            throw error
        }
        if indexed { keyIndex.remove(rows[i].key(r).hash(seed), ref) }
        rows[i].setKey(r, key)
        rows[i].masks |= UInt8(1 << r | 1 << (r + 4))
        keyIndex.insert(h, ref)
        releaseLease(i)
        if let l = lease {
            rows[i].leasePath = l.path.rawValue &+ 1
            rows[i].leasePort = l.localPort
            rows[i].flags = l.wireProtocol == IPProtocolNumber.tcp ? rows[i].flags & ~4 : rows[i].flags | 4
        }
        rows[i].flags &= ~Self.metadataAck
    }

    // MARK: First packet

    /// Allocates waypoint ports for a new session on `path`, counting exhaustion: a (local,
    /// remote) pair whose waypoint tuple (peer → us, `wireProtocol`) no live session holds,
    /// so a local port carries many sessions with different remote ports. Allocation-free.
    public func allocatePorts(path: PeerPathID, wireProtocol: UInt8) throws(SessionRefusal) -> WaypointPortPair {
        guard let (local, remote) = ports.addresses(path) else { throw .unknownPath }
        do throws(WaypointPortRefusal) {
            let template = SessionKey(FiveTuple(source: remote, destination: local, sourcePort: 0, destinationPort: 0,
                                                proto: wireProtocol), side: .wan)
            return try ports.allocate(path: path, wireProtocol: wireProtocol) { pair in
                var k = template
                k.packed |= UInt64(pair.remote) << 48 | UInt64(pair.local) << 32
                return find(k, k.hash(seed)) == nil
            }
        } catch .exhausted {
            counters.refusedPortsExhausted &+= 1
            throw .portsExhausted
        } catch {
            throw .unknownPath
        }
    }

    /// Starts loading the per-source limit counters of a new session's original source (call
    /// it as early as the source is known; `insert` reads them).
    @inline(__always)
    public func prefetchLimits(source: SessionKey) { limiter.prefetch(high: source.sourceHigh, low: source.sourceLow) }

    /// The row the next `insert` will take (nil when the table is full), its lines already
    /// asked for: a caller about to create a session calls this early, and prefetches its own
    /// state for that row too.
    public func prefetchNextRow() -> Int? {
        guard freeCount > 0 else { return nil }
        let i = Int(freeRows[freeCount - 1])
        rows.prefetch(i)
        return i
    }

    /// Creates a session. On refusal the session's port lease is released. Allocation-free.
    /// The first packet is not counted here: account it with `recordPacket` like any other
    /// (role `.lanOriginal` at the ingress, `.wanFromUpstream` at the egress and transit).
    public func insert(_ s: NewSession, now: UInt64) throws(SessionRefusal) -> SessionIndex {
        var keys = (SessionKey(s.original, side: .lan, zone: s.lanZone), Self.emptyKey, Self.emptyKey, Self.emptyKey)
        var present: UInt8 = 1
        if let t = s.wanFromUpstream { keys.1 = SessionKey(t, side: .wan); present |= 2 }
        if let t = s.lanReply ?? (s.role == .egress ? s.original.reversed : nil) {
            keys.2 = SessionKey(t, side: .lan, zone: s.lanZone)
            present |= 4
        }
        if let t = s.wanFromDownstream { keys.3 = SessionKey(t, side: .wan); present |= 8 }
        let indexed = s.role == .ingress ? present : present & ~1
        var hashes: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var uuid = s.uuid ?? random.uuid()
        do throws(SessionRefusal) {
            // The index is sized for four slots per session; keep it at most 3/4 full even if
            // callers register more than the usual two keys.
            guard freeCount > 0, keyIndex.used + indexed.nonzeroBitCount <= keyIndex.count / 4 * 3 else { throw .tableFull }
            // Ask for every cold line this insert reads or writes before the first probe (the
            // keys' home slots, the UUID's, the new row): their latencies then overlap.
            for r in 0..<4 where indexed & (1 << r) != 0 {
                let h = Self.pick(keys, r).hash(seed)
                Self.store(&hashes, r, h)
                keyIndex.prefetch(h)
            }
            uuidIndex.prefetch(uuidHash(uuid))
            rows.prefetch(Int(freeRows[freeCount - 1]))
            for r in 0..<4 where indexed & (1 << r) != 0 {
                if find(Self.pick(keys, r), Self.pick(hashes, r)) != nil { throw .duplicateKey(SessionKeyRole(rawValue: UInt8(r))!) }
            }
            if s.uuid != nil, findUUID(uuid) != nil { throw .duplicateUUID }
            // Last: the limits count the session when they admit it.
            if let why = limiter.admit(tenant: s.tenant.rawValue, high: keys.0.sourceHigh, low: keys.0.sourceLow, now: now) {
                throw why
            }
        } catch {
            switch error {
            case .tableFull: counters.refusedTableFull &+= 1
            case .sourceLimit: counters.refusedSourceLimit &+= 1
            case .sourceRateLimit: counters.refusedSourceRate &+= 1
            case .tenantLimit: counters.refusedTenantLimit &+= 1
            default: counters.refusedDuplicateKey &+= 1
            }
            if let l = s.portLease { ports.release(path: l.path, wireProtocol: l.wireProtocol, localPort: l.localPort) }
            throw error
        }
        freeCount -= 1
        let i = Int(freeRows[freeCount])
        while s.uuid == nil && findUUID(uuid) != nil { uuid = random.uuid() }
        let lease = s.portLease
        rows[i] = SessionRow(
            lastSeen: now, packetsForward: 0, packetsReverse: 0, bytesForward: 0, bytesReverse: 0,
            peer: s.peer, keyHandle: s.keyHandle, tenant: s.tenant.rawValue, service: s.service.rawValue,
            state: SessionState.initial(proto: s.original.proto, tcpFlags: s.tcpFlags).rawValue,
            role: s.role.rawValue, masks: present | indexed << 4,
            flags: Self.live | (lease.map { $0.wireProtocol == IPProtocolNumber.tcp ? 0 : 4 } ?? 0),
            leasePath: lease.map { $0.path.rawValue &+ 1 } ?? 0, leasePort: lease?.localPort ?? 0, wheelSlot: 0,
            key0: keys.0, key1: keys.1, key2: keys.2, key3: keys.3,
            uuidHigh: uuid.high, uuidLow: uuid.low, created: now, wheelNext: Self.none, wheelPrev: Self.none)
        for r in 0..<4 where indexed & (1 << r) != 0 {
            keyIndex.insert(Self.pick(hashes, r), UInt32((i + 1) << 2 | r))
        }
        uuidIndex.insert(uuidHash(uuid), UInt32(i + 1))
        startWheel(now)
        link(i)
        count += 1
        counters.inserted &+= 1
        return SessionIndex(rawValue: UInt32(i))
    }

    // MARK: Ending sessions

    /// Ends a session now (RST seen by the caller, metadata "delete session", reload) and
    /// returns its final state. Its ports are released.
    @discardableResult
    public func remove(_ index: SessionIndex) -> SessionInfo? {
        let i = Int(index.rawValue)
        guard i < capacity, rows[i].flags & Self.live != 0 else { return nil }
        var info = self.info(i)
        info.end = .removed
        destroy(i)
        counters.removed &+= 1
        return info
    }

    /// Expires idle sessions, examining at most `budget` rows or wheel slots, and reports
    /// each expired session to `report` (after its ports were released). Returns how many
    /// expired. Cheap when nothing is due: call it from the data-plane loop.
    @discardableResult
    public func expire(now: UInt64, budget: Int = 64, _ report: (SessionInfo) -> Void = { _ in }) -> Int {
        startWheel(now)
        let nowTick = now / Self.nanosPerSecond
        if nowTick >= wheelTick &+ UInt64(Self.wheelSize) {
            // Behind by a whole turn: one pass over every slot sees every row.
            wheelTick = nowTick - UInt64(Self.wheelSize) + 1
            wheelResume = Self.none
        }
        var work = 0
        var expired = 0
        while wheelTick <= nowTick && work < budget {
            let slot = Int(wheelTick & UInt64(Self.wheelSize - 1))
            var i = wheelResume != Self.none ? wheelResume : wheel[slot]
            while i != Self.none && work < budget {
                let row = Int(i)
                let next = rows[row].wheelNext
                work += 1
                if deadline(row) <= now {
                    var info = self.info(row)
                    info.end = .idleTimeout
                    destroy(row)
                    counters.expired &+= 1
                    expired += 1
                    report(info)
                } else {
                    // Traffic since it was scheduled: move it to its current deadline.
                    unlink(row)
                    link(row)
                }
                i = next
            }
            if i == Self.none {
                wheelResume = Self.none
                wheelTick += 1
                work += 1
            } else {
                wheelResume = i
            }
        }
        return expired
    }

    // MARK: Control plane

    /// A copy of a live session.
    public func info(_ index: SessionIndex) -> SessionInfo? {
        let i = Int(index.rawValue)
        guard i < capacity, rows[i].flags & Self.live != 0 else { return nil }
        return info(i)
    }

    /// Calls `body` with every live session (control plane: walks the whole capacity).
    public func forEach(_ body: (SessionInfo) -> Void) {
        var seen = 0
        var i = 0
        while seen < count && i < capacity {
            if rows[i].flags & Self.live != 0 {
                seen += 1
                body(info(i))
            }
            i += 1
        }
    }

    /// The limits in force (from the configuration).
    public var limits: SessionLimits { limiter.limits }

    /// Live sessions counted against the per-source limits for `source` under `tenant` (0
    /// when per-source limits are off).
    public func sessions(tenant: TenantID, source: IPAddress) -> Int {
        let (h, l) = SessionKey.words(source)
        return limiter.sessions(tenant: tenant.rawValue, high: h, low: l)
    }

    /// Live sessions counted against the tenant limit (0 when it is off).
    public func sessions(tenant: TenantID) -> Int { limiter.sessions(tenant: tenant.rawValue) }

    /// Sources with at least one live session (0 when per-source limits are off).
    public var limitedSources: Int { limiter.sourceCount }

    /// Number of index slots in use and their total (for diagnostics and tests).
    public var indexLoad: (used: Int, slots: Int) { (keyIndex.used, keyIndex.count) }

    /// Bytes the table maps for its capacity (committed as sessions are created).
    public var reservedBytes: Int {
        capacity * (MemoryLayout<SessionRow>.stride + 4) + (keyIndex.count + uuidIndex.count) * 8 + Self.wheelSize * 4
            + limiter.reservedBytes
    }

    // MARK: Internals

    static let emptyKey = SessionKey(v4Source: 0, v4Destination: 0, sourcePort: 0, destinationPort: 0, proto: 0, side: .lan)

    @inline(__always)
    static func pick<T>(_ t: (T, T, T, T), _ r: Int) -> T {
        switch r {
        case 0: t.0
        case 1: t.1
        case 2: t.2
        default: t.3
        }
    }

    @inline(__always)
    static func store(_ t: inout (UInt64, UInt64, UInt64, UInt64), _ r: Int, _ v: UInt64) {
        switch r {
        case 0: t.0 = v
        case 1: t.1 = v
        case 2: t.2 = v
        default: t.3 = v
        }
    }

    private func info(_ i: Int) -> SessionInfo {
        let r = rows[i]
        func k(_ role: SessionKeyRole) -> SessionKey? {
            r.masks & (1 << role.rawValue) != 0 ? r.key(Int(role.rawValue)) : nil
        }
        return SessionInfo(
            index: SessionIndex(rawValue: UInt32(i)), uuid: SessionUUID(high: r.uuidHigh, low: r.uuidLow),
            role: SessionRole(rawValue: r.role)!, tenant: TenantID(rawValue: r.tenant),
            service: ServiceID(rawValue: r.service), peer: r.peer, keyHandle: r.keyHandle,
            state: SessionState(rawValue: r.state)!, finForward: r.flags & 1 != 0, finReverse: r.flags & 2 != 0,
            metadataAcknowledged: r.flags & Self.metadataAck != 0,
            original: r.key0.tuple, lanReply: k(.lanReply), wanFromUpstream: k(.wanFromUpstream),
            wanFromDownstream: k(.wanFromDownstream),
            portLease: r.leasePath == 0 ? nil : PortLease(
                path: PeerPathID(rawValue: r.leasePath - 1),
                wireProtocol: r.flags & 4 != 0 ? IPProtocolNumber.udp : IPProtocolNumber.tcp, localPort: r.leasePort),
            packetsForward: r.packetsForward, packetsReverse: r.packetsReverse,
            bytesForward: r.bytesForward, bytesReverse: r.bytesReverse,
            created: r.created, lastSeen: r.lastSeen, end: nil)
    }

    /// Removes a live row from the index and the wheel, releases its ports, frees it.
    private func destroy(_ i: Int) {
        let indexed = Int(rows[i].masks >> 4)
        for r in 0..<4 where indexed & (1 << r) != 0 {
            keyIndex.remove(rows[i].key(r).hash(seed), UInt32((i + 1) << 2 | r))
        }
        uuidIndex.remove(uuidHash(SessionUUID(high: rows[i].uuidHigh, low: rows[i].uuidLow)), UInt32(i + 1))
        unlink(i)
        releaseLease(i)
        limiter.release(tenant: rows[i].tenant, high: rows[i].key0.sourceHigh, low: rows[i].key0.sourceLow)
        rows[i].flags = 0
        freeRows[freeCount] = UInt32(i)
        freeCount += 1
        count -= 1
    }

    /// The index slot holding `key`, if any.
    @inline(__always)
    private func find(_ key: SessionKey, _ h: UInt64) -> Int? {
        keyIndex.find(h) { ref in rows[Int(ref >> 2) - 1].key(Int(ref & 3)) == key }
    }

    @inline(__always)
    private func uuidHash(_ u: SessionUUID) -> UInt64 {
        let m = (u.high ^ seed.1).multipliedFullWidth(by: u.low ^ seed.2 | 1)
        return m.high ^ m.low
    }

    private func findUUID(_ u: SessionUUID) -> Int? {
        uuidIndex.find(uuidHash(u)) { ref in
            let r = Int(ref) - 1
            return rows[r].uuidHigh == u.high && rows[r].uuidLow == u.low
        }
    }

    private func releaseLease(_ i: Int) {
        guard rows[i].leasePath != 0 else { return }
        ports.release(path: PeerPathID(rawValue: rows[i].leasePath - 1),
                      wireProtocol: rows[i].flags & 4 != 0 ? IPProtocolNumber.udp : IPProtocolNumber.tcp,
                      localPort: rows[i].leasePort)
        rows[i].leasePath = 0
    }

    @inline(__always)
    private func deadline(_ i: Int) -> UInt64 {
        rows[i].lastSeen &+ timeoutNanos[Int(rows[i].state)]
    }

    private func startWheel(_ now: UInt64) {
        if wheelTick == UInt64.max { wheelTick = now / Self.nanosPerSecond }
    }

    /// Links a row into the slot of its deadline (rounded up to a tick), never into a tick the
    /// wheel has started on, so a partly processed slot cannot hide it.
    private func link(_ i: Int) {
        let d = deadline(i)
        let tick = max((d &+ Self.nanosPerSecond - 1) / Self.nanosPerSecond, wheelTick &+ 1)
        let slot = Int(tick & UInt64(Self.wheelSize - 1))
        let head = wheel[slot]
        rows[i].wheelSlot = UInt16(slot)
        rows[i].wheelPrev = Self.none
        rows[i].wheelNext = head
        if head != Self.none { rows[Int(head)].wheelPrev = UInt32(i) }
        wheel[slot] = UInt32(i)
    }

    private func unlink(_ i: Int) {
        let n = rows[i].wheelNext
        let p = rows[i].wheelPrev
        if p == Self.none { wheel[Int(rows[i].wheelSlot)] = n } else { rows[Int(p)].wheelNext = n }
        if n != Self.none { rows[Int(n)].wheelPrev = p }
        if wheelResume == UInt32(i) { wheelResume = n }
    }
}

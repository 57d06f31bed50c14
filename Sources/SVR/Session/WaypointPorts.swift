// Waypoint port allocation (spec §3, open point O4).
//
// The router that sends a new session over a peer path picks both L4 ports of the waypoint
// tuple. Default: an even port for its own side from 16384...65534 and an odd port for the
// peer from 16385...65533, so two peers opening sessions toward each other can never pick the
// same 4-tuple ("glare"). With a configured port range the parity rule is not used and ports
// come round robin from the ranges instead.
//
// A session is identified on the wire by the whole waypoint tuple (both addresses, both
// ports, protocol), so what must be unique on a path is the PAIR (local port, remote port),
// not the local port: 24,576 local × 24,575 remote ports = 603,955,200 concurrent sessions
// per path and wire protocol in the default space, not 24,576. The allocator walks the pair
// space with one cursor k in 0..<L×R (L local ports of this shard, R remote ports):
//   local = L-th port a = k mod L,  remote = port (a + k / L) mod R.
// For a fixed round k / L this is L different local ports with consecutive remote ports, and
// over all k every pair exactly once (for each local port, k / L runs over all R remote
// ports), so a tuple comes back only after L×R allocations. Consecutive sessions still get
// different local ports (as before: spread over the shards' ports, easy to follow in a
// capture), and a local port is reused with other remote ports once every local port has one.
//
// The pairs in use are not kept here: the session table's index already knows every waypoint
// tuple of every live session (ours, and the ones a peer opened toward us), so the caller
// passes `isFree`, a lookup of the tuple; a pair still in use (a session older than a whole
// turn of the cursor, or a peer's session on the same tuple when ranges drop the parity rule)
// is skipped, up to `maxProbes` candidates. In the even/odd space the first turn of the
// cursor needs no lookup (no pair of ours can be in use yet, and a peer's sessions toward us
// sit on the other parity), so the lookups start after 603,955,200 sessions on a path. Only
// the number of sessions per path is counted; it is also the capacity check (L×R).
//
// One `WaypointPorts` belongs to one data-plane thread. Threads that share a peer path split
// the local ports: with `shard: k, of: n`, a thread only hands out the k-th of every n local
// ports (index in the space modulo n), so the threads never collide and a WAN packet can be
// steered to the thread that owns its session from its destination port alone.

/// A peer path: one local waypoint paired with one remote waypoint.
public struct PeerPathID: Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
}

/// The ports a path may use.
public enum WaypointPortSpace: Sendable, Equatable {
    /// Local even ports from 16384...65534, remote odd ports from 16385...65533.
    case evenOdd
    /// Local and remote ports assigned round robin from configured ranges (no parity).
    case ranges(local: ClosedRange<UInt16>, remote: ClosedRange<UInt16>)
}

/// The two ports of a new session's waypoint tuple.
public struct WaypointPortPair: Sendable, Equatable {
    public var local: UInt16
    public var remote: UInt16
    public init(local: UInt16, remote: UInt16) {
        self.local = local
        self.remote = remote
    }
}

/// Why no ports were handed out.
public enum WaypointPortRefusal: Error, Sendable, Equatable {
    /// No free (local, remote) pair on the path for this wire protocol among the candidates
    /// tried.
    case exhausted
    /// The path is not known.
    case unknownPath
}

/// Waypoint port allocators for all peer paths of one thread.
public struct WaypointPorts: Sendable {
    /// Candidates tried per allocation before the path counts as exhausted.
    public static let maxProbes = 16

    /// One wire protocol on one path: a cursor over the (local, remote) pair space.
    struct Allocator: Sendable {
        /// First local port and distance between local ports (2 for even/odd, 1 for ranges).
        let localBase: Int
        let localStep: Int
        let localCount: Int
        let remoteBase: Int
        let remoteStep: Int
        let remoteCount: Int
        let shard: Int
        let shards: Int
        /// Local ports this shard may hand out (every `shards`-th, from index `shard`).
        let localMine: Int
        /// Pairs this shard may hand out: `localMine` × `remoteCount`.
        let capacity: Int
        /// Sessions holding a pair of this allocator.
        var inUse = 0
        /// Next pair index k in 0..<capacity.
        var cursor = 0
        /// Whether every candidate is checked with `isFree`: always with port ranges (a peer's
        /// sessions toward us may use the same pairs), with even/odd only once the cursor has
        /// gone round (before that, no pair of ours can be in use, and a peer's sessions sit on
        /// the other parity).
        var check: Bool

        init(_ space: WaypointPortSpace, shard: Int, of shards: Int) {
            switch space {
            case .evenOdd:
                (localBase, localStep, localCount) = (16384, 2, (65534 - 16384) / 2 + 1)
                (remoteBase, remoteStep, remoteCount) = (16385, 2, (65533 - 16385) / 2 + 1)
            case .ranges(let l, let r):
                (localBase, localStep, localCount) = (Int(l.lowerBound), 1, l.count)
                (remoteBase, remoteStep, remoteCount) = (Int(r.lowerBound), 1, r.count)
            }
            if case .ranges = space { check = true } else { check = false }
            self.shard = shard
            self.shards = shards
            localMine = localCount > shard ? (localCount - shard + shards - 1) / shards : 0
            capacity = localMine * remoteCount
        }

        /// The pair with index `k` (see the file header).
        @inline(__always)
        func pair(_ k: Int) -> WaypointPortPair {
            let a = k % localMine
            let b = k / localMine
            let local = localBase + (shard + a * shards) * localStep
            let remote = remoteBase + ((a + b) % remoteCount) * remoteStep
            return WaypointPortPair(local: UInt16(truncatingIfNeeded: local), remote: UInt16(truncatingIfNeeded: remote))
        }

        mutating func allocate(_ isFree: (WaypointPortPair) -> Bool) -> WaypointPortPair? {
            guard inUse < capacity else { return nil }
            for _ in 0..<WaypointPorts.maxProbes {
                let p = pair(cursor)
                let checked = check
                cursor += 1
                if cursor == capacity {
                    cursor = 0
                    check = true
                }
                if !checked || isFree(p) {
                    inUse += 1
                    return p
                }
            }
            return nil
        }

        /// Gives back a pair's share of `inUse`; false if the local port is not one of this
        /// shard's or nothing is in use (a bug in the caller).
        mutating func release(_ local: UInt16) -> Bool {
            let off = Int(local) - localBase
            guard off >= 0, off % localStep == 0, off / localStep < localCount, (off / localStep) % shards == shard,
                  inUse > 0 else { return false }
            inUse -= 1
            return true
        }
    }

    /// Allocators: index = path * 2 + (TCP ? 0 : 1).
    private var allocators: [Allocator] = []
    private var paths: [PathKey: PeerPathID] = [:]
    private var pathAddresses: [(local: IPAddress, remote: IPAddress)] = []

    struct PathKey: Hashable, Sendable {
        var local: IPAddress
        var remote: IPAddress
    }

    /// Refusals because a path had no free local port.
    public private(set) var exhaustedCount: UInt64 = 0
    private let shard: Int
    private let shards: Int

    /// Allocators for one thread, owning the `shard`-th of every `shards` local ports.
    public init(shard: Int = 0, of shards: Int = 1) {
        precondition(shards >= 1 && (0..<shards).contains(shard), "shard out of range")
        self.shard = shard
        self.shards = shards
    }

    /// Registers the path between `local` and `remote` waypoints (or returns the existing one;
    /// the port space of an existing path is not changed).
    public mutating func addPath(local: IPAddress, remote: IPAddress, space: WaypointPortSpace = .evenOdd) -> PeerPathID {
        let key = PathKey(local: local, remote: remote)
        if let p = paths[key] { return p }
        let id = PeerPathID(rawValue: UInt32(allocators.count / 2))
        allocators.append(Allocator(space, shard: shard, of: shards))
        allocators.append(Allocator(space, shard: shard, of: shards))
        paths[key] = id
        pathAddresses.append((local, remote))
        return id
    }

    /// The waypoint addresses of a registered path.
    public func addresses(_ path: PeerPathID) -> (local: IPAddress, remote: IPAddress)? {
        let i = Int(path.rawValue)
        return i < pathAddresses.count ? pathAddresses[i] : nil
    }

    /// Pairs a path can hand out for one wire protocol (this shard's share).
    public func capacity(path: PeerPathID, wireProtocol: UInt8) -> Int {
        let s = Self.slot(path, wireProtocol)
        return s < allocators.count ? allocators[s].capacity : 0
    }

    /// The registered path between two waypoints.
    public func path(local: IPAddress, remote: IPAddress) -> PeerPathID? { paths[PathKey(local: local, remote: remote)] }

    /// Whether a session carried with `wireProtocol` uses the TCP or the UDP port space (every
    /// protocol other than TCP travels as UDP, spec §2.7).
    @inline(__always) static func slot(_ path: PeerPathID, _ wireProtocol: UInt8) -> Int {
        Int(path.rawValue) * 2 + (wireProtocol == IPProtocolNumber.tcp ? 0 : 1)
    }

    /// Allocates a (local, remote) port pair for a new session on `path`: the next pair of
    /// the path's cursor that `isFree` accepts (the caller looks the waypoint tuple up; by
    /// default every pair is taken as free, which is right only while fewer than a whole
    /// turn of the pair space was handed out).
    public mutating func allocate(path: PeerPathID, wireProtocol: UInt8,
                                  isFree: (WaypointPortPair) -> Bool = { _ in true }) throws(WaypointPortRefusal) -> WaypointPortPair {
        let s = Self.slot(path, wireProtocol)
        guard s < allocators.count else { throw .unknownPath }
        guard let pair = allocators[s].allocate(isFree) else {
            exhaustedCount &+= 1
            throw .exhausted
        }
        return pair
    }

    /// Gives back the pair of an ended session (only its local port is needed: the count per
    /// path goes down); false if the port is not this shard's or nothing is in use.
    @discardableResult
    public mutating func release(path: PeerPathID, wireProtocol: UInt8, localPort: UInt16) -> Bool {
        let s = Self.slot(path, wireProtocol)
        guard s < allocators.count else { return false }
        return allocators[s].release(localPort)
    }

    /// Sessions holding a port pair on a path for a wire protocol.
    public func inUse(path: PeerPathID, wireProtocol: UInt8) -> Int {
        let s = Self.slot(path, wireProtocol)
        return s < allocators.count ? allocators[s].inUse : 0
    }
}

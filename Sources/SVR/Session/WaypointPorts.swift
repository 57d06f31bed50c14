// Waypoint port allocation (spec §3, open point O4).
//
// The router that sends a new session over a peer path picks both L4 ports of the waypoint
// tuple. Default: an even port for its own side from 16384...65534 and an odd port for the
// peer from 16385...65533, so two peers opening sessions toward each other can never pick the
// same 4-tuple ("glare"). With a configured port range the parity rule is not used and ports
// come round robin from the range instead.
//
// The local port is what makes a waypoint tuple unique, so it is tracked: one bitmap per
// (path, wire protocol) with a rotating cursor (allocation scans forward from the cursor
// for a clear bit, 64 ports per word; freeing clears the bit). The remote port is only spread
// round robin: with a unique local port every tuple on the path is unique whatever the remote
// port is. Exhaustion of local ports refuses the session with a counted reason.
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
    /// Every local port of the path is in use for this wire protocol.
    case exhausted
    /// The path is not known.
    case unknownPath
}

/// Waypoint port allocators for all peer paths of one thread.
public struct WaypointPorts: Sendable {
    /// One wire protocol on one path.
    struct Allocator: Sendable {
        /// First local port and distance between local ports (2 for even/odd, 1 for ranges).
        let localBase: Int
        let localStep: Int
        let localCount: Int
        let remoteBase: Int
        let remoteStep: Int
        let remoteCount: Int
        /// Local ports this shard may hand out.
        let capacity: Int
        let shard: Int
        let shards: Int
        var used: [UInt64]
        var inUse = 0
        var cursor = 0
        var remoteCursor = 0

        init(_ space: WaypointPortSpace, shard: Int, of shards: Int) {
            switch space {
            case .evenOdd:
                (localBase, localStep, localCount) = (16384, 2, (65534 - 16384) / 2 + 1)
                (remoteBase, remoteStep, remoteCount) = (16385, 2, (65533 - 16385) / 2 + 1)
            case .ranges(let l, let r):
                (localBase, localStep, localCount) = (Int(l.lowerBound), 1, l.count)
                (remoteBase, remoteStep, remoteCount) = (Int(r.lowerBound), 1, r.count)
            }
            used = [UInt64](repeating: 0, count: (localCount + 63) / 64)
            // Bits past the end and other shards' ports are permanently "used", so the scan
            // never returns them.
            if localCount % 64 != 0 { used[used.count - 1] = ~UInt64(0) << UInt64(localCount % 64) }
            var mine = localCount
            if shards > 1 {
                mine = 0
                for i in 0..<localCount {
                    if i % shards == shard { mine += 1 } else { used[i >> 6] |= UInt64(1) << UInt64(i & 63) }
                }
            }
            capacity = mine
            self.shard = shard
            self.shards = shards
        }

        mutating func allocate() -> WaypointPortPair? {
            guard inUse < capacity else { return nil }
            var w = cursor >> 6
            // Ignore bits below the cursor in its word on the first visit, so allocation keeps
            // rotating instead of reusing the port just freed.
            var word = used[w] | ((UInt64(1) << UInt64(cursor & 63)) &- 1)
            // A clear bit exists (inUse < capacity); at worst the scan wraps around to the
            // cursor's word, this time unmasked.
            while word == ~UInt64(0) {
                w = w + 1 == used.count ? 0 : w + 1
                word = used[w]
            }
            let bit = (~word).trailingZeroBitCount
            let i = w << 6 | bit
            used[w] |= UInt64(1) << UInt64(bit)
            inUse += 1
            cursor = i + 1 == localCount ? 0 : i + 1
            let remote = remoteBase + remoteCursor * remoteStep
            remoteCursor = remoteCursor + 1 == remoteCount ? 0 : remoteCursor + 1
            return WaypointPortPair(local: UInt16(localBase + i * localStep), remote: UInt16(remote))
        }

        /// Frees a local port; false if it was not allocated.
        mutating func release(_ local: UInt16) -> Bool {
            let off = Int(local) - localBase
            guard off >= 0, off % localStep == 0, off / localStep < localCount else { return false }
            let i = off / localStep
            guard i % shards == shard else { return false }
            let m = UInt64(1) << UInt64(i & 63)
            guard used[i >> 6] & m != 0 else { return false }
            used[i >> 6] &= ~m
            inUse -= 1
            return true
        }
    }

    /// Allocators: index = path * 2 + (TCP ? 0 : 1).
    private var allocators: [Allocator] = []
    private var paths: [PathKey: PeerPathID] = [:]

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
        return id
    }

    /// The registered path between two waypoints.
    public func path(local: IPAddress, remote: IPAddress) -> PeerPathID? { paths[PathKey(local: local, remote: remote)] }

    /// Whether a session carried with `wireProtocol` uses the TCP or the UDP port space (every
    /// protocol other than TCP travels as UDP, spec §2.7).
    @inline(__always) static func slot(_ path: PeerPathID, _ wireProtocol: UInt8) -> Int {
        Int(path.rawValue) * 2 + (wireProtocol == IPProtocolNumber.tcp ? 0 : 1)
    }

    /// Allocates a (local, remote) port pair for a new session on `path`.
    public mutating func allocate(path: PeerPathID, wireProtocol: UInt8) throws(WaypointPortRefusal) -> WaypointPortPair {
        let s = Self.slot(path, wireProtocol)
        guard s < allocators.count else { throw .unknownPath }
        guard let pair = allocators[s].allocate() else {
            exhaustedCount &+= 1
            throw .exhausted
        }
        return pair
    }

    /// Frees the local port of a session; false if it was not allocated (a bug in the caller).
    @discardableResult
    public mutating func release(path: PeerPathID, wireProtocol: UInt8, localPort: UInt16) -> Bool {
        let s = Self.slot(path, wireProtocol)
        guard s < allocators.count else { return false }
        return allocators[s].release(localPort)
    }

    /// Local ports in use on a path for a wire protocol.
    public func inUse(path: PeerPathID, wireProtocol: UInt8) -> Int {
        let s = Self.slot(path, wireProtocol)
        return s < allocators.count ? allocators[s].inUse : 0
    }
}

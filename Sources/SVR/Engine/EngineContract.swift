// The contract between the SVR engine and whoever moves its packets: the daemon (TUN + WAN
// sockets on data-plane threads) or the in-memory test links. The engine never touches a
// device; it is handed one packet at a time, rewrites it in place inside its slot (using the
// slot's headroom and tailroom), and says where it goes.
//
// Threading: one engine instance is owned by one data-plane thread (no locks inside). Views
// for the control plane are produced by `snapshot()` on that thread and handed over as
// immutable values.

/// Where a packet goes after the engine has processed it.
public enum Disposition: Equatable, Sendable {
    /// Send the (rewritten) packet toward a peer, out of WAN interface `interface`
    /// (index into the config's `[[interface]]` list). The packet's IP header already holds
    /// the waypoint addresses.
    case toWAN(interface: Int)
    /// Deliver the (restored) packet to the LAN side (write it to the LAN TUN).
    case toLAN
    /// The engine consumed it (a control packet, a BFD packet, …); nothing to send.
    case consumed
    /// Dropped; counted under `reason`.
    case drop(DropReason)
}

/// Why a packet was dropped. Every drop is counted under exactly one reason.
public enum DropReason: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    // first-packet policy (deny by default)
    case noTenant, noService, notAllowed, noRoute
    // resources
    case sessionLimit, portsExhausted, noHeadroom
    // bad input on the LAN side
    case malformedPacket, unsupportedProtocol, fragment
    // bad input on the WAN side
    case notSVR, badMetadata, badVersion, unknownPeer, authenticationFailed, replay, noSession
    case decryptFailed

    public var description: String {
        switch self {
        case .noTenant: "no-tenant"
        case .noService: "no-service"
        case .notAllowed: "not-allowed"
        case .noRoute: "no-route"
        case .sessionLimit: "session-limit"
        case .portsExhausted: "ports-exhausted"
        case .noHeadroom: "no-headroom"
        case .malformedPacket: "malformed-packet"
        case .unsupportedProtocol: "unsupported-protocol"
        case .fragment: "fragment"
        case .notSVR: "not-svr"
        case .badMetadata: "bad-metadata"
        case .badVersion: "bad-version"
        case .unknownPeer: "unknown-peer"
        case .authenticationFailed: "authentication-failed"
        case .replay: "replay"
        case .noSession: "no-session"
        case .decryptFailed: "decrypt-failed"
        }
    }
}

/// Packet and byte counters of one engine, plus drops by reason. Plain integers: the owning
/// thread increments them; the control plane reads copies from `snapshot()`.
public struct EngineCounters: Sendable, Equatable {
    public var lanReceivedPackets: UInt64 = 0
    public var lanReceivedBytes: UInt64 = 0
    public var lanSentPackets: UInt64 = 0
    public var lanSentBytes: UInt64 = 0
    public var wanReceivedPackets: UInt64 = 0
    public var wanReceivedBytes: UInt64 = 0
    public var wanSentPackets: UInt64 = 0
    public var wanSentBytes: UInt64 = 0
    public var sessionsCreated: UInt64 = 0
    public var sessionsExpired: UInt64 = 0
    public var drops = [UInt64](repeating: 0, count: DropReason.allCases.count)

    public init() {}

    public mutating func drop(_ reason: DropReason) { drops[Int(reason.rawValue)] &+= 1 }
    public func drops(_ reason: DropReason) -> UInt64 { drops[Int(reason.rawValue)] }

    public mutating func add(_ o: EngineCounters) {
        lanReceivedPackets &+= o.lanReceivedPackets; lanReceivedBytes &+= o.lanReceivedBytes
        lanSentPackets &+= o.lanSentPackets; lanSentBytes &+= o.lanSentBytes
        wanReceivedPackets &+= o.wanReceivedPackets; wanReceivedBytes &+= o.wanReceivedBytes
        wanSentPackets &+= o.wanSentPackets; wanSentBytes &+= o.wanSentBytes
        sessionsCreated &+= o.sessionsCreated; sessionsExpired &+= o.sessionsExpired
        for i in drops.indices { drops[i] &+= o.drops[i] }
    }
}

/// One session as `show sessions` prints it.
public struct SessionView: Sendable, Equatable {
    public enum Role: String, Sendable { case ingress, egress, transit }
    public var uuid: String
    public var role: Role
    public var tenant: String
    public var service: String
    public var peer: String
    /// The original (LAN-side, client → server) 5-tuple.
    public var original: FiveTuple
    /// The waypoint tuple on the wire (this router's waypoint → the peer's), as sent.
    public var waypoint: FiveTuple
    /// "native" (TCP as TCP) or "udp" (UDP transform).
    public var transport: String
    /// The payload cipher suite in use ("aes-cbc-hmac", "aes-gcm", "none").
    public var encryption: String
    public var state: String
    public var forwardPackets: UInt64, forwardBytes: UInt64
    public var reversePackets: UInt64, reverseBytes: UInt64
    public var ageSeconds: Double
    public var idleSeconds: Double

    public init(
        uuid: String, role: Role, tenant: String, service: String, peer: String, original: FiveTuple,
        waypoint: FiveTuple, transport: String, encryption: String, state: String,
        forwardPackets: UInt64, forwardBytes: UInt64, reversePackets: UInt64, reverseBytes: UInt64,
        ageSeconds: Double, idleSeconds: Double
    ) {
        self.uuid = uuid; self.role = role; self.tenant = tenant; self.service = service; self.peer = peer
        self.original = original; self.waypoint = waypoint; self.transport = transport
        self.encryption = encryption; self.state = state
        self.forwardPackets = forwardPackets; self.forwardBytes = forwardBytes
        self.reversePackets = reversePackets; self.reverseBytes = reverseBytes
        self.ageSeconds = ageSeconds; self.idleSeconds = idleSeconds
    }
}

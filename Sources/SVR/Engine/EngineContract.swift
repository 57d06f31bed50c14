// The contract between the SVR engine and whoever moves its packets: the daemon (TUN + WAN
// sockets on data-plane threads) or the in-memory test links. The engine never touches a
// device; it is handed one packet at a time, rewrites it in place inside its slot (using the
// slot's headroom and tailroom), and says where it goes.
//
// Threading: one engine instance is owned by one data-plane thread (no locks inside). Views
// for the control plane are produced by `snapshot()` on that thread and handed over as
// immutable values.

import Glibc

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
    // resources: `[limits]` per source address and per tenant
    case sourceSessionLimit, sourceRateLimit, tenantSessionLimit
    // bad input on the LAN side
    case malformedPacket, unsupportedProtocol, fragment
    // bad input on the WAN side
    case notSVR, badMetadata, badVersion, unknownPeer, authenticationFailed, replay, noSession
    case decryptFailed
    // path MTU and fragments (SVRRouter+MTU.swift)
    /// A fragment out of bounds, overlapping one already received, or not a multiple of 8.
    case fragmentInvalid
    /// A datagram longer than reassembly takes.
    case fragmentOversized
    /// An incomplete datagram timed out or was evicted by a newer one.
    case fragmentTimeout
    /// A packet with DF larger than the peer path allows: an ICMP "fragmentation needed" went
    /// back to the sender instead.
    case tooBig
    // ICMP errors and TTL (SVRRouter+ICMP.swift; an underlay "fragmentation needed": +MTU)
    /// An ICMP error whose quoted packet belongs to no session here.
    case icmpUnknownSession
    /// An ICMP error too short to hold a whole quoted IP header and 8 bytes after it.
    case icmpTruncated
    /// An ICMP error about an ICMP error or about a non-first fragment (never relayed).
    case icmpUnquotable
    /// A LAN packet that arrived with TTL 1 or 0 (answered with time exceeded when allowed).
    case ttlExpired
    // session policy
    /// Forward metadata asked for a weaker payload suite than this router's policy for the
    /// service (order: none < aes-cbc-hmac = aes-gcm), or a payload arrived in clear in a
    /// direction this router's policy does not allow to be clear.
    case weakerEncryption

    public var description: String {
        switch self {
        case .noTenant: "no-tenant"
        case .noService: "no-service"
        case .notAllowed: "not-allowed"
        case .noRoute: "no-route"
        case .sessionLimit: "session-limit"
        case .portsExhausted: "ports-exhausted"
        case .noHeadroom: "no-headroom"
        case .sourceSessionLimit: "source-session-limit"
        case .sourceRateLimit: "source-rate-limit"
        case .tenantSessionLimit: "tenant-session-limit"
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
        case .fragmentInvalid: "fragment-invalid"
        case .fragmentOversized: "fragment-oversized"
        case .fragmentTimeout: "fragment-timeout"
        case .tooBig: "too-big"
        case .icmpUnknownSession: "icmp-unknown-session"
        case .icmpTruncated: "icmp-truncated"
        case .icmpUnquotable: "icmp-unquotable"
        case .ttlExpired: "ttl-expired"
        case .weakerEncryption: "weaker-encryption"
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
    /// SVR fragments sent (pieces of packets larger than a peer path's MTU) and datagrams
    /// put back together (LAN IP fragments and SVR fragments from peers).
    public var fragmentsSent: UInt64 = 0
    public var datagramsReassembled: UInt64 = 0
    /// ICMP "fragmentation needed" sent to LAN senders, and path MTU reductions learned
    /// from the underlay's ICMP.
    public var tooBigSent: UInt64 = 0
    public var pathMTUReductions: UInt64 = 0
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
        fragmentsSent &+= o.fragmentsSent; datagramsReassembled &+= o.datagramsReassembled
        tooBigSent &+= o.tooBigSent; pathMTUReductions &+= o.pathMTUReductions
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
    /// The payload protection as it went on the wire, as one word: the suite when both
    /// directions agree ("aes-cbc-hmac", "aes-gcm", "none", "pending"), else
    /// "FORWARD/REVERSE" (e.g. "none/aes-cbc-hmac").
    public var encryption: String
    /// Per direction (forward: client → server; reverse): "aes-cbc-hmac" or "aes-gcm"
    /// (sealed), "none" (clear), "pending" (no payload yet: adaptive encryption has not
    /// decided), "relayed" (a transit router passes the payload through unopened).
    public var forwardEncryption: String
    public var reverseEncryption: String
    public var state: String
    public var forwardPackets: UInt64, forwardBytes: UInt64
    public var reversePackets: UInt64, reverseBytes: UInt64
    public var ageSeconds: Double
    public var idleSeconds: Double

    public init(
        uuid: String, role: Role, tenant: String, service: String, peer: String, original: FiveTuple,
        waypoint: FiveTuple, transport: String, encryption: String, forwardEncryption: String? = nil,
        reverseEncryption: String? = nil, state: String,
        forwardPackets: UInt64, forwardBytes: UInt64, reversePackets: UInt64, reverseBytes: UInt64,
        ageSeconds: Double, idleSeconds: Double
    ) {
        self.uuid = uuid; self.role = role; self.tenant = tenant; self.service = service; self.peer = peer
        self.original = original; self.waypoint = waypoint; self.transport = transport
        self.encryption = encryption; self.state = state
        self.forwardEncryption = forwardEncryption ?? encryption
        self.reverseEncryption = reverseEncryption ?? encryption
        self.forwardPackets = forwardPackets; self.forwardBytes = forwardBytes
        self.reversePackets = reversePackets; self.reverseBytes = reverseBytes
        self.ageSeconds = ageSeconds; self.idleSeconds = idleSeconds
    }
}

/// The time an engine call happens at: a monotonic clock for timeouts, and the wall clock for
/// time-based HMAC windows (spec §6.3). Read once per batch by the caller, not per packet.
public struct EngineTime: Sendable, Equatable, Comparable {
    /// Monotonic nanoseconds (CLOCK_MONOTONIC).
    public var monotonicNanos: UInt64
    /// Unix time in seconds (CLOCK_REALTIME).
    public var unixSeconds: UInt64

    public init(monotonicNanos: UInt64, unixSeconds: UInt64) {
        self.monotonicNanos = monotonicNanos
        self.unixSeconds = unixSeconds
    }

    public static func < (l: EngineTime, r: EngineTime) -> Bool { l.monotonicNanos < r.monotonicNanos }

    /// Reads both clocks now.
    public static func now() -> EngineTime {
        var m = timespec()
        var w = timespec()
        clock_gettime(CLOCK_MONOTONIC, &m)
        clock_gettime(CLOCK_REALTIME, &w)
        return EngineTime(monotonicNanos: UInt64(m.tv_sec) * 1_000_000_000 + UInt64(m.tv_nsec), unixSeconds: UInt64(w.tv_sec))
    }

    /// This time plus `seconds` (both clocks advance).
    public func adding(seconds: Double) -> EngineTime {
        EngineTime(monotonicNanos: monotonicNanos &+ UInt64(seconds * 1e9), unixSeconds: unixSeconds &+ UInt64(seconds))
    }
}

/// A peer as `show peers` prints it.
public struct PeerView: Sendable, Equatable {
    public var name: String
    /// The peer's waypoint addresses.
    public var waypoints: [String]
    /// "native" or "udp".
    public var transport: String
    /// "up", "down" or "unknown" (before path monitoring exists, "unknown").
    public var status: String
    public var sessions: Int
    /// The path's MTU now (SVRRouter+MTU.swift; 0: no path).
    public var mtu: Int
    public init(name: String, waypoints: [String], transport: String, status: String, sessions: Int, mtu: Int = 0) {
        self.name = name; self.waypoints = waypoints; self.transport = transport; self.status = status; self.sessions = sessions
        self.mtu = mtu
    }
}

/// A service as `show services` prints it.
public struct ServiceView: Sendable, Equatable {
    public var name: String
    public var prefixes: [String]
    /// e.g. "tcp/80,443" or "any".
    public var transport: String
    public var tenants: [String]
    /// "peer NAME[, NAME…]", "local", "local snat" or "none".
    public var route: String
    public var encryption: String
    public var sessions: Int
    public init(name: String, prefixes: [String], transport: String, tenants: [String], route: String, encryption: String, sessions: Int) {
        self.name = name; self.prefixes = prefixes; self.transport = transport; self.tenants = tenants
        self.route = route; self.encryption = encryption; self.sessions = sessions
    }
}

/// Everything the control plane shows, copied out on the data-plane thread.
public struct EngineSnapshot: Sendable, Equatable {
    public var routerName: String
    public var counters: EngineCounters
    public var sessions: [SessionView]
    public var peers: [PeerView]
    public var services: [ServiceView]
    public init(routerName: String, counters: EngineCounters, sessions: [SessionView], peers: [PeerView], services: [ServiceView]) {
        self.routerName = routerName; self.counters = counters; self.sessions = sessions; self.peers = peers; self.services = services
    }
}

/// What the daemon's data-plane thread drives. One instance per data-plane thread; not
/// Sendable, no locks inside. Every call is synchronous and allocation-free on the
/// established-session path.
public protocol PacketEngine: AnyObject {
    /// A packet read from the LAN TUN (an IP packet starting at `packet.offset`, with
    /// headroom before and tailroom after it). Rewritten in place.
    func handleLAN(_ packet: inout PacketBuffer, now: EngineTime) -> Disposition
    /// A packet received on WAN interface `interface` (index into the config's interfaces).
    func handleWAN(_ packet: inout PacketBuffer, interface: Int, now: EngineTime) -> Disposition
    /// Periodic work (call at least every 100 ms): session expiry in bounded steps, and
    /// queueing generated packets (e.g. the TLV-18 acknowledgement of one-way flows).
    func tick(now: EngineTime)
    /// Moves each generated packet into `slot` (`maxLength` bytes at `slot + headroom`)
    /// and calls `send` with its length and disposition, until none are left.
    func drainGenerated(into slot: UnsafeMutableRawBufferPointer, headroom: Int, _ send: (PacketBuffer, Disposition) -> Void)
    /// The control plane's view, copied out (allocates; call on request, not per packet).
    func snapshot(now: EngineTime) -> EngineSnapshot
    /// The counters alone (no sessions): cheap enough for the daemon to read every second
    /// on the data-plane thread, from which it derives its log events.
    var counters: EngineCounters { get }
}

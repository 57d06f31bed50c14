// SVRRouter: the session engine pipeline (spec §2) behind `PacketEngine`.
//
// LAN packet:  parse → session lookup (lanOriginal: we are the ingress; lanReply: we are the
//              egress and this is the server's reply) or first packet → classify → policy →
//              route → ports → session key → session → emit toward the peer.
// WAN packet:  parse → peer by source waypoint → HMAC trailer → metadata (cookie, header,
//              payload-TLV section opened with the peer key, TLVs) → session lookup by waypoint
//              tuple (wanFromUpstream: forward, wanFromDownstream: reverse) or, with forward
//              metadata, a new egress/transit session → deliver to the LAN (restore, decrypt)
//              or re-emit toward the next peer (transit).
//
// Emitting toward a peer always builds [IPv4][outer L4][metadata?][inner L4?][payload][HMAC]
// in front of the payload, which stays where it is; the payload is sealed in place with the
// session key (end to end; a transit router passes it through sealed).
//
// Metadata handshake (§2.5), per session and direction, in `SessionExtra.flags`:
//   fwdAck  set when reverse metadata / TLV 18 arrived: stop forward metadata;
//   revAck  set when a forward packet without metadata arrived: stop reverse metadata.
//
// Nothing on the established path allocates: names are pre-encoded UTF-8, metadata is written
// with `TLVWriter`, cipher contexts come from a direct-mapped per-router cache.

import Glibc

/// Per-session state the engine keeps next to the session table's row (144 bytes).
struct SessionExtra {
    /// The suite's ready subkeys as carried in TLV 46 (CBC: AES key in key0–3, MAC key in
    /// key4–7; GCM: key0–3), bytes in wire order.
    var key0: UInt64 = 0, key1: UInt64 = 0, key2: UInt64 = 0, key3: UInt64 = 0
    var key4: UInt64 = 0, key5: UInt64 = 0, key6: UInt64 = 0, key7: UInt64 = 0
    /// Byte offset of key0 (key0…key7 are 64 contiguous bytes).
    static let keyOffset: Int = {
        let k0 = MemoryLayout<SessionExtra>.offset(of: \SessionExtra.key0)!
        precondition(MemoryLayout<SessionExtra>.offset(of: \SessionExtra.key7)! == k0 + 56)
        return k0
    }()
    /// Monotonic time the session was created, then of its last TLV-18 control packet.
    var created: UInt64 = 0
    /// Bumped per session creation; 0 = dead row. Tags cipher cache entries.
    var generation: UInt32 = 0
    var flags: UInt16 = 0
    var suite: UInt8 = 0
    /// Carriage toward the ingress side (upstream) and toward the egress side (downstream).
    var upCarriage: UInt8 = 0
    var downCarriage: UInt8 = 0
    var role: UInt8 = 0
    /// Peer index + 1 (0: none).
    var upPeer: UInt16 = 0
    var downPeer: UInt16 = 0
    var upInterface: UInt8 = 0
    var downInterface: UInt8 = 0

    /// Sliding windows over the GCM nonce counters of received payloads, per direction.
    var replayForward = ReplayWindow()
    var replayReverse = ReplayWindow()
    /// The AES-GCM nonces this router seals the session's payloads with (a router seals one
    /// direction of a session: forward at the ingress, reverse at the egress). Per session,
    /// not per cached cipher, so the sequence survives moving between cache slots.
    var sealNonce = GCMNonceSequence(prefix: 0, counter: 0)
    /// Cipher operations so far, counted up to `SVRRouter.promoteAfter` (see `cipherSlot`).
    var cipherUses: UInt8 = 0
    /// The session's slot in the nursery while `cipherUses < promoteAfter`.
    var nurserySlot: UInt16 = 0

    static let encrypt: UInt16 = 1
    static let adaptivePending: UInt16 = 2
    static let signalEncrypted: UInt16 = 4
    static let fwdAck: UInt16 = 8
    static let revAck: UInt16 = 16
    static let reverseSeen: UInt16 = 32
    static let controlSent: UInt16 = 64
}

/// Per-session replay protection for AES-GCM payloads (spec §6.3 asks for a replay window
/// besides the HMAC time window). The sender's nonce is a random 4-byte prefix and a 64-bit
/// counter, both drawn when the sender created its session state and the counter grown per
/// packet (`SessionExtra.sealNonce`), so a counter at or below one already seen (outside 64
/// of the highest) is a replay. A new prefix (the sender re-created its session state with
/// the same key, e.g. an egress that expired a session and got its metadata again)
/// restarts the window.
struct ReplayWindow {
    var prefix: UInt32 = 0
    var highest: UInt64 = 0
    var seen: UInt64 = 0

    /// Records a counter; false if it was seen before or is too old.
    @inline(__always)
    mutating func accept(prefix p: UInt32, counter c: UInt64) -> Bool {
        if seen == 0 || p != prefix {
            self = ReplayWindow(prefix: p, highest: c, seen: 1)
            return true
        }
        if c > highest {
            let shift = c - highest
            seen = shift >= 64 ? 1 : seen << shift | 1
            highest = c
            return true
        }
        let back = highest - c
        guard back < 64, seen & (1 << back) == 0 else { return false }
        seen |= 1 << back
        return true
    }
}

/// The outcome of creating a session from metadata.
enum CreateResult {
    case success(SessionHit)
    case failure(DropReason)
}

/// A payload cipher in the per-router cache. Its sealing and opening contexts are keyed
/// separately (tags: session index << 32 | generation) with the session's ready subkeys.
final class CipherSlot {
    var sealOwner: UInt64 = .max
    var openOwner: UInt64 = .max
    var cipher: PayloadCipher
    /// The contexts of the suite served before (`.none` until a second suite is used).
    var spare: PayloadCipher

    init() throws(CryptoError) {
        cipher = try PayloadCipher(suite: .none, key: SymmetricKey(bytes: [UInt8](repeating: 0, count: 32)))
        spare = try PayloadCipher(suite: .none, key: SymmetricKey(bytes: [UInt8](repeating: 0, count: 32)))
    }
}

/// The SVR engine of one data-plane thread.
public final class SVRRouter: PacketEngine {
    public let config: Config
    let routerNameBytes: [UInt8]
    let peers: [PeerRuntime]
    let services: [ServiceRuntime]
    let tenantNames: [String]
    let tenantBytes: [[UInt8]]
    let classifier: Classifier
    let lanRoutes: ServiceRouteTable
    let lanInterface: LANInterfaceID
    let peerByAddress: [UInt32: Int]
    /// This router's IPv4 waypoint addresses (WAN packets to anything else are not SVR).
    let localAddresses: [UInt32]
    public let table: SessionTable

    var extras: UnsafeMutablePointer<SessionExtra>
    var generation: UInt32 = 0
    var counters = EngineCounters()
    var classifierCounters = ClassifierCounters()

    // Scratch memory (owned, allocated once).
    let metaScratch: UnsafeMutableRawPointer
    let hdrScratch: UnsafeMutableRawPointer
    static let metaScratchSize = 2048
    let keyPool: UnsafeMutableRawPointer
    var keyPoolOffset: Int
    static let keyPoolSize = 4096

    // Cipher cache (direct mapped by session index), re-keyed in place on a miss, and the
    // nursery: a small round-robin cache for sessions in their first cipher operations.
    let cipherSlots: [CipherSlot]
    let cipherMask: Int
    let nursery: [CipherSlot]
    var nurseryNext = 0
    /// Payload ciphers created for cache slots (OpenSSL contexts allocated): at most two per
    /// slot (one per suite) over the router's life.
    var cipherContextsCreated = 0
    /// A session's first `promoteAfter` cipher operations on this router use the nursery.
    static let promoteAfter: UInt8 = 4

    // Sessions waiting for their TLV-18 check (egress/transit, UDP wire).
    var pendingControl: [(index: UInt32, generation: UInt32)]
    var pendingHead = 0
    var pendingCount = 0
    /// Seconds without reverse traffic before a TLV-18 control packet is generated.
    public var controlDelayNanos: UInt64 = 1_000_000_000

    // Generated packets.
    let generated: UnsafeMutableRawPointer
    var generatedLength: [Int]
    var generatedInterface: [Int]
    var generatedHead = 0
    var generatedCount = 0
    static let generatedSlotSize = 256
    static let generatedSlots = 256

    /// Builds the engine from a validated configuration.
    /// - Parameters:
    ///   - maxSessions: overrides `config.limits.maxSessions` (tests, benchmarks).
    ///   - cipherCacheSize: cached payload cipher contexts (a power of two).
    ///   - nurserySize: cipher contexts for sessions in their first packets (see `cipherSlot`).
    ///   - prefault: commit the session table's memory now.
    public init(config: Config, maxSessions: Int? = nil, cipherCacheSize: Int = 4096, nurserySize: Int = 64,
                prefault: Bool = false) throws(EngineError) {
        self.config = config
        routerNameBytes = Array(config.router.name.utf8)
        let t = config.timeouts
        var timeouts = SessionTimeouts()
        timeouts.tcpHandshake = t.tcpSyn.wholeSeconds
        timeouts.tcpEstablished = t.tcpEstablished.wholeSeconds
        timeouts.tcpHalfClosed = t.tcpClosing.wholeSeconds
        timeouts.tcpClosed = min(timeouts.tcpClosed, t.tcpClosing.wholeSeconds)
        timeouts.udp = t.udp.wholeSeconds
        timeouts.icmp = t.icmp.wholeSeconds
        timeouts.other = t.udp.wholeSeconds
        let capacity = max(1, maxSessions ?? config.limits.maxSessions)
        table = SessionTable(SessionTableConfiguration(maxSessions: capacity, timeouts: timeouts, prefault: prefault))

        // Peers: keys, crypto, first reachable path.
        let priv: X25519PrivateKey
        do { priv = try X25519PrivateKey(bytes: config.router.privateKey.bytes) } catch { throw .crypto(error) }
        var ps: [PeerRuntime] = []
        var byAddress: [UInt32: Int] = [:]
        for (i, p) in config.peers.enumerated() {
            do {
                let keys = try PeerKeys(privateKey: priv, peerPublicKey: X25519PublicKey(bytes: p.publicKey.bytes))
                let r = try PeerRuntime(index: i, peer: p, keys: keys)
                search: for w in p.waypoints {
                    guard case .v4(let remote) = w.address else { continue }
                    byAddress[remote.value] = i
                    for (ii, iface) in config.interfaces.enumerated() where r.path == nil && w.isReachable(from: iface) {
                        guard case .v4(let local) = iface.address else { continue }
                        let space: WaypointPortSpace
                        if iface.portRange != nil || p.portRange != nil {
                            let l = iface.portRange ?? Config.PortRange.defaultWaypoints
                            let rr = p.portRange ?? Config.PortRange.defaultWaypoints
                            space = .ranges(local: l.lower...l.upper, remote: rr.lower...rr.upper)
                        } else {
                            space = .evenOdd
                        }
                        r.path = table.ports.addPath(local: iface.address, remote: w.address, space: space)
                        r.pathInterface = ii
                        r.localAddress = local.value
                        r.remoteAddress = remote.value
                        break search
                    }
                }
                ps.append(r)
            } catch {
                throw .crypto(error)
            }
        }
        peers = ps
        peerByAddress = byAddress
        localAddresses = config.interfaces.compactMap { if case .v4(let a) = $0.address { a.value } else { nil } }

        // Tenants and services.
        tenantNames = config.tenants.map(\.name)
        tenantBytes = config.tenants.map { Array($0.name.utf8) }
        var tenantPrefixes: [(prefix: IPPrefix, tenant: TenantID)] = []
        var interfaceTenants: [(interface: LANInterfaceID, tenant: TenantID)] = []
        lanInterface = LANInterfaceID(rawValue: 0)
        for (i, tn) in config.tenants.enumerated() {
            for p in tn.prefixes { tenantPrefixes.append((p, TenantID(rawValue: UInt16(i)))) }
            if tn.interfaces.contains(config.router.lanDevice) {
                interfaceTenants.append((LANInterfaceID(rawValue: 0), TenantID(rawValue: UInt16(i))))
            }
        }
        var rules: [ServiceRule] = []
        var svcs: [ServiceRuntime] = []
        var routes = ServiceRouteTable(serviceCount: config.services.count)
        for (i, s) in config.services.enumerated() {
            let transports: [TransportMatch]
            let ports = s.ports.map { $0.lower...$0.upper }
            switch s.proto {
            case .tcp: transports = [TransportMatch(proto: IPProtocolNumber.tcp, ports: ports)]
            case .udp: transports = [TransportMatch(proto: IPProtocolNumber.udp, ports: ports)]
            case .icmp: transports = [TransportMatch(proto: IPProtocolNumber.icmp)]
            case .any: transports = ports.isEmpty ? [] : [TransportMatch(proto: IPProtocolNumber.tcp, ports: ports),
                                                          TransportMatch(proto: IPProtocolNumber.udp, ports: ports)]
            }
            let allowed = s.tenants.compactMap { n in config.tenants.firstIndex { $0.name == n }.map { TenantID(rawValue: UInt16($0)) } }
            let sid = ServiceID(rawValue: UInt16(i))
            rules.append(ServiceRule(service: sid, prefixes: s.prefixes, transports: transports, allowedTenants: allowed))
            var route = RouteKind.none
            if let r = config.route(forService: s.name) {
                switch r.target {
                case .local: route = .local
                case .peers(let names):
                    let idx = names.compactMap { n in config.peers.firstIndex { $0.name == n } }.filter { ps[$0].path != nil }
                    if !idx.isEmpty { route = .peers(idx) }
                }
            }
            if case .peers = route { routes.setRoute(sid, true) }
            svcs.append(ServiceRuntime(name: s.name, nameBytes: Array(s.name.utf8), suite: CipherSuite(s.policy.encryption),
                                       adaptive: s.policy.adaptiveEncryption, route: route, config: s))
        }
        services = svcs
        lanRoutes = routes
        do {
            classifier = try Classifier(tenantPrefixes: tenantPrefixes, interfaceTenants: interfaceTenants, services: rules)
        } catch {
            throw .invalidConfig("classifier: \(error)")
        }

        extras = .allocate(capacity: capacity)
        extras.initialize(repeating: SessionExtra(), count: capacity)
        metaScratch = .allocate(byteCount: Self.metaScratchSize, alignment: 64)
        hdrScratch = .allocate(byteCount: 128, alignment: 64)
        keyPool = .allocate(byteCount: Self.keyPoolSize, alignment: 64)
        keyPoolOffset = Self.keyPoolSize
        var size = 1
        while size < max(1, cipherCacheSize) { size <<= 1 }
        var slots: [CipherSlot] = []
        slots.reserveCapacity(size)
        do { for _ in 0..<size { slots.append(try CipherSlot()) } } catch { throw .crypto(error) }
        cipherSlots = slots
        cipherMask = size - 1
        var young: [CipherSlot] = []
        do { for _ in 0..<min(max(1, nurserySize), Int(UInt16.max)) { young.append(try CipherSlot()) } } catch { throw .crypto(error) }
        nursery = young
        pendingControl = Array(repeating: (0, 0), count: 4096)
        generated = .allocate(byteCount: Self.generatedSlots * Self.generatedSlotSize, alignment: 64)
        generatedLength = Array(repeating: 0, count: Self.generatedSlots)
        generatedInterface = Array(repeating: 0, count: Self.generatedSlots)
    }

    deinit {
        extras.deinitialize(count: table.capacity)
        extras.deallocate()
        metaScratch.deallocate()
        hdrScratch.deallocate()
        keyPool.deallocate()
        generated.deallocate()
    }

    // MARK: - PacketEngine

    public func handleLAN(_ packet: inout PacketBuffer, now: EngineTime) -> Disposition {
        counters.lanReceivedPackets &+= 1
        counters.lanReceivedBytes &+= UInt64(packet.count)
        let d = lan(&packet, now)
        account(d, packet)
        return d
    }

    public func handleWAN(_ packet: inout PacketBuffer, interface: Int, now: EngineTime) -> Disposition {
        counters.wanReceivedPackets &+= 1
        counters.wanReceivedBytes &+= UInt64(packet.count)
        let d = wan(&packet, interface: interface, now)
        account(d, packet)
        return d
    }

    @inline(__always)
    func account(_ d: Disposition, _ packet: PacketBuffer) {
        switch d {
        case .toWAN:
            counters.wanSentPackets &+= 1
            counters.wanSentBytes &+= UInt64(packet.count)
        case .toLAN:
            counters.lanSentPackets &+= 1
            counters.lanSentBytes &+= UInt64(packet.count)
        case .drop(let r):
            counters.drop(r)
        case .consumed:
            break
        }
    }

    public func tick(now: EngineTime) {
        _ = table.expire(now: now.monotonicNanos, budget: 4096) { info in
            counters.sessionsExpired &+= 1
            extras[Int(info.index.rawValue)].generation = 0
        }
        // One-way flows: TLV-18 control packet toward the upstream router (spec §2.5, TV4).
        while pendingCount > 0 {
            let (index, gen) = pendingControl[pendingHead]
            let i = Int(index)
            let e = extras[i]
            if e.generation == gen && now.monotonicNanos < e.created &+ controlDelayNanos { break }
            pendingHead = (pendingHead + 1) & (pendingControl.count - 1)
            pendingCount -= 1
            guard e.generation == gen, e.flags & (SessionExtra.reverseSeen | SessionExtra.controlSent | SessionExtra.revAck) == 0,
                  generatedCount < Self.generatedSlots
            else { continue }
            if generateControl(i, now) {
                extras[i].flags |= SessionExtra.controlSent
                extras[i].created = now.monotonicNanos  // from now on: when the last control packet left
            }
        }
    }

    public func drainGenerated(into slot: UnsafeMutableRawBufferPointer, headroom: Int, _ send: (PacketBuffer, Disposition) -> Void) {
        while generatedCount > 0 {
            let g = generatedHead
            generatedHead = (generatedHead + 1) % Self.generatedSlots
            generatedCount -= 1
            let n = generatedLength[g]
            guard let base = slot.baseAddress, headroom >= 0, headroom + n <= slot.count,
                  let p = try? PacketBuffer(slot: slot, offset: headroom, count: n)
            else { continue }
            (base + headroom).copyMemory(from: generated + g * Self.generatedSlotSize, byteCount: n)
            counters.wanSentPackets &+= 1
            counters.wanSentBytes &+= UInt64(n)
            send(p, .toWAN(interface: generatedInterface[g]))
        }
    }

    public func snapshot(now: EngineTime) -> EngineSnapshot {
        var views: [SessionView] = []
        var perPeer = [Int](repeating: 0, count: peers.count)
        var perService = [Int](repeating: 0, count: services.count)
        table.forEach { info in
            let e = extras[Int(info.index.rawValue)]
            let peerIndex = Int(info.peer)
            if peerIndex < perPeer.count { perPeer[peerIndex] += 1 }
            if info.service.index < perService.count { perService[info.service.index] += 1 }
            let role: SessionView.Role = info.role == .ingress ? .ingress : info.role == .egress ? .egress : .transit
            let suite = CipherSuite(rawValue: e.suite) ?? .none
            views.append(SessionView(
                uuid: "\(info.uuid)", role: role,
                tenant: info.tenant.index < tenantNames.count ? tenantNames[info.tenant.index] : "?",
                service: info.service.index < services.count ? services[info.service.index].name : "?",
                peer: peerIndex < peers.count ? peers[peerIndex].name : "?",
                original: info.original, waypoint: info.waypointOutbound ?? info.original,
                transport: peerIndex < peers.count ? peers[peerIndex].transport.rawValue : "native",
                encryption: e.flags & SessionExtra.encrypt != 0 ? suite.viewName : "none",
                state: "\(info.state)",
                forwardPackets: info.packetsForward, forwardBytes: info.bytesForward,
                reversePackets: info.packetsReverse, reverseBytes: info.bytesReverse,
                ageSeconds: Double(now.monotonicNanos &- info.created) / 1e9,
                idleSeconds: Double(now.monotonicNanos &- info.lastSeen) / 1e9))
        }
        let pv = peers.map { p in
            PeerView(name: p.name, waypoints: p.waypoints.map { "\($0)" }, transport: p.transport.rawValue,
                     status: p.path == nil ? "down" : "unknown", sessions: perPeer[p.index])
        }
        let sv = services.enumerated().map { (i, s) in
            let route: String
            switch s.route {
            case .none: route = "none"
            case .local:
                if case .local(let snat, _) = config.route(forService: s.name)?.target, snat { route = "local snat" } else { route = "local" }
            case .peers(let l): route = "peer " + l.map { peers[$0].name }.joined(separator: ", ")
            }
            let c = s.config
            let proto = c.proto.rawValue
            let transport = c.ports.isEmpty ? (c.proto == .any ? "any" : proto) : "\(proto)/" + c.ports.map(\.description).joined(separator: ",")
            return ServiceView(name: s.name, prefixes: c.prefixes.map(\.description), transport: transport, tenants: c.tenants,
                               route: route, encryption: s.suite.viewName, sessions: perService[i])
        }
        var c = counters
        c.sessionsCreated = counters.sessionsCreated
        return EngineSnapshot(routerName: config.router.name, counters: c, sessions: views, peers: pv, services: sv)
    }

    /// Classifier outcome counters (allowed and refusals by reason).
    public var classification: ClassifierCounters { classifierCounters }
    /// The engine's counters now.
    public var engineCounters: EngineCounters { counters }

    // MARK: - Keys and ciphers

    /// Fresh random subkeys for a new session of `suite` into `e` (from a pool refilled by
    /// RAND_bytes, 4 KiB at a time); false if the CSPRNG fails.
    /// Asks for the cache lines of the row the next new session will take (table row and
    /// `SessionExtra`), so their memory latency overlaps classification and metadata work.
    @inline(__always)
    func prefetchNewSession() {
        guard let r = table.prefetchNextRow() else { return }
        let p = UnsafeRawPointer(extras + r)
        for line in stride(from: 0, to: MemoryLayout<SessionExtra>.size, by: 64) { Prefetch.line(p + line) }
    }

    func drawSessionKeys(_ e: inout SessionExtra, suite: CipherSuite) -> Bool {
        guard let p = drawRandom(suite.subkeyLength) else { return false }
        withUnsafeMutableBytes(of: &e) { x in
            (x.baseAddress! + SessionExtra.keyOffset).copyMemory(from: p, byteCount: suite.subkeyLength)
        }
        p.initializeMemory(as: UInt8.self, repeating: 0, count: suite.subkeyLength)  // used key bytes never stay in the pool
        return drawSealNonce(&e)
    }

    /// Starts the session's GCM nonce sequence at 12 random bytes.
    func drawSealNonce(_ e: inout SessionExtra) -> Bool {
        guard let p = drawRandom(12) else { return false }
        e.sealNonce = GCMNonceSequence(random: p)
        return true
    }

    /// `n` (≤ keyPoolSize) random bytes from the pool, refilled with `RAND_bytes` when short.
    func drawRandom(_ n: Int) -> UnsafeMutableRawPointer? {
        if keyPoolOffset + n > Self.keyPoolSize {
            do { try OpenSSLSys.randomBytes(UnsafeMutableRawBufferPointer(start: keyPool, count: Self.keyPoolSize)) } catch { return nil }
            keyPoolOffset = 0
        }
        defer { keyPoolOffset += n }
        return keyPool + keyPoolOffset
    }

    /// The cache slot of session `i`, its sealing (or opening) context keyed for it. A miss
    /// installs the session's ready subkeys (TLV 46) into the direction needed only; a slot
    /// used for another suite before gets new contexts (allocates, once per slot and suite).
    ///
    /// A session's first `promoteAfter` cipher operations use the nursery, a few slots taken
    /// round robin: they stay in the CPU caches, so a first packet re-keys warm memory
    /// instead of its (cold) slot among thousands. Most sessions with few packets (DNS, a
    /// probe) never leave it; longer ones then move to their direct-mapped slot for good
    /// (one more key install) and stop evicting each other in the nursery.
    @inline(__always)
    func cipherSlot(_ i: Int, sealing: Bool) throws(CryptoError) -> CipherSlot {
        let e = extras[i]
        let tag = UInt64(i) << 32 | UInt64(e.generation)
        let slot: CipherSlot
        if e.cipherUses < Self.promoteAfter {
            extras[i].cipherUses = e.cipherUses + 1
            let young = nursery[Int(e.nurserySlot) % nursery.count]
            if e.cipherUses > 0, young.sealOwner == tag || young.openOwner == tag {
                slot = young  // still ours (the other direction may need its key)
            } else {
                slot = nursery[nurseryNext]
                extras[i].nurserySlot = UInt16(nurseryNext)
                nurseryNext = nurseryNext + 1 == nursery.count ? 0 : nurseryNext + 1
                slot.sealOwner = .max
                slot.openOwner = .max
            }
        } else {
            slot = cipherSlots[i & cipherMask]
        }
        if (sealing ? slot.sealOwner : slot.openOwner) == tag { return slot }
        let suite = CipherSuite(rawValue: e.suite) ?? .none
        let keys = (e.key0, e.key1, e.key2, e.key3, e.key4, e.key5, e.key6, e.key7)
        if slot.cipher.suite != suite {
            slot.sealOwner = .max
            slot.openOwner = .max
            // A slot keeps the contexts of the last two suites it served: a router mixing
            // suites swaps them instead of creating new OpenSSL contexts on every change.
            if slot.spare.suite != suite {
                slot.spare = try PayloadCipher(suite: suite, subkeys: withUnsafeBytes(of: keys) { Array($0) })
                cipherContextsCreated &+= 1
                swap(&slot.cipher, &slot.spare)
                slot.sealOwner = tag
                slot.openOwner = tag
                return slot
            }
            swap(&slot.cipher, &slot.spare)
        }
        if sealing { slot.sealOwner = .max } else { slot.openOwner = .max }
        try withUnsafeBytes(of: keys) { (k) throws(CryptoError) in try slot.cipher.install(k.baseAddress!, sealing: sealing) }
        // CBC's MAC key is shared by both directions: the other one is now someone else's.
        if suite == .aes256CbcHmacSha256_128 {
            if sealing, slot.openOwner != tag { slot.openOwner = .max }
            if !sealing, slot.sealOwner != tag { slot.sealOwner = .max }
        }
        if sealing { slot.sealOwner = tag } else { slot.openOwner = tag }
        return slot
    }

    // MARK: - LAN side

    func lan(_ packet: inout PacketBuffer, _ now: EngineTime) -> Disposition {
        guard let layout = try? PacketLayout(parsing: packet) else { return .drop(.malformedPacket) }
        guard layout.family == .ipv4 else { return .drop(.unsupportedProtocol) }
        guard layout.fragment == .unfragmented else { return .drop(.fragment) }
        let proto = layout.proto
        guard proto == IPProtocolNumber.tcp || proto == IPProtocolNumber.udp || proto == IPProtocolNumber.icmp,
              layout.hasTransportHeader
        else { return .drop(.unsupportedProtocol) }
        let base = packet.slot + packet.offset
        let tcpFlags = proto == IPProtocolNumber.tcp ? TCPFlags(rawValue: ld8(base, layout.l4Offset + 13)) : []
        let key = SessionKey(layout.tuple, side: .lan, zone: 0)
        if let hit = table.lookup(key) {
            let i = Int(hit.index.rawValue)
            table.recordPacket(hit, bytes: packet.count, tcpFlags: tcpFlags, now: now.monotonicNanos)
            if hit.role == .lanOriginal {
                return sendForwardFromLAN(&packet, layout, i, tcpFlags, now)
            } else if hit.role == .lanReply {
                return sendReverseFromLAN(&packet, layout, i, now)
            }
            return .drop(.noSession)
        }
        return firstPacket(&packet, layout, tcpFlags, now)
    }

    func firstPacket(_ packet: inout PacketBuffer, _ layout: PacketLayout, _ tcpFlags: TCPFlags, _ now: EngineTime) -> Disposition {
        let proto = layout.proto
        let base = packet.slot + packet.offset
        if proto == IPProtocolNumber.icmp && ld8(base, layout.l4Offset) != 8 { return .drop(.unsupportedProtocol) }
        prefetchNewSession()
        let tenant: TenantID, service: ServiceID
        switch classifier.classify(layout.tuple, interface: lanInterface, routes: lanRoutes, counters: &classifierCounters) {
        case .allowed(let t, let s): tenant = t; service = s
        case .refused(.noTenant): return .drop(.noTenant)
        case .refused(.noService): return .drop(.noService)
        case .refused(.tenantNotAllowed): return .drop(.notAllowed)
        case .refused(.noRoute): return .drop(.noRoute)
        }
        let svc = services[service.index]
        guard case .peers(let list) = svc.route, let pi = list.first, let path = peers[pi].path else { return .drop(.noRoute) }
        let peer = peers[pi]
        guard let carriage = Carriage.of(proto: proto, transport: peer.transport) else { return .drop(.unsupportedProtocol) }
        guard table.count < table.capacity else { return .drop(.sessionLimit) }
        let wire = carriage.wireProtocol
        let pair: WaypointPortPair
        do { pair = try table.allocatePorts(path: path, wireProtocol: wire) } catch { return .drop(.portsExhausted) }
        var ns = NewSession(role: .ingress, tenant: tenant, service: service, original: layout.tuple)
        ns.peer = UInt32(pi)
        ns.wanFromDownstream = FiveTuple(
            source: .v4(IPv4Address(peer.remoteAddress)), destination: .v4(IPv4Address(peer.localAddress)),
            sourcePort: pair.remote, destinationPort: pair.local, proto: wire)
        ns.portLease = PortLease(path: path, wireProtocol: wire, localPort: pair.local)
        ns.tcpFlags = tcpFlags
        let index: SessionIndex
        do { index = try table.insert(ns, now: now.monotonicNanos) } catch {
            switch error {
            case .portsExhausted: return .drop(.portsExhausted)
            default: return .drop(.sessionLimit)
            }
        }
        let i = Int(index.rawValue)
        var e = SessionExtra()
        if svc.suite != .none {
            guard drawSessionKeys(&e, suite: svc.suite) else {
                table.remove(index)
                return .drop(.sessionLimit)
            }
        }
        generation &+= 1
        if generation == 0 { generation = 1 }
        e.generation = generation
        e.created = now.monotonicNanos
        e.suite = svc.suite.rawValue
        e.role = SessionRole.ingress.rawValue
        e.downPeer = UInt16(pi + 1)
        e.downInterface = UInt8(truncatingIfNeeded: peer.pathInterface)
        e.downCarriage = carriage.rawValue
        if svc.suite != .none {
            if svc.adaptive && proto == IPProtocolNumber.tcp {
                e.flags |= SessionExtra.adaptivePending
            } else {
                e.flags |= SessionExtra.encrypt
            }
        }
        extras[i] = e
        counters.sessionsCreated &+= 1
        table.recordPacket(SessionHit(index: index, role: .lanOriginal), bytes: packet.count, tcpFlags: tcpFlags, now: now.monotonicNanos)
        return sendForwardFromLAN(&packet, layout, i, tcpFlags, now)
    }

    /// Ingress: a client packet of session `i` toward the egress.
    func sendForwardFromLAN(_ packet: inout PacketBuffer, _ layout: PacketLayout, _ i: Int, _ tcpFlags: TCPFlags, _ now: EngineTime) -> Disposition {
        var e = extras[i]
        guard e.downPeer > 0, let wk = table.key(SessionIndex(rawValue: UInt32(i)), .wanFromDownstream) else { return .drop(.noSession) }
        let peer = peers[Int(e.downPeer) - 1]
        let carriage = Carriage(rawValue: e.downCarriage) ?? .nativeUDP
        // Adaptive encryption (spec §6.2): decide on the client's first data.
        if e.flags & SessionExtra.adaptivePending != 0 && layout.payloadLength > 0 {
            let base = packet.slot + packet.offset
            let p = layout.payloadOffset
            let tls = layout.payloadLength >= 3 && ld8(base, p) == 0x16 && ld8(base, p + 1) == 3 && ld8(base, p + 2) <= 4
            e.flags &= ~SessionExtra.adaptivePending
            if !tls { e.flags |= SessionExtra.encrypt | SessionExtra.signalEncrypted }
        }
        let withMeta = e.flags & SessionExtra.fwdAck == 0 || e.flags & SessionExtra.signalEncrypted != 0
        let encrypt = e.flags & SessionExtra.encrypt != 0
        if withMeta { e.flags &= ~SessionExtra.signalEncrypted }
        extras[i] = e
        // Save the original L4 header (it becomes the outer TCP header or the inner header).
        let base = packet.slot + packet.offset
        let hdrLen = layout.l4HeaderLength
        hdrScratch.copyMemory(from: base + layout.l4Offset, byteCount: hdrLen)
        // Seal the payload in place.
        guard let bodyLen = sealPayload(packet, layout, i, encrypt: encrypt, peer: peer) else { return .drop(.noHeadroom) }
        let metaLen = withMeta
            ? writeForwardMetadata(i, peer: peer, carriage: carriage, encrypted: encrypt, syn: tcpFlags.contains(.syn))
            : 0
        guard metaLen >= 0 else { return .drop(.noHeadroom) }
        let out = wk.tuple.reversed
        return assemble(&packet, bodyStart: layout.payloadOffset, bodyLen: bodyLen, carriage: carriage, hdrLen: hdrLen,
                        metaLen: metaLen, out: out, carry: carry(packet), peer: peer, interface: Int(e.downInterface), now: now)
    }

    /// Egress: a server reply of session `i` back toward the ingress.
    func sendReverseFromLAN(_ packet: inout PacketBuffer, _ layout: PacketLayout, _ i: Int, _ now: EngineTime) -> Disposition {
        var e = extras[i]
        guard e.upPeer > 0, let wk = table.key(SessionIndex(rawValue: UInt32(i)), .wanFromUpstream) else { return .drop(.noSession) }
        let peer = peers[Int(e.upPeer) - 1]
        let carriage = Carriage(rawValue: e.upCarriage) ?? .nativeUDP
        e.flags |= SessionExtra.reverseSeen
        extras[i] = e
        let base = packet.slot + packet.offset
        let hdrLen = layout.l4HeaderLength
        hdrScratch.copyMemory(from: base + layout.l4Offset, byteCount: hdrLen)
        guard let bodyLen = sealPayload(packet, layout, i, encrypt: e.flags & SessionExtra.encrypt != 0, peer: peer) else { return .drop(.noHeadroom) }
        let metaLen = e.flags & SessionExtra.revAck == 0 ? writeReverseMetadata(i, peer: peer) : 0
        guard metaLen >= 0 else { return .drop(.noHeadroom) }
        return assemble(&packet, bodyStart: layout.payloadOffset, bodyLen: bodyLen, carriage: carriage, hdrLen: hdrLen,
                        metaLen: metaLen, out: wk.tuple.reversed, carry: carry(packet), peer: peer,
                        interface: Int(e.upInterface), now: now)
    }

    /// Seals the payload of a LAN packet in place with session `i`'s key when `encrypt` (spec
    /// §6.2); returns the length of the body that follows, nil without tailroom.
    @inline(__always)
    func sealPayload(_ packet: PacketBuffer, _ layout: PacketLayout, _ i: Int, encrypt: Bool, peer: PeerRuntime) -> Int? {
        let n = layout.payloadLength
        guard encrypt else { return n }
        let room = packet.capacity - packet.offset - layout.payloadOffset
        guard room >= n + (CipherSuite(rawValue: extras[i].suite)?.maxOverhead ?? 48) + peer.auth.trailerLength else { return nil }
        do {
            let slot = try cipherSlot(i, sealing: true)
            // The nonce sequence is advanced in place: no copy of this session's extra may be
            // written back over it afterwards (a stale counter would repeat a nonce).
            return try slot.cipher.seal(inPlace: UnsafeMutableRawBufferPointer(start: packet.slot + packet.offset + layout.payloadOffset,
                                                                                count: room), plaintextLength: n,
                                        nonce: &extras[i].sealNonce)
        } catch { return nil }
    }

    @inline(__always)
    func carry(_ packet: PacketBuffer) -> IPv4Carry {
        let b = packet.slot + packet.offset
        return IPv4Carry(tos: ld8(b, 1), identification: ld16(b, 4), dontFragment: ld16(b, 6) & 0x4000 != 0, ttl: ld8(b, 8))
    }

    // MARK: - Metadata

    /// Forward metadata of session `i` for `peer` into `metaScratch`, payload section sealed.
    /// Returns the block length, or -1 if it could not be sealed.
    func writeForwardMetadata(_ i: Int, peer: PeerRuntime, carriage: Carriage, encrypted: Bool, syn: Bool) -> Int {
        let index = SessionIndex(rawValue: UInt32(i))
        guard let ok = table.key(index, .lanOriginal) else { return -1 }
        let e = extras[i]
        let m = metaScratch
        var w = TLVWriter(base: m, at: 12)
        w.u32(16, 1)  // security ID (key version 1)
        let hl = w.at
        let o = ok.tuple
        guard case .v4(let s) = o.source, case .v4(let d) = o.destination else { return -1 }
        w.context4(2, s.value, d.value, o.sourcePort, o.destinationPort, o.proto)
        let u = table.uuid(index)
        st16(m, w.at, 6); st16(m, w.at + 2, 16); st64(m, w.at + 4, u.high); st64(m, w.at + 12, u.low); w.at += 20
        let t = table.tenant(index).index
        if t < tenantBytes.count { w.bytes(7, tenantBytes[t]) }
        w.bytes(10, services[table.service(index).index].nameBytes)
        w.bytes(14, routerNameBytes)
        w.bytes(17, peer.nameBytes)
        if encrypted { w.flag(11) }
        if e.suite != CipherSuite.none.rawValue {
            // TLV 46: suite id ‖ ready subkeys (SessionKeyMaterial's wire form).
            let n = (CipherSuite(rawValue: e.suite) ?? .none).subkeyLength
            st16(m, w.at, 46); st16(m, w.at + 2, UInt16(1 + n)); st8(m, w.at + 4, e.suite)
            withUnsafeBytes(of: e) { x in (m + w.at + 5).copyMemory(from: x.baseAddress! + SessionExtra.keyOffset, byteCount: n) }
            w.at += 5 + n
        }
        if carriage == .tcpOverUDP && syn { w.flag(12) }
        return finishMetadata(w.at, headerLength: hl, peer: peer)
    }

    /// Reverse metadata of session `i`: reverse context, source router, TLV 18.
    func writeReverseMetadata(_ i: Int, peer: PeerRuntime) -> Int {
        let index = SessionIndex(rawValue: UInt32(i))
        guard let ok = table.key(index, .lanOriginal) else { return -1 }
        let m = metaScratch
        var w = TLVWriter(base: m, at: 12)
        w.u32(16, 1)
        let hl = w.at
        let r = ok.tuple.reversed
        guard case .v4(let s) = r.source, case .v4(let d) = r.destination else { return -1 }
        w.context4(4, s.value, d.value, r.sourcePort, r.destinationPort, r.proto)
        w.bytes(14, routerNameBytes)
        w.flag(18)
        return finishMetadata(w.at, headerLength: hl, peer: peer)
    }

    /// Writes the base header and seals the payload-TLV section `[hl, end)` with the peer key.
    func finishMetadata(_ end: Int, headerLength hl: Int, peer: PeerRuntime) -> Int {
        let m = metaScratch
        st64(m, 0, MetadataHeader.cookie)
        st16(m, 8, 0x1000 | UInt16(hl))
        st16(m, 10, UInt16(end - hl))
        do {
            let sealed = try peer.meta.seal(
                inPlace: UnsafeMutableRawBufferPointer(start: m, count: Self.metaScratchSize), headerLength: hl, payloadLength: end - hl)
            return hl + sealed
        } catch { return -1 }
    }

    // MARK: - Assembly toward a peer

    /// Builds `[IPv4][outer L4][metadata][inner header][body][HMAC]` in front of the body at
    /// `bodyStart` (packet-relative, already sealed as it should travel). `hdrScratch` holds
    /// the original L4 header (`hdrLen` bytes): the outer TCP header template (native TCP,
    /// ports replaced) or the inner header (TCP over UDP, ICMP over UDP); native UDP uses none.
    /// `metaScratch` holds `metaLen` bytes of metadata (0: none, a false-positive header is
    /// added when the first bytes after the outer header would look like a cookie).
    func assemble(_ packet: inout PacketBuffer, bodyStart: Int, bodyLen: Int, carriage: Carriage, hdrLen: Int, metaLen: Int,
                  out: FiveTuple, carry: IPv4Carry, peer: PeerRuntime, interface: Int, now: EngineTime) -> Disposition {
        guard case .v4(let src) = out.source, case .v4(let dst) = out.destination else { return .drop(.noRoute) }
        let base = packet.slot + packet.offset
        let outerLen: Int, innerLen: Int
        switch carriage {
        case .nativeTCP: outerLen = hdrLen; innerLen = 0
        case .nativeUDP: outerLen = 8; innerLen = 0
        case .tcpOverUDP, .icmpOverUDP: outerLen = 8; innerLen = hdrLen
        }
        var meta = metaLen
        if meta == 0 {
            // §4.5: a bare header when what follows the outer L4 header starts with the cookie.
            let looksLikeCookie = innerLen >= 8 ? ld64(hdrScratch, 0) == MetadataHeader.cookie
                : (innerLen == 0 && bodyLen >= 8 && ld64(base, bodyStart) == MetadataHeader.cookie)
            if looksLikeCookie {
                st64(metaScratch, 0, MetadataHeader.cookie)
                st16(metaScratch, 8, 0x100C)
                st16(metaScratch, 10, 0)
                meta = 12
            }
        }
        let trailer = peer.auth.trailerLength
        let prefix = 20 + outerLen + meta + innerLen
        let newStart = bodyStart - prefix
        guard packet.offset + newStart >= 0 else { return .drop(.noHeadroom) }
        guard packet.capacity - packet.offset - bodyStart - bodyLen >= trailer else { return .drop(.noHeadroom) }
        let np = base + newStart
        if innerLen > 0 { (np + 20 + outerLen + meta).copyMemory(from: hdrScratch, byteCount: innerLen) }
        if meta > 0 { (np + 20 + outerLen).copyMemory(from: metaScratch, byteCount: meta) }
        if carriage == .nativeTCP {
            (np + 20).copyMemory(from: hdrScratch, byteCount: hdrLen)
        }
        st16(np, 20, out.sourcePort)
        st16(np, 22, out.destinationPort)
        var total = prefix + bodyLen
        let authStart = 20 + outerLen
        do {
            total = authStart + (try peer.auth.appendTrailer(
                UnsafeMutableRawBufferPointer(start: np + authStart, count: total - authStart + trailer),
                length: total - authStart, unixSeconds: now.unixSeconds))
        } catch { return .drop(.noHeadroom) }
        guard total <= 0xFFFF else { return .drop(.noHeadroom) }
        if carriage != .nativeTCP {
            st16(np, 24, UInt16(total - 20))
        }
        EngineWire.writeIPv4(np, totalLength: total, proto: carriage.wireProtocol, source: src.value, destination: dst.value, carry: carry)
        EngineWire.finishL4Checksum(np, l4: 20, total: total, proto: carriage.wireProtocol)
        packet._offset += newStart
        packet._count = total
        return .toWAN(interface: interface)
    }

    // MARK: - WAN side

    func wan(_ packet: inout PacketBuffer, interface: Int, _ now: EngineTime) -> Disposition {
        let base = packet.slot + packet.offset
        let count = packet.count
        guard count >= 28, ld8(base, 0) >> 4 == 4 else { return .drop(.notSVR) }
        let ihl = Int(ld8(base, 0) & 15) * 4
        let total = Int(ld16(base, 2))
        guard ihl >= 20, total <= count, total >= ihl + 8 else { return .drop(.notSVR) }
        if ld16(base, 6) & 0x3FFF != 0 { return .drop(.fragment) }
        let proto = ld8(base, 9)
        let l4 = ihl
        let l4Len: Int
        if proto == IPProtocolNumber.udp {
            l4Len = 8
        } else if proto == IPProtocolNumber.tcp {
            guard total >= l4 + 20 else { return .drop(.notSVR) }
            l4Len = Int(ld8(base, l4 + 12) >> 4) * 4
            guard l4Len >= 20, l4 + l4Len <= total else { return .drop(.notSVR) }
        } else {
            return .drop(.notSVR)
        }
        let src = ld32(base, 12), dst = ld32(base, 16)
        let sp = ld16(base, l4), dp = ld16(base, l4 + 2)
        guard localAddresses.contains(dst) else { return .drop(.notSVR) }
        guard let pi = peerByAddress[src] else { return .drop(.unknownPeer) }
        let peer = peers[pi]
        // The session lookup comes after the HMAC check: start loading its index slot now.
        let key = SessionKey(v4Source: src, v4Destination: dst, sourcePort: sp, destinationPort: dp, proto: proto, side: .wan)
        table.prefetch(key)
        let bodyStart = l4 + l4Len
        var bodyLen = total - bodyStart
        do {
            bodyLen = try peer.auth.verifyTrailer(UnsafeRawBufferPointer(start: base + bodyStart, count: bodyLen), length: bodyLen,
                                                  unixSeconds: now.unixSeconds)
        } catch { return .drop(.authenticationFailed) }
        // Metadata.
        var metaLen = 0
        var decoded: DecodedMetadata?
        if bodyLen >= 8 && ld64(base, bodyStart) == MetadataHeader.cookie {
            let header: MetadataHeader
            do {
                guard let h = try MetadataHeader.parse(UnsafeRawBufferPointer(start: base + bodyStart, count: bodyLen)) else {
                    return .drop(.badMetadata)
                }
                header = h
            } catch .unsupportedVersion {
                return .drop(.badVersion)
            } catch {
                return .drop(.badMetadata)
            }
            metaLen = header.blockLength
            if !header.isFalsePositive {
                prefetchNewSession()  // usually a session's first packet
                var plain: Int?
                if header.payloadLength > 0 {
                    do {
                        plain = try peer.meta.open(
                            inPlace: UnsafeMutableRawBufferPointer(start: base + bodyStart, count: header.blockLength),
                            headerLength: header.headerLength, payloadLength: header.payloadLength)
                    } catch { return .drop(.decryptFailed) }
                }
                do {
                    decoded = try MetadataDecoder.decode(UnsafeRawBufferPointer(start: base + bodyStart, count: bodyLen),
                                                         header: header, payloadTLVLength: plain)
                } catch { return .drop(.badMetadata) }
            }
        }
        var hit = table.lookup(key)
        if let h = hit, h.role == .wanFromUpstream, let d = decoded, d.forwardContext != nil, let u = d.sessionUUID,
           u != table.uuid(h.index) {
            // Forward metadata of a new session on a waypoint tuple we still hold (the
            // upstream router restarted or reused the ports before our copy expired): the
            // new session replaces the stale one (spec §2.6, existing flow recognition).
            if table.remove(h.index) != nil { counters.sessionsExpired &+= 1 }
            extras[Int(h.index.rawValue)].generation = 0
            hit = nil
        }
        if hit == nil {
            guard let d = decoded, d.forwardContext != nil else { return .drop(.noSession) }
            let r = createFromMetadata(d, base: base, bodyStart: bodyStart, bodyLen: bodyLen, wireProto: proto, tcpHeaderLength: l4Len,
                                       upstream: FiveTuple(source: .v4(IPv4Address(src)), destination: .v4(IPv4Address(dst)),
                                                           sourcePort: sp, destinationPort: dp, proto: proto),
                                       peer: pi, interface: interface, now: now)
            switch r {
            case .success(let h): hit = h
            case .failure(let why): return .drop(why)
            }
        }
        guard let hit else { return .drop(.noSession) }
        let i = Int(hit.index.rawValue)
        var e = extras[i]
        let forward = hit.role == .wanFromUpstream
        if forward {
            // Forward direction (we are egress or transit).
            guard Int(e.upPeer) == pi + 1 else { return .drop(.unknownPeer) }
            if let d = decoded {
                if d.sessionEncrypted && e.flags & SessionExtra.encrypt == 0 {
                    // Adaptive encryption switched on upstream (spec §6.2): a transit router
                    // must tell the next hop too, with metadata on this packet (TLV 11).
                    e.flags |= SessionExtra.encrypt
                    if e.role == SessionRole.transit.rawValue { e.flags |= SessionExtra.signalEncrypted }
                }
                // Forward metadata still coming a while after our TLV-18 control packet: it was
                // lost; send another one (at most one per `controlDelayNanos`).
                if e.flags & (SessionExtra.controlSent | SessionExtra.reverseSeen) == SessionExtra.controlSent,
                   now.monotonicNanos >= e.created &+ controlDelayNanos, generatedCount < Self.generatedSlots {
                    extras[i] = e
                    if generateControl(i, now) { e.created = now.monotonicNanos }
                }
            } else {
                e.flags |= SessionExtra.revAck  // a forward packet without metadata (§2.5)
            }
        } else {
            // Reverse direction (we are ingress or transit).
            guard Int(e.downPeer) == pi + 1 else { return .drop(.unknownPeer) }
            if let d = decoded, d.reverseContext != nil || d.disableForwardMetadata {
                e.flags |= SessionExtra.fwdAck
            }
            if let d = decoded, d.control != nil, d.reverseContext == nil, bodyLen == metaLen {
                extras[i] = e
                return .consumed  // a control packet (TV4)
            }
        }
        extras[i] = e
        let carriage = Carriage(rawValue: forward ? e.upCarriage : e.downCarriage) ?? .nativeUDP
        guard let hdrLen = extractOriginalHeader(base, l4: l4, l4Len: l4Len, bodyStart: bodyStart + metaLen,
                                                 bodyLen: bodyLen - metaLen, carriage: carriage)
        else { return .drop(.malformedPacket) }
        let tcpFlags = carriage.originalProtocol == IPProtocolNumber.tcp ? TCPFlags(rawValue: ld8(hdrScratch, 13)) : []
        table.recordPacket(hit, bytes: total, tcpFlags: tcpFlags, now: now.monotonicNanos)
        let innerLen = carriage == .tcpOverUDP || carriage == .icmpOverUDP ? hdrLen : 0
        guard let ok = table.key(hit.index, .lanOriginal) else { return .drop(.noSession) }
        let payloadStart = bodyStart + metaLen + innerLen, payloadLen = bodyLen - metaLen - innerLen
        if e.role == SessionRole.transit.rawValue {
            return relay(&packet, i, bodyStart: payloadStart, bodyLen: payloadLen, hdrLen: hdrLen, original: ok.tuple,
                         forward: forward, syn: forward && tcpFlags.contains(.syn), now: now)
        }
        return deliver(&packet, i, bodyStart: payloadStart, bodyLen: payloadLen, carriage: carriage, hdrLen: hdrLen,
                       target: forward ? ok.tuple : ok.tuple.reversed, forward: forward, now: now)
    }

    /// Copies the original L4 header of a received SVR packet into `hdrScratch`: the outer TCP
    /// header (native TCP; its ports are waypoint ports until restored), a UDP header template
    /// (native UDP), or the inner header after the metadata. Returns its length.
    func extractOriginalHeader(_ base: UnsafeMutableRawPointer, l4: Int, l4Len: Int, bodyStart: Int, bodyLen: Int,
                               carriage: Carriage) -> Int? {
        switch carriage {
        case .nativeTCP:
            guard l4Len <= 60 else { return nil }
            hdrScratch.copyMemory(from: base + l4, byteCount: l4Len)
            return l4Len
        case .nativeUDP:
            hdrScratch.copyMemory(from: base + l4, byteCount: 8)
            return 8
        case .tcpOverUDP:
            guard bodyLen >= 20 else { return nil }
            let off = Int(ld8(base, bodyStart + 12) >> 4) * 4
            guard off >= 20, off <= bodyLen else { return nil }
            hdrScratch.copyMemory(from: base + bodyStart, byteCount: off)
            return off
        case .icmpOverUDP:
            guard bodyLen >= 8 else { return nil }
            hdrScratch.copyMemory(from: base + bodyStart, byteCount: 8)
            return 8
        }
    }

    /// Last hop: decrypts the payload, restores `target` (ports for TCP/UDP; an ICMP header is
    /// kept as carried) and hands the packet to the LAN.
    func deliver(_ packet: inout PacketBuffer, _ i: Int, bodyStart: Int, bodyLen: Int, carriage: Carriage, hdrLen: Int,
                 target: FiveTuple, forward: Bool, now: EngineTime) -> Disposition {
        guard case .v4(let src) = target.source, case .v4(let dst) = target.destination else { return .drop(.badMetadata) }
        let base = packet.slot + packet.offset
        var payLen = bodyLen
        if extras[i].flags & SessionExtra.encrypt != 0 {
            do {
                let slot = try cipherSlot(i, sealing: false)
                payLen = try slot.cipher.open(inPlace: UnsafeMutableRawBufferPointer(start: base + bodyStart, count: bodyLen),
                                              sealedLength: bodyLen)
            } catch { return .drop(.decryptFailed) }
            if extras[i].suite == CipherSuite.aes256Gcm.rawValue {
                // The nonce (prefix ‖ counter) follows the ciphertext, authenticated by the tag.
                let prefix = ld32(base, bodyStart + payLen), counter = ld64(base, bodyStart + payLen + 4)
                let fresh = forward ? extras[i].replayForward.accept(prefix: prefix, counter: counter)
                    : extras[i].replayReverse.accept(prefix: prefix, counter: counter)
                guard fresh else { return .drop(.replay) }
            }
        }
        let proto = carriage.originalProtocol
        let newStart = bodyStart - 20 - hdrLen
        guard newStart >= -packet.offset else { return .drop(.noHeadroom) }
        let np = base + newStart
        let c = carry(packet)
        (np + 20).copyMemory(from: hdrScratch, byteCount: hdrLen)
        let total = 20 + hdrLen + payLen
        if carriage == .nativeTCP || carriage == .nativeUDP {
            st16(np, 20, target.sourcePort)
            st16(np, 22, target.destinationPort)
        }
        if proto == IPProtocolNumber.udp { st16(np, 24, UInt16(total - 20)) }
        EngineWire.writeIPv4(np, totalLength: total, proto: proto, source: src.value, destination: dst.value, carry: c)
        EngineWire.finishL4Checksum(np, l4: 20, total: total, proto: proto)
        packet._offset += newStart
        packet._count = total
        return .toLAN
    }

    /// Transit: re-emits a packet toward the next peer (forward) or back upstream (reverse).
    /// The body (sealed payload) passes through untouched; metadata is re-originated.
    func relay(_ packet: inout PacketBuffer, _ i: Int, bodyStart: Int, bodyLen: Int, hdrLen: Int, original: FiveTuple,
               forward: Bool, syn: Bool, now: EngineTime) -> Disposition {
        var e = extras[i]
        let index = SessionIndex(rawValue: UInt32(i))
        let inCarriage = Carriage(rawValue: forward ? e.upCarriage : e.downCarriage) ?? .nativeUDP
        let outCarriage = Carriage(rawValue: forward ? e.downCarriage : e.upCarriage) ?? .nativeUDP
        let peerIndex = Int(forward ? e.downPeer : e.upPeer) - 1
        guard peerIndex >= 0, let wk = table.key(index, forward ? .wanFromDownstream : .wanFromUpstream) else { return .drop(.noSession) }
        let peer = peers[peerIndex]
        // A native TCP header carries waypoint ports: put the original ones back before it
        // becomes an inner header.
        if inCarriage == .nativeTCP {
            let t = forward ? original : original.reversed
            st16(hdrScratch, 0, t.sourcePort)
            st16(hdrScratch, 2, t.destinationPort)
        }
        var hl = hdrLen
        if outCarriage == .nativeUDP { hl = 8 }
        if !forward { e.flags |= SessionExtra.reverseSeen }
        let metaLen: Int
        if forward {
            let withMeta = e.flags & SessionExtra.fwdAck == 0 || e.flags & SessionExtra.signalEncrypted != 0
            e.flags &= ~SessionExtra.signalEncrypted
            metaLen = withMeta
                ? writeForwardMetadata(i, peer: peer, carriage: outCarriage, encrypted: e.flags & SessionExtra.encrypt != 0, syn: syn) : 0
        } else {
            metaLen = e.flags & SessionExtra.revAck == 0 ? writeReverseMetadata(i, peer: peer) : 0
        }
        extras[i] = e
        guard metaLen >= 0 else { return .drop(.noHeadroom) }
        return assemble(&packet, bodyStart: bodyStart, bodyLen: bodyLen, carriage: outCarriage, hdrLen: hl, metaLen: metaLen,
                        out: wk.tuple.reversed, carry: carry(packet), peer: peer,
                        interface: Int(forward ? e.downInterface : e.upInterface), now: now)
    }

    /// Creates the egress or transit session named by forward metadata (spec §2.3).
    func createFromMetadata(_ d: DecodedMetadata, base: UnsafeMutableRawPointer, bodyStart: Int, bodyLen: Int, wireProto: UInt8,
                            tcpHeaderLength: Int, upstream: FiveTuple, peer pi: Int, interface: Int, now: EngineTime) -> CreateResult {
        guard let ctx = d.forwardContext, ctx.source.isIPv4, ctx.destination.isIPv4 else { return .failure(.badMetadata) }
        let block = UnsafeRawBufferPointer(start: base + bodyStart, count: bodyLen)
        guard let ts = d.tenant, let t = tenantNames.firstIndex(where: { ts.equals($0, in: block) }) else { return .failure(.noTenant) }
        guard let ss = d.service, let s = services.firstIndex(where: { ss.equals($0.name, in: block) }) else { return .failure(.noService) }
        let tenant = TenantID(rawValue: UInt16(t)), service = ServiceID(rawValue: UInt16(s))
        // The original destination must belong to the named service here too: a peer cannot
        // reach other addresses or ports by naming a service it may use.
        guard classifier.service(destination: ctx.destination, proto: ctx.proto, destinationPort: ctx.destinationPort) == service
        else { return .failure(.noService) }
        guard classifier.allows(tenant, service) else { return .failure(.notAllowed) }
        let up: Carriage
        switch (wireProto, ctx.proto) {
        case (IPProtocolNumber.tcp, IPProtocolNumber.tcp): up = .nativeTCP
        case (IPProtocolNumber.udp, IPProtocolNumber.udp): up = .nativeUDP
        case (IPProtocolNumber.udp, IPProtocolNumber.tcp): up = .tcpOverUDP
        case (IPProtocolNumber.udp, IPProtocolNumber.icmp): up = .icmpOverUDP
        default: return .failure(.badMetadata)
        }
        var e = SessionExtra()
        if let k = d.sessionKey {
            guard k.count >= 1, let suite = CipherSuite(rawValue: block[k.offset]),
                  k.count == SessionKeyMaterial.encodedLength(suite: suite)
            else { return .failure(.badMetadata) }
            e.suite = suite.rawValue
            let kp = base + bodyStart + k.offset + 1
            withUnsafeMutableBytes(of: &e) { x in
                (x.baseAddress! + SessionExtra.keyOffset).copyMemory(from: kp, byteCount: suite.subkeyLength)
            }
            guard drawSealNonce(&e) else { return .failure(.sessionLimit) }
        } else if d.sessionEncrypted {
            return .failure(.badMetadata)
        }
        if d.sessionEncrypted { e.flags |= SessionExtra.encrypt }
        guard table.count < table.capacity else { return .failure(.sessionLimit) }
        var ns: NewSession
        switch services[s].route {
        case .none:
            return .failure(.noRoute)
        case .local:
            ns = NewSession(role: .egress, tenant: tenant, service: service, original: ctx)
            if ctx.proto == IPProtocolNumber.icmp {
                ns.lanReply = FiveTuple(source: ctx.destination, destination: ctx.source, sourcePort: ctx.sourcePort,
                                        destinationPort: 0, proto: ctx.proto)
            }
            e.role = SessionRole.egress.rawValue
        case .peers(let list):
            guard let ni = list.first(where: { $0 != pi }), let path = peers[ni].path else { return .failure(.noRoute) }
            let next = peers[ni]
            guard let down = Carriage.of(proto: ctx.proto, transport: next.transport) else { return .failure(.badMetadata) }
            let pair: WaypointPortPair
            do { pair = try table.allocatePorts(path: path, wireProtocol: down.wireProtocol) } catch { return .failure(.portsExhausted) }
            ns = NewSession(role: .transit, tenant: tenant, service: service, original: ctx)
            ns.wanFromDownstream = FiveTuple(
                source: .v4(IPv4Address(next.remoteAddress)), destination: .v4(IPv4Address(next.localAddress)),
                sourcePort: pair.remote, destinationPort: pair.local, proto: down.wireProtocol)
            ns.portLease = PortLease(path: path, wireProtocol: down.wireProtocol, localPort: pair.local)
            e.role = SessionRole.transit.rawValue
            e.downPeer = UInt16(ni + 1)
            e.downInterface = UInt8(truncatingIfNeeded: next.pathInterface)
            e.downCarriage = down.rawValue
        }
        ns.peer = UInt32(pi)
        ns.wanFromUpstream = upstream
        ns.uuid = d.sessionUUID
        if up == .nativeTCP {
            ns.tcpFlags = TCPFlags(rawValue: ld8(base, bodyStart - tcpHeaderLength + 13))
        } else if up == .tcpOverUDP {
            ns.tcpFlags = d.tcpSyn ? .syn : []  // the TCP SYN TLV (12) of a transformed SYN
        }
        let index: SessionIndex
        do { index = try table.insert(ns, now: now.monotonicNanos) } catch {
            switch error {
            case .portsExhausted: return .failure(.portsExhausted)
            case .duplicateUUID, .duplicateKey: return .failure(.noSession)
            default: return .failure(.sessionLimit)
            }
        }
        generation &+= 1
        if generation == 0 { generation = 1 }
        e.generation = generation
        e.created = now.monotonicNanos
        e.upPeer = UInt16(pi + 1)
        e.upInterface = UInt8(truncatingIfNeeded: interface)
        e.upCarriage = up.rawValue
        extras[Int(index.rawValue)] = e
        counters.sessionsCreated &+= 1
        if up.wireProtocol == IPProtocolNumber.udp && pendingCount < pendingControl.count {
            pendingControl[(pendingHead + pendingCount) & (pendingControl.count - 1)] = (index.rawValue, generation)
            pendingCount += 1
        }
        return .success(SessionHit(index: index, role: .wanFromUpstream))
    }

    /// Queues a TV4 control packet (TLV 24 code 3 + TLV 18) toward the upstream peer.
    func generateControl(_ i: Int, _ now: EngineTime) -> Bool {
        let e = extras[i]
        guard e.upPeer > 0, let wk = table.key(SessionIndex(rawValue: UInt32(i)), .wanFromUpstream) else { return false }
        let peer = peers[Int(e.upPeer) - 1]
        let out = wk.tuple.reversed
        guard out.proto == IPProtocolNumber.udp, case .v4(let src) = out.source, case .v4(let dst) = out.destination else { return false }
        var w = TLVWriter(base: metaScratch, at: 12)
        w.u8(24, SVRControlCode.disableMetadata.rawValue)
        let hl = w.at
        w.flag(18)
        let metaLen = finishMetadata(w.at, headerLength: hl, peer: peer)
        guard metaLen > 0 else { return false }
        let g = (generatedHead + generatedCount) % Self.generatedSlots
        let p = generated + g * Self.generatedSlotSize
        guard 28 + metaLen + peer.auth.trailerLength <= Self.generatedSlotSize else { return false }
        (p + 28).copyMemory(from: metaScratch, byteCount: metaLen)
        var total = 28 + metaLen
        do {
            total = 28 + (try peer.auth.appendTrailer(UnsafeMutableRawBufferPointer(start: p + 28, count: Self.generatedSlotSize - 28),
                                                      length: metaLen, unixSeconds: now.unixSeconds))
        } catch { return false }
        st16(p, 20, out.sourcePort)
        st16(p, 22, out.destinationPort)
        st16(p, 24, UInt16(total - 20))
        EngineWire.writeIPv4(p, totalLength: total, proto: IPProtocolNumber.udp, source: src.value, destination: dst.value, carry: IPv4Carry())
        EngineWire.finishL4Checksum(p, l4: 20, total: total, proto: IPProtocolNumber.udp)
        generatedLength[g] = total
        generatedInterface[g] = Int(e.upInterface)
        generatedCount += 1
        return true
    }
}

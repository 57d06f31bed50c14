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
// with `TLVWriter`, cipher contexts come from per-router caches (SVRRouter+Ciphers.swift).
//
// Files: this one (per-session state, construction, the PacketEngine entry points, expiry,
// snapshots), +LAN (first packets and LAN packets of sessions), +WAN (packets from peers),
// +Metadata (metadata blocks, control packets, assembly toward a peer), +Ciphers (keys, the
// cipher caches), +ICMP (ICMP errors relayed over sessions, TTL expiry, refused sessions).

import Glibc

/// Per-session state the engine keeps next to the session table's row.
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

    /// Sliding window over the sequence counters of the payloads this router receives (a
    /// router receives one direction of a session: reverse at the ingress, forward at the
    /// egress), every suite (SVRRouter+Protection.swift).
    var replay = ReplayWindow()
    /// The sequence this router sends the session's payloads with (a router sends one
    /// direction: forward at the ingress, reverse at the egress): the AES-GCM nonce, the
    /// plaintext of the AES-CBC IV, or the clear trailer. Per session, not per cached
    /// cipher, so it survives moving between cache slots.
    var sealNonce = GCMNonceSequence(prefix: 0, counter: 0)
    /// Cipher operations so far, counted up to `SVRRouter.promoteAfter` (see `cipherSlot`).
    var cipherUses: UInt8 = 0
    /// The session's slot in the nursery while `cipherUses < promoteAfter`.
    var nurserySlot: UInt16 = 0

    /// Transit: forward metadata said the session is encrypted (TLV 11), passed on.
    static let encrypt: UInt16 = 1
    static let signalEncrypted: UInt16 = 4
    static let fwdAck: UInt16 = 8
    static let revAck: UInt16 = 16
    static let reverseSeen: UInt16 = 32
    static let controlSent: UInt16 = 64
    /// This router's sending direction: sealed / clear (neither: pending, adaptive).
    static let sendSealed: UInt16 = 128
    static let sendClear: UInt16 = 256
    /// The direction this router receives: sealed / clear (neither: pending).
    static let receiveSealed: UInt16 = 512
    static let receiveClear: UInt16 = 1024
}

/// The outcome of creating a session from metadata.
enum CreateResult {
    case success(SessionHit)
    case failure(DropReason)
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
    public internal(set) var counters = EngineCounters()
    /// Generated ICMP answers: source address, refusal setting, rate limit (+ICMP).
    var icmp: ICMPAnswers
    var classifierCounters = ClassifierCounters()

    // Scratch memory (owned, allocated once).
    let metaScratch: UnsafeMutableRawPointer
    let hdrScratch: UnsafeMutableRawPointer
    static let metaScratchSize = 2048
    let keyPool: UnsafeMutableRawPointer
    var keyPoolOffset: Int
    /// Replay record for payloads without a recognisable sequence (ReplayGuard.swift).
    let recentTags = RecentTagFilter()
    /// A copy of a GCM body while its direction may still turn out clear (trial open).
    let trialScratch: UnsafeMutableRawPointer
    static let trialScratchSize = 65536
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

    // Path MTU and fragments (SVRRouter+MTU.swift).
    /// Per WAN interface: the configured `mtu`, else the device's (`setInterfaceMTU`), 1500 until told.
    var interfaceMTU: [Int]
    let lanReassembly: Reassembly
    let wanReassembly: Reassembly
    let output: OutputQueue
    var fragmentID: UInt32
    /// Set while a reassembled datagram runs through the pipeline (no nested reassembly).
    var inReassembled = false

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
        let l = config.limits
        table = SessionTable(SessionTableConfiguration(
            maxSessions: capacity, timeouts: timeouts, prefault: prefault,
            limits: SessionLimits(maxPerSource: l.maxSessionsPerSource, newPerSecondPerSource: l.maxNewSessionsPerSecondPerSource,
                                  maxPerTenant: l.maxSessionsPerTenant)))

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
        interfaceMTU = config.interfaces.map { $0.mtu ?? 1500 }
        let longestTenant = config.tenants.map(\.name.utf8.count).max() ?? 0
        let longestService = config.services.map(\.name.utf8.count).max() ?? 0
        for p in ps {
            p.metadataBound = Self.metadataBound(routerName: config.router.name.utf8.count, peerName: p.nameBytes.count,
                                                 longestTenant: longestTenant, longestService: longestService)
        }
        lanReassembly = Reassembly(slots: 16, maxLength: 65535 - 20, prefix: 20, timeoutNanos: 5_000_000_000)
        wanReassembly = Reassembly(slots: 16, maxLength: 65535, prefix: 0, timeoutNanos: 5_000_000_000)
        output = OutputQueue()
        fragmentID = UInt32.random(in: 0...UInt32.max)
        icmp = ICMPAnswers(config: config)
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
        trialScratch = .allocate(byteCount: Self.trialScratchSize, alignment: 64)
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
        for p in peers { updatePathMTU(p) }
    }

    deinit {
        extras.deinitialize(count: table.capacity)
        extras.deallocate()
        metaScratch.deallocate()
        hdrScratch.deallocate()
        keyPool.deallocate()
        trialScratch.deallocate()
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
        tickMTU(now)
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
        drainOutput(into: slot, headroom: headroom, send)
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
            let forward: String, reverse: String
            switch info.role {
            case .ingress:
                forward = protectionName(e, sealed: SessionExtra.sendSealed, clear: SessionExtra.sendClear)
                reverse = protectionName(e, sealed: SessionExtra.receiveSealed, clear: SessionExtra.receiveClear)
            case .egress:
                forward = protectionName(e, sealed: SessionExtra.receiveSealed, clear: SessionExtra.receiveClear)
                reverse = protectionName(e, sealed: SessionExtra.sendSealed, clear: SessionExtra.sendClear)
            default:
                forward = "relayed"
                reverse = "relayed"
            }
            views.append(SessionView(
                uuid: "\(info.uuid)", role: role,
                tenant: info.tenant.index < tenantNames.count ? tenantNames[info.tenant.index] : "?",
                service: info.service.index < services.count ? services[info.service.index].name : "?",
                peer: peerIndex < peers.count ? peers[peerIndex].name : "?",
                original: info.original, waypoint: info.waypointOutbound ?? info.original,
                transport: peerIndex < peers.count ? peers[peerIndex].transport.rawValue : "native",
                encryption: forward == reverse ? forward : forward + "/" + reverse,
                forwardEncryption: forward, reverseEncryption: reverse,
                state: "\(info.state)",
                forwardPackets: info.packetsForward, forwardBytes: info.bytesForward,
                reversePackets: info.packetsReverse, reverseBytes: info.bytesReverse,
                ageSeconds: Double(now.monotonicNanos &- info.created) / 1e9,
                idleSeconds: Double(now.monotonicNanos &- info.lastSeen) / 1e9))
        }
        let pv = peers.map { p in
            PeerView(name: p.name, waypoints: p.waypoints.map { "\($0)" }, transport: p.transport.rawValue,
                     status: p.path == nil ? "down" : "unknown", sessions: perPeer[p.index],
                     mtu: p.path == nil ? 0 : p.mtu)
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
}

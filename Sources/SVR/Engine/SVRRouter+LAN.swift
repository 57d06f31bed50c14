// SVRRouter: packets from the LAN — a session's first packet (classify, policy, route,
// ports, keys, session) and packets of existing sessions toward the peer.

extension SVRRouter {
    // MARK: - LAN side

    func lan(_ packet: inout PacketBuffer, _ now: EngineTime) -> Disposition {
        guard let layout = try? PacketLayout(parsing: packet) else { return .drop(.malformedPacket) }
        guard layout.family == .ipv4 else { return .drop(.unsupportedProtocol) }
        guard layout.fragment == .unfragmented else { return lanFragment(packet, now) }
        let proto = layout.proto
        guard proto == IPProtocolNumber.tcp || proto == IPProtocolNumber.udp || proto == IPProtocolNumber.icmp,
              layout.hasTransportHeader
        else { return .drop(.unsupportedProtocol) }
        let base = packet.slot + packet.offset
        if ld8(base, 8) <= 1 { return ttlExpired(&packet, now) }  // would die in the WAN: answer (SVRRouter+ICMP.swift)
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
        if proto == IPProtocolNumber.icmp && ld8(base, layout.l4Offset) != 8 { return lanICMP(&packet, layout, now) }
        prefetchNewSession()
        table.prefetchLimits(source: SessionKey(v4Source: ld32(base, 12), v4Destination: 0, sourcePort: 0, destinationPort: 0,
                                                proto: 0, side: .lan))
        let tenant: TenantID, service: ServiceID
        switch classifier.classify(layout.tuple, interface: lanInterface, routes: lanRoutes, counters: &classifierCounters) {
        case .allowed(let t, let s): tenant = t; service = s
        case .refused(.noTenant): return refuse(&packet, layout, tcpFlags, .noTenant, now)
        case .refused(.noService): return refuse(&packet, layout, tcpFlags, .noService, now)
        case .refused(.tenantNotAllowed): return refuse(&packet, layout, tcpFlags, .notAllowed, now)
        case .refused(.noRoute): return refuse(&packet, layout, tcpFlags, .noRoute, now)
        }
        let svc = services[service.index]
        guard case .peers(let list) = svc.route, let pi = list.first, let path = peers[pi].path else {
            return refuse(&packet, layout, tcpFlags, .noRoute, now)
        }
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
            return .drop(error.limitDropReason ?? (error == .portsExhausted ? .portsExhausted : .sessionLimit))
        }
        let i = Int(index.rawValue)
        var e = SessionExtra()
        guard drawSessionKeys(&e, suite: svc.suite, reverse: false) else {
            table.remove(index)
            return .drop(.sessionLimit)
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
        e.flags |= Self.initialProtection(suite: svc.suite, adaptive: svc.adaptive, proto: proto)
        extras[i] = e
        counters.sessionsCreated &+= 1
        table.recordPacket(SessionHit(index: index, role: .lanOriginal), bytes: packet.count, tcpFlags: tcpFlags, now: now.monotonicNanos)
        return sendForwardFromLAN(&packet, layout, i, tcpFlags, now)
    }

    /// Ingress: a client packet of session `i` toward the egress.
    func sendForwardFromLAN(_ packet: inout PacketBuffer, _ layout: PacketLayout, _ i: Int, _ tcpFlags: TCPFlags, _ now: EngineTime) -> Disposition {
        let e = extras[i]
        guard e.downPeer > 0, let wk = table.key(SessionIndex(rawValue: UInt32(i)), .wanFromDownstream) else { return .drop(.noSession) }
        let peer = peers[Int(e.downPeer) - 1]
        let carriage = Carriage(rawValue: e.downCarriage) ?? .nativeUDP
        let withMeta = e.flags & SessionExtra.fwdAck == 0
        let base = packet.slot + packet.offset
        // A DF packet that cannot fit the path even without metadata (SVRRouter+MTU.swift).
        let fits = peer.mtu - steadyOverhead(carriage, suite: e.suite, peer: peer)
        if packet.count > fits && ld8(base, 6) & 0x40 != 0 { return tooBig(packet, mtu: fits) }
        // Save the original L4 header (it becomes the outer TCP header or the inner header).
        let hdrLen = layout.l4HeaderLength
        hdrScratch.copyMemory(from: base + layout.l4Offset, byteCount: hdrLen)
        if tcpFlags.contains(.syn) { clampMSS(hdrScratch, hdrLen, mss(peer: peer, carriage: carriage, suite: e.suite)) }
        // Seal the payload in place (adaptive encryption decides the forward direction on
        // the client's first payload, SVRRouter+Protection.swift).
        guard let bodyLen = protectPayload(packet, layout, i, peer: peer) else { return .drop(.noHeadroom) }
        let encrypted = extras[i].flags & SessionExtra.sendSealed != 0
        let metaLen = withMeta
            ? writeForwardMetadata(i, peer: peer, carriage: carriage, encrypted: encrypted, syn: tcpFlags.contains(.syn))
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
        let base = packet.slot + packet.offset
        let fits = peer.mtu - steadyOverhead(carriage, suite: e.suite, peer: peer)
        if packet.count > fits && ld8(base, 6) & 0x40 != 0 { return tooBig(packet, mtu: fits) }
        e.flags |= SessionExtra.reverseSeen
        extras[i] = e
        let hdrLen = layout.l4HeaderLength
        hdrScratch.copyMemory(from: base + layout.l4Offset, byteCount: hdrLen)
        if layout.proto == IPProtocolNumber.tcp && ld8(hdrScratch, 13) & 0x02 != 0 {
            clampMSS(hdrScratch, hdrLen, mss(peer: peer, carriage: carriage, suite: e.suite))
        }
        guard let bodyLen = protectPayload(packet, layout, i, peer: peer) else { return .drop(.noHeadroom) }
        let metaLen = e.flags & SessionExtra.revAck == 0 ? writeReverseMetadata(i, peer: peer) : 0
        guard metaLen >= 0 else { return .drop(.noHeadroom) }
        return assemble(&packet, bodyStart: layout.payloadOffset, bodyLen: bodyLen, carriage: carriage, hdrLen: hdrLen,
                        metaLen: metaLen, out: wk.tuple.reversed, carry: carry(packet), peer: peer,
                        interface: Int(e.upInterface), now: now)
    }

    @inline(__always)
    func carry(_ packet: PacketBuffer) -> IPv4Carry {
        let b = packet.slot + packet.offset
        return IPv4Carry(tos: ld8(b, 1), identification: ld16(b, 4), dontFragment: ld16(b, 6) & 0x4000 != 0, ttl: ld8(b, 8))
    }
}

extension SessionRefusal {
    /// The drop reason of a session refused by `[limits]` per source or per tenant.
    var limitDropReason: DropReason? {
        switch self {
        case .sourceLimit: .sourceSessionLimit
        case .sourceRateLimit: .sourceRateLimit
        case .tenantLimit: .tenantSessionLimit
        default: nil
        }
    }
}

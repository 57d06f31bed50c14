// SVRRouter: packets from a peer — HMAC, metadata, session lookup or creation from forward
// metadata, then delivery to the LAN (restore, decrypt) or relay toward the next peer.

extension SVRRouter {
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
        } else if proto == IPProtocolNumber.icmp {
            return underlayICMP(base, ihl: ihl, total: total, now)
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
            bodyLen = try peer.authIn.verifyTrailer(UnsafeRawBufferPointer(start: base + bodyStart, count: bodyLen), length: bodyLen,
                                                  unixSeconds: now.unixSeconds)
        } catch { return .drop(.authenticationFailed) }
        // Metadata.
        var metaLen = 0
        var decoded: DecodedMetadata?
        if bodyLen >= 8 && ld64(base, bodyStart) == MetadataHeader.cookie {
            // An SVR fragment: the fragment TLV (1) leads the header section (SVRRouter+MTU.swift).
            if bodyLen >= 14 && ld16(base, bodyStart + 12) == 1 {
                return receivePiece(base, bodyStart: bodyStart, bodyLen: bodyLen, src: src, interface: interface, now)
            }
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
        if let d = decoded, let location = d.icmpErrorLocation {
            // A relayed ICMP error (SVRRouter+ICMP.swift).
            guard Int(forward ? e.upPeer : e.downPeer) == pi + 1 else { return .drop(.unknownPeer) }
            guard case .v4(let reporter) = location else { return .drop(.badMetadata) }
            return icmpFromPeer(&packet, i, reporter: reporter.value, bodyStart: bodyStart + metaLen, bodyLen: bodyLen - metaLen,
                                forward: forward, now)
        }
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
        if tcpFlags.contains(.syn) { clampMSS(hdrScratch, hdrLen, mss(peer: peer, carriage: carriage, suite: e.suite)) }
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

    /// Last hop: opens the payload (and checks its sequence), restores `target` (ports for TCP/UDP; an ICMP header is
    /// kept as carried) and hands the packet to the LAN.
    func deliver(_ packet: inout PacketBuffer, _ i: Int, bodyStart: Int, bodyLen: Int, carriage: Carriage, hdrLen: Int,
                 target: FiveTuple, forward: Bool, now: EngineTime) -> Disposition {
        guard case .v4(let src) = target.source, case .v4(let dst) = target.destination else { return .drop(.badMetadata) }
        let base = packet.slot + packet.offset
        let proto = carriage.originalProtocol
        // Open (or take as clear) and check the sequence (SVRRouter+Protection.swift).
        let opened = unprotectPayload(base, bodyStart: bodyStart, bodyLen: bodyLen, i, forward: forward, proto: proto, now: now)
        if let why = opened.drop { return .drop(why) }
        let payLen = opened.length
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
        if syn || (!forward && inCarriage.originalProtocol == IPProtocolNumber.tcp && ld8(hdrScratch, 13) & 0x02 != 0) {
            clampMSS(hdrScratch, hdrLen, mss(peer: peer, carriage: outCarriage, suite: e.suite))
        }
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
        if case .v4(let a) = ctx.source {
            table.prefetchLimits(source: SessionKey(v4Source: a.value, v4Destination: 0, sourcePort: 0, destinationPort: 0, proto: 0,
                                                    side: .wan))
        }
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
        let own = services[s]
        if let k = d.sessionKey {
            guard k.count >= 1, let suite = CipherSuite(rawValue: block[k.offset]),
                  k.count == SessionKeyMaterial.encodedLength(suite: suite)
            else { return .failure(.badMetadata) }
            e.suite = suite.rawValue
            let kp = base + bodyStart + k.offset + 1
            withUnsafeMutableBytes(of: &e) { x in
                (x.baseAddress! + SessionExtra.keyOffset).copyMemory(from: kp, byteCount: suite.subkeyLength)
            }
        } else if d.sessionEncrypted {
            return .failure(.badMetadata)
        }
        // This router's policy for the service is a floor: a session asking for no payload
        // encryption where we require it is refused (none < aes-cbc-hmac = aes-gcm).
        if own.suite != .none && e.suite == CipherSuite.none.rawValue { return .failure(.weakerEncryption) }
        guard drawSealNonce(&e, reverse: true) else { return .failure(.sessionLimit) }
        e.flags |= Self.initialProtection(suite: CipherSuite(rawValue: e.suite) ?? .none, adaptive: own.adaptive, proto: ctx.proto)
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
            if let why = error.limitDropReason { return .failure(why) }
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
}

// SVRRouter: path MTU, TCP MSS clamping, "fragmentation needed" toward LAN senders, SVR
// fragmentation toward peers and the reassembly of fragments (LAN IP fragments and SVR
// fragments from peers). docs/engine.md "Path MTU and fragments" describes the behaviour.
//
// Sizes. An original IPv4 packet of L bytes leaves toward a peer as
//     L + extra(carriage) + cipher(suite) + trailer + metadata
// where extra is 8 for TCP or ICMP carried as UDP (the outer UDP header in front of the
// original L4 header) and 0 for native TCP/UDP (the outer L4 header replaces the original),
// cipher is the suite's largest expansion (AES-CBC+HMAC 48: padding ≤ 16, IV 16, tag 16;
// AES-GCM 28: tag 16, nonce 12), trailer the 16-byte HMAC and metadata the block on first
// (and re-signalled) packets, bounded per peer by `metadataBound`.
//
// - TCP SYN and SYN-ACK: the MSS option is lowered so that a full segment plus the largest
//   metadata block fits the path (`mss(peer:carriage:suite:)`), on both routers and in both
//   directions; a TCP session never needs fragmenting.
// - A packet with DF that does not fit even without metadata: dropped (`too-big`) and an
//   ICMP "fragmentation needed" with the MTU that fits goes back to its sender.
// - Anything else that does not fit (no DF, or only metadata makes it too big): split into
//   SVR fragments (spec §5.1): each piece is an SVR packet of its own (UDP with the session's
//   waypoint ports, a metadata header whose header section holds the fragment TLV, a piece
//   of the whole outer packet, the HMAC trailer). The peer checks each piece's HMAC before
//   storing it and processes the reassembled outer packet like any other.
// - Outer packets keep the original's DF bit, so the delivered packet is the original one;
//   SVR fragments always carry DF (the original's DF is in the reassembled packet). For DF packets (TCP, and UDP of Linux senders by default) the underlay
//   reports a smaller MTU with ICMP; such an ICMP quoting one of our sessions' packets lowers
//   the peer path's MTU (never below `minPathMTU`) for `learnedMTULifetime`. A packet
//   without DF that a smaller, not yet learned link fragments arrives in outer IP fragments,
//   which the receiving router drops (`fragment`).

extension SVRRouter {
    /// No path MTU is taken below this (RFC 791: every IPv4 host takes 576-byte datagrams).
    public static let minPathMTU = 576
    /// A path MTU learned from the underlay's ICMP holds for 10 minutes (as Linux's
    /// `net.ipv4.route.mtu_expires`); then the interface's MTU is tried again.
    public static let learnedMTULifetime: UInt64 = 600_000_000_000
    /// The fragment TLV piece header: IPv4 20, UDP 8, metadata base header 12, TLV 1 (4 + 10).
    static let pieceHeader = 20 + 8 + 12 + 14

    // MARK: - Sizes

    /// What the SVR encapsulation adds to an original packet, without metadata.
    @inline(__always)
    func steadyOverhead(_ carriage: Carriage, suite: UInt8, peer: PeerRuntime) -> Int {
        let extra = carriage == .tcpOverUDP || carriage == .icmpOverUDP ? 8 : 0
        return extra + max(CipherSuite(rawValue: suite)?.maxOverhead ?? 48, PayloadSequence.clearLength) + peer.auth.trailerLength
    }

    /// The MSS a TCP session's segments may have toward `peer`: a full segment (40 bytes of
    /// IPv4 and TCP headers, options counted in the MSS) with the largest metadata block.
    func mss(peer: PeerRuntime, carriage: Carriage, suite: UInt8) -> Int {
        max(peer.mtu - 40 - steadyOverhead(carriage, suite: suite, peer: peer) - peer.metadataBound, 256)
    }

    /// The largest metadata block toward `peer`: forward metadata with every optional TLV
    /// (the longest tenant and service names of the config, TLV 11, TLV 46 of the largest
    /// suite, TLV 12) or reverse metadata, whichever is larger, sealed (AES-256-CBC with
    /// PKCS#7 padding and a 16-byte IV) behind the 12-byte base header and TLV 16.
    static func metadataBound(routerName: Int, peerName: Int, longestTenant: Int, longestService: Int) -> Int {
        let forward = 17 + 20 + (4 + longestTenant) + (4 + longestService) + (4 + routerName) + (4 + peerName) + 4 + (4 + 1 + 64) + 4
        let reverse = 17 + (4 + routerName) + 4
        let payload = max(forward, reverse)
        return 12 + 8 + (payload / 16 + 1) * 16 + 16
    }

    /// Sets the MTU of WAN interface `index` (the daemon passes the device's MTU for
    /// interfaces without a configured `mtu`).
    public func setInterfaceMTU(_ index: Int, _ mtu: Int) {
        guard interfaceMTU.indices.contains(index) else { return }
        interfaceMTU[index] = max(mtu, Self.minPathMTU)
        for p in peers { updatePathMTU(p) }
    }

    /// The MTU of the path to peer `name` now (nil: no such peer or no path).
    public func pathMTU(peer name: String) -> Int? {
        guard let p = peers.first(where: { $0.name == name }), p.path != nil else { return nil }
        return p.mtu
    }

    func updatePathMTU(_ p: PeerRuntime) {
        let device = interfaceMTU.indices.contains(p.pathInterface) ? interfaceMTU[p.pathInterface] : 1500
        p.mtu = p.learnedMTU > 0 ? min(device, p.learnedMTU) : device
    }

    /// Lowers the value of TCP option MSS (kind 2) in the TCP header at `hdr` to `mss`.
    @inline(__always)
    func clampMSS(_ hdr: UnsafeMutableRawPointer, _ hdrLen: Int, _ mss: Int) {
        var o = 20
        while o < hdrLen {
            let kind = ld8(hdr, o)
            if kind == 0 { return }
            if kind == 1 { o += 1; continue }
            guard o + 1 < hdrLen else { return }
            let len = Int(ld8(hdr, o + 1))
            guard len >= 2, o + len <= hdrLen else { return }
            if kind == 2 && len == 4 {
                if Int(ld16(hdr, o + 2)) > mss { st16(hdr, o + 2, UInt16(mss)) }
                return
            }
            o += len
        }
    }

    // MARK: - Too big with DF: ICMP "fragmentation needed" to the sender

    /// Drops `packet` (a LAN packet with DF) and queues an ICMP "fragmentation needed" with
    /// next-hop MTU `mtu` toward its source, from its destination address.
    func tooBig(_ packet: PacketBuffer, mtu: Int) -> Disposition {
        let base = packet.slot + packet.offset
        let offending = UnsafeRawBufferPointer(start: base, count: packet.count)
        guard ICMPErrorBuilder.mayAnswer(offending), let p = output.reserve(ICMPErrorBuilder.maxLength) else { return .drop(.tooBig) }
        guard let n = ICMPErrorBuilder.write(into: UnsafeMutableRawBufferPointer(start: p, count: ICMPErrorBuilder.maxLength),
                                             type: ICMPv4.destinationUnreachable, code: ICMPv4.fragmentationNeeded,
                                             nextHopMTU: UInt16(clamping: max(mtu, 68)), source: ld32(base, 16), destination: ld32(base, 12),
                                             offending: offending, quoteData: ICMPErrorBuilder.maxLength)
        else { return .drop(.tooBig) }
        output.commit(n, target: -1)
        counters.tooBigSent &+= 1
        return .drop(.tooBig)
    }

    // MARK: - SVR fragmentation toward a peer

    /// Splits the outer packet in `packet` (bigger than `peer.mtu`) into SVR fragments and
    /// queues them toward `interface`; the packet itself is consumed.
    func fragmentToPeer(_ packet: PacketBuffer, peer: PeerRuntime, interface: Int, now: EngineTime) -> Disposition {
        let base = packet.slot + packet.offset
        let total = packet.count
        let trailer = peer.auth.trailerLength
        let chunk = (peer.mtu - Self.pieceHeader - trailer) & ~7
        guard chunk >= 8, total <= 65535 else { return .drop(.noHeadroom) }
        fragmentID &+= 1
        let ext = fragmentID
        let src = ld32(base, 12), dst = ld32(base, 16)
        let sp = ld16(base, 20), dp = ld16(base, 22)
        let originalID = ld16(base, 4)
        let originalDF: UInt16 = ld16(base, 6) & 0x4000
        // Pieces always carry DF (the original's travels in the fragment TLV and in the
        // reassembled packet's own header): the underlay reports a smaller MTU instead of
        // fragmenting them.
        let carry = IPv4Carry(tos: ld8(base, 1), identification: UInt16(truncatingIfNeeded: ext), dontFragment: true, ttl: ld8(base, 8))
        var offset = 0
        while offset < total {
            let n = min(chunk, total - offset)
            let more = offset + n < total
            guard let p = output.reserve(Self.pieceHeader + n + trailer) else { return .drop(.noHeadroom) }
            st64(p, 28, MetadataHeader.cookie)
            st16(p, 36, 0x1000 | 26)
            st16(p, 38, 0)
            st16(p, 40, 1)
            st16(p, 42, 10)
            st32(p, 44, ext)
            st16(p, 48, originalID)
            st16(p, 50, originalDF | (more ? 0x2000 : 0) | UInt16(offset / 8))
            st16(p, 52, UInt16(min(peer.mtu, 0xFFFF)))
            (p + Self.pieceHeader).copyMemory(from: base + offset, byteCount: n)
            var len = Self.pieceHeader + n
            do {
                len = 28 + (try peer.auth.appendTrailer(UnsafeMutableRawBufferPointer(start: p + 28, count: len - 28 + trailer),
                                                         length: len - 28, unixSeconds: now.unixSeconds))
            } catch { return .drop(.noHeadroom) }
            st16(p, 20, sp)
            st16(p, 22, dp)
            st16(p, 24, UInt16(len - 20))
            EngineWire.writeIPv4(p, totalLength: len, proto: IPProtocolNumber.udp, source: src, destination: dst, carry: carry)
            EngineWire.finishL4Checksum(p, l4: 20, total: len, proto: IPProtocolNumber.udp)
            output.commit(len, target: interface)
            counters.fragmentsSent &+= 1
            offset += n
        }
        return .consumed
    }

    // MARK: - Reassembly

    /// An SVR fragment from peer address `src` (HMAC already checked): `body` is the
    /// metadata block with the fragment TLV, followed by the piece.
    func receivePiece(_ base: UnsafeMutableRawPointer, bodyStart: Int, bodyLen: Int, src: UInt32, interface: Int,
                      _ now: EngineTime) -> Disposition {
        guard !inReassembled, bodyLen > 26, ld16(base, bodyStart + 8) == 0x1000 | 26, ld16(base, bodyStart + 10) == 0,
              ld16(base, bodyStart + 14) == 10
        else { return .drop(.badMetadata) }
        let ext = ld32(base, bodyStart + 16)
        let word = ld16(base, bodyStart + 22)
        let key = ReassemblyKey(a: src, b: 0, id: ext, proto: 0)
        let r = wanReassembly.add(key, offset: Int(word & 0x1FFF) * 8, data: base + bodyStart + 26, length: bodyLen - 26,
                                  more: word & 0x2000 != 0, now: now.monotonicNanos)
        switch r {
        case .incomplete: return .consumed
        case .dropped(let why): return .drop(why)
        case .complete(let s, let length):
            counters.datagramsReassembled &+= 1
            defer { wanReassembly.release(s) }
            guard var p = try? PacketBuffer(slot: wanReassembly.start(s) - Reassembly.headroom, capacity: wanReassembly.slotBytes,
                                            offset: Reassembly.headroom, count: length)
            else { return .drop(.malformedPacket) }
            inReassembled = true
            let d = wan(&p, interface: interface, now)
            inReassembled = false
            return forward(d, p)
        }
    }

    /// An IPv4 fragment read from the LAN: stored; once the datagram is whole it goes through
    /// the LAN pipeline like any packet (and is usually sent as SVR fragments).
    func lanFragment(_ packet: PacketBuffer, _ now: EngineTime) -> Disposition {
        let base = packet.slot + packet.offset
        let ihl = Int(ld8(base, 0) & 15) * 4
        let total = Int(ld16(base, 2))
        guard !inReassembled, ihl >= 20, total <= packet.count, total > ihl else { return .drop(.malformedPacket) }
        let word = ld16(base, 6)
        let src = ld32(base, 12), dst = ld32(base, 16), proto = ld8(base, 9)
        let key = ReassemblyKey(a: src, b: dst, id: UInt32(ld16(base, 4)), proto: proto)
        let r = lanReassembly.add(key, offset: Int(word & 0x1FFF) * 8, data: base + ihl, length: total - ihl,
                                  more: word & 0x2000 != 0, now: now.monotonicNanos)
        switch r {
        case .incomplete: return .consumed
        case .dropped(let why): return .drop(why)
        case .complete(let s, let length):
            counters.datagramsReassembled &+= 1
            defer { lanReassembly.release(s) }
            let start = lanReassembly.start(s)
            EngineWire.writeIPv4(start, totalLength: 20 + length, proto: proto, source: src, destination: dst,
                                 carry: IPv4Carry(tos: ld8(base, 1), identification: ld16(base, 4), dontFragment: false, ttl: ld8(base, 8)))
            guard var p = try? PacketBuffer(slot: start - Reassembly.headroom, capacity: lanReassembly.slotBytes,
                                            offset: Reassembly.headroom, count: 20 + length)
            else { return .drop(.malformedPacket) }
            inReassembled = true
            let d = lan(&p, now)
            inReassembled = false
            return forward(d, p)
        }
    }

    /// Queues a reassembled datagram's outcome (it lives in a reassembly slot, not in the
    /// caller's packet slot); the fragment that completed it is consumed.
    private func forward(_ d: Disposition, _ p: PacketBuffer) -> Disposition {
        let target: Int
        switch d {
        case .toLAN: target = -1
        case .toWAN(let i): target = i
        case .drop, .consumed: return d
        }
        guard let q = output.reserve(p.count) else { return .drop(.noHeadroom) }
        q.copyMemory(from: p.slot + p.offset, byteCount: p.count)
        output.commit(p.count, target: target)
        return .consumed
    }

    // MARK: - ICMP from the underlay

    /// An ICMP packet to one of our waypoints. Only "fragmentation needed" quoting a packet we
    /// sent toward a peer, on one of our sessions, is used: it lowers that peer path's MTU.
    func underlayICMP(_ base: UnsafeMutableRawPointer, ihl: Int, total: Int, _ now: EngineTime) -> Disposition {
        guard ld8(base, ihl) == 3, ld8(base, ihl + 1) == 4, localAddresses.contains(ld32(base, 16)) else { return .drop(.notSVR) }
        let q = ihl + 8
        guard total >= q + 28, ld8(base, q) >> 4 == 4 else { return .drop(.icmpUnknownSession) }
        let qihl = Int(ld8(base, q) & 15) * 4
        guard qihl >= 20, total >= q + qihl + 4 else { return .drop(.icmpUnknownSession) }
        let qsrc = ld32(base, q + 12), qdst = ld32(base, q + 16), qproto = ld8(base, q + 9)
        guard localAddresses.contains(qsrc), let pi = peerByAddress[qdst],
              qproto == IPProtocolNumber.udp || qproto == IPProtocolNumber.tcp
        else { return .drop(.icmpUnknownSession) }
        let sp = ld16(base, q + qihl), dp = ld16(base, q + qihl + 2)
        // The reverse of the quoted packet is how the session's packets from the peer arrive.
        // SVR fragments are UDP with the ports of any session (also a TCP one): try both.
        let other = qproto == IPProtocolNumber.udp ? IPProtocolNumber.tcp : IPProtocolNumber.udp
        guard table.lookup(SessionKey(v4Source: qdst, v4Destination: qsrc, sourcePort: dp, destinationPort: sp, proto: qproto, side: .wan)) != nil
                || table.lookup(SessionKey(v4Source: qdst, v4Destination: qsrc, sourcePort: dp, destinationPort: sp, proto: other, side: .wan)) != nil
        else { return .drop(.icmpUnknownSession) }
        let quotedLength = Int(ld16(base, q + 2))
        var m = Int(ld16(base, ihl + 6))
        if m == 0 {
            // RFC 1191 §5: a router that does not say; take the next plateau below.
            m = [1492, 1280, 1006, 576].first { $0 < quotedLength } ?? Self.minPathMTU
        }
        // A report that the quoted packet would have fitted is not believable.
        guard m < quotedLength else { return .consumed }
        let peer = peers[pi]
        m = max(m, Self.minPathMTU)
        if m < peer.mtu {
            peer.learnedMTU = m
            peer.learnedAt = now.monotonicNanos
            updatePathMTU(peer)
            counters.pathMTUReductions &+= 1
        }
        return .consumed
    }

    // MARK: - Periodic work and output

    func tickMTU(_ now: EngineTime) {
        lanReassembly.expire(now: now.monotonicNanos)
        wanReassembly.expire(now: now.monotonicNanos)
        let timedOut = lanReassembly.expired &+ wanReassembly.expired
        if timedOut > 0 {
            counters.drops[Int(DropReason.fragmentTimeout.rawValue)] &+= timedOut
            lanReassembly.expired = 0
            wanReassembly.expired = 0
        }
        for p in peers where p.learnedMTU > 0 && now.monotonicNanos &- p.learnedAt > Self.learnedMTULifetime {
            p.learnedMTU = 0
            updatePathMTU(p)
        }
    }

    /// Hands the queued output (SVR fragments, reassembled datagrams, ICMP errors) to `send`.
    func drainOutput(into slot: UnsafeMutableRawBufferPointer, headroom: Int, _ send: (PacketBuffer, Disposition) -> Void) {
        guard output.count > 0 else { return }
        for k in 0..<output.count {
            let n = output.lengths[k]
            let t = output.targets[k]
            guard let base = slot.baseAddress, headroom >= 0, headroom + n <= slot.count,
                  let p = try? PacketBuffer(slot: slot, offset: headroom, count: n)
            else { counters.drop(.noHeadroom); continue }
            (base + headroom).copyMemory(from: output.arena + output.offsets[k], byteCount: n)
            if t < 0 {
                counters.lanSentPackets &+= 1
                counters.lanSentBytes &+= UInt64(n)
                send(p, .toLAN)
            } else {
                counters.wanSentPackets &+= 1
                counters.wanSentBytes &+= UInt64(n)
                send(p, .toWAN(interface: t))
            }
        }
        output.reset()
    }
}

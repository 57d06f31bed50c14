// SVRRouter: forward/reverse metadata blocks, the TLV-18 control packet, and the assembly
// of a packet toward a peer ([IPv4][outer L4][metadata][inner header][body][HMAC]).

extension SVRRouter {
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
        if total > peer.mtu { return fragmentToPeer(packet, peer: peer, interface: interface, now: now) }  // SVRRouter+MTU.swift
        return .toWAN(interface: interface)
    }


    // MARK: - Control packets

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

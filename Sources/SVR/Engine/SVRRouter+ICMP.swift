// SVRRouter: ICMP errors over sessions (spec §9.2), TTL at the LAN edge, and answers to
// refused sessions.
//
// Relaying an error. A router that receives an ICMP error on its LAN finds the session from
// the quoted packet: the quote is a packet this router delivered to the LAN (the egress: a
// client packet it gave the server; the ingress: a server reply it gave the client), so the
// quoted tuple, reversed, is the session's LAN key (`lanReply` at the egress, `lanOriginal`
// at the ingress; for ICMP echo the identifier stays the source port). The error then travels
// to the router at the session's other end on the session's own waypoint flow, as
//
//   [IPv4][outer L4: the waypoint flow's UDP, or TCP (a bare ACK, seq 0) for native TCP]
//   [metadata: header section TLV 16 (security ID) + TLV 20 (ICMP error location: the
//    error's IPv4 source), empty sealed payload section]
//   [body: ICMP header (8) + quoted IP header + 8 quoted bytes, sealed with the session's
//    payload cipher when the session is encrypted][HMAC]
//
// A transit router passes the body on unopened with its own metadata. The last router opens
// the body, rewrites the quote's addresses and ports (or ICMP identifier) to the session's
// original tuple as its LAN host sent or received it (so the host's stack matches the error
// to its socket), and delivers an ICMP error from the reporting node's address to that host.
// A received relay is recognised by TLV 20 and never creates a session.
//
// TTL. The kernel of each router already decrements the TTL when it forwards a packet into
// the LAN TUN and out of it; svrd carries the TTL it got into the outer header, and the last
// router delivers with the TTL that arrived (so each WAN router counts as a hop, and a loop
// through svrd still ends). A LAN packet that reaches svrd with TTL 0 or 1 would die at the
// first router of the WAN, whose time exceeded would go to our waypoint address and be lost:
// svrd drops it (`ttl-expired`) and answers time exceeded itself from its LAN address. So
// traceroute shows the (first hop of the) WAN as the ingress router's LAN address, then the
// egress router (its kernel's answer, relayed), then the hosts behind it.

// Refused sessions. With `[router] refused-sessions = "reject"`, a refused first packet is
// still dropped and counted under its reason, and is answered at once: TCP RST (from the
// address and port the client tried) for TCP, ICMP destination unreachable code 13
// (administratively prohibited, from the router's LAN address) for UDP and ICMP echo.
//
// Everything this router generates itself (time exceeded, refusals) shares one token bucket
// (`ICMPAnswers.perSecond`, burst as large): a flood cannot make the router an amplifier.
// Relayed errors are not limited (one out for one in). Answers are built in place in the
// offending packet's slot (28 bytes of headroom), nothing is allocated.

import Glibc

/// The router's own ICMP answers: where they come from, whether refusals are answered, and
/// the rate limit.
struct ICMPAnswers {
    /// Answers per second (and burst) the router generates at most.
    static let perSecond: UInt64 = 100
    static let interval: UInt64 = 1_000_000_000 / perSecond

    /// The IPv4 source of generated errors: `[router] lan-address`, else the first IPv4
    /// interface address; 0 = never answer.
    let source: UInt32
    let rejectRefused: Bool
    var tokens: UInt64 = perSecond
    var refilled: UInt64 = 0

    init(config: Config) {
        var s: UInt32 = 0
        if case .v4(let a)? = config.router.lanAddress?.address {
            s = a.value
        } else {
            for i in config.interfaces { if case .v4(let a) = i.address { s = a.value; break } }
        }
        source = s
        rejectRefused = config.router.refusedSessions == .reject
    }

    /// Takes one token if there is one.
    @inline(__always)
    mutating func take(_ now: UInt64) -> Bool {
        if now >= refilled &+ Self.interval {
            let add = (now &- refilled) / Self.interval
            if add >= Self.perSecond {
                tokens = Self.perSecond
                refilled = now
            } else {
                tokens = min(Self.perSecond, tokens + add)
                refilled &+= add * Self.interval
            }
        }
        guard tokens > 0 else { return false }
        tokens -= 1
        return true
    }
}

extension SVRRouter {
    // MARK: - TTL at the LAN edge

    /// A LAN packet with TTL ≤ 1: dropped, answered with time exceeded when allowed.
    func ttlExpired(_ packet: inout PacketBuffer, _ now: EngineTime) -> Disposition {
        guard answerICMP(&packet, type: ICMPv4.timeExceeded, code: ICMPv4.ttlExceededInTransit, now) else {
            return .drop(.ttlExpired)
        }
        counters.drop(.ttlExpired)
        return .toLAN
    }

    /// Turns the LAN packet into an ICMP error about it, toward its source, from the router's
    /// LAN address (when the rules of `ICMPErrorBuilder.mayAnswer` and the rate limit allow);
    /// false leaves the packet as it was. `nextHopMTU` is for type 3 code 4 (RFC 1191).
    func answerICMP(_ packet: inout PacketBuffer, type: UInt8, code: UInt8, nextHopMTU: UInt16 = 0, _ now: EngineTime) -> Bool {
        let start = packet.offset - 28
        guard icmp.source != 0, start >= 0 else { return false }
        let offending = UnsafeRawBufferPointer(start: packet.slot + packet.offset, count: packet.count)
        guard ICMPErrorBuilder.mayAnswer(offending), icmp.take(now.monotonicNanos) else { return false }
        let destination = ld32(packet.slot + packet.offset, 12)
        let out = UnsafeMutableRawBufferPointer(start: packet.slot + start,
                                                count: min(packet.capacity - start, ICMPErrorBuilder.maxLength))
        guard let n = ICMPErrorBuilder.write(into: out, type: type, code: code, nextHopMTU: nextHopMTU, source: icmp.source,
                                             destination: destination, offending: offending)
        else { return false }
        packet._offset = start
        packet._count = n
        return true
    }

    // MARK: - Refused sessions

    /// A refused first packet: dropped under `reason`; with `refused-sessions = "reject"`
    /// (and within the rate limit) answered with a TCP RST or ICMP code 13.
    func refuse(_ packet: inout PacketBuffer, _ layout: PacketLayout, _ tcpFlags: TCPFlags, _ reason: DropReason,
                _ now: EngineTime) -> Disposition {
        guard icmp.rejectRefused else { return .drop(reason) }
        let answered: Bool
        if layout.proto == IPProtocolNumber.tcp {
            answered = answerRST(&packet, layout, tcpFlags, now)
        } else {
            answered = answerICMP(&packet, type: ICMPv4.destinationUnreachable,
                                  code: ICMPv4.communicationAdministrativelyProhibited, now)
        }
        guard answered else { return .drop(reason) }
        counters.drop(reason)
        return .toLAN
    }

    /// Turns a TCP segment into the RST that answers it (RFC 9293 §3.10.7.1: to a segment with
    /// ACK, seq = its ack; otherwise seq 0 and ack = its seq + length, flags RST|ACK), from the
    /// address and port it was sent to. Never answers a RST.
    func answerRST(_ packet: inout PacketBuffer, _ layout: PacketLayout, _ flags: TCPFlags, _ now: EngineTime) -> Bool {
        let b = packet.slot + packet.offset
        let l4 = layout.l4Offset
        guard !flags.contains(.rst), layout.l4HeaderLength >= 20 else { return false }
        let src = ld32(b, 12), dst = ld32(b, 16)
        let srcTop = src >> 24
        guard src != 0, srcTop != 127, srcTop < 224, dst >> 24 < 224, icmp.take(now.monotonicNanos) else { return false }
        let sp = ld16(b, l4), dp = ld16(b, l4 + 2), seq = ld32(b, l4 + 4), ack = ld32(b, l4 + 8)
        let length = UInt32(layout.payloadLength) + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
        st16(b, 20, dp)
        st16(b, 22, sp)
        if flags.contains(.ack) {
            st32(b, 24, ack)
            st32(b, 28, 0)
            st8(b, 33, 0x04)  // RST
        } else {
            st32(b, 24, 0)
            st32(b, 28, seq &+ length)
            st8(b, 33, 0x14)  // RST | ACK
        }
        st8(b, 32, 0x50)
        st16(b, 34, 0)
        st16(b, 38, 0)
        EngineWire.writeIPv4(b, totalLength: 40, proto: IPProtocolNumber.tcp, source: dst, destination: src, carry: IPv4Carry())
        EngineWire.finishL4Checksum(b, l4: 20, total: 40, proto: IPProtocolNumber.tcp)
        packet._count = 40
        return true
    }

    // MARK: - ICMP errors from the LAN

    /// A LAN ICMP message that is no echo request and matched no session: an ICMP error
    /// about a packet of one of our sessions goes to the session's other end; anything else
    /// is dropped and counted.
    func lanICMP(_ packet: inout PacketBuffer, _ layout: PacketLayout, _ now: EngineTime) -> Disposition {
        let base = packet.slot + packet.offset
        let q: ICMPErrorQuote
        do {
            q = try ICMPErrorQuote.parse(UnsafeRawBufferPointer(start: base, count: packet.count))
        } catch {
            switch error {
            case .notAnError: return .drop(.unsupportedProtocol)
            case .truncated: return .drop(.icmpTruncated)
            case .unquotable: return .drop(.icmpUnquotable)
            }
        }
        let echo = q.proto == IPProtocolNumber.icmp
        let key = SessionKey(v4Source: q.destination, v4Destination: q.source,
                             sourcePort: echo ? q.sourcePort : q.destinationPort, destinationPort: echo ? 0 : q.sourcePort,
                             proto: q.proto, side: .lan)
        guard let hit = table.lookup(key), hit.role == .lanOriginal || hit.role == .lanReply else {
            return .drop(.icmpUnknownSession)
        }
        // The body: the ICMP header, the quoted IP header and 8 bytes after it.
        return sendICMPToPeer(&packet, Int(hit.index.rawValue), bodyStart: layout.l4Offset, bodyLen: 16 + q.quotedHeaderLength,
                              reporter: q.reporter, downstream: hit.role == .lanOriginal, seal: true, now)
    }

    /// Sends the ICMP relay body at `bodyStart` toward the session's downstream (egress side)
    /// or upstream (ingress side) peer on its waypoint flow, sealing it first when `seal` and
    /// the session is encrypted.
    func sendICMPToPeer(_ packet: inout PacketBuffer, _ i: Int, bodyStart: Int, bodyLen: Int, reporter: UInt32,
                        downstream: Bool, seal: Bool, _ now: EngineTime) -> Disposition {
        let e = extras[i]
        let peerIndex = Int(downstream ? e.downPeer : e.upPeer) - 1
        guard peerIndex >= 0,
              let wk = table.key(SessionIndex(rawValue: UInt32(i)), downstream ? .wanFromDownstream : .wanFromUpstream)
        else { return .drop(.icmpUnknownSession) }
        let peer = peers[peerIndex]
        let carriage = Carriage(rawValue: downstream ? e.downCarriage : e.upCarriage) ?? .nativeUDP
        var length = bodyLen
        // Sealed whenever the session has a key (whatever adaptive encryption decided for the
        // payload: an ICMP error is never TLS), with this router's sending sequence.
        if seal && e.suite != CipherSuite.none.rawValue {
            let room = packet.capacity - packet.offset - bodyStart
            guard room >= bodyLen + (CipherSuite(rawValue: e.suite)?.maxOverhead ?? 48) + peer.auth.trailerLength else {
                return .drop(.noHeadroom)
            }
            do {
                let slot = try cipherSlot(i, sealing: true)
                length = try slot.cipher.seal(inPlace: UnsafeMutableRawBufferPointer(start: packet.slot + packet.offset + bodyStart,
                                                                                     count: room),
                                              plaintextLength: bodyLen, nonce: &extras[i].sealNonce)
            } catch { return .drop(.noHeadroom) }
        }
        var w = TLVWriter(base: metaScratch, at: 12)
        w.u32(16, 1)
        st16(metaScratch, w.at, 20); st16(metaScratch, w.at + 2, 4); st32(metaScratch, w.at + 4, reporter); w.at += 8
        let metaLen = finishMetadata(w.at, headerLength: w.at, peer: peer)
        guard metaLen > 0 else { return .drop(.noHeadroom) }
        var hdrLen = 0
        if carriage == .nativeTCP {
            // The flow is TCP: the relay rides in a bare ACK segment (seq and ack 0) that the
            // receiver recognises by its metadata and never reads as TCP.
            hdrScratch.initializeMemory(as: UInt8.self, repeating: 0, count: 20)
            st8(hdrScratch, 12, 0x50)
            st8(hdrScratch, 13, 0x10)
            hdrLen = 20
        }
        return assemble(&packet, bodyStart: bodyStart, bodyLen: length, carriage: carriage, hdrLen: hdrLen, metaLen: metaLen,
                        out: wk.tuple.reversed, carry: IPv4Carry(), peer: peer,
                        interface: Int(downstream ? e.downInterface : e.upInterface), now: now)
    }

    // MARK: - ICMP errors from a peer

    /// A relayed ICMP error (metadata with TLV 20) on session `i`'s waypoint flow: passed on
    /// by a transit router, delivered to the LAN host by the last router.
    func icmpFromPeer(_ packet: inout PacketBuffer, _ i: Int, reporter: UInt32, bodyStart: Int, bodyLen: Int, forward: Bool,
                      _ now: EngineTime) -> Disposition {
        let e = extras[i]
        if e.role == SessionRole.transit.rawValue {
            return sendICMPToPeer(&packet, i, bodyStart: bodyStart, bodyLen: bodyLen, reporter: reporter, downstream: forward,
                                  seal: false, now)
        }
        let index = SessionIndex(rawValue: UInt32(i))
        guard let ok = table.key(index, .lanOriginal)?.tuple, case .v4(let client) = ok.source, case .v4(let server) = ok.destination
        else { return .drop(.icmpUnknownSession) }
        let base = packet.slot + packet.offset
        let body = base + bodyStart
        var n = bodyLen
        if e.suite != CipherSuite.none.rawValue {
            var seq = PayloadSequence()
            do {
                let slot = try cipherSlot(i, sealing: false)
                n = try slot.cipher.open(inPlace: UnsafeMutableRawBufferPointer(start: body, count: bodyLen), sealedLength: bodyLen,
                                         sequence: &seq)
            } catch { return .drop(.decryptFailed) }
            // The sender's sequence of this direction: same direction bit and replay window as
            // the session's payloads (SVRRouter+Protection.swift).
            if seq.known {
                guard (seq.prefix & PayloadSequence.reverseBit == 0) == forward, extras[i].replay.accept(counter: seq.counter)
                else { return .drop(.replay) }
            }
        }
        // [ICMP header 8][quoted IP header][8 bytes], an error quoting this session's protocol.
        guard n >= 36, ICMPv4.isError(type: ld8(body, 0)), ld8(body, 8) >> 4 == 4 else { return .drop(.icmpTruncated) }
        let q = body + 8
        let qihl = Int(ld8(q, 0) & 15) * 4
        guard qihl >= 20, n >= 16 + qihl else { return .drop(.icmpTruncated) }
        guard ld8(q, 9) == ok.proto else { return .drop(.icmpUnknownSession) }
        n = 16 + qihl
        // The quote as the LAN host knows the packet: forward (we are the egress, the error is
        // about a reply the ingress delivered) server → client; reverse: client → server.
        let quoted = forward ? ok.reversed : ok
        let host = forward ? server : client
        st32(q, 12, forward ? server.value : client.value)
        st32(q, 16, forward ? client.value : server.value)
        st16(q, 10, 0)
        st16(q, 10, InternetChecksum.checksum(UnsafeRawBufferPointer(start: q, count: qihl)))
        if ok.proto == IPProtocolNumber.icmp {
            st16(q, qihl + 4, ok.sourcePort)  // the echo identifier
        } else {
            st16(q, qihl, quoted.sourcePort)
            st16(q, qihl + 2, quoted.destinationPort)
        }
        st16(body, 2, 0)
        st16(body, 2, InternetChecksum.checksum(UnsafeRawBufferPointer(start: body, count: n)))
        let newStart = bodyStart - 20
        guard packet.offset + newStart >= 0 else { return .drop(.noHeadroom) }
        EngineWire.writeIPv4(base + newStart, totalLength: 20 + n, proto: IPProtocolNumber.icmp, source: reporter,
                             destination: host.value, carry: IPv4Carry(tos: 0xC0, identification: 0, dontFragment: false, ttl: 64))
        packet._offset += newStart
        packet._count = 20 + n
        return .toLAN
    }
}

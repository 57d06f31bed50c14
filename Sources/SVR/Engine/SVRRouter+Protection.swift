// SVRRouter: payload protection per direction — adaptive encryption decided by each sender
// for its own direction, sealing/clear framing with the direction's sequence, and on receipt
// opening, the clear-payload policy check and the replay window. Design: docs/crypto.md
// ("Replay and direction binding") and docs/engine.md ("Encryption").
//
// A router sends one direction of a session (the ingress: forward; the egress: reverse) and
// receives the other; a transit router passes payloads through unopened. Per session:
//   send state     pending → sealed | clear   (decided on this router's first payload)
//   receive state  pending → sealed | clear   (decided on the first payload received)
// pending exists only with adaptive encryption (suite ≠ none); suite none starts clear, no
// adaptive starts sealed. Every payload carries the sender's sequence (ReplayGuard.swift).

extension SVRRouter {
    /// Whether the `len` payload bytes at `p` start a TLS record (TCP: content type 22,
    /// version 3.0–3.4) or a DTLS record (UDP: content type 22, version 1.0 or 1.2, epoch 0).
    @inline(__always)
    static func startsSecureRecord(_ p: UnsafeRawPointer, _ len: Int, proto: UInt8) -> Bool {
        guard len >= 3, ld8(p, 0) == 0x16 else { return false }
        if proto == IPProtocolNumber.tcp { return ld8(p, 1) == 3 && ld8(p, 2) <= 4 }
        if proto == IPProtocolNumber.udp {
            return len >= 5 && ld8(p, 1) == 0xFE && (ld8(p, 2) == 0xFD || ld8(p, 2) == 0xFF) && ld16(p, 3) == 0
        }
        return false
    }

    /// The initial send and receive states of a new session (`suite`: the session's, from
    /// TLV 46; `adaptive`: this router's policy for the service).
    static func initialProtection(suite: CipherSuite, adaptive: Bool, proto: UInt8) -> UInt16 {
        if suite == .none { return SessionExtra.sendClear | SessionExtra.receiveClear }
        if adaptive && (proto == IPProtocolNumber.tcp || proto == IPProtocolNumber.udp) { return 0 }
        return SessionExtra.sendSealed
    }

    /// Protects the payload of a LAN packet of session `i` in place: decides this router's
    /// direction on its first payload (adaptive: clear only for a TLS/DTLS record), then
    /// seals it (the sequence in the IV or nonce) or appends the clear sequence
    /// (prefix ‖ counter). Returns the body length; nil without tailroom or on a crypto error.
    @inline(__always)
    func protectPayload(_ packet: PacketBuffer, _ layout: PacketLayout, _ i: Int, peer: PeerRuntime) -> Int? {
        let n = layout.payloadLength
        let start = packet.slot + packet.offset + layout.payloadOffset
        let room = packet.capacity - packet.offset - layout.payloadOffset
        var flags = extras[i].flags
        if flags & (SessionExtra.sendSealed | SessionExtra.sendClear) == 0 && n > 0 {
            flags |= Self.startsSecureRecord(start, n, proto: layout.proto) ? SessionExtra.sendClear : SessionExtra.sendSealed
            extras[i].flags = flags
        }
        if flags & SessionExtra.sendSealed != 0 {
            guard room >= n + (CipherSuite(rawValue: extras[i].suite)?.maxOverhead ?? 48) + peer.auth.trailerLength else { return nil }
            do {
                let slot = try cipherSlot(i, sealing: true)
                // The sequence is advanced in place: no copy of this session's extra may be
                // written back over it afterwards (a stale counter would repeat a nonce).
                return try slot.cipher.seal(inPlace: UnsafeMutableRawBufferPointer(start: start, count: room), plaintextLength: n,
                                            nonce: &extras[i].sealNonce)
            } catch { return nil }
        }
        guard room >= n + PayloadSequence.clearLength + peer.auth.trailerLength else { return nil }
        extras[i].sealNonce.counter &+= 1
        st32(start, n, extras[i].sealNonce.prefix)
        st64(start, n + 4, extras[i].sealNonce.counter)
        return n + PayloadSequence.clearLength
    }

    /// Opens the body of a packet of session `i` from the peer in place (forward: we are the
    /// egress; reverse: the ingress) and checks its sequence. Returns the payload length, or
    /// the reason to drop the packet.
    @inline(__always)
    func unprotectPayload(_ base: UnsafeMutableRawPointer, bodyStart: Int, bodyLen: Int, _ i: Int, forward: Bool,
                          proto: UInt8, now: EngineTime) -> (length: Int, drop: DropReason?) {
        var flags = extras[i].flags
        let body = base + bodyStart
        var seq = PayloadSequence()
        var payLen = -1
        // A 12-byte body is a clear empty payload (a sealed one is at least 28 bytes): a
        // sender whose direction is still pending sends its empty packets that way.
        if flags & SessionExtra.receiveClear == 0 && bodyLen != PayloadSequence.clearLength {
            let pending = flags & SessionExtra.receiveSealed == 0
            let suite = CipherSuite(rawValue: extras[i].suite) ?? .none
            // GCM overwrites the body when the tag does not verify: keep a copy while the
            // direction may still turn out clear.
            let backup = pending && suite == .aes256Gcm && bodyLen <= Self.trialScratchSize
            if backup { trialScratch.copyMemory(from: body, byteCount: bodyLen) }
            do {
                let slot = try cipherSlot(i, sealing: false)
                payLen = try slot.cipher.open(inPlace: UnsafeMutableRawBufferPointer(start: body, count: bodyLen),
                                              sealedLength: bodyLen, sequence: &seq)
                if pending {
                    flags |= SessionExtra.receiveSealed
                    extras[i].flags = flags
                }
            } catch {
                guard pending, suite != .aes256Gcm || backup else { return (0, .decryptFailed) }
                if backup { body.copyMemory(from: trialScratch, byteCount: bodyLen) }
            }
        }
        if payLen < 0 {
            // Clear: payload ‖ prefix ‖ counter.
            guard bodyLen >= PayloadSequence.clearLength else { return (0, .decryptFailed) }
            payLen = bodyLen - PayloadSequence.clearLength
            seq = PayloadSequence(prefix: ld32(body, payLen), counter: ld64(body, payLen + 4), known: true)
            if flags & SessionExtra.receiveClear == 0 && payLen > 0 {
                // The direction's first clear payload: only if this router's policy for the
                // service lets it be clear (no encryption, or adaptive and TLS/DTLS).
                let svc = services[table.service(SessionIndex(rawValue: UInt32(i))).index]
                guard svc.suite == .none || (svc.adaptive && Self.startsSecureRecord(body, payLen, proto: proto)) else {
                    return (0, .weakerEncryption)
                }
                extras[i].flags = flags | SessionExtra.receiveClear
            }
        }
        if seq.known {
            // The direction bit must be this direction's (a reflected packet is not), and the
            // counter new to the window.
            guard (seq.prefix & PayloadSequence.reverseBit == 0) == forward,
                  extras[i].replay.accept(counter: seq.counter)
            else { return (0, .replay) }
        } else {
            // An AES-CBC IV without our check bytes (a sender drawing IVs at random): a
            // bounded record of recent IVs within the HMAC time window.
            let iv = ld64(body, bodyLen - 32) ^ ld64(body, bodyLen - 24)
            let tag = iv ^ (UInt64(i) << 32 | UInt64(extras[i].generation))
            guard recentTags.accept(tag: tag, window: PacketAuthenticator.window(unixSeconds: now.unixSeconds)) else {
                return (0, .replay)
            }
        }
        return (payLen, nil)
    }

    /// One direction's protection as `show sessions` prints it.
    func protectionName(_ e: SessionExtra, sealed: UInt16, clear: UInt16) -> String {
        if e.flags & sealed != 0 { return (CipherSuite(rawValue: e.suite) ?? .none).viewName }
        return e.flags & clear != 0 ? "none" : "pending"
    }
}

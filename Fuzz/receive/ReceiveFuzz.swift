// libFuzzer target for the whole receive path of a WAN packet (Fuzz/run.sh receive SECONDS):
//
//   IPPacket parse → §4.6 header check (trailer excluded) → §6.3 HMAC verify → trailer removal
//   → decrypt the payload-TLV section (peer metadata key) → MetadataDecoder.decode
//   → strip the block → open the payload (session key) → rewrite(to: forward/reverse context)
//
// Input layout and mode bits: see ReceiveFixture.swift. Every step may throw its typed error
// (the packet is dropped); nothing may crash or trip AddressSanitizer. On top, the harness
// checks that the packet edits keep a valid L4 checksum valid, and that the edited packet
// parses again to the layout the edits say it has.

/// OpenSSL contexts, created once (libFuzzer runs the inputs one after another on one thread).
final class ReceiveState {
    var authenticator = try! PacketAuthenticator(
        key: ReceiveFixture.hmacKey, algorithm: ReceiveFixture.algorithm, mode: ReceiveFixture.mode)
    let metadata = CipherSuite.allCases.map { CipherBox(suite: $0, key: ReceiveFixture.metadataKey) }
    let section = SectionBox()
    let session = CipherSuite.allCases.map { CipherBox(suite: $0, key: ReceiveFixture.sessionKey) }
}

/// The engine's metadata section cipher (AES-256-CBC, ciphertext ‖ IV).
final class SectionBox {
    var cipher = try! MetadataSectionCipher(key: ReceiveFixture.metadataKey)
}

final class CipherBox {
    var cipher: PayloadCipher
    init(suite: CipherSuite, key: SymmetricKey) { cipher = try! PayloadCipher(suite: suite, key: key) }
}

nonisolated(unsafe) let state = ReceiveState()

@_cdecl("LLVMFuzzerTestOneInput")
public func receiveFuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size >= 1, let data else { return 0 }
    let mode = data[0]
    let n = size - 1
    let roomy = mode & ReceiveFixture.roomySlot != 0
    let headroom = roomy ? ReceiveFixture.headroom : 0
    let slot = PacketSlot(capacity: headroom + n + (roomy ? ReceiveFixture.tailroom : 0))
    withExtendedLifetime(slot) {
        if n > 0 { (slot.memory.baseAddress! + headroom).copyMemory(from: data + 1, byteCount: n) }
        guard let buffer = try? slot.packet(headroom: headroom, count: n) else { return }
        receive(buffer, mode: mode)
    }
    return 0
}

/// What a router does with a packet from a peer's WAN path; returns at the first drop.
func receive(_ buffer: PacketBuffer, mode: UInt8) {
    guard var packet = try? IPPacket(buffer) else { return }
    let trailer = state.authenticator.trailerLength

    if mode & ReceiveFixture.computeTrailer != 0 {
        // Sign the fuzzed bytes: overwrite the last `trailer` bytes with a valid HMAC.
        packet.withPayload { p in
            guard p.count >= trailer else { return }
            _ = try? state.authenticator.appendTrailer(p, length: p.count - trailer, unixSeconds: ReceiveFixture.unixSeconds)
        }
    }

    // §4.6: cookie and header lengths first (the trailer is not part of the SVR payload) ...
    let header: MetadataHeader?
    do {
        header = try packet.withPayload { (p) throws(MetadataError) in
            try MetadataHeader.parse(UnsafeRawBufferPointer(p), trailerLength: trailer)
        }
    } catch {
        return
    }
    // ... then the HMAC over every byte after the L4 header.
    let verified = packet.withPayload { p in
        (try? state.authenticator.verifyTrailer(UnsafeRawBufferPointer(p), length: p.count,
                                                unixSeconds: ReceiveFixture.unixSeconds)) != nil
    }
    guard verified else { return }
    trace("hmac ok")
    guard edit(&packet, { (p) throws(PacketError) in try p.removeTrailer(count: trailer) }) else { return }

    var decoded: DecodedMetadata?
    if let header {
        // Decrypt the payload-TLV section in place (a section sent empty is not sealed).
        var clearLength = 0
        if header.payloadLength > 0 {
            let suite = ReceiveFixture.metadataSuite(mode)
            let box = state.metadata[Int(suite.rawValue)]
            do {
                clearLength = try packet.withPayload { (block) throws(CryptoError) in
                    // CBC: the engine's section cipher; GCM: PayloadCipher's metadata layout.
                    suite == .aes256CbcHmacSha256_128
                        ? try state.section.cipher.open(inPlace: block, headerLength: header.headerLength,
                                                        payloadLength: header.payloadLength)
                        : try box.cipher.openMetadataPayload(
                            inPlace: block, headerLength: header.headerLength, payloadLength: header.payloadLength)
                }
            } catch {
                return
            }
        }
        do {
            decoded = try packet.withPayload { (block) throws(MetadataError) in
                let d = try MetadataDecoder.decode(
                    UnsafeRawBufferPointer(block), header: header, payloadTLVLength: clearLength)
                // The value accessors the engine uses read inside the block.
                _ = d.multicastEgressNames(in: UnsafeRawBufferPointer(block))
                if let k = d.sessionKey { _ = try? SessionKeyMaterial(encoded: k.bytes(in: UnsafeRawBufferPointer(block))) }
                if let t = d.tenant { _ = t.string(in: UnsafeRawBufferPointer(block)) }
                return d
            }
        } catch {
            return
        }
        trace("decoded \(decoded!.knownCount) TLVs")
        // The block leaves the packet (the payload section's bytes as transmitted).
        guard edit(&packet, { (p) throws(PacketError) in try p.stripAfterL4Header(count: header.blockLength) }) else {
            return
        }
    }

    // Open the session payload in place and drop the cipher's overhead from the end.
    if packet.layout.payloadLength > 0 {
        let box = state.session[Int(ReceiveFixture.sessionSuite(mode).rawValue)]
        let sealed = packet.layout.payloadLength
        let clear: Int
        do {
            clear = try packet.withPayload { (p) throws(CryptoError) in try box.cipher.open(inPlace: p, sealedLength: p.count) }
        } catch {
            return
        }
        precondition(clear >= 0 && clear <= sealed, "open returned \(clear) of \(sealed) bytes")
        guard edit(&packet, { (p) throws(PacketError) in try p.removeTrailer(count: sealed - clear) }) else { return }
        trace("opened \(clear) bytes")
    }

    // Back to the original 5-tuple the metadata carried.
    if let context = decoded?.forwardContext ?? decoded?.reverseContext {
        let ok = edit(&packet, { (p) throws(PacketError) in try p.rewrite(to: context) })
        trace("rewrite to \(context): \(ok)")
    }
}

/// Runs one in-place edit. A checksum that verified before must verify after, and the edited
/// bytes must parse to the layout the packet tracked. Returns false when the edit threw.
func edit(_ packet: inout IPPacket, _ body: (inout IPPacket) throws(PacketError) -> Void) -> Bool {
    let wasValid = packet.isTransportChecksumValid == true
    do {
        try body(&packet)
    } catch {
        return false
    }
    if wasValid {
        precondition(packet.isTransportChecksumValid == true, "edit broke a valid L4 checksum")
    }
    do {
        let again = try IPPacket(packet.buffer)
        precondition(again.layout == packet.layout, "layout \(packet.layout) != reparsed \(again.layout)")
    } catch {
        preconditionFailure("edited packet does not parse: \(error)")
    }
    return true
}

/// Progress lines for checking that the seeds reach the end (build with `-D RECEIVE_TRACE`).
@inline(__always)
func trace(_ message: @autoclosure () -> String) {
    #if RECEIVE_TRACE
    print("receive: \(message())")
    #endif
}

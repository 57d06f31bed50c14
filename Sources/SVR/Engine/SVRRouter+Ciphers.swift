// SVRRouter: session keys and the payload cipher caches (the nursery and the main cache).
// The design is in docs/engine.md ("What is built from the config").

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

extension SVRRouter {
    // MARK: - Keys and ciphers

    /// Asks for the cache lines of the row the next new session will take (table row and
    /// `SessionExtra`), so their memory latency overlaps classification and metadata work.
    @inline(__always)
    func prefetchNewSession() {
        guard let r = table.prefetchNextRow() else { return }
        let p = UnsafeRawPointer(extras + r)
        for line in stride(from: 0, to: MemoryLayout<SessionExtra>.size, by: 64) { Prefetch.line(p + line) }
    }

    /// Fresh random subkeys for a new session of `suite` into `e` (none for `.none`), and the
    /// start of its sending sequence (from a pool refilled by RAND_bytes, 4 KiB at a time);
    /// false if the CSPRNG fails.
    func drawSessionKeys(_ e: inout SessionExtra, suite: CipherSuite, reverse: Bool) -> Bool {
        guard suite != .none else { return drawSealNonce(&e, reverse: reverse) }
        guard let p = drawRandom(suite.subkeyLength) else { return false }
        withUnsafeMutableBytes(of: &e) { x in
            (x.baseAddress! + SessionExtra.keyOffset).copyMemory(from: p, byteCount: suite.subkeyLength)
        }
        p.initializeMemory(as: UInt8.self, repeating: 0, count: suite.subkeyLength)  // used key bytes never stay in the pool
        return drawSealNonce(&e, reverse: reverse)
    }

    /// Starts the session's sending sequence (ReplayGuard.swift): a random prefix whose top
    /// bit is the direction (set for reverse, the egress's), and the counter at the wall
    /// clock in nanoseconds, so a sender that re-creates its state under the same key
    /// continues above its old sequence and the two directions never share a GCM nonce.
    func drawSealNonce(_ e: inout SessionExtra, reverse: Bool) -> Bool {
        guard let p = drawRandom(4) else { return false }
        let r = p.loadUnaligned(as: UInt32.self) & ~PayloadSequence.reverseBit
        e.sealNonce = GCMNonceSequence(prefix: reverse ? r | PayloadSequence.reverseBit : r, counter: PayloadSequence.start())
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
}

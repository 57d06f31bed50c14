// Replay protection for session payloads (every suite), see docs/crypto.md "Replay and
// direction binding".
//
// Every payload a router sends for a session carries a per-session, per-direction sequence
// number `prefix (4 bytes) ‖ counter (8 bytes)`:
//   - AES-GCM: it is the nonce (after the ciphertext, authenticated by the tag);
//   - AES-CBC+HMAC: the IV is AES-256(K, prefix ‖ counter ‖ "svr1") under the session's CBC
//     key (NIST SP 800-38A's "encrypt a nonce" IV): unpredictable on the wire, recovered by an
//     svrd receiver with one block decryption, authenticated by the payload HMAC;
//   - clear payloads (suite none, a direction adaptive encryption left clear): the 12 bytes
//     follow the payload, authenticated by the §6.3 trailer.
// The prefix's top bit is the direction (0: forward, sealed by the ingress; 1: reverse, by
// the egress), so the two directions of a session never share a GCM nonce under the
// session key. The counter starts at the sender's wall clock in nanoseconds when it creates
// its session state and grows by one per packet, so a sender that re-creates its state with
// the same key (an egress that lost the session) continues above the old sequence (as long
// as the old one sent fewer than one packet per nanosecond and the clock did not step
// back): the receiver never restarts its window, and a packet with an old prefix stays a
// replay.

import Glibc

/// A sliding window over the sequence counters received in one direction of a session:
/// the highest counter and a 64-bit mask of the 64 counters below and including it.
/// 16 bytes per session (a router receives one direction of a session).
struct ReplayWindow {
    var highest: UInt64 = 0
    var seen: UInt64 = 0

    /// Window width: a packet may arrive at most this many packets late.
    static let width: UInt64 = 64

    /// Records `c`; false if it was seen before or is older than the window.
    @inline(__always)
    mutating func accept(counter c: UInt64) -> Bool {
        if seen == 0 {
            highest = c
            seen = 1
            return true
        }
        if c > highest {
            let shift = c - highest
            seen = shift >= Self.width ? 1 : seen << shift | 1
            highest = c
            return true
        }
        let back = highest - c
        guard back < Self.width, seen & (1 << back) == 0 else { return false }
        seen |= 1 << back
        return true
    }
}

/// The sequence carried by one received payload.
public struct PayloadSequence: Sendable, Equatable {
    public var prefix: UInt32
    public var counter: UInt64
    /// False when the payload carried no recognisable sequence (an AES-CBC IV from a sender
    /// that draws IVs at random: the check bytes did not match).
    public var known: Bool

    public init(prefix: UInt32 = 0, counter: UInt64 = 0, known: Bool = false) {
        self.prefix = prefix
        self.counter = counter
        self.known = known
    }

    /// The direction bit of a prefix: set on reverse (egress → ingress) payloads.
    public static let reverseBit: UInt32 = 0x8000_0000
    /// The check bytes after prefix ‖ counter in an AES-CBC IV's plaintext block ("svr1").
    public static let cbcCheck: UInt32 = 0x7376_7231
    /// Bytes a clear payload's sequence adds after it.
    public static let clearLength = 12

    /// The first counter of a new sending sequence: CLOCK_REALTIME in nanoseconds (a vDSO
    /// read, once per session).
    public static func start() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(max(ts.tv_sec, 0)) &* 1_000_000_000 &+ UInt64(max(ts.tv_nsec, 0))
    }
}

/// A bounded record of recent payload tags for senders without a recognisable sequence
/// (AES-CBC IVs drawn at random by a non-svrd sender): direct mapped, 4,096 entries of
/// (tag, HMAC time window), 64 KiB per router. A tag seen again within the §6.3 trailer's
/// acceptance (its window or the one after) is a replay. Lossy: an entry overwritten by a
/// colliding tag forgets the older packet, so this is best effort; svrd senders use the
/// exact sequence above instead.
final class RecentTagFilter {
    static let entries = 4096
    private let tags: UnsafeMutablePointer<UInt64>
    private let windows: UnsafeMutablePointer<UInt64>

    init() {
        tags = .allocate(capacity: Self.entries)
        tags.initialize(repeating: 0, count: Self.entries)
        windows = .allocate(capacity: Self.entries)
        windows.initialize(repeating: 0, count: Self.entries)
    }

    deinit {
        tags.deallocate()
        windows.deallocate()
    }

    /// Records `tag` seen in HMAC window `window` (> 0); false if it was recorded in this
    /// window or the previous one.
    @inline(__always)
    func accept(tag: UInt64, window: UInt64) -> Bool {
        let i = Int(truncatingIfNeeded: (tag &* 0x9E37_79B9_7F4A_7C15) >> 52) & (Self.entries - 1)
        if windows[i] != 0 && tags[i] == tag && windows[i] &+ 1 >= window { return false }
        tags[i] = tag
        windows[i] = window
        return true
    }
}

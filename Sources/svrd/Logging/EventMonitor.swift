// Log events derived from counters. The data plane never logs per packet: once a second it
// publishes a copy of its counters, and the main thread turns their growth into one line
// per kind of event ("authentication failures count=+12 total=40"), rate-limited per kind.

import Logging
import SVR

/// At most `burst` lines per key within `window` seconds; the lines held back are counted
/// and reported (`suppressed=N`) on the next line of that key that is let through.
struct RateLimiter {
    let burst: Int
    let window: Double
    private var state: [String: (start: Double, sent: Int, suppressed: Int)] = [:]

    init(burst: Int = 5, window: Double = 60) {
        self.burst = burst
        self.window = window
    }

    /// nil: suppress this line (it is counted). Otherwise: how many lines of `key` were
    /// suppressed since the last one let through (to report on this line).
    mutating func allow(_ key: String, now: Double) -> Int? {
        var s = state[key] ?? (start: now, sent: 0, suppressed: 0)
        if now - s.start >= window { s.start = now; s.sent = 0 }
        guard s.sent < burst else {
            s.suppressed += 1
            state[key] = s
            return nil
        }
        let held = s.suppressed
        s.sent += 1
        s.suppressed = 0
        state[key] = s
        return held
    }
}

/// Turns counter growth into log events (main thread only).
struct EventMonitor {
    struct Rule: Sendable {
        let event: String
        let level: Logger.Level
        let message: String
        let reasons: [DropReason]
    }

    static let rules: [Rule] = [
        Rule(event: "authentication-failed", level: .warning, message: "authentication failures (packets whose HMAC did not verify)",
             reasons: [.authenticationFailed]),
        Rule(event: "decrypt-failed", level: .warning, message: "decryption failures",
             reasons: [.decryptFailed]),
        Rule(event: "unknown-peer", level: .warning, message: "SVR packets from addresses that are no configured peer",
             reasons: [.unknownPeer]),
        Rule(event: "replay", level: .warning, message: "replayed or too old packets",
             reasons: [.replay]),
        Rule(event: "session-refused", level: .notice, message: "sessions refused",
             reasons: [.noTenant, .noService, .notAllowed, .noRoute, .sessionLimit, .portsExhausted]),
    ]

    private var reported: [UInt64]?
    private(set) var limiter: RateLimiter

    init(limiter: RateLimiter = RateLimiter()) { self.limiter = limiter }

    /// Logs what grew since the last line of each kind. `now` in seconds (monotonic).
    mutating func update(_ counters: EngineCounters, now: Double, logger: Logger) {
        // The engine's counters start at zero with svrd: what the first sample holds is new too.
        var last = reported ?? [UInt64](repeating: 0, count: counters.drops.count)
        for rule in Self.rules {
            let grown = rule.reasons.map { counters.drops($0) &- last[Int($0.rawValue)] }
            let count = grown.reduce(0, &+)
            guard count > 0 else { continue }
            // Suppressed: the growth stays unreported and is added to the next line.
            guard let suppressed = limiter.allow(rule.event, now: now) else { continue }
            var meta: Logger.Metadata = [
                "event": "\(rule.event)", "count": "\(count)",
                "total": "\(rule.reasons.map { counters.drops($0) }.reduce(0, &+))",
            ]
            if rule.reasons.count > 1 {
                for (reason, n) in zip(rule.reasons, grown) where n > 0 { meta["\(reason)"] = "\(n)" }
            }
            if suppressed > 0 { meta["suppressed"] = "\(suppressed)" }
            logger.log(level: rule.level, "\(rule.message)", metadata: meta)
            for r in rule.reasons { last[Int(r.rawValue)] = counters.drops(r) }
        }
        reported = last
    }
}

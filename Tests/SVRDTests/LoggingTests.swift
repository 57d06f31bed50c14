// svrd's log lines: the syslog priority prefix journald reads, stable key=value fields and
// JSON lines; the events derived from counters (authentication and decryption failures,
// refused sessions, …) with their rate limit; and, from a running daemon, the start, reload,
// stop and restart events (captured lines, each with its priority).

import Glibc
import Logging
import SVR
@testable import svrd
import TestSupport
import Testing

/// Collects the lines a handler writes.
final class LineCapture: @unchecked Sendable {
    private var storage: [String] = []
    private let lock = NSLockLike()
    var lines: [String] { lock.locked { storage } }
    func append(_ s: String) { lock.locked { storage.append(s) } }
    func clear() { lock.locked { storage.removeAll() } }
    func logger(_ config: Config.Log = Config.Log(), journal: String? = "8:4242", level: Logger.Level = .info) -> Logger {
        Logger(label: "svrd") { _ in SVRDLogHandler(level: level, config: config, environment: journal) { self.append($0) } }
    }
}

/// A pthread mutex (the tests avoid Foundation).
final class NSLockLike: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&m)
        defer { pthread_mutex_unlock(&m) }
        return body()
    }
}

@Suite struct LoggingTests {
    @Test func underJournaldEachLineStartsWithItsPriority() {
        let cap = LineCapture()
        let log = cap.logger()
        log.warning("SIGHUP: configuration reload is not implemented yet", metadata: ["event": "reload", "applied": "false"])
        log.notice("svrd starting", metadata: ["event": "start", "router": "branch-a", "config": "/etc/svrd/svrd.toml"])
        log.error("svrd stopped with an error", metadata: ["error": "cannot open \"eth9\": no such device"])
        log.debug("not shown at info")
        #expect(cap.lines == [
            "<4>level=warning event=reload msg=\"SIGHUP: configuration reload is not implemented yet\" applied=false\n",
            "<5>level=notice event=start msg=\"svrd starting\" config=/etc/svrd/svrd.toml router=branch-a\n",
            "<3>level=error msg=\"svrd stopped with an error\" error=\"cannot open \\\"eth9\\\": no such device\"\n",
        ])
    }

    @Test func withoutJournaldLinesCarryTheirTimeAndNoPrefix() {
        let cap = LineCapture()
        cap.logger(journal: nil).info("svrd running", metadata: ["event": "ready"])
        let line = cap.lines.first ?? ""
        #expect(line.wholeMatch(of: /time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info event=ready msg="svrd running"\n/) != nil, "\(line)")
        // priority-prefix = "always" (e.g. a supervisor other than systemd that reads it)
        let always = LineCapture()
        always.logger(Config.Log(priorityPrefix: .always), journal: nil).critical("x")
        #expect(always.lines.first?.hasPrefix("<2>time=") == true)
        let never = LineCapture()
        never.logger(Config.Log(priorityPrefix: .never)).critical("x")  // under journald: no time either
        #expect(never.lines == ["level=critical msg=x\n"])
    }

    @Test func jsonLinesParseAndCarryPriorityAndFields() throws {
        let cap = LineCapture()
        cap.logger(Config.Log(format: .json, priorityPrefix: .never))
            .warning("authentication failures", metadata: ["event": "authentication-failed", "count": "3", "note": "a \"b\"\n\u{1}"])
        let line = try #require(cap.lines.first)
        #expect(line.hasPrefix("{\"time\":\"") && line.hasSuffix("}\n"))
        let doc = try JSON.parse(String(line.dropLast()))
        #expect(doc["priority"] == .int(4))
        #expect(doc["level"] == .string("warning"))
        #expect(doc["event"] == .string("authentication-failed"))
        #expect(doc["msg"] == .string("authentication failures"))
        #expect(doc["count"] == .string("3"))
        #expect(doc["note"] == .string("a \"b\"\n\u{1}"))
        let prefixed = LineCapture()
        prefixed.logger(Config.Log(format: .json)).info("x")
        #expect(prefixed.lines.first?.hasPrefix("<6>{\"time\":") == true)
    }

    @Test func configLogTable() throws {
        let base = HostStateModelTests.config
        let c = try Config.parse(text: base + "\n[log]\nformat = \"json\"\npriority-prefix = \"always\"\n", fileName: "t.toml")
        #expect(c.log == Config.Log(format: .json, priorityPrefix: .always))
        #expect(try Config.parse(text: base, fileName: "t.toml").log == Config.Log())
        do throws(ConfigErrors) {
            _ = try Config.parse(text: base + "\n[log]\nformat = \"xml\"\nlevel = \"debug\"\n", fileName: "t.toml")
            Issue.record("accepted a bad [log] table")
        } catch {
            let text = error.errors.map { "\($0)" }.joined(separator: "\n")
            #expect(text.contains("log.format") && text.contains("'text', 'json'"), "\(text)")
            #expect(text.contains("log.level"), "\(text)")
        }
    }

    static func counters(_ drops: [DropReason: UInt64]) -> EngineCounters {
        var c = EngineCounters()
        for (r, n) in drops { c.drops[Int(r.rawValue)] = n }
        return c
    }

    /// One captured line per counter-derived event, each with its priority.
    @Test func countersBecomeOneLinePerEventKind() {
        let cap = LineCapture()
        let log = cap.logger()
        var m = EventMonitor()
        m.update(Self.counters([.authenticationFailed: 7]), now: 0, logger: log)  // counted from 0 (svrd's start)
        #expect(cap.lines == ["<4>level=warning event=authentication-failed msg=\"authentication failures (packets whose HMAC did not verify)\" count=7 total=7\n"])
        cap.clear()
        m.update(Self.counters([.authenticationFailed: 19, .decryptFailed: 2, .unknownPeer: 1, .replay: 4,
                                .notAllowed: 5, .noTenant: 1]), now: 1, logger: log)
        #expect(cap.lines == [
            "<4>level=warning event=authentication-failed msg=\"authentication failures (packets whose HMAC did not verify)\" count=12 total=19\n",
            "<4>level=warning event=decrypt-failed msg=\"decryption failures\" count=2 total=2\n",
            "<4>level=warning event=unknown-peer msg=\"SVR packets from addresses that are no configured peer\" count=1 total=1\n",
            "<4>level=warning event=replay msg=\"replayed or too old packets\" count=4 total=4\n",
            "<5>level=notice event=session-refused msg=\"sessions refused\" count=6 no-tenant=1 not-allowed=5 total=6\n",
        ])
        // No growth, no line.
        m.update(Self.counters([.authenticationFailed: 19, .decryptFailed: 2, .unknownPeer: 1, .replay: 4,
                                .notAllowed: 5, .noTenant: 1]), now: 2, logger: log)
        #expect(cap.lines.count == 5)
    }

    /// A flood: 5 lines per minute per kind, then nothing; the next line after the window
    /// says how many lines were held back and carries their growth.
    @Test func eventsAreRateLimitedWithACountOfSuppressedLines() {
        let cap = LineCapture()
        let log = cap.logger()
        var m = EventMonitor(limiter: RateLimiter(burst: 5, window: 60))
        m.update(Self.counters([:]), now: 0, logger: log)
        for s in 1...30 {
            m.update(Self.counters([.authenticationFailed: UInt64(s * 10)]), now: Double(s), logger: log)
        }
        #expect(cap.lines.count == 5)
        #expect(cap.lines.allSatisfy { $0.contains("count=10 ") })
        m.update(Self.counters([.authenticationFailed: 700]), now: 61, logger: log)
        #expect(cap.lines.count == 6)
        // Lines 6…30 were held back (25), their growth (50 → 700) is on this line.
        #expect(cap.lines.last == "<4>level=warning event=authentication-failed msg=\"authentication failures (packets whose HMAC did not verify)\" count=650 suppressed=25 total=700\n")
    }
}

/// The daemon's own events, from `svrd run` in a namespace with JOURNAL_STREAM set (as
/// under systemd): start, ready, reload (SIGHUP), sessions refused (from the drop counters),
/// stop, and restart after a SIGKILL.
@Suite(.serialized) struct DaemonLoggingTests {
    @Test(.enabled(if: isRoot)) func startReloadStopAndRestartEvents() throws {
        try withTestRouter("l") { ns, dir, config, _ in
            let socket = "\(dir.path)/ctl/svrd.sock"
            let run = ["env", "JOURNAL_STREAM=8:4242", svrdBinary, "run", "--config", config]

            let first = try DaemonProcess(namespace: ns.name, command: run, logFile: "\(dir.path)/log1")
            defer { first.kill() }
            try #require(ns.waitForControl(socket: socket, process: first), "\(first.log)")
            first.signal(SIGHUP)
            // Packets from a source no tenant covers (the WAN address) into the TUN: refused
            // in the data plane (counted, not logged there), reported by the main thread.
            ns.sh("ping -c 3 -i 0.2 -W 1 -I 10.78.0.1 10.79.0.5")
            var refused = false
            for _ in 0..<50 where !refused {  // one line a second at most: until all 3 are reported
                usleep(100_000)
                refused = first.log.split(separator: "\n").contains { $0.contains("event=session-refused") && $0.hasSuffix(" total=3") }
            }
            let stats = ns.sh("\(svrdBinary) show stats --socket \(socket)")
            first.kill()  // SIGKILL: the socket stays behind
            let lines1 = first.log.split(separator: "\n")
            #expect(lines1.contains { $0.hasPrefix("<5>level=notice event=start msg=\"svrd starting\"") }, "\(first.log)")
            #expect(lines1.contains { $0.hasPrefix("<5>level=notice event=ready msg=\"svrd running\"") }, "\(first.log)")
            #expect(lines1.contains { $0.hasPrefix("<4>level=warning event=reload msg=") }, "\(first.log)")
            let refusals = lines1.filter { $0.hasPrefix("<5>level=notice event=session-refused msg=\"sessions refused\" count=") }
            #expect(refused && refusals.allSatisfy { $0.contains(" no-tenant=") }, "\(first.log)\n\(stats.output)")
            #expect(lines1.allSatisfy { $0.wholeMatch(of: /<[2-7]>level=[a-z]+ .*/) != nil }, "\(first.log)")

            let second = try DaemonProcess(namespace: ns.name, command: run, logFile: "\(dir.path)/log2")
            defer { second.kill() }
            try #require(ns.waitForControl(socket: socket, process: second), "\(second.log)")
            second.signal(SIGTERM)
            #expect(second.wait() == 0, "\(second.log)")
            let lines2 = second.log.split(separator: "\n")
            #expect(lines2.contains { $0.hasPrefix("<4>level=warning event=restart msg=\"restart after an unclean stop") }, "\(second.log)")
            #expect(lines2.contains { $0.hasPrefix("<5>level=notice event=stop msg=stopping signal=SIGTERM") }, "\(second.log)")
            #expect(lines2.contains { $0.hasPrefix("<5>level=notice event=stopped msg=\"svrd stopped\"") }, "\(second.log)")
        }
    }
}

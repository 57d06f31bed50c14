// Signals and systemd readiness.
//
// Signals: SIGTERM, SIGINT and SIGHUP are blocked in the main thread before any other
// thread starts (threads inherit the mask), so no thread is ever interrupted by them and no
// handler runs in an async-signal context; the main thread collects them with
// sigtimedwait(2) once the daemon runs (waking every 2 s for housekeeping). A signal that
// arrives during setup stays pending and is taken then, so a start interrupted by SIGTERM
// still removes what it created.
//
// Readiness: `Type=notify` without libsystemd: one datagram per state ("READY=1",
// "STOPPING=1", "STATUS=…") to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or an
// abstract name when it starts with '@').

import Glibc

enum Signals {
    static let handled: [Int32] = [SIGTERM, SIGINT, SIGHUP]

    /// Blocks the handled signals in the calling thread (call before starting threads).
    static func block() {
        var set = sigset_t()
        sigemptyset(&set)
        for s in handled { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits at most `milliseconds` for one of the handled signals; nil when none came.
    static func wait(milliseconds: Int) -> Int32? {
        var set = sigset_t()
        sigemptyset(&set)
        for s in handled { sigaddset(&set, s) }
        var ts = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
        let r = sigtimedwait(&set, nil, &ts)
        return r > 0 ? r : nil
    }

    static func name(_ sig: Int32) -> String {
        switch sig {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGHUP: "SIGHUP"
        default: "signal \(sig)"
        }
    }
}

enum SystemdNotify {
    /// The watchdog interval systemd asks for (`WatchdogSec=` → $WATCHDOG_USEC), in
    /// milliseconds, when it is meant for this process ($WATCHDOG_PID unset or ours).
    static var watchdogMilliseconds: Int? {
        guard let raw = getenv("WATCHDOG_USEC"), let usec = Int(String(cString: raw)), usec > 0 else { return nil }
        if let pid = getenv("WATCHDOG_PID"), Int32(String(cString: pid)) != getpid() { return nil }
        return max(usec / 1000, 1)
    }

    /// Sends `state` to $NOTIFY_SOCKET; does nothing when it is not set. Returns false on failure.
    @discardableResult
    static func send(_ state: String) -> Bool {
        guard let raw = getenv("NOTIFY_SOCKET") else { return true }
        let path = String(cString: raw)
        guard !path.isEmpty else { return true }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let message = Array(state.utf8)
        let n = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
        return n == message.count
    }
}

/// One svrd per network namespace: svrd's routes, rule, table 21330 and nftables table are
/// namespace-wide, so a second instance would take them over. The lock is an abstract Unix
/// socket name: abstract names belong to the network namespace, and the kernel releases it
/// when the process ends in any way (also SIGKILL), so it can never be stale.
enum NamespaceLock {
    static let name = "svrd.lock"

    /// Binds the name and keeps the socket open for the life of the process. False if
    /// another process holds it.
    static func acquire() -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return true }  // no lock possible: do not refuse to run
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = [UInt8(0)] + Array(name.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        if rc != 0 {
            close(fd)
            return errno != EADDRINUSE
        }
        return true  // fd intentionally kept open until exit
    }
}

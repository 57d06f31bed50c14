// Signals and systemd readiness.
//
// Signals: SIGTERM, SIGINT and SIGHUP are blocked in the main thread before any other
// thread starts (threads inherit the mask), so no thread is ever interrupted by them and no
// handler runs in an async-signal context; the main thread collects them with sigwait(2)
// once the daemon runs. A signal that arrives during setup stays pending and is taken by
// that sigwait, so a start interrupted by SIGTERM still removes what it created.
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

    /// Waits for one of the handled signals and returns it.
    static func wait() -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        for s in handled { sigaddset(&set, s) }
        var sig: Int32 = 0
        while sigwait(&set, &sig) != 0 {}
        return sig
    }

    /// Waits at most `seconds` for one of the handled signals; nil when none came.
    static func wait(seconds: Int) -> Int32? {
        var set = sigset_t()
        sigemptyset(&set)
        for s in handled { sigaddset(&set, s) }
        var ts = timespec(tv_sec: seconds, tv_nsec: 0)
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

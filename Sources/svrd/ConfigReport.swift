// What `svrd check` and `svrd run` print about a config file: every error (exit 1), or the
// warnings about settings not in effect (the config is valid, so these do not fail), each as
// one line on stderr. Reading is bounded in time: if it has not finished after
// `ConfigReport.deadlineMilliseconds` (10 s), svrd prints why and exits 1 (the pre-scan of
// `Config.FileLimits` makes this a backstop, not the normal case).

import ArgumentParser
import Glibc
import SVR
import Synchronization

enum ConfigReport {
    static let deadlineMilliseconds = 10_000

    /// Loads `path`, printing errors or warnings; throws `ExitCode(1)` on errors, and exits 1
    /// if reading takes longer than `deadlineMs`.
    static func load(_ path: String, deadlineMs: Int = deadlineMilliseconds) throws -> (config: Config, warnings: [ConfigWarning]) {
        let limit = deadlineMs % 1000 == 0 ? "\(deadlineMs / 1000) s" : "\(deadlineMs) ms"
        let watchdog = Watchdog(milliseconds: deadlineMs,
                                message: "\(path): reading the config took longer than \(limit); stopped\n")
        defer { watchdog.cancel() }
        do throws(ConfigErrors) {
            let loaded = try Config.loadWithWarnings(path: path)
            watchdog.cancel()
            if !loaded.warnings.isEmpty {
                let n = loaded.warnings.count
                writeStandardError(loaded.warnings.map { "\($0)\n" }.joined()
                    + "\(path): \(n) warning\(n == 1 ? "" : "s"): \(n == 1 ? "a setting" : "settings") not in effect yet\n")
            }
            return loaded
        } catch {
            watchdog.cancel()
            let text = error.errors.map { "\($0)\n" }.joined()
            let n = error.errors.count
            let count = n > Config.maxListedErrors ? "more than \(Config.maxListedErrors) errors" : "\(n) error\(n == 1 ? "" : "s")"
            writeStandardError(text + "\(path): \(count)\n")
            throw ExitCode(1)
        }
    }

    /// `stderr` is a C global Swift 6 rejects; write to fd 2 directly.
    static func writeStandardError(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            bytes = bytes.dropFirst(n)
        }
    }

    /// A thread that ends the process with `message` and exit status 1 unless cancelled in time.
    final class Watchdog {
        private let flag = Flag()
        private let thread: PosixThread?

        init(milliseconds: Int, message: String) {
            let flag = self.flag
            thread = try? PosixThread(name: "svr-config-wd") {
                for _ in 0..<(max(0, milliseconds) / 10) {
                    if flag.done.load(ordering: .acquiring) { return }
                    usleep(10_000)
                }
                if flag.done.load(ordering: .acquiring) { return }
                ConfigReport.writeStandardError(message)
                _exit(1)
            }
        }

        /// Stops the watchdog (idempotent); returns within 10 ms.
        func cancel() {
            flag.done.store(true, ordering: .releasing)
            thread?.join()
        }

        private final class Flag: Sendable {
            let done = Atomic<Bool>(false)
        }
    }
}

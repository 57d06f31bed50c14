// A dedicated OS thread for blocking work (data plane, control socket). Swift concurrency's
// cooperative pool must never block (guides/swift-on-linux.md, pitfall 17).

internal import CShim
import Glibc

/// A joinable pthread running one closure. `sending` moves thread-confined state into it.
final class PosixThread {
    private var thread = pthread_t()
    private var joined = false

    init(name: String, _ body: sending @escaping () -> Void) throws(DaemonError) {
        let box = Unmanaged.passRetained(Box(name: name, body: body))
        let rc = pthread_create(&thread, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            _ = svr_set_thread_name(box.name)
            box.body()
            return nil
        }, box.toOpaque())
        if rc != 0 {
            box.release()
            throw DaemonError("cannot start thread \(name)", errno: rc)
        }
    }

    /// Waits for the thread to end (idempotent).
    func join() {
        guard !joined else { return }
        joined = true
        pthread_join(thread, nil)
    }

    private final class Box: @unchecked Sendable {
        let name: String
        let body: () -> Void
        init(name: String, body: @escaping () -> Void) { self.name = name; self.body = body }
    }
}

/// An error of the daemon itself, with errno when there is one.
struct DaemonError: Error, CustomStringConvertible {
    let message: String
    let errno: Int32
    init(_ message: String, errno: Int32 = 0) { self.message = message; self.errno = errno }
    var description: String {
        errno == 0 ? message : "\(message): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

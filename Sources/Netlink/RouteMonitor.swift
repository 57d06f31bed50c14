// Route change notifications (RTNLGRP_IPV4_ROUTE / RTNLGRP_IPV6_ROUTE).
//
// Two ways to read them:
// - `RouteMonitor.next(timeout:)`: a blocking, poll-based reader for a thread of your own;
// - `RouteMonitor.events()`: an AsyncThrowingStream fed by a dedicated pthread that owns the
//   monitor, so the Swift concurrency pool never blocks on the socket. The thread ends (and
//   closes the socket) within one poll interval after the consumer stops iterating.

internal import CShim
import Glibc
import Synchronization

/// A change to a routing table.
public enum RouteEvent: Sendable, Hashable {
    case added(Route)
    case removed(Route)
    /// The kernel dropped notifications (the socket buffer overflowed): re-read the tables.
    case overrun
}

/// A socket subscribed to route notifications of the creating thread's network namespace.
/// Not thread-safe: one reader at a time.
public final class RouteMonitor {
    private let socket: NetlinkSocket
    private var queued: [RouteEvent] = []

    /// Joins the route groups of `families`. The receive buffer is raised to
    /// `receiveBufferSize` bytes so that bursts (thousands of routes) fit.
    public init(families: Set<AddressFamily> = [.ipv4, .ipv6], receiveBufferSize: Int32 = 1 << 20) throws(NetlinkError) {
        socket = try NetlinkSocket(.route)
        if families.contains(.ipv4) { try socket.joinGroup(RTNL.groupIPv4Route) }
        if families.contains(.ipv6) { try socket.joinGroup(RTNL.groupIPv6Route) }
        var size = receiveBufferSize
        // Best effort: without it the default buffer (about 200 KB) still works for most bursts.
        _ = setsockopt(socket.fileDescriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The next route change. Waits at most `timeout` (nil: forever); nil when it passed.
    public func next(timeout: Duration? = nil) throws(NetlinkError) -> RouteEvent? {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while queued.isEmpty {
            var waitMilliseconds: Int32 = -1
            if let deadline {
                let left = ContinuousClock.now.duration(to: deadline)
                if left <= .zero { return nil }
                let (seconds, attoseconds) = left.components
                waitMilliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
            }
            do {
                _ = try socket.receiveNotifications(timeoutMilliseconds: waitMilliseconds) { message in
                    guard let route = Route(message) else { return }
                    queued.append(message.type == RTNL.newRoute ? .added(route) : .removed(route))
                }
            } catch where error.errno == ENOBUFS {
                queued.append(.overrun)
            }
        }
        return queued.removeFirst()
    }

    /// Opens a monitor in the calling thread's namespace and streams its events from a
    /// dedicated thread. The stream finishes with an error if the socket fails.
    public static func events(
        families: Set<AddressFamily> = [.ipv4, .ipv6], pollInterval: Duration = .milliseconds(100)
    ) throws(NetlinkError) -> AsyncThrowingStream<RouteEvent, any Error> {
        let monitor = try RouteMonitor(families: families)
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: RouteEvent.self)
        let stopped = StopFlag()
        continuation.onTermination = { _ in stopped.flag.store(true, ordering: .relaxed) }
        try startDetachedThread(name: "svr-routemon") {
            while !stopped.flag.load(ordering: .relaxed) {
                do {
                    if let event = try monitor.next(timeout: pollInterval) { continuation.yield(event) }
                } catch {
                    continuation.finish(throwing: error)
                    return
                }
            }
        }
        return stream
    }
}

private final class StopFlag: Sendable {
    let flag = Atomic<Bool>(false)
}

/// Carries a closure through pthread_create's `void *` (the one unchecked Sendable: the
/// closure was `sending`, so nothing else holds its state).
private final class ThreadBody: @unchecked Sendable {
    let name: String
    let run: () -> Void
    init(_ name: String, _ run: @escaping () -> Void) { self.name = name; self.run = run }
}

/// Starts a detached pthread running `body`.
private func startDetachedThread(name: String, _ body: sending @escaping () -> Void) throws(NetlinkError) {
    let box = Unmanaged.passRetained(ThreadBody(name, body))
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attributes, { arg in
        let body = Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue()
        _ = svr_set_thread_name(body.name)
        body.run()
        return nil
    }, box.toOpaque())
    guard rc == 0 else {
        box.release()
        throw NetlinkError(operation: "start thread \(name)", errno: rc)
    }
}

// Test helpers for root tests that need a network namespace of their own.
//
// Every namespace is named `svr…` (prefix rule of the project), created with `ip netns add`
// and removed by `close()` or `deinit`, so a failing test still cleans up. Work that must
// happen *inside* the namespace runs on a dedicated pthread that has called setns(2): Swift
// concurrency may move a task between threads, so setns on a pool thread would be unsafe.

import CShim
import Glibc
import Synchronization

/// True when the tests run as root (root tests are skipped otherwise, and CI runs as root).
public let isRoot: Bool = getuid() == 0

/// Output of a command run by the tests (tests may run `ip`, `nft`; `Sources/` never does).
public struct CommandResult: Sendable {
    public let status: Int32
    public let output: String
}

/// Runs `/bin/sh -c command`, capturing stdout and stderr together.
@discardableResult
public func shell(_ command: String) -> CommandResult {
    guard let pipe = popen("\(command) 2>&1", "r") else { return CommandResult(status: -1, output: "") }
    var out = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buffer, 1, buffer.count, pipe)
        if n <= 0 { break }
        out.append(contentsOf: buffer[0..<n])
    }
    let raw = pclose(pipe)
    let status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    return CommandResult(status: status, output: String(decoding: out, as: UTF8.self))
}

private let namespaceCounter = Atomic<Int>(0)

/// A named network namespace for one test. Lo is up, IPv6 is disabled unless asked for.
public final class TestNamespace: @unchecked Sendable {
    public let name: String
    private let closed = Atomic<Bool>(false)

    /// Creates `svr<tag><pid>x<n>`; the name stays within 15 characters where possible.
    public init(_ tag: String = "t", ipv6: Bool = false) throws(TestSupportError) {
        let n = namespaceCounter.wrappingAdd(1, ordering: .relaxed).newValue
        self.name = "svr\(tag)\(getpid())x\(n)"
        let r = shell("ip netns add \(name)")
        guard r.status == 0 else { throw TestSupportError("ip netns add \(name): \(r.output)") }
        shell("ip -n \(name) link set lo up")
        if !ipv6 {
            shell("ip netns exec \(name) sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        }
    }

    /// Runs `command` inside the namespace (`ip netns exec NAME sh -c …`).
    @discardableResult
    public func sh(_ command: String) -> CommandResult {
        shell("ip netns exec \(name) sh -c '\(command.replacingSingleQuotes())'")
    }

    /// Runs `body` on a fresh thread that has joined this namespace, and waits for it.
    /// Sockets, netlink sockets and TUN devices created in `body` belong to the namespace.
    public func run<T>(_ body: () throws -> T) throws -> T {
        let fd = open("/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TestSupportError("open /run/netns/\(name): errno \(errno)") }
        defer { Glibc.close(fd) }
        return try withoutActuallyEscaping(body) { escapable in
            var result: Result<T, any Error>?
            try onThread {
                let rc = svr_setns_net(fd)
                if rc < 0 {
                    result = .failure(TestSupportError("setns: errno \(-rc)"))
                    return
                }
                result = Result { try escapable() }
            }
            return try result!.get()
        }
    }

    /// Deletes the namespace (idempotent).
    public func close() {
        if closed.exchange(true, ordering: .relaxed) { return }
        shell("ip netns pids \(name) | xargs -r kill -9; ip netns del \(name)")
    }

    deinit { close() }
}

/// Runs `body` on a new pthread and joins it. The body may change thread state (setns,
/// unshare) without affecting the caller.
public func onThread(_ body: () -> Void) throws {
    try withoutActuallyEscaping(body) { escapable in
        let box = Unmanaged.passRetained(ThreadBox(escapable))
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let box = Unmanaged<ThreadBox>.fromOpaque(arg!).takeRetainedValue()
            box.body()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw TestSupportError("pthread_create: \(rc)")
        }
        pthread_join(thread, nil)
    }
}

private final class ThreadBox: @unchecked Sendable {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// An error of the test scaffolding itself (not of the code under test).
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension String {
    fileprivate func replacingSingleQuotes() -> String {
        var out = ""
        for c in self {
            if c == "'" { out += "'\\''" } else { out.append(c) }
        }
        return out
    }
}

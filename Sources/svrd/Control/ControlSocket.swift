// The local control API: a Unix stream socket (root-only: directory 0700, socket 0600).
// Protocol: the client sends one line of space-separated words ("show sessions"), the server
// answers with one JSON document and closes. Served on its own thread; requests are small.

import Glibc
import SVR

/// Default control socket path.
let defaultControlSocketPath = "/run/svrd/svrd.sock"

/// Serves control requests until `stop()`.
final class ControlServer {
    let path: String
    private let listenFD: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let thread: PosixThread

    /// Binds the socket (replacing a stale one) and starts serving with `handler`.
    init(path: String, handler: @escaping @Sendable ([String]) -> JSON) throws(DaemonError) {
        self.path = path
        let dir = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !dir.isEmpty {
            if mkdir(dir, 0o700) != 0, Glibc.errno != EEXIST {
                throw DaemonError("cannot create control directory \(dir)", errno: Glibc.errno)
            }
        }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let maxLen = MemoryLayout.size(ofValue: addr.sun_path) - 1
        guard path.utf8.count <= maxLen else { throw DaemonError("control socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw DaemonError("control socket", errno: Glibc.errno) }
        // A socket file left by a killed daemon: remove it if nobody answers on it.
        if access(path, F_OK) == 0 {
            if (try? ControlClient.request(path: path, words: ["ping"], timeoutMs: 200)) != nil {
                Glibc.close(fd)
                throw DaemonError("another svrd is already serving \(path)")
            }
            unlink(path)
        }
        let oldMask = umask(0o177)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        let bindErrno = Glibc.errno
        umask(oldMask)
        guard rc == 0 else { Glibc.close(fd); throw DaemonError("bind control socket \(path)", errno: bindErrno) }
        chmod(path, 0o600)
        guard listen(fd, 16) == 0 else { Glibc.close(fd); throw DaemonError("listen on \(path)", errno: Glibc.errno) }
        var p: (Int32, Int32) = (0, 0)
        guard withUnsafeMutablePointer(to: &p, { $0.withMemoryRebound(to: Int32.self, capacity: 2) { pipe($0) } }) == 0 else {
            Glibc.close(fd)
            throw DaemonError("pipe", errno: Glibc.errno)
        }
        listenFD = fd
        wakeRead = p.0
        wakeWrite = p.1
        let (lfd, wfd) = (fd, p.0)
        thread = try PosixThread(name: "svr-control") {
            ControlServer.serve(listenFD: lfd, wakeFD: wfd, handler: handler)
        }
    }

    /// Stops serving, joins the thread and removes the socket file.
    func stop() {
        _ = write(wakeWrite, "x", 1)
        thread.join()
        Glibc.close(listenFD)
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
        unlink(path)
    }

    private static func serve(listenFD: Int32, wakeFD: Int32, handler: @Sendable ([String]) -> JSON) {
        var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        while true {
            fds[0].revents = 0
            fds[1].revents = 0
            let n = poll(&fds, 2, -1)
            if n < 0 { if Glibc.errno == EINTR { continue }; return }
            if fds[1].revents != 0 { return }
            guard fds[0].revents != 0 else { continue }
            let c = accept(listenFD, nil, nil)
            guard c >= 0 else { continue }
            var tv = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            if let line = readLine(c) {
                let words = line.split(separator: " ").map(String.init)
                let reply = handler(words).serialized() + "\n"
                writeAll(c, Array(reply.utf8))
            }
            Glibc.close(c)
        }
    }
}

/// The client side, used by `svrd show …` / `svrctl`.
enum ControlClient {
    static func request(path: String, words: [String], timeoutMs: Int = 5000) throws(DaemonError) -> JSON {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        guard path.utf8.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw DaemonError("control socket path too long") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw DaemonError("socket", errno: Glibc.errno) }
        defer { Glibc.close(fd) }
        var tv = timeval(tv_sec: timeoutMs / 1000, tv_usec: (timeoutMs % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let e = Glibc.errno
            let hint = e == ENOENT || e == ECONNREFUSED ? " (is svrd running?)" : e == EACCES ? " (run as root)" : ""
            throw DaemonError("cannot connect to \(path)\(hint)", errno: e)
        }
        writeAll(fd, Array((words.joined(separator: " ") + "\n").utf8))
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 { if Glibc.errno == EINTR { continue }; throw DaemonError("reading the reply", errno: Glibc.errno) }
            if n == 0 { break }
            data.append(contentsOf: buf[0..<n])
        }
        do {
            return try JSON.parse(String(decoding: data, as: UTF8.self))
        } catch {
            throw DaemonError("svrd sent an unreadable reply: \(error)")
        }
    }
}

private func readLine(_ fd: Int32) -> String? {
    var out = [UInt8]()
    var b: UInt8 = 0
    while out.count < 4096 {
        let n = read(fd, &b, 1)
        if n <= 0 { return out.isEmpty ? nil : String(decoding: out, as: UTF8.self) }
        if b == 0x0a { break }
        out.append(b)
    }
    return String(decoding: out, as: UTF8.self)
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var off = 0
    while off < bytes.count {
        let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 { if Glibc.errno == EINTR { continue }; return }
        off += n
    }
}

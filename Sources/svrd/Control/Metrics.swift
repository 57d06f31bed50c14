// The Prometheus endpoint (`[metrics] listen = "ADDRESS:PORT"`): a minimal HTTP/1.0 server
// on its own thread. Every request (GET /metrics, or any path) is answered with the counters
// of one data-plane snapshot in the Prometheus text format, then the connection is closed.
// It binds only the configured address; it never reads more than the request head.

import Glibc
import SVR

final class MetricsServer {
    private let listenFD: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let thread: PosixThread

    init(endpoint: Config.Endpoint, render: @escaping @Sendable () -> String) throws(DaemonError) {
        let v4 = endpoint.address.isIPv4
        let fd = socket(v4 ? AF_INET : AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw DaemonError("metrics socket", errno: Glibc.errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var rc: Int32
        if case .v4(let a) = endpoint.address {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = endpoint.port.bigEndian
            sa.sin_addr.s_addr = a.value.bigEndian
            rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        } else {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = endpoint.port.bigEndian
            _ = inet_pton(AF_INET6, "\(endpoint.address)", &sa.sin6_addr)
            rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        }
        guard rc == 0, listen(fd, 16) == 0 else {
            let e = Glibc.errno
            Glibc.close(fd)
            throw DaemonError("cannot listen on \(endpoint) for metrics", errno: e)
        }
        var p: (Int32, Int32) = (0, 0)
        guard withUnsafeMutablePointer(to: &p, { $0.withMemoryRebound(to: Int32.self, capacity: 2) { pipe($0) } }) == 0 else {
            Glibc.close(fd)
            throw DaemonError("pipe", errno: Glibc.errno)
        }
        listenFD = fd
        wakeRead = p.0
        wakeWrite = p.1
        let (lfd, wfd) = (fd, p.0)
        thread = try PosixThread(name: "svr-metrics") { MetricsServer.serve(listenFD: lfd, wakeFD: wfd, render: render) }
    }

    func stop() {
        _ = write(wakeWrite, "x", 1)
        thread.join()
        Glibc.close(listenFD)
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    private static func serve(listenFD: Int32, wakeFD: Int32, render: @Sendable () -> String) {
        var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        while true {
            fds[0].revents = 0
            fds[1].revents = 0
            if poll(&fds, 2, -1) < 0 { if Glibc.errno == EINTR { continue }; return }
            if fds[1].revents != 0 { return }
            guard fds[0].revents != 0 else { continue }
            let c = accept(listenFD, nil, nil)
            guard c >= 0 else { continue }
            var tv = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            // Read the request head (up to the blank line, at most 8 KiB); its content does not matter.
            var head = [UInt8]()
            var buf = [UInt8](repeating: 0, count: 1024)
            while head.count < 8192 {
                let n = read(c, &buf, buf.count)
                if n <= 0 { break }
                head += buf[0..<n]
                if head.count >= 4 && head.suffix(4) == [13, 10, 13, 10] || head.suffix(2) == [10, 10] { break }
            }
            let body = render()
            let reply = "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
            var bytes = Array(reply.utf8)[...]
            while !bytes.isEmpty {
                let n = bytes.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
                if n < 0 && Glibc.errno == EINTR { continue }
                guard n > 0 else { break }
                bytes = bytes.dropFirst(n)
            }
            Glibc.close(c)
        }
    }

    /// The Prometheus text for one snapshot (nil: the data plane did not answer).
    static func text(_ snap: DataPlaneSnapshot?) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: UInt64)]) {
            out += "# HELP svrd_\(name) \(help)\n# TYPE svrd_\(name) \(type)\n"
            for s in samples { out += "svrd_\(name)\(s.labels.isEmpty ? "" : "{\(s.labels)}") \(s.value)\n" }
        }
        guard let snap else {
            metric("up", "gauge", "1 when the data plane answered this scrape.", [("", 0)])
            return out
        }
        let c = snap.engine.counters
        metric("up", "gauge", "1 when the data plane answered this scrape.", [("", 1)])
        metric("lan_received_packets_total", "counter", "Packets read from the LAN TUN.", [("", c.lanReceivedPackets)])
        metric("lan_received_bytes_total", "counter", "Bytes read from the LAN TUN.", [("", c.lanReceivedBytes)])
        metric("lan_sent_packets_total", "counter", "Packets delivered to the LAN TUN.", [("", c.lanSentPackets)])
        metric("lan_sent_bytes_total", "counter", "Bytes delivered to the LAN TUN.", [("", c.lanSentBytes)])
        metric("wan_received_packets_total", "counter", "SVR packets received from peers.", [("", c.wanReceivedPackets)])
        metric("wan_received_bytes_total", "counter", "SVR bytes received from peers.", [("", c.wanReceivedBytes)])
        metric("wan_sent_packets_total", "counter", "SVR packets sent to peers.", [("", c.wanSentPackets)])
        metric("wan_sent_bytes_total", "counter", "SVR bytes sent to peers.", [("", c.wanSentBytes)])
        metric("sessions", "gauge", "Sessions held now.", [("", UInt64(snap.engine.sessions.count))])
        metric("sessions_created_total", "counter", "Sessions created.", [("", c.sessionsCreated)])
        metric("sessions_expired_total", "counter", "Sessions expired.", [("", c.sessionsExpired)])
        metric("fragments_sent_total", "counter", "SVR fragments sent (pieces of packets larger than a path's MTU).", [("", c.fragmentsSent)])
        metric("datagrams_reassembled_total", "counter", "Datagrams put back together from LAN IP fragments or SVR fragments.", [("", c.datagramsReassembled)])
        metric("too_big_sent_total", "counter", "ICMP fragmentation-needed sent to LAN senders.", [("", c.tooBigSent)])
        metric("path_mtu_reductions_total", "counter", "Path MTU reductions learned from the underlay's ICMP.", [("", c.pathMTUReductions)])
        metric("path_mtu", "gauge", "The MTU of the path to a peer now.", snap.engine.peers.map { ("peer=\"\($0.name)\"", UInt64($0.mtu)) })
        metric("drops_total", "counter", "Packets dropped, by reason.", DropReason.allCases.map { ("reason=\"\($0)\"", c.drops($0)) })
        metric("tun_write_drops_total", "counter", "Packets the LAN TUN did not take.", [("", snap.io.tunWriteDrops)])
        let io = snap.io
        let names = snap.interfaces.map { "interface=\"\($0)\"" }
        metric("interface_received_packets_total", "counter", "Packets received on a WAN interface.", names.indices.map { (names[$0], io.wanReceived[$0]) })
        metric("interface_sent_packets_total", "counter", "Packets sent on a WAN interface.", names.indices.map { (names[$0], io.wanSent[$0]) })
        metric("interface_send_drops_total", "counter", "Packets the WAN sender could not send.", names.indices.map { (names[$0], io.wanSendDrops[$0]) })
        metric("interface_kernel_drops_total", "counter", "Packets the kernel dropped before svrd read them.", names.indices.map { (names[$0], io.wanKernelDrops[$0]) })
        metric("peer_sessions", "gauge", "Sessions per peer.", snap.engine.peers.map { ("peer=\"\($0.name)\",status=\"\($0.status)\"", UInt64($0.sessions)) })
        metric("service_sessions", "gauge", "Sessions per service.", snap.engine.services.map { ("service=\"\($0.name)\"", UInt64($0.sessions)) })
        return out
    }
}

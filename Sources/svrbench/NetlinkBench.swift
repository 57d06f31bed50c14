// `svrbench rtnl [COUNT]`: time per rtnetlink route add / replace / delete (each one request
// that waits for the kernel's ACK) and per dump, in a private network namespace that a
// dedicated thread unshares (it disappears with the thread: no cleanup, no `ip`).

internal import CShim
import Glibc
import Netlink

enum NetlinkBench {
    static func run(_ args: [String]) {
        let count = args.first.flatMap(Int.init) ?? 1000
        guard count > 0, count <= 65536 else {
            print("usage: svrbench rtnl [COUNT (1...65536), default 1000]")
            exit(2)
        }
        let failure = onOwnThread {
            let rc = svr_unshare_net()
            if rc < 0 { return "unshare(CLONE_NEWNET): errno \(-rc) (run as root)" }
            do throws(NetlinkError) {
                try measure(count)
                return nil
            } catch {
                return error.description
            }
        }
        if let failure {
            print("rtnl: \(failure)")
            exit(1)
        }
    }

    private static func measure(_ count: Int) throws(NetlinkError) {
        let rt = try RouteNetlink()
        try rt.createLink(named: "svrb0", kind: .veth(peer: "svrb1"))
        let index = try rt.linkIndex(named: "svrb0")
        try rt.setLink(index, up: true)
        try rt.setLink(try rt.linkIndex(named: "svrb1"), up: true)
        try rt.addAddress(NetlinkPrefix("192.0.2.1/24")!, interfaceIndex: index)

        // 10.x.y.0/24 and 2001:db8:x:y::/64, i = x * 256 + y.
        let v4 = (0..<count).map { i in
            NetlinkPrefix(.v4(0x0a00_0000 | UInt32(i) << 8), length: 24)!
        }
        let v6 = (0..<count).map { i in
            NetlinkPrefix(.v6(high: 0x2001_0db8_0000_0000 | UInt64(i), low: 0), length: 64)!
        }
        let gateway = NetlinkAddress("192.0.2.254")!

        print("rtnl: \(count) routes per row, one request + ACK each, private namespace, veth svrb0 up")
        print("operation".padding(40) + "mean".padding(11) + "p50".padding(11) + "p99".padding(11)
              + "max".padding(11) + "ops/s (1/mean)")
        try row("add IPv4 device route (main)", v4) { p throws(NetlinkError) in
            try rt.addRoute(Route(destination: p, interfaceIndex: index))
        }
        try row("replace it with a gateway route", v4) { p throws(NetlinkError) in
            try rt.replaceRoute(Route(destination: p, gateway: gateway))
        }
        try dumpRow("dump main table (\(count + 1) routes)") { () throws(NetlinkError) in
            try rt.routes(table: RouteTable.main, family: .ipv4).count
        }
        try row("delete IPv4 route", v4) { p throws(NetlinkError) in
            try rt.deleteRoute(Route(destination: p))
        }
        try row("add IPv4 gateway route (table 1000)", v4) { p throws(NetlinkError) in
            try rt.addRoute(Route(destination: p, gateway: gateway, table: 1000))
        }
        try row("delete it", v4) { p throws(NetlinkError) in
            try rt.deleteRoute(Route(destination: p, table: 1000))
        }
        try row("add IPv6 device route (table 100)", v6) { p throws(NetlinkError) in
            try rt.addRoute(Route(destination: p, interfaceIndex: index, table: 100))
        }
        try row("delete IPv6 route", v6) { p throws(NetlinkError) in
            try rt.deleteRoute(Route(destination: p, table: 100))
        }
    }

    /// Runs `body` once per prefix, timing each call; prints mean, median, p99, max and rate.
    private static func row(
        _ name: String, _ prefixes: [NetlinkPrefix], _ body: (NetlinkPrefix) throws(NetlinkError) -> Void
    ) throws(NetlinkError) {
        var samples: [Duration] = []
        samples.reserveCapacity(prefixes.count)
        let clock = ContinuousClock()
        for p in prefixes {
            let start = clock.now
            try body(p)
            samples.append(clock.now - start)
        }
        report(name, samples)
    }

    private static func dumpRow(_ name: String, _ body: () throws(NetlinkError) -> Int) throws(NetlinkError) {
        var samples: [Duration] = []
        let clock = ContinuousClock()
        for _ in 0..<20 {
            let start = clock.now
            _ = try body()
            samples.append(clock.now - start)
        }
        report(name + " ×20", samples)
    }

    private static func report(_ name: String, _ samples: [Duration]) {
        let sorted = samples.map(\.microseconds).sorted()
        let mean = sorted.reduce(0, +) / Double(sorted.count)
        let p50 = sorted[sorted.count / 2]
        let p99 = sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
        func us(_ v: Double) -> String { String(Int(v.rounded())) + " µs" }
        print(name.padding(40) + us(mean).padding(11) + us(p50).padding(11) + us(p99).padding(11)
              + us(sorted[sorted.count - 1]).padding(11) + String(Int((1_000_000 / mean).rounded())))
    }

    /// Runs `body` on a new pthread (whose namespace changes stay with it) and joins it.
    private static func onOwnThread(_ body: @escaping () -> String?) -> String? {
        final class Box: @unchecked Sendable {
            let body: () -> String?
            var result: String?
            init(_ body: @escaping () -> String?) { self.body = body }
        }
        let box = Box(body)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeUnretainedValue()
            box.result = box.body()
            return nil
        }, Unmanaged.passUnretained(box).toOpaque())
        guard rc == 0 else { return "pthread_create: errno \(rc)" }
        pthread_join(thread, nil)
        return box.result
    }
}

extension Duration {
    fileprivate var microseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1e6 + Double(attoseconds) / 1e12
    }
}

// nftables micro-benchmark: time per atomic table replace, per delete and per rule dump,
// measured in a private network namespace (a pthread that unshared its netns; the
// namespace disappears with the thread, so the host's ruleset is never touched).

internal import CShim
import Glibc
import Netlink

enum NftBench {
    static let about = "nftables batch replace / delete / rule dump latency (root, private netns)"

    /// The measured table: 3 chains, 20 rules, one set of 100 IPv4 addresses.
    static func table() -> NftTable {
        let peers = (0..<100).map { NftSetElement.address(NftAddress(10, 99, UInt8($0 / 250), UInt8($0 % 250 + 1))) }
        var input = [NftRule]()
        for i in 0..<10 {
            let ports = UInt16(16000 + i * 100)...UInt16(16099 + i * 100)
            input.append(NftRule(tag: "in\(i)", [.sourceAddress(.set("peers")), .destinationPort(.udp, .range(ports))],
                                 then: [.counter, .jump("svr")]))
        }
        var forward = [NftRule]()
        for i in 0..<6 {
            forward.append(NftRule(tag: "fw\(i)", [.outputInterfaceName("svr\(i)")], then: [.counter, .clampMSS(1360)]))
        }
        let svr = [
            NftRule(tag: "est", [.ctState([.established, .related])], then: [.accept]),
            NftRule(tag: "mark", [.mark(0x5356)], then: [.counter, .accept]),
            NftRule(tag: "net", [.sourceAddress(.prefix(NftPrefix("10.99.0.0/16")!))], then: [.setMark(0x5356)]),
            NftRule(tag: "drop", then: [.counter, .drop]),
        ]
        return NftTable(name: "svrbench", family: .inet, chains: [
            NftChain(name: "svr", rules: svr),
            NftChain(name: "input", type: .filter, hook: .input, rules: input),
            NftChain(name: "forward", type: .filter, hook: .forward, rules: forward),
        ], sets: [NftSet(name: "peers", keyType: .ipv4Address, elements: peers)])
    }

    static func run(_ args: [String]) {
        let iterations = args.first.flatMap { Int($0) } ?? 200
        guard getuid() == 0 else {
            print("nft: needs root (CAP_NET_ADMIN) for a private network namespace")
            exit(1)
        }
        runOnThread {
            let rc = svr_unshare_net()
            guard rc == 0 else {
                print("nft: unshare(CLONE_NEWNET) failed: errno \(-rc)")
                return
            }
            do {
                try measure(iterations: iterations)
            } catch {
                print("nft: \(error)")
            }
        }
    }

    private static func measure(iterations: Int) throws(NetlinkError) {
        let t = table()
        let bytes = try Nftables.batchBytes(for: t)
        let nft = try Nftables()
        let rules = t.chains.reduce(0) { $0 + $1.rules.count }
        print("table: \(t.chains.count) chains, \(rules) rules, 1 set of \(t.sets[0].elements.count) elements;"
              + " batch \(bytes.count) bytes; \(iterations) iterations each\n")

        var encode = [Double](), first = [Double](), replace = [Double](), dump = [Double](), delete = [Double]()
        for _ in 0..<iterations {
            let e0 = now()
            _ = try Nftables.batchBytes(for: t)
            encode.append(now() - e0)
        }
        for i in 0..<iterations {
            var t0 = now()
            try nft.replace(t)  // creates the table
            first.append(now() - t0)
            t0 = now()
            try nft.replace(t)  // replaces the existing table
            replace.append(now() - t0)
            t0 = now()
            let listed = try nft.rules(table: t.name, family: t.family)
            dump.append(now() - t0)
            if i == 0, listed.count != rules { print("warning: dumped \(listed.count) rules, expected \(rules)") }
            t0 = now()
            try nft.delete(table: t.name, family: t.family)
            delete.append(now() - t0)
        }
        print("operation                          mean µs    p50 µs    p99 µs")
        row("encode batch (userspace only)", encode)
        row("replace, table absent (create)", first)
        row("replace, table present", replace)
        row("dump rules + counters", dump)
        row("delete table", delete)
    }

    private static func row(_ name: String, _ samples: [Double]) {
        let s = samples.sorted()
        let mean = s.reduce(0, +) / Double(s.count)
        func f(_ v: Double) -> String {
            let text = String(Int((v * 10).rounded()) / 10) + "." + String(Int((v * 10).rounded()) % 10)
            return String(repeating: " ", count: max(0, 10 - text.count)) + text
        }
        let p99 = s[min(s.count - 1, Int(Double(s.count) * 0.99))]
        print(name.padding(32) + f(mean) + f(s[s.count / 2]) + f(p99))
    }

    /// Monotonic time in microseconds.
    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) * 1e6 + Double(ts.tv_nsec) / 1e3
    }

    /// Runs `body` on a new pthread (whose namespace changes stay private) and joins it.
    private static func runOnThread(_ body: @escaping @Sendable () -> Void) {
        final class Box: Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(Box(body))
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            print("nft: pthread_create failed: \(rc)")
            return
        }
        pthread_join(thread, nil)
    }
}

// The shared topology of the end-to-end tests: like deploy/lab/lab.sh, but with names unique
// per test. Routers form a chain (A → … → B), each attached to one WAN router in the middle
// by its own link; the WAN router forwards plain IP between the waypoints and has no route to
// any LAN, so LAN traffic can only cross through svrd.
//
//   client (10.1.0.10, guest 10.1.1.10) ── A ─┐            ┌─ B ── server (10.100.0.10, 10.100.1.10)
//                                             ├── wan ─────┤
//                                      hub ───┘ (chain only)
//
// Router i's WAN link is 172.16.(i+1).0/24: the router is .2 (device svrwan0), the WAN router .1
// (device svrw<i>). LANs: client side 10.1.0.0/24 (staff) and 10.1.1.0/24 (guests, allowed
// nowhere); server side 10.100.0.0/24 (service `cloud`, default encryption) and 10.100.1.0/24
// (service `clear`, encryption "none"). Everything is removed by `close()`, which the tests
// call in a `defer`.

import Glibc
import TestSupport
import Testing

/// The package root, from this file's path (Tests/E2ETests/E2ELab.swift).
let packageRoot: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

/// The debug svrd binary the tests spawn (`swift build` puts it there).
let svrdBinary = packageRoot + "/.build/debug/svrd"

/// python3 for the helpers (the system one when present: no pyenv shims in namespaces).
let python3: String = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3"

let udpEchoScript = packageRoot + "/deploy/lab/udpecho.py"

/// The E2E tests run whenever we are root (CI is). A missing `svrd` binary fails them:
/// `swift build` builds it next to the tests.
let e2eEnabled: Bool = isRoot

enum Addr {
    static let client = "10.1.0.10"
    static let guest = "10.1.1.10"
    static let server = "10.100.0.10"
    static let clearServer = "10.100.1.10"
    static let lanAddresses = [client, guest, server, clearServer, "10.1.0.1", "10.1.1.1", "10.100.0.1", "10.100.1.1"]
    static func wan(_ i: Int) -> String { "172.16.\(i + 1).2" }
    static func wanGateway(_ i: Int) -> String { "172.16.\(i + 1).1" }
}

/// A running svrd inside a router namespace.
struct Daemon {
    var pid: Int32
    var log: String
}

final class E2ELab {
    enum Transport: String, CustomStringConvertible, Sendable {
        case native, udp
        var description: String { rawValue }
    }

    let client: TestNamespace
    let wan: TestNamespace
    /// With `midLink`: a second WAN router holding the last router's link, joined to `wan`
    /// by the link `svrmid0` ↔ `svrmid1` whose MTU `setPathMTU` changes.
    let wan2: TestNamespace?
    let server: TestNamespace
    /// Router namespaces in chain order: A, [hub,] B.
    let routers: [TestNamespace]
    let routerNames: [String]
    let transport: Transport
    let work: String
    private var daemons: [Int: Daemon] = [:]
    private var helpers: [Int32] = []
    private var privateKeys: [String] = []
    private var publicKeys: [String] = []
    private var closed = false
    /// Extra lines for every router's `[router]` table (e.g. `refused-sessions = "silent"`).
    let routerExtra: String

    /// Rewrites router i's TOML before it is written (nil: the standard config).
    let configEdit: (@Sendable (Int, String) -> String)?

    /// Builds the namespaces and links (daemons are started by `start()`). `configEdit`
    /// may change each router's config (e.g. a service's policy) before it is checked.
    /// - Parameter midLink: split the WAN router in two joined by a link of its own (two
    ///   routers only): its MTU (`setPathMTU`) constrains the path while every router's own
    ///   WAN device keeps MTU 1500, as on the internet.
    init(routers count: Int = 2, transport: Transport = .native, midLink: Bool = false,
         configEdit: (@Sendable (Int, String) -> String)? = nil, routerExtra: String = "") throws {
        // One digit of router index in the namespace names (the reaper below relies on it).
        precondition(count >= 2 && count <= 10 && (!midLink || count == 2))
        _ = staleLabsReaped
        self.transport = transport
        self.configEdit = configEdit
        self.routerExtra = routerExtra
        var made: [TestNamespace] = []
        // If anything below fails, the namespaces made so far go away with their deinit.
        client = try TestNamespace("ec"); made.append(client)
        wan = try TestNamespace("ew"); made.append(wan)
        wan2 = midLink ? try TestNamespace("em") : nil
        if let wan2 { made.append(wan2) }
        server = try TestNamespace("es"); made.append(server)
        var rs: [TestNamespace] = []
        for i in 0..<count { rs.append(try TestNamespace("er\(i)")) }
        routers = rs
        routerNames = (0..<count).map { i in i == 0 ? "router-a" : i == count - 1 ? "router-b" : "hub-\(i)" }
        let dir = "/tmp/svrd-e2e.\(getpid()).\(client.name)"
        work = dir
        try run("mkdir -p \(dir) /run/svrd-e2e && chmod 700 \(dir)")
        do { try build() } catch { close(); throw error }
    }

    var a: TestNamespace { routers[0] }
    var b: TestNamespace { routers[routers.count - 1] }

    private func build() throws {
        let last = routers.count - 1
        // LAN links
        try run("ip -n \(client.name) link add svrcli0 type veth peer name svrlan0 netns \(a.name)")
        try run("ip -n \(b.name) link add svrlan0 type veth peer name svrsrv0 netns \(server.name)")
        try run("ip -n \(client.name) addr add \(Addr.client)/24 dev svrcli0")
        try run("ip -n \(client.name) addr add \(Addr.guest)/24 dev svrcli0")
        try run("ip -n \(a.name) addr add 10.1.0.1/24 dev svrlan0")
        try run("ip -n \(a.name) addr add 10.1.1.1/24 dev svrlan0")
        try run("ip -n \(b.name) addr add 10.100.0.1/24 dev svrlan0")
        try run("ip -n \(b.name) addr add 10.100.1.1/24 dev svrlan0")
        try run("ip -n \(server.name) addr add \(Addr.server)/24 dev svrsrv0")
        try run("ip -n \(server.name) addr add \(Addr.clearServer)/24 dev svrsrv0")
        // WAN links
        for (i, r) in routers.enumerated() {
            let w = i == last ? (wan2 ?? wan) : wan
            try run("ip -n \(r.name) link add svrwan0 type veth peer name svrw\(i) netns \(w.name)")
            try run("ip -n \(r.name) addr add \(Addr.wan(i))/24 dev svrwan0")
            try run("ip -n \(w.name) addr add \(Addr.wanGateway(i))/24 dev svrw\(i)")
        }
        if let wan2 {
            try run("ip -n \(wan.name) link add svrmid0 type veth peer name svrmid1 netns \(wan2.name)")
            try run("ip -n \(wan.name) addr add 172.16.100.1/24 dev svrmid0")
            try run("ip -n \(wan2.name) addr add 172.16.100.2/24 dev svrmid1")
        }
        for ns in [client, wan, server] + routers + (wan2.map { [$0] } ?? []) {
            try run("for d in $(ip -n \(ns.name) -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -v '^lo$'); do ip -n \(ns.name) link set $d up; done")
        }
        for ns in routers + [wan] + (wan2.map { [$0] } ?? []) {
            try run("ip netns exec \(ns.name) sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")
        }
        if let wan2 {
            try run("ip -n \(wan.name) route add 172.16.\(last + 1).0/24 via 172.16.100.2")
            try run("ip -n \(wan2.name) route add 172.16.0.0/16 via 172.16.100.1")
        }
        try run("ip -n \(client.name) route add 10.100.0.0/16 via 10.1.0.1")
        try run("ip -n \(server.name) route add 10.1.0.0/16 via 10.100.0.1")
        for (i, r) in routers.enumerated() {
            try run("ip -n \(r.name) route add 172.16.0.0/16 via \(Addr.wanGateway(i))")
        }
        _ = last
        // keys
        for _ in routers {
            let k = try run("\(svrdBinary) genkey").trimmed
            privateKeys.append(k)
            publicKeys.append(try run("printf '%s\\n' '\(k)' | \(svrdBinary) pubkey").trimmed)
        }
        for i in routers.indices {
            let path = configPath(i)
            try writeFile(path, configEdit.map { $0(i, config(i)) } ?? config(i))
            let check = shell("\(svrdBinary) check --config \(path)")
            guard check.status == 0 else { throw TestSupportError("svrd check \(path):\n\(check.output)") }
        }
    }

    /// Sets the MTU of the middle link (`midLink` labs): the path MTU between the routers.
    func setPathMTU(_ mtu: Int) throws {
        guard let wan2 else { throw TestSupportError("setPathMTU needs a lab with midLink") }
        try run("ip -n \(wan.name) link set svrmid0 mtu \(mtu) && ip -n \(wan2.name) link set svrmid1 mtu \(mtu)")
    }

    func configPath(_ i: Int) -> String { "\(work)/\(routerNames[i]).toml" }

    /// Rewrites router `i`'s config with `extra` TOML appended (e.g. a `[limits]` table);
    /// it applies from the next `startDaemon(i)`.
    func reconfigure(_ i: Int, extra: String) throws {
        try writeFile(configPath(i), config(i) + "\n" + extra + "\n")
        let check = shell("\(svrdBinary) check --config \(configPath(i))")
        guard check.status == 0 else { throw TestSupportError("svrd check \(configPath(i)):\n\(check.output)") }
    }

    /// The MAC address of `device` in `ns`.
    func mac(_ ns: TestNamespace, _ device: String) throws -> String {
        try run("ip -n \(ns.name) -br link show \(device) | awk '{print $3}'").trimmed
    }

    /// `svrd show stats --json` of router `i`, one number out of it: `path` is a Python
    /// expression over the document `d`, e.g. `d["sessions"]["active"]`; nil when unreadable.
    func stat(_ i: Int, _ path: String) -> Int? {
        let r = shell("\(svrdBinary) show stats --json --socket \(socketPath(i)) | \(python3) -c 'import json,sys; d=json.load(sys.stdin); print(int(\(path)))'")
        guard r.status == 0 else { return nil }
        return Int(r.output.trimmed)
    }
    func socketPath(_ i: Int) -> String { "/run/svrd-e2e/\(routers[i].name).sock" }

    /// The TOML of router `i` in the chain.
    func config(_ i: Int) -> String {
        let last = routers.count - 1
        var peers: [Int] = []
        if i > 0 { peers.append(i - 1) }
        if i < last { peers.append(i + 1) }
        var t = """
            [router]
            name = "\(routerNames[i])"
            private-key = "\(privateKeys[i])"
            lan-device = "svr0"
            lan-address = "10.255.\(i).1/32"
            \(routerExtra)

            [[interface]]
            name = "svrwan0"
            address = "\(Addr.wan(i))"
            neighborhood = "internet"

            """
        for p in peers {
            t += """

                [[peer]]
                name = "\(routerNames[p])"
                public-key = "\(publicKeys[p])"
                waypoints = ["\(Addr.wan(p))"]
                transport = "\(transport)"

                """
        }
        t += """

            [[tenant]]
            name = "staff"
            \(i == 0 ? "prefixes = [\"10.1.0.0/24\"]" : "")

            [[tenant]]
            name = "guests"
            \(i == 0 ? "prefixes = [\"10.1.1.0/24\"]" : "")

            [[tenant]]
            name = "servers"
            \(i == last ? "prefixes = [\"10.100.0.0/16\"]" : "")

            [[service]]
            name = "cloud"
            prefixes = ["10.100.0.0/24"]
            tenants = ["staff"]

            [[service]]
            name = "clear"
            prefixes = ["10.100.1.0/24"]
            tenants = ["staff"]
            service-policy = "clear"

            [[service]]
            name = "branch"
            prefixes = ["10.1.0.0/16"]
            tenants = ["servers"]

            [[service-policy]]
            name = "clear"
            encryption = "none"

            """
        for service in ["cloud", "clear"] {
            t += "\n[[service-route]]\nservice = \"\(service)\"\n"
            t += i == last ? "local = true\n" : "peer = \"\(routerNames[i + 1])\"\n"
        }
        t += "\n[[service-route]]\nservice = \"branch\"\n"
        t += i == 0 ? "local = true\n" : "peer = \"\(routerNames[i - 1])\"\n"
        t += "\n[control]\nsocket = \"\(socketPath(i))\"\n"
        return t
    }

    // ---- daemons ---------------------------------------------------------------------------

    /// Starts svrd on every router and waits until each is ready.
    func start() throws {
        for i in routers.indices { try startDaemon(i) }
    }

    /// Starts svrd in router `i` and waits (up to 20 s) for its TUN and its control socket.
    func startDaemon(_ i: Int) throws {
        let log = "\(work)/\(routerNames[i]).\(daemons.count).log"
        let pid = try spawn(routers[i], "\(svrdBinary) run --config \(configPath(i))", log: log)
        daemons[i] = Daemon(pid: pid, log: log)
        let deadline = now() + 20
        while true {
            let tun = shell("ip -n \(routers[i].name) link show svr0").status == 0
            if tun && shell("\(svrdBinary) show stats --socket \(socketPath(i))").status == 0 { break }
            guard processAlive(pid) else {
                throw TestSupportError("svrd in \(routers[i].name) exited:\n\(tail(log))")
            }
            guard now() < deadline else { throw TestSupportError("svrd in \(routers[i].name) not ready after 20 s:\n\(tail(log))") }
            usleep(100_000)
        }
        // The egress returns replies through its TUN: svrd routes the `branch` prefix into it.
        // (Checked by routesInstalled(); nothing is added here.)
    }

    func daemon(_ i: Int) -> Daemon? { daemons[i] }

    /// SIGKILLs router `i`'s svrd (no cleanup by the daemon) and waits for it to die.
    func killDaemon(_ i: Int) {
        guard let d = daemons[i] else { return }
        kill(d.pid, SIGKILL)
        waitDead(d.pid, seconds: 5)
        daemons[i] = nil
    }

    /// SIGTERMs router `i`'s svrd and waits up to `seconds`; true when it exited in time.
    @discardableResult
    func stopDaemon(_ i: Int, seconds: Double = 5) -> Bool {
        guard let d = daemons[i] else { return true }
        kill(d.pid, SIGTERM)
        let ok = waitDead(d.pid, seconds: seconds)
        if !ok { kill(d.pid, SIGKILL); waitDead(d.pid, seconds: 2) }
        daemons[i] = nil
        return ok
    }

    /// What svrd left behind in router `i`'s namespace (empty when clean): its TUN, any
    /// nftables table, its control socket.
    func leftovers(_ i: Int) -> [String] {
        var out: [String] = []
        if shell("ip -n \(routers[i].name) link show svr0").status == 0 { out.append("TUN svr0") }
        let tables = shell("ip netns exec \(routers[i].name) nft list tables")
        if tables.status == 0 && !tables.output.trimmed.isEmpty { out.append("nft: \(tables.output.trimmed)") }
        if access(socketPath(i), F_OK) == 0 { out.append("socket \(socketPath(i))") }
        return out
    }

    /// `svrd show WHAT` of router `i`.
    func show(_ i: Int, _ what: String) -> CommandResult {
        shell("\(svrdBinary) show \(what) --socket \(socketPath(i))")
    }

    /// The number of drops counted under `reason` ("not-allowed") by router `i`, from
    /// `svrd show stats --json`; nil when the JSON cannot be read.
    func drops(_ i: Int, _ reason: String) -> Int? {
        let r = shell("\(svrdBinary) show stats --json --socket \(socketPath(i)) | \(python3) \(packageRoot)/deploy/lab/dropcount.py \(reason)")
        guard r.status == 0 else { return nil }
        return Int(r.output.trimmed)
    }

    // ---- helpers in the end hosts ----------------------------------------------------------

    /// Starts a background process in `ns`; it is stopped by `close()`.
    @discardableResult
    func helper(_ ns: TestNamespace, _ command: String, name: String) throws -> Int32 {
        let pid = try spawn(ns, command, log: "\(work)/\(name).log")
        helpers.append(pid)
        return pid
    }

    /// Serves `<work>/www` over HTTP on port 8080 (all server addresses) and waits for it.
    func startHTTPServer() throws {
        try run("mkdir -p \(work)/www")
        try helper(server, "\(python3) -m http.server 8080 --bind 0.0.0.0 --directory \(work)/www", name: "http")
        try waitUntil(10, "HTTP server") {
            server.sh("\(python3) -c \"import socket; socket.create_connection(('\(Addr.server)', 8080), 1)\"").status == 0
        }
    }

    /// Writes `megabytes` of random data to `<work>/www/<name>` and returns its sha256.
    func makeBlob(_ name: String, megabytes: Int) throws -> String {
        try run("mkdir -p \(work)/www && head -c \(megabytes * 1024 * 1024) /dev/urandom > \(work)/www/\(name)")
        return try run("sha256sum \(work)/www/\(name) | cut -d' ' -f1").trimmed
    }

    /// Downloads `http://address:8080/name` from the client (optionally from `source`) and
    /// returns the sha256 of what arrived, or nil on failure.
    func download(_ name: String, from address: String = Addr.server, source: String? = nil, timeout: Int = 60) -> String? {
        let out = "\(work)/dl-\(name)"
        let iface = source.map { "--interface \($0) " } ?? ""
        let r = client.sh("curl -sS --fail --max-time \(timeout) \(iface)-o \(out) http://\(address):8080/\(name)")
        guard r.status == 0 else { return nil }
        let sum = shell("sha256sum \(out) | cut -d' ' -f1; rm -f \(out)").output.split(separator: "\n").first.map(String.init)
        return sum
    }

    /// UDP echo on port 9000 of both server addresses (one socket per address, so each reply
    /// leaves from the address its request went to).
    func startUDPEcho() throws {
        for address in [Addr.server, Addr.clearServer] {
            try helper(server, "\(python3) \(udpEchoScript) server \(address) 9000", name: "udpecho-\(address)")
        }
        usleep(300_000)
    }

    /// Sends `count` datagrams with `payload` to `address`:9000 from the client and expects
    /// every echo back.
    func udpExchange(to address: String = Addr.server, count: Int = 10, payload: String = "svrd-e2e", source: String? = nil) -> CommandResult {
        client.sh("\(python3) \(udpEchoScript) client \(address) 9000 \(count) \(payload) \(source ?? "")")
    }

    func ping(_ address: String = Addr.server, count: Int = 3, source: String? = nil) -> CommandResult {
        let src = source.map { "-I \($0) " } ?? ""
        return client.sh("ping -c \(count) -i 0.2 -W 2 \(src)\(address)")
    }

    // ---- capture ---------------------------------------------------------------------------

    /// Captures on the WAN router's link to router `i` while `body` runs (at most `maxPackets`
    /// packets, at most 60 s) and returns the decoded packets.
    func capture(onLinkTo i: Int = 0, maxPackets: Int = 40000, _ body: () throws -> Void) throws -> [CapturedPacket] {
        let file = "\(work)/wan-\(i)-\(now()).pcap"
        let log = file + ".log"
        let pid = try spawn(wan, "timeout -s INT 60 tcpdump -n -U -s 0 -c \(maxPackets) -i svrw\(i) -w \(file)", log: log)
        defer { if processAlive(pid) { kill(pid, SIGKILL) } }
        try waitUntil(10, "tcpdump") { shell("grep -q 'listening on' \(log)").status == 0 }
        try body()
        usleep(300_000)
        // `timeout` forwards SIGINT to tcpdump, which flushes and exits
        kill(pid, SIGINT)
        waitDead(pid, seconds: 5)
        return try Pcap.read(path: file)
    }

    // ---- teardown --------------------------------------------------------------------------

    /// Stops every daemon (SIGTERM) and helper, deletes the namespaces and the work
    /// directory. Returns what svrd left behind on SIGTERM (empty when clean).
    @discardableResult
    func close() -> [String] {
        if closed { return [] }
        closed = true
        var left: [String] = []
        for i in daemons.keys.sorted() {
            if !stopDaemon(i) { left.append("\(routerNames[i]): svrd did not exit within 5 s of SIGTERM") }
            left += leftovers(i).map { "\(routerNames[i]): \($0)" }
        }
        for pid in helpers where processAlive(pid) { kill(pid, SIGKILL); waitDead(pid, seconds: 2) }
        for ns in [client, wan, server] + routers + (wan2.map { [$0] } ?? []) { ns.close() }
        shell("rm -rf \(work); rmdir /run/svrd-e2e 2>/dev/null")
        return left
    }

    deinit { close() }

    // ---- small tools -----------------------------------------------------------------------

    /// Runs a host command, throwing with its output when it fails.
    @discardableResult
    func run(_ command: String) throws -> String {
        let r = shell(command)
        guard r.status == 0 else { throw TestSupportError("`\(command)` failed (\(r.status)): \(r.output)") }
        return r.output
    }

    private func spawn(_ ns: TestNamespace, _ command: String, log: String) throws -> Int32 {
        // `ip netns exec` execs the command, so $! is the command's own PID.
        let r = shell("ip netns exec \(ns.name) \(command) > \(log) 2>&1 < /dev/null & echo $!")
        guard r.status == 0, let pid = Int32(r.output.trimmed) else {
            throw TestSupportError("cannot start `\(command)` in \(ns.name): \(r.output)")
        }
        return pid
    }

    func tail(_ log: String) -> String { shell("tail -n 20 \(log)").output }
}

/// Removes what an aborted earlier run (test process killed, so no `defer` ran) left: the
/// namespaces `svre{c,w,s,rN}<pid>x<n>` of a process that no longer exists, the processes
/// inside them, their work directories and sockets. Runs once per test process. N is one
/// digit: with `r[0-9]+` the router index swallowed the PID's leading digits, the "PID" left
/// (e.g. 9) did not exist, and a test process starting reaped the live labs of another.
let staleLabsReaped: Bool = {
    let script = #"""
        for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^svre(c|w|m|s|r[0-9])[0-9]+x[0-9]+$'); do
          pid=$(echo "$ns" | sed -E 's/^svre(c|w|m|s|r[0-9])([0-9]+)x[0-9]+$/\2/')
          [ -d /proc/$pid ] && continue
          for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL $p 2>/dev/null; done
          ip netns del "$ns" 2>/dev/null
          rm -rf /tmp/svrd-e2e.$pid.* /run/svrd-e2e/svre*$pid"x"*.sock
        done
        """#
    shell(script)
    return true
}()

// ---- free helpers ---------------------------------------------------------------------------

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

/// True while `pid` exists and is not a zombie.
func processAlive(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    guard let f = fopen("/proc/\(pid)/stat", "r") else { return false }
    defer { fclose(f) }
    var buf = [CChar](repeating: 0, count: 512)
    guard fgets(&buf, 512, f) != nil else { return false }
    let line = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    // "pid (comm) S ...": the state follows the last ')'
    guard let close = line.lastIndex(of: ")") else { return true }
    let rest = line[line.index(after: close)...].drop { $0 == " " }
    return rest.first != "Z"
}

@discardableResult
func waitDead(_ pid: Int32, seconds: Double) -> Bool {
    let deadline = now() + seconds
    while processAlive(pid) {
        if now() > deadline { return false }
        usleep(50_000)
    }
    return true
}

func waitUntil(_ seconds: Double, _ what: String, _ condition: () -> Bool) throws {
    let deadline = now() + seconds
    while !condition() {
        guard now() < deadline else { throw TestSupportError("timed out after \(seconds) s waiting for \(what)") }
        usleep(100_000)
    }
}

func writeFile(_ path: String, _ text: String) throws {
    guard let f = fopen(path, "w") else { throw TestSupportError("cannot write \(path)") }
    defer { fclose(f) }
    fputs(text, f)
    chmod(path, 0o600)
}

extension String {
    var trimmed: String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}

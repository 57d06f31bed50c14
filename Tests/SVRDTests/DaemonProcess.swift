// Scaffolding of the daemon tests: the built `svrd` binary, configs written to a private
// directory, and `svrd run` processes started inside a test namespace that are always
// killed (SIGKILL) when the test ends, also on failure.

import Glibc
import TestSupport

/// `<package root>/.build/debug/svrd`, found from this file's path.
let svrdBinary: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)  // Tests/SVRDTests/DaemonProcess.swift
    return parts.joined(separator: "/") + "/.build/debug/svrd"
}()

/// A scratch directory (mode 0700) removed by `close()`.
final class ScratchDirectory {
    let path: String
    init() throws {
        var template = Array("/tmp/svrdtest.XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw TestSupportError("mkdtemp failed") }
        path = String(cString: p)
    }
    func write(_ name: String, _ text: String, mode: mode_t = 0o600) throws -> String {
        let file = "\(path)/\(name)"
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw TestSupportError("cannot write \(file)") }
        defer { Glibc.close(fd) }
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        fchmod(fd, mode)
        return file
    }
    func close() { shell("rm -rf '\(path)'") }
}

/// Keys from `svrd genkey` / `svrd pubkey`.
func newKeyPair() throws -> (privateKey: String, publicKey: String) {
    let priv = shell("\(svrdBinary) genkey")
    guard priv.status == 0 else { throw TestSupportError("svrd genkey: \(priv.output)") }
    let key = priv.output.split(separator: "\n").first.map(String.init) ?? ""
    let pub = shell("echo '\(key)' | \(svrdBinary) pubkey")
    guard pub.status == 0 else { throw TestSupportError("svrd pubkey: \(pub.output)") }
    return (key, pub.output.split(separator: "\n").first.map(String.init) ?? "")
}

/// A router config for the tests: LAN TUN `tun` 10.77.0.1/24, WAN interface `wan`
/// (10.78.0.1, a veth the test creates), one peer at 10.78.0.2, a service
/// 10.79.0.0/24 routed to the peer, a service 10.80.0.0/24 delivered locally with source
/// NAT, the control socket in `dir` and metrics on 127.0.0.1:9810.
func testConfig(dir: String, tun: String, wan: String, mtu: Int = 1400) throws -> String {
    let me = try newKeyPair()
    let peer = try newKeyPair()
    return """
        [router]
        name = "svrd-test"
        private-key = "\(me.privateKey)"
        lan-device = "\(tun)"
        lan-address = "10.77.0.1/24"
        mtu = \(mtu)

        [[interface]]
        name = "\(wan)"
        address = "10.78.0.1"
        neighborhood = "internet"

        [[peer]]
        name = "peer-1"
        public-key = "\(peer.publicKey)"
        waypoints = ["10.78.0.2"]

        [[tenant]]
        name = "lan"
        prefixes = ["10.77.0.0/24"]

        [[service]]
        name = "remote"
        prefixes = ["10.79.0.0/24"]
        tenants = ["lan"]

        [[service]]
        name = "local-web"
        prefixes = ["10.80.0.0/24"]
        protocol = "tcp"
        ports = ["80"]
        tenants = ["lan"]

        [[service-route]]
        service = "remote"
        peer = "peer-1"

        [[service-route]]
        service = "local-web"
        local = true
        source-nat = true

        [control]
        socket = "\(dir)/ctl/svrd.sock"

        [metrics]
        listen = "127.0.0.1:9810"
        """
}

/// One `svrd run` started with posix_spawn through `ip netns exec` (which execs, so the
/// pid is svrd's). Output goes to `logFile`. `kill()` is idempotent; the owner must call
/// it in a `defer`.
final class DaemonProcess {
    let pid: pid_t
    let logFile: String
    private var exited: Int32?

    convenience init(namespace: String, arguments: [String], logFile: String) throws {
        try self.init(namespace: namespace, command: [svrdBinary] + arguments, logFile: logFile)
    }

    /// Any command (`command[0]` and its arguments) in the namespace.
    init(namespace: String, command words: [String], logFile: String) throws {
        self.logFile = logFile
        let command = (["exec", "ip", "netns", "exec", namespace] + words)
            .map { "'\($0)'" }.joined(separator: " ") + " >'\(logFile)' 2>&1"
        var pid: pid_t = 0
        let words: [String] = ["/bin/sh", "-c", command]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let rc = posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ)
        guard rc == 0 else { throw TestSupportError("posix_spawn: \(rc)") }
        self.pid = pid
    }

    /// Sends `signal` (if still running).
    func signal(_ sig: Int32) { if exited == nil { Glibc.kill(pid, sig) } }

    /// Waits up to `seconds` for the exit; returns the exit status (128+signal if killed).
    @discardableResult
    func wait(seconds: Double = 15) -> Int32? {
        if let exited { return exited }
        let deadline = Double(time(nil)) + seconds
        while Double(time(nil)) <= deadline {
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid {
                let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                exited = code
                return code
            }
            usleep(20_000)
        }
        return nil
    }

    /// SIGKILL and reap (for cleanup on any path).
    func kill() {
        guard exited == nil else { return }
        Glibc.kill(pid, SIGKILL)
        wait(seconds: 5)
    }

    var log: String { shell("cat '\(logFile)'").output }
}

extension TestNamespace {
    /// Polls `svrd ping` on `socket` until it answers (true) or `seconds` pass.
    func waitForControl(socket: String, seconds: Int = 20, process: DaemonProcess) -> Bool {
        for _ in 0..<(seconds * 10) {
            if sh("\(svrdBinary) ping --socket \(socket)").status == 0 { return true }
            if process.wait(seconds: 0) != nil { return false }
            usleep(100_000)
        }
        return false
    }

    /// What svrd may have created: link, svrd routes, svrd rules, nft table.
    func svrdObjects(tun: String) -> (link: Bool, routes: [String], rules: [String], nftTables: Int) {
        let link = sh("ip link show \(tun)").status == 0
        let routes = (sh("ip route show proto 83 table all").output).split(separator: "\n").map(String.init)
        let rules = sh("ip rule show").output.split(separator: "\n").filter { $0.contains("0x5352") || $0.contains("21330") }.map(String.init)
        let tables = sh("nft list tables").output.split(separator: "\n").filter { $0 == "table inet svrd" }.count
        return (link, routes, rules, tables)
    }
}

/// A namespace (tag `tag`) with the WAN veth `svrw0` (10.78.0.1/24), a scratch directory
/// and a `testConfig` in it (TUN `svrt0`): `body` gets them and the config's text; all
/// removed afterwards.
func withTestRouter(_ tag: String, _ body: (TestNamespace, ScratchDirectory, _ config: String, _ text: String) throws -> Void) throws {
    let ns = try TestNamespace(tag)
    defer { ns.close() }
    let dir = try ScratchDirectory()
    defer { dir.close() }
    let veth = ns.sh("ip link add svrw0 type veth peer name svrw0p && ip link set svrw0p up && ip addr add 10.78.0.1/24 dev svrw0 && ip link set svrw0 up")
    guard veth.status == 0 else { throw TestSupportError("veth: \(veth.output)") }
    let text = try testConfig(dir: dir.path, tun: "svrt0", wan: "svrw0")
    try body(ns, dir, try dir.write("svrd.toml", text), text)
}

// Root tests of `svrd run` in a network namespace: a config with errors creates nothing;
// a start creates the TUN, routes, the return-path rule and the nftables table and answers
// on the control socket; SIGTERM removes everything; a restart after SIGKILL cleans up the
// leftovers and leaves exactly one of each; the not-root, missing-TUN and device-taken
// error paths exit with their own status and message.

import Glibc
import TestSupport
import Testing

@Suite(.serialized) struct DaemonTests {
    let tun = "svrt0"
    let wan = "svrw0"

    /// A namespace with the WAN veth, a scratch dir and a config; `body` runs with
    /// them, and both are removed afterwards.
    func withRouter(_ body: (TestNamespace, ScratchDirectory, String) throws -> Void) throws {
        let ns = try TestNamespace("d")
        defer { ns.close() }
        let dir = try ScratchDirectory()
        defer { dir.close() }
        try #require(ns.sh("ip link add \(wan) type veth peer name svrw0p && ip link set svrw0p up && ip addr add 10.78.0.1/24 dev \(wan) && ip link set \(wan) up").status == 0)
        let config = try dir.write("svrd.toml", try testConfig(dir: dir.path, tun: tun, wan: wan))
        try body(ns, dir, config)
    }

    @Test(.enabled(if: isRoot)) func configWithErrorsCreatesNothing() throws {
        try withRouter { ns, dir, good in
            let text = shell("cat \(good)").output.replacing("mtu = 1400", with: "mtu = 70000")
                .replacing("peer = \"peer-1\"", with: "peer = \"nobody\"")
            let bad = try dir.write("bad.toml", text)
            let check = ns.sh("\(svrdBinary) check --config \(bad)")
            let run = ns.sh("\(svrdBinary) run --config \(bad)")
            #expect(check.status == 1)
            #expect(run.status == 1)
            #expect(run.output == check.output)
            #expect(run.output.contains("router.mtu"))
            let o = ns.svrdObjects(tun: tun)
            #expect(!o.link && o.routes.isEmpty && o.rules.isEmpty && o.nftTables == 0)
            #expect(shell("test -e \(dir.path)/ctl").status != 0)
        }
    }

    @Test(.enabled(if: isRoot)) func startShowAndStopRemovesEverything() throws {
        try withRouter { ns, dir, config in
            let socket = "\(dir.path)/ctl/svrd.sock"
            let p = try DaemonProcess(namespace: ns.name, arguments: ["run", "--config", config], logFile: "\(dir.path)/log")
            defer { p.kill() }
            try #require(ns.waitForControl(socket: socket, process: p), "svrd did not start: \(p.log)")

            let link = ns.sh("ip -o addr show dev \(tun)").output
            #expect(link.contains("10.77.0.1/24"))
            #expect(ns.sh("ip -o link show dev \(tun)").output.contains(",UP"))
            #expect(ns.sh("ip -o link show dev \(tun)").output.contains("mtu 1400"))
            let o = ns.svrdObjects(tun: tun)
            #expect(o.routes.contains { $0.hasPrefix("10.79.0.0/24 dev \(tun)") })
            #expect(o.routes.contains { $0.hasPrefix("default dev \(tun) table 21330") })
            #expect(o.rules.count == 1 && o.rules[0].contains("fwmark 0x5352 lookup 21330"))
            #expect(o.nftTables == 1)
            let nft = ns.sh("nft list table inet svrd").output
            #expect(nft.contains("ip daddr 10.78.0.1"))
            #expect(nft.contains("notrack"))
            #expect(nft.contains("ct mark set 0x00005352"))
            #expect(nft.contains("maxseg size set 1360"))
            #expect(nft.contains("snat ip to 10.77.0.1"))

            let stats = ns.sh("\(svrdBinary) show stats --json --socket \(socket)")
            #expect(stats.status == 0)
            #expect(stats.output.contains("\"drops\""))
            #expect(stats.output.contains("\"router\": \"svrd-test\""))
            let services = ns.sh("\(svrdBinary) show services --socket \(socket)")
            #expect(services.status == 0 && services.output.contains("local-web"))
            let ctl = ns.sh("ln -sf \(svrdBinary) \(dir.path)/svrctl && \(dir.path)/svrctl show peers --socket \(socket)")
            #expect(ctl.status == 0 && ctl.output.contains("peer-1"), "\(ctl.output)")
            // Not root: the socket (0600 in a 0700 directory) refuses, with its own status.
            let nobody = ns.sh("setpriv --reuid=65534 --regid=65534 --clear-groups \(svrdBinary) show stats --socket \(socket)")
            #expect(nobody.status == 3, "\(nobody.output)")
            #expect(nobody.output.contains("run as root"))
            // A packet into the TUN is counted (dropped by the engine, never by the daemon).
            ns.sh("ping -c 1 -W 1 10.79.0.9 >/dev/null 2>&1")
            let after = ns.sh("\(svrdBinary) show stats --json --socket \(socket)").output
            #expect(after.contains("\"tun-read\": 1") || after.contains("\"tun-read\": 2"), "\(after)")

            p.signal(SIGTERM)
            #expect(p.wait() == 0, "\(p.log)")
            let gone = ns.svrdObjects(tun: tun)
            #expect(!gone.link && gone.routes.isEmpty && gone.rules.isEmpty && gone.nftTables == 0, "\(gone)")
            #expect(shell("test -e \(socket)").status != 0)
            #expect(p.log.contains("svrd stopped"))
        }
    }

    @Test(.enabled(if: isRoot)) func notifiesSystemdReadyAndStopping() throws {
        try withRouter { ns, dir, config in
            let path = "\(dir.path)/notify.sock"
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            try #require(fd >= 0)
            defer { Glibc.close(fd) }
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            try #require(rc == 0)
            var tv = timeval(tv_sec: 20, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            func receive() -> String {
                var buf = [UInt8](repeating: 0, count: 512)
                let n = recv(fd, &buf, buf.count, 0)
                return n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : ""
            }
            let p = try DaemonProcess(namespace: ns.name, command: ["env", "NOTIFY_SOCKET=\(path)", svrdBinary, "run", "--config", config],
                                      logFile: "\(dir.path)/log")
            defer { p.kill() }
            let ready = receive()
            #expect(ready.hasPrefix("READY=1"), "\(ready) \(p.log)")
            // Ready means forwarding: the TUN, the table and the control socket exist.
            #expect(ns.svrdObjects(tun: tun).nftTables == 1)
            #expect(ns.sh("\(svrdBinary) ping --socket \(dir.path)/ctl/svrd.sock").status == 0)
            p.signal(SIGTERM)
            #expect(receive() == "STOPPING=1")
            #expect(p.wait() == 0)
        }
    }

    @Test(.enabled(if: isRoot)) func restartAfterKillReconciles() throws {
        try withRouter { ns, dir, config in
            let socket = "\(dir.path)/ctl/svrd.sock"
            let first = try DaemonProcess(namespace: ns.name, arguments: ["run", "--config", config], logFile: "\(dir.path)/log1")
            defer { first.kill() }
            try #require(ns.waitForControl(socket: socket, process: first), "\(first.log)")
            first.kill()  // SIGKILL: nothing is cleaned up
            // The TUN and its routes went with the process; the rule and the table stay.
            let left = ns.svrdObjects(tun: tun)
            #expect(left.nftTables == 1 && left.rules.count == 1 && !left.link)
            // A svrd route left on another device (e.g. by an older config) is found by protocol.
            try #require(ns.sh("ip route add 10.99.0.0/24 dev \(wan) proto 83").status == 0)

            let second = try DaemonProcess(namespace: ns.name, arguments: ["run", "--config", config], logFile: "\(dir.path)/log2")
            defer { second.kill() }
            try #require(ns.waitForControl(socket: socket, process: second), "\(second.log)")
            let o = ns.svrdObjects(tun: tun)
            #expect(o.nftTables == 1)
            #expect(o.rules.count == 1)
            #expect(Set(o.routes).count == o.routes.count && o.routes.count == 2, "\(o.routes)")
            #expect(!o.routes.contains { $0.hasPrefix("10.99.0.0/24") })
            #expect(second.log.contains("removed leftovers"))
            second.signal(SIGINT)
            #expect(second.wait() == 0, "\(second.log)")
            let gone = ns.svrdObjects(tun: tun)
            #expect(!gone.link && gone.routes.isEmpty && gone.rules.isEmpty && gone.nftTables == 0)
        }
    }

    @Test(.enabled(if: isRoot)) func lanDeviceNameTakenByAnotherDevice() throws {
        try withRouter { ns, dir, config in
            try #require(ns.sh("ip link add \(tun) type veth peer name svrt0p").status == 0)
            let r = ns.sh("\(svrdBinary) run --config \(config)")
            #expect(r.status == 5, "\(r.output)")
            #expect(r.output.contains("LAN device name '\(tun)' is taken by a veth device"))
            let o = ns.svrdObjects(tun: tun)
            #expect(o.routes.isEmpty && o.rules.isEmpty && o.nftTables == 0)
        }
    }

    @Test(.enabled(if: isRoot)) func missingTunCloneDevice() throws {
        try withRouter { ns, dir, config in
            let r = ns.sh("\(svrdBinary) run --config \(config) --tun-clone-path /dev/net/no-such-tun")
            #expect(r.status == 4, "\(r.output)")
            #expect(r.output.contains("/dev/net/no-such-tun does not exist"))
            let o = ns.svrdObjects(tun: tun)
            #expect(!o.link && o.routes.isEmpty && o.rules.isEmpty && o.nftTables == 0)
        }
    }

    @Test(.enabled(if: isRoot)) func notRootIsRefused() throws {
        try withRouter { ns, dir, config in
            shell("chmod 0755 \(dir.path) && chmod 0644 \(config)")
            let r = ns.sh("setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \(svrdBinary) run --config \(config)")
            #expect(r.status == 3, "\(r.output)")
            #expect(r.output.contains("must run as root"))
            let o = ns.svrdObjects(tun: tun)
            #expect(!o.link && o.nftTables == 0)
        }
    }

    @Test func clientWithoutDaemonSaysSo() throws {
        let r = shell("\(svrdBinary) show stats --socket /tmp/svrd-no-such-dir/svrd.sock")
        #expect(r.status == 8, "\(r.output)")
        #expect(r.output.contains("is svrd running?"))
    }
}

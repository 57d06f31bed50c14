// Root tests of the whole daemon with real traffic: two `svrd run` processes in four
// namespaces (client ─ router A ═ router B ─ server). A is the ingress (its service route
// goes to B), B the egress (`local = true`). The server has no route back to the client's
// LAN, and B's main table has none either, so replies reach the client only through
// svrd's return path: with source NAT (de-NAT, then the ct mark) and without it (the ct mark
// and the fwmark rule alone; the server's default route points at B).

import Glibc
import TestSupport
import Testing

@Suite(.serialized) struct ForwardingTests {
    final class Lab {
        let client: TestNamespace, a: TestNamespace, b: TestNamespace, server: TestNamespace
        let dir: ScratchDirectory
        var processes: [DaemonProcess] = []

        init() throws {
            client = try TestNamespace("fc")
            a = try TestNamespace("fa")
            b = try TestNamespace("fb")
            server = try TestNamespace("fs")
            dir = try ScratchDirectory()
            let steps = [
                "ip -n \(client.name) link add svrc0 type veth peer name svrlan0 netns \(a.name)",
                "ip -n \(a.name) link add svrwan0 type veth peer name svrwan0 netns \(b.name)",
                "ip -n \(b.name) link add svrlan0 type veth peer name svrs0 netns \(server.name)",
                "ip -n \(client.name) addr add 10.1.0.10/24 dev svrc0",
                "ip -n \(a.name) addr add 10.1.0.1/24 dev svrlan0",
                "ip -n \(a.name) addr add 192.0.2.2/24 dev svrwan0",
                "ip -n \(b.name) addr add 192.0.2.3/24 dev svrwan0",
                "ip -n \(b.name) addr add 10.100.0.1/24 dev svrlan0",
                "ip -n \(server.name) addr add 10.100.0.10/24 dev svrs0",
                "ip -n \(client.name) link set svrc0 up", "ip -n \(a.name) link set svrlan0 up",
                "ip -n \(a.name) link set svrwan0 up", "ip -n \(b.name) link set svrwan0 up",
                "ip -n \(b.name) link set svrlan0 up", "ip -n \(server.name) link set svrs0 up",
                "ip netns exec \(a.name) sysctl -qw net.ipv4.ip_forward=1",
                "ip netns exec \(b.name) sysctl -qw net.ipv4.ip_forward=1",
                "ip -n \(client.name) route add default via 10.1.0.1",
            ]
            for s in steps {
                let r = shell(s)
                guard r.status == 0 else { close(); throw TestSupportError("\(s): \(r.output)") }
            }
        }

        func close() {
            for p in processes { p.kill() }
            for ns in [client, a, b, server] { ns.close() }
            dir.close()
        }

        /// Starts both routers (B with or without source NAT) and waits for both.
        func start(sourceNAT: Bool, transport: String = "native") throws {
            let ka = try newKeyPair(), kb = try newKeyPair()
            let configA = try dir.write("a.toml", """
                [router]
                name = "ra"
                private-key = "\(ka.privateKey)"
                lan-address = "10.1.255.1/32"
                [[interface]]
                name = "svrwan0"
                address = "192.0.2.2"
                neighborhood = "internet"
                [[peer]]
                name = "rb"
                public-key = "\(kb.publicKey)"
                waypoints = ["192.0.2.3"]
                transport = "\(transport)"
                [[tenant]]
                name = "staff"
                prefixes = ["10.1.0.0/24"]
                [[service]]
                name = "srv"
                prefixes = ["10.100.0.0/24"]
                tenants = ["staff"]
                [[service-route]]
                service = "srv"
                peer = "rb"
                [control]
                socket = "\(dir.path)/a/svrd.sock"
                """)
            let configB = try dir.write("b.toml", """
                [router]
                name = "rb"
                private-key = "\(kb.privateKey)"
                lan-address = "10.100.255.1/32"
                [[interface]]
                name = "svrwan0"
                address = "192.0.2.3"
                neighborhood = "internet"
                [[peer]]
                name = "ra"
                public-key = "\(ka.publicKey)"
                waypoints = ["192.0.2.2"]
                transport = "\(transport)"
                [[tenant]]
                name = "staff"
                [[service]]
                name = "srv"
                prefixes = ["10.100.0.0/24"]
                tenants = ["staff"]
                [[service-route]]
                service = "srv"
                local = true
                source-nat = \(sourceNAT)
                \(sourceNAT ? "nat-address = \"10.100.0.1\"" : "")
                [control]
                socket = "\(dir.path)/b/svrd.sock"
                """)
            let pa = try DaemonProcess(namespace: a.name, arguments: ["run", "--config", configA], logFile: "\(dir.path)/a.log")
            processes.append(pa)
            let pb = try DaemonProcess(namespace: b.name, arguments: ["run", "--config", configB], logFile: "\(dir.path)/b.log")
            processes.append(pb)
            guard a.waitForControl(socket: "\(dir.path)/a/svrd.sock", process: pa) else { throw TestSupportError("A: \(pa.log)") }
            guard b.waitForControl(socket: "\(dir.path)/b/svrd.sock", process: pb) else { throw TestSupportError("B: \(pb.log)") }
        }

        /// A one-shot TCP exchange: a python listener on the server echoes one line.
        func tcpEcho(port: Int = 8080) throws -> String {
            let server = try DaemonProcess(namespace: self.server.name, command: ["timeout", "15", "python3", "-c", """
                import socket
                s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("10.100.0.10", \(port))); s.listen(1)
                c, a = s.accept(); c.sendall(b"echo:" + c.recv(100) + (" from %s" % a[0]).encode()); c.close()
                """], logFile: "\(dir.path)/tcp-server.log")
            processes.append(server)
            usleep(500_000)
            return client.sh("timeout 10 python3 -c 'import socket; s = socket.create_connection((\"10.100.0.10\", \(port)), 5); s.sendall(b\"hello\"); print(s.recv(200).decode())'").output
        }

        func stats(_ ns: TestNamespace, _ router: String) -> String {
            ns.sh("\(svrdBinary) show stats --json --socket \(dir.path)/\(router)/svrd.sock").output
        }
    }

    @Test(.enabled(if: isRoot)) func pingAndTCPWithSourceNATOnTheEgress() throws {
        let lab = try Lab()
        defer { lab.close() }
        try lab.start(sourceNAT: true)
        // The server has no route to 10.1.0.0/24: only the source NAT brings replies back.
        let ping = lab.client.sh("ping -c 3 -W 2 10.100.0.10")
        #expect(ping.output.contains("3 received"), "\(ping.output)\n\(lab.stats(lab.a, "a"))\n\(lab.stats(lab.b, "b"))")
        let echo = try lab.tcpEcho()
        #expect(echo.contains("echo:hello from 10.100.0.1"), "\(echo)")
        let sessions = lab.a.sh("\(svrdBinary) show sessions --socket \(lab.dir.path)/a/svrd.sock").output
        #expect(sessions.contains("ingress") && sessions.contains("tcp 10.1.0.10:"), "\(sessions)")
        #expect(lab.stats(lab.b, "b").contains("\"tun-write-drops\": 0"))
    }

    @Test(.enabled(if: isRoot)) func repliesReturnThroughTheTunWithoutSourceNAT() throws {
        let lab = try Lab()
        defer { lab.close() }
        // The server's default route is B, but B's main table has no route to the client's
        // LAN: replies reach svr0 only through the ct mark / fwmark rule / table 21330.
        try #require(shell("ip -n \(lab.server.name) route add default via 10.100.0.1").status == 0)
        try lab.start(sourceNAT: false, transport: "udp")
        #expect(lab.b.sh("ip route get 10.1.0.10").status != 0)  // no route in the main table
        let ping = lab.client.sh("ping -c 3 -W 2 10.100.0.10")
        #expect(ping.output.contains("3 received"), "\(ping.output)")
        let echo = try lab.tcpEcho(port: 8081)
        #expect(echo.contains("echo:hello from 10.1.0.10"), "\(echo)")
        let rules = lab.b.sh("nft list chain inet svrd lan_prerouting").output
        #expect(rules.contains("egress session") && rules.contains("return path"))
    }

    @Test(.enabled(if: isRoot)) func survivesAWANLinkFlapAndTheTUNGoingDownAndUp() throws {
        let lab = try Lab()
        defer { lab.close() }
        try lab.start(sourceNAT: true, transport: "udp")
        #expect(lab.client.sh("ping -c 1 -W 2 10.100.0.10").status == 0)
        // WAN link of A down and up: its packet socket reports ENETDOWN once, then receives again.
        #expect(lab.a.sh("ip link set svrwan0 down && sleep 0.5 && ip link set svrwan0 up && sleep 1").status == 0)
        let afterFlap = lab.client.sh("ping -c 3 -W 2 10.100.0.10")
        #expect(afterFlap.output.contains(" 0% packet loss") || afterFlap.output.contains("3 received") || afterFlap.output.contains("2 received"),
                "\(afterFlap.output)")
        // svr0 of B down (the kernel drops its routes) and up: svrd puts them back.
        #expect(lab.b.sh("ip link set svr0 down && sleep 3 && ip link set svr0 up && sleep 3").status == 0)
        #expect(lab.b.sh("ip route show table 21330").output.contains("default dev svr0"))
        let afterTUN = lab.client.sh("ping -c 2 -W 2 10.100.0.10")
        #expect(afterTUN.output.contains("2 received"), "\(afterTUN.output)")
        for p in lab.processes { #expect(p.wait(seconds: 0) == nil, "\(p.log)") }
        #expect(lab.processes[1].log.contains("routes restored"))
    }
}

// End-to-end tests of ICMP over sessions: errors from behind the egress reach the client in
// time for its stack to act on them, traceroute through svrd completes, and refused sessions
// are answered (or not) as `[router] refused-sessions` says. Root only, like E2ETests.

import Glibc
import TestSupport
import Testing

@Suite(.serialized, .enabled(if: e2eEnabled, "root is needed (network namespaces)"))
struct E2EICMPTests {
    /// A python3 one-liner run in the client namespace; prints what happened.
    static func udpProbe(to address: String, port: Int, source: String = Addr.client) -> String {
        """
        \(python3) -c 'import socket, time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("\(source)", 0)); s.connect(("\(address)", \(port)))
        s.settimeout(1.0); t = time.monotonic(); s.send(b"probe")
        try:
            s.recv(100); print("reply")
        except ConnectionRefusedError: print("refused %.3f" % (time.monotonic() - t))
        except socket.timeout: print("timeout")
        except OSError as e: print("error", e.errno)'
        """
    }

    static func tcpProbe(to address: String, port: Int, source: String, timeout: Double = 1.0) -> String {
        """
        \(python3) -c 'import socket, time
        t = time.monotonic()
        try:
            socket.create_connection(("\(address)", \(port)), timeout=\(timeout), source_address=("\(source)", 0)); print("connected")
        except ConnectionRefusedError: print("refused %.3f" % (time.monotonic() - t))
        except socket.timeout: print("timeout")
        except OSError as e: print("error", e.errno)'
        """
    }

    @Test("A UDP probe to a closed port on the server gets port unreachable back within 1 s",
          arguments: [E2ELab.Transport.native, .udp])
    func portUnreachable(transport: E2ELab.Transport) throws {
        let lab = try E2ELab(transport: transport)
        defer { lab.close() }
        try lab.start()
        let r = lab.client.sh(Self.udpProbe(to: Addr.server, port: 9999))
        #expect(r.output.hasPrefix("refused"), "UDP to a closed port over \(transport): \(r.output)")
        // and on a session whose policy is encryption = "none"
        let again = lab.client.sh(Self.udpProbe(to: Addr.clearServer, port: 9998))
        #expect(again.output.hasPrefix("refused"), "UDP to a closed port (policy none) over \(transport): \(again.output)")
        if !r.output.hasPrefix("refused") {
            print("router A:\n\(lab.show(0, "stats").output)\nrouter B:\n\(lab.show(1, "stats").output)")
        }
    }

    @Test("Port unreachable through a transit router (A → hub → B)")
    func throughHub() throws {
        let lab = try E2ELab(routers: 3)
        defer { lab.close() }
        try lab.start()
        let r = lab.client.sh(Self.udpProbe(to: Addr.server, port: 9999))
        #expect(r.output.hasPrefix("refused"), "UDP to a closed port through the hub: \(r.output)")
    }

    @Test("TCP to a missing host behind the egress fails with host unreachable, not a timeout")
    func missingHost() throws {
        let lab = try E2ELab()
        defer { lab.close() }
        try lab.start()
        // 10.100.0.99 is in the service prefix but nobody answers ARP on the server LAN: the
        // egress kernel gives up after about 3 s and sends host unreachable, which svrd relays.
        let r = lab.client.sh(Self.tcpProbe(to: "10.100.0.99", port: 80, source: Addr.client, timeout: 8))
        #expect(r.output.hasPrefix("error 113"), "TCP to a missing host: \(r.output)")
        #expect((lab.drops(1, "icmp-unknown-session") ?? -1) == 0)
    }

    @Test("traceroute through svrd completes in UDP, ICMP and TCP modes", arguments: [E2ELab.Transport.native, .udp])
    func traceroute(transport: E2ELab.Transport) throws {
        let lab = try E2ELab(transport: transport)
        defer { lab.close() }
        try lab.start()
        // TCP mode probes a closed port: the server's RST ends the trace like a SYN-ACK would.
        for (mode, flags) in [("udp", ""), ("icmp", "-I"), ("tcp", "-T -p 8080")] {
            let r = lab.client.sh("traceroute -n -w 1 -q 1 -m 8 \(flags) \(Addr.server)")
            let hops = r.output.split(separator: "\n").dropFirst().map { $0.split(separator: " ").map(String.init) }
            let last = hops.last ?? []
            #expect(r.status == 0 && last.count >= 2 && last[1] == Addr.server && hops.count < 8,
                    "traceroute (\(mode), \(transport)) did not reach the server:\n\(r.output)")
            // The hop where the TTL runs out at svrd: the ingress router's LAN address.
            #expect(hops.contains { $0.count >= 2 && $0[1] == "10.255.0.1" },
                    "traceroute (\(mode), \(transport)) shows no svrd hop:\n\(r.output)")
            print("e2e traceroute \(mode) \(transport):\n\(r.output)")
        }
    }

    @Test("refused-sessions = \"reject\" (the default): a guest's TCP connect is refused at once, and counted")
    func rejectRefused() throws {
        let lab = try E2ELab()
        defer { lab.close() }
        try lab.start()
        try lab.startHTTPServer()
        let before = lab.drops(0, "not-allowed") ?? -1
        let tcp = lab.client.sh(Self.tcpProbe(to: Addr.server, port: 8080, source: Addr.guest))
        #expect(tcp.output.hasPrefix("refused"), "guest TCP connect: \(tcp.output)")
        let udp = lab.client.sh(Self.udpProbe(to: Addr.server, port: 9000, source: Addr.guest))
        #expect(udp.output.hasPrefix("error 113"), "guest UDP (EHOSTUNREACH from ICMP 13 expected): \(udp.output)")
        let after = lab.drops(0, "not-allowed") ?? -1
        #expect(after >= before + 2, "not-allowed drops \(before) → \(after)")
        // staff still connects
        #expect(lab.client.sh(Self.tcpProbe(to: Addr.server, port: 8080, source: Addr.client)).output.hasPrefix("connected"))
    }

    @Test("refused-sessions = \"silent\": nothing comes back to the guest")
    func silentRefused() throws {
        let lab = try E2ELab(routerExtra: "refused-sessions = \"silent\"")
        defer { lab.close() }
        try lab.start()
        try lab.startHTTPServer()
        let before = lab.drops(0, "not-allowed") ?? -1
        let tcp = lab.client.sh(Self.tcpProbe(to: Addr.server, port: 8080, source: Addr.guest))
        #expect(tcp.output.hasPrefix("timeout"), "guest TCP connect: \(tcp.output)")
        let udp = lab.client.sh(Self.udpProbe(to: Addr.server, port: 9000, source: Addr.guest))
        #expect(udp.output.hasPrefix("timeout"), "guest UDP: \(udp.output)")
        let after = lab.drops(0, "not-allowed") ?? -1
        #expect(after >= before + 2, "not-allowed drops \(before) → \(after)")
    }
}

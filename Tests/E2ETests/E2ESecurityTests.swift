// End-to-end security tests: server-first data under adaptive encryption, the egress's
// encryption floor, replayed and reflected SVR packets injected on the WAN.
// Helpers: deploy/lab/sectest.py (banner server, counting UDP echo, raw sender).

import Glibc
import TestSupport
import Testing

let secTestScript = packageRoot + "/deploy/lab/sectest.py"

/// The config edit that gives service `cloud` a policy with `encryption` on every router
/// (`routers`: which router indices; nil: all).
func cloudPolicy(_ encryption: String, routers: Set<Int>? = nil) -> @Sendable (Int, String) -> String {
    { i, toml in
        guard routers?.contains(i) ?? true else { return toml }
        return toml.replacing("name = \"cloud\"\n", with: "name = \"cloud\"\nservice-policy = \"sec\"\n")
            + "\n[[service-policy]]\nname = \"sec\"\nencryption = \"\(encryption)\"\n"
    }
}

@Suite(.serialized, .enabled(if: e2eEnabled, "root is needed (network namespaces)"))
struct E2ESecurityTests {
    /// Per-direction encryption of the sessions to `port` from `svrd show sessions --json` of
    /// router `i`: lines "FORWARD REVERSE".
    func sessionEncryption(_ lab: E2ELab, _ i: Int, port: Int) -> [String] {
        let r = shell("\(svrdBinary) show sessions --json --socket \(lab.socketPath(i)) | \(python3) \(secTestScript) sessions \(port)")
        return r.output.split(separator: "\n").map(String.init)
    }

    func expectClean(_ lab: E2ELab) {
        let names = ([lab.client, lab.wan, lab.server] + lab.routers).map(\.name)
        let left = lab.close()
        #expect(left.isEmpty, "left behind after SIGTERM: \(left)")
        let list = shell("ip netns list").output
        #expect(names.filter { list.contains($0) }.isEmpty, "namespaces left")
    }

    @Test("Server-first data (a banner) is encrypted on the WAN with the default adaptive policy",
          arguments: [E2ELab.Transport.native, .udp])
    func serverFirstDataIsEncrypted(transport: E2ELab.Transport) throws {
        let lab = try E2ELab(transport: transport)
        defer { expectClean(lab) }
        try lab.start()
        let marker = "SVRD-E2E-BANNER-7f3a91"
        try lab.helper(lab.server, "\(python3) \(secTestScript) banner \(Addr.server) 9300 \(marker)", name: "banner")
        try waitUntil(10, "banner server") {
            lab.server.sh("\(python3) -c \"import socket; socket.create_connection(('\(Addr.server)', 9300), 1)\"").status == 0
        }
        var states: [[String]] = []
        let packets = try lab.capture(onLinkTo: 0) {
            let r = lab.client.sh("\(python3) \(secTestScript) connect \(Addr.server) 9300")
            #expect(r.status == 0 && r.output.contains(marker), "banner through svrd (\(transport)): \(r.output)")
            states = [sessionEncryption(lab, 0, port: 9300), sessionEncryption(lab, 1, port: 9300)]
        }
        #expect(packets.contains { $0.isIPv4 && ($0.isTCP || $0.isUDP) && !$0.isPathMonitoring }, "nothing captured")
        #expect(!packets.contains { $0.contains(Array(marker.utf8)) }, "server-first marker in clear on the WAN (\(transport))")
        // Both routers report what went on the wire: the banner and the client's line sealed.
        for (i, s) in states.enumerated() {
            #expect(!s.isEmpty && s.allSatisfy { $0 == "aes-cbc-hmac aes-cbc-hmac" }, "router \(i) sessions: \(s)")
        }
    }

    @Test("A session asking for no encryption is refused by an egress whose policy encrypts")
    func noneRefusedByEncryptingEgress() throws {
        let lab = try E2ELab(configEdit: cloudPolicy("none", routers: [0]))
        defer { expectClean(lab) }
        try lab.start()
        try lab.startUDPEcho()
        let before = lab.drops(1, "weaker-encryption")
        #expect(before == 0, "drop counter weaker-encryption missing or not zero: \(String(describing: before))")
        let udp = lab.udpExchange(count: 1, payload: "weaker")
        #expect(udp.status != 0, "UDP with encryption none got through an egress requiring encryption")
        let after = lab.drops(1, "weaker-encryption") ?? 0
        #expect(after >= 1, "weaker-encryption drops: \(after)")
        #expect(lab.show(1, "stats").output.contains("weaker-encryption"), "show stats lists weaker-encryption")
    }

    @Test("Replayed and reflected SVR packets of a UDP exchange are not delivered again",
          arguments: ["aes-cbc-hmac", "aes-gcm", "none"])
    func replayAndReflection(encryption: String) throws {
        let lab = try E2ELab(configEdit: cloudPolicy(encryption))
        defer { expectClean(lab) }
        try lab.start()
        let log = "\(lab.work)/count.log", report = "\(lab.work)/replay.txt"
        try lab.helper(lab.server, "\(python3) \(secTestScript) count \(Addr.server) 9400 \(log)", name: "count")
        func received() -> Int { Int(shell("cat \(log) 2>/dev/null | wc -l").output.trimmed) ?? -1 }
        let replayBefore = lab.drops(1, "replay") ?? 0, authBefore = lab.drops(1, "authentication-failed") ?? 0
        // On the WAN router: record the exchange's 10 SVR packets on A's link and re-send them
        // at once (well inside the trailer's 2–4 s window, so that what stops the replays is
        // the replay check): the 5 forward ones unchanged, the 5 replies reflected to B.
        let recorder = try lab.helper(
            lab.wan, "\(python3) \(secTestScript) replay svrw0 \(Addr.wan(0)) \(Addr.wan(1)) 10 \(report)", name: "replay")
        usleep(300_000)
        let r = lab.client.sh("\(python3) \(udpEchoScript) client \(Addr.server) 9400 5 replay-\(encryption)")
        #expect(r.status == 0, "UDP exchange (\(encryption)): \(r.output)")
        #expect(waitDead(recorder, seconds: 10), "the recorder did not finish")
        usleep(500_000)
        let done = shell("cat \(report)").output
        #expect(done.contains("forward 5") && done.contains("reflected 5"), "recorder: \(done)")
        // Exactly the 5 datagrams the client sent (the recorder may re-send before the client
        // has even finished: only the final count is meaningful).
        let delivered = received()
        #expect(delivered == 5, "the server received \(delivered) datagrams, 5 sent (\(encryption)): replays or reflections delivered")
        let replays = (lab.drops(1, "replay") ?? 0) - replayBefore
        let refused = (lab.drops(1, "authentication-failed") ?? 0) - authBefore
        #expect(replays == 5, "replay drops at the egress: \(replays) of 5 (authentication-failed: \(refused))")
        #expect(refused == 5, "reflected replies refused: \(refused) of 5")
    }
}

// End-to-end tests of two hardening properties: the router's host never answers strangers
// on the waypoint ports (no RST, no ICMP), and one LAN host cannot starve the others of
// sessions (waypoint port pairs, `[limits]` per source).

import Glibc
import TestSupport
import Testing

extension E2ETests {
    static let sprayScript = packageRoot + "/deploy/lab/spray.py"
    static let hostConnsScript = packageRoot + "/deploy/lab/hostconns.py"
    static let udpFlowsScript = packageRoot + "/deploy/lab/udpflows.py"

    /// A stranger on router A's WAN segment (not a peer waypoint).
    static let stranger = "172.16.1.99"

    @Test("A spray of garbage from a stranger to the waypoint ports gets no answer from the host; transfers and the host's own connections go on")
    func strangersGetSilence() throws {
        let lab = try E2ELab(transport: .native)
        defer { expectClean(lab) }
        // The stranger's address answers ARP, so whatever the router sends it is on the wire.
        try lab.run("ip -n \(lab.wan.name) addr add \(Self.stranger)/24 dev svrw0")
        try lab.start()
        try lab.startHTTPServer()
        try lab.helper(lab.wan, "\(python3) \(Self.hostConnsScript) server \(Addr.wanGateway(0)) 7070", name: "hostconns-server")
        let want = try lab.makeBlob("blob10", megabytes: 10)
        let mac = try lab.mac(lab.a, "svrwan0")
        let count = 50_000

        // Capture at the sender: every IP packet from the router to the stranger is an answer
        // (one line per packet, starting with its time).
        let answers = "\(lab.work)/answers.log"
        let tcpdump = try lab.helper(lab.wan, "tcpdump -n -l -i svrw0 'ip and src host \(Addr.wan(0)) and dst host \(Self.stranger)'",
                                     name: "answers")
        try waitUntil(10, "tcpdump") { shell("grep -q 'listening on' \(lab.work)/answers.log").status == 0 }
        let dropsBefore = strangerDrops(lab)

        let spray = try lab.helper(lab.wan, "\(python3) \(Self.sprayScript) svrw0 \(mac) \(Self.stranger) \(Addr.wan(0)) \(count) 7",
                                   name: "spray")
        let got = lab.download("blob10", timeout: 120)
        let conns = lab.a.sh("\(python3) \(Self.hostConnsScript) client \(Addr.wanGateway(0)) 7070 \(Addr.wan(0)) 30")
        #expect(waitDead(spray, seconds: 60), "the spray did not finish")
        print("e2e silence: \(shell("cat \(lab.work)/spray.log").output.trimmed)")
        usleep(500_000)
        kill(tcpdump, SIGINT)
        waitDead(tcpdump, seconds: 5)

        #expect(got == want, "10 MB during the spray: sha256 \(got ?? "none") want \(want)")
        #expect(conns.status == 0, "the host's own connections from the waypoint address: \(conns.output)")
        let lines = shell("grep -E '^[0-9]{2}:[0-9]{2}:' \(answers)").output
            .split(separator: "\n")
        #expect(lines.isEmpty, "the router's host answered the stranger \(lines.count) times: \(lines.prefix(5))")
        let dropsAfter = strangerDrops(lab)
        let counted = dropsAfter - dropsBefore
        print("e2e silence: \(count) sprayed, \(counted) counted by svrd (unknown-peer, not-svr, fragment), \(lines.count) answers")
        #expect(counted >= count / 2, "svrd counted \(counted) of \(count) sprayed packets")
        let nft = shell("ip netns exec \(lab.a.name) nft list chain inet svrd wan_silence").output
        print("e2e silence: \(nft.split(separator: "\n").filter { $0.contains("counter") }.joined(separator: "\n"))")
    }

    private func strangerDrops(_ lab: E2ELab) -> Int {
        lab.stat(0, #"d["drops"]["unknown-peer"] + d["drops"]["not-svr"] + d["drops"]["fragment"]"#) ?? 0
    }

    @Test("30,000 UDP flows from one host: with a per-source limit the rest are refused and others still connect; without, more sessions than waypoint ports")
    func oneHostCannotStarveTheOthers() throws {
        let lab = try E2ELab(transport: .udp)
        defer { expectClean(lab) }
        let other = "10.1.0.11"
        try lab.run("ip -n \(lab.client.name) addr add \(other)/24 dev svrcli0")
        let limited = "[limits]\nmax-sessions-per-source = 2000\nmax-new-sessions-per-second-per-source = 0"
        for i in lab.routers.indices { try lab.reconfigure(i, extra: limited) }
        try lab.start()
        try lab.startHTTPServer()
        let want = try lab.makeBlob("blob1", megabytes: 1)
        let flows = 30_000

        // With the limit: 2,000 sessions for the host, the rest refused and counted.
        let run1 = lab.client.sh("\(python3) \(Self.udpFlowsScript) \(Addr.client) \(Addr.server) 9999 \(flows) 4")
        print("e2e starvation (limited): \(run1.output.trimmed)")
        let refused = lab.drops(0, "source-session-limit") ?? 0
        let active = lab.stat(0, #"d["sessions"]["active"]"#) ?? -1
        print("e2e starvation (limited): \(active) sessions at A, \(refused) first packets refused by the per-source limit")
        #expect(refused >= flows / 2, "source-session-limit drops: \(refused)")
        #expect(active <= 2000 + 10, "sessions at A: \(active)")
        // Another host's new TCP session connects.
        #expect(lab.download("blob1", source: other, timeout: 20) == want, "another host's download while the limit holds")

        // Without a per-source limit: more sessions to one peer than the 24,576 even ports.
        let unlimited = "[limits]\nmax-sessions-per-source = 0\nmax-new-sessions-per-second-per-source = 0"
        for i in lab.routers.indices.reversed() {
            lab.stopDaemon(i)
            try lab.reconfigure(i, extra: unlimited)
        }
        try lab.start()
        let run2 = lab.client.sh("\(python3) \(Self.udpFlowsScript) \(Addr.client) \(Addr.server) 9999 \(flows) 15 3")
        print("e2e starvation (unlimited): \(run2.output.trimmed)")
        let activeA = lab.stat(0, #"d["sessions"]["active"]"#) ?? -1
        let activeB = lab.stat(1, #"d["sessions"]["active"]"#) ?? -1
        let exhausted = lab.drops(0, "ports-exhausted") ?? -1
        let tunRead = lab.stat(0, #"d["io"]["tun-read"]"#) ?? -1
        print("e2e starvation (unlimited): \(activeA) sessions at A, \(activeB) at B, ports-exhausted \(exhausted), A read \(tunRead) packets from its TUN")
        if activeA <= 24_576 || activeB <= 24_576 {
            print("e2e starvation: router A\n\(lab.show(0, "stats").output)\nrouter B\n\(lab.show(1, "stats").output)")
        }
        #expect(activeA > 24_576, "sessions at A toward one peer: \(activeA)")
        #expect(activeB > 24_576, "sessions at B from one peer: \(activeB)")
        #expect(exhausted == 0)
        #expect(lab.download("blob1", source: other, timeout: 20) == want, "another host's download with 30,000 sessions open")
    }
}

// End-to-end tests: real svrd daemons (the debug binary) in network namespaces, real traffic
// (ping, HTTP over TCP, UDP), and what tcpdump sees on the WAN link.
//
// Root only, and only once the binary has `svrd run`. Run them alone with
//   swift build && swift test --skip-build --filter E2ETests
// Every test builds its own namespaces (names start with `svr`, unique per process and
// test) and removes them in a `defer`, also when it fails.

import Glibc
import TestSupport
import Testing

@Suite(.serialized, .enabled(if: e2eEnabled, "root is needed (network namespaces)"))
struct E2ETests {

    // ---- traffic ---------------------------------------------------------------------------

    @Test("ICMP, UDP and a 10 MB TCP download verified by hash", arguments: [E2ELab.Transport.native, .udp])
    func traffic(transport: E2ELab.Transport) throws {
        let lab = try E2ELab(transport: transport)
        defer { expectClean(lab) }
        try lab.start()
        try lab.startHTTPServer()
        try lab.startUDPEcho()

        let ping = lab.ping(count: 3)
        #expect(ping.status == 0, "ping through svrd (\(transport)): \(ping.output)")

        let want = try lab.makeBlob("blob10", megabytes: 10)
        let t0 = now()
        let got = lab.download("blob10")
        let elapsed = now() - t0
        #expect(got == want, "10 MB over \(transport): sha256 \(got ?? "none") want \(want)")
        print("e2e \(transport): 10 MB in \(Double(Int(elapsed * 100)) / 100) s")

        let udp = lab.udpExchange(count: 20)
        #expect(udp.status == 0, "UDP echo (\(transport)): \(udp.output)")

        // A new TCP connection is set up without a SYN retransmission (1 s): the first SYN-ACK
        // (which carries reverse metadata and no payload) must reach the client.
        let connect = lab.client.sh("curl -s -o /dev/null -w '%{time_connect}' http://\(Addr.server):8080/blob10")
        let seconds = Double(connect.output.trimmed) ?? 99
        #expect(seconds < 0.5, "TCP connect took \(seconds) s over \(transport) (first SYN-ACK lost?)")

        // both routers show the sessions
        let sa = lab.show(0, "sessions"), sb = lab.show(1, "sessions")
        #expect(sa.status == 0 && sb.status == 0)
        #expect(sa.output.contains("cloud"), "router A sessions:\n\(sa.output)")
        #expect(sb.output.contains("cloud"), "router B sessions:\n\(sb.output)")
    }

    // ---- what is on the wire ---------------------------------------------------------------

    @Test("WAN capture: no LAN address, metadata only at session start, payload encrypted unless policy says none",
          arguments: [E2ELab.Transport.native, .udp])
    func wire(transport: E2ELab.Transport) throws {
        let lab = try E2ELab(transport: transport)
        defer { expectClean(lab) }
        try lab.start()
        try lab.startHTTPServer()
        try lab.startUDPEcho()
        let want = try lab.makeBlob("blob1", megabytes: 1)
        let secret = "SVRD-E2E-SECRET-9d41c7"
        let clear = "SVRD-E2E-CLEARTEXT-52be03"

        let packets = try lab.capture(onLinkTo: 0) {
            let ping = lab.ping(count: 3)
            #expect(ping.status == 0, "ping during the capture: \(ping.output)")
            #expect(lab.download("blob1") == want, "1 MB download during the capture")
            let u1 = lab.udpExchange(to: Addr.server, count: 5, payload: secret)
            #expect(u1.status == 0, "UDP to the encrypted service: \(u1.output)")
            let u2 = lab.udpExchange(to: Addr.clearServer, count: 5, payload: clear)
            #expect(u2.status == 0, "UDP to the encryption-none service: \(u2.output)")
        }
        let ip = packets.filter(\.isIPv4)
        #expect(ip.count >= 700, "captured \(packets.count) frames, \(ip.count) IPv4")

        // Only the two waypoints appear in IP headers, and no LAN address anywhere in a frame.
        let waypoints: Set<UInt32> = [ipv4(Addr.wan(0)), ipv4(Addr.wan(1))]
        let strangers = ip.filter { !waypoints.contains($0.source) || !waypoints.contains($0.destination) }
        #expect(strangers.isEmpty, "packets not between waypoints: \(strangers.prefix(3).map(\.flow))")
        for address in Addr.lanAddresses {
            let bytes = ipv4Bytes(address)
            let hits = packets.filter { $0.contains(bytes) }
            #expect(hits.isEmpty, "LAN address \(address) on the wire in \(hits.count) frames, first #\(hits.first?.index ?? -1) \(hits.first?.flow ?? "")")
        }

        // Transport: with the UDP transform nothing is TCP on the wire.
        if transport == .udp {
            #expect(ip.allSatisfy { $0.isUDP }, "UDP transform: non-UDP packets on the wire")
        } else {
            #expect(ip.contains { $0.isTCP }, "native transport: the download is carried as TCP")
        }

        // Metadata (spec §2.5): only on the first packets of each direction of a session.
        // (Path monitoring on UDP 1280 is not a session and is left out, see flows(_:).)
        // "First packets" means the first 8 of a direction, at most 4 of them (a
        // retransmitted first packet carries it again).
        let sessions = flows(ip)
        #expect(ip.contains { $0.hasMetadata }, "no packet carries SVR metadata")
        for (flow, list) in sessions where list.count >= 5 {
            let marked = list.enumerated().filter { $0.element.hasMetadata }.map(\.offset)
            let late = marked.filter { $0 >= 8 }
            let pattern = describe(list.prefix(16), reverse: sessions[reverseKey(flow)]?.prefix(16) ?? [])
            #expect(late.isEmpty, "\(flow): metadata after the handshake on packets \(late.prefix(5)) of \(list.count): \(pattern)")
            #expect(marked.count <= 4, "\(flow): metadata on \(marked.count) of \(list.count) packets: \(pattern)")
        }
        // Each session's first packet (the earliest of its two directions) carries metadata.
        for (flow, list) in sessions where list.count >= 5 {
            if let reverse = sessions[reverseKey(flow)], reverse.first!.index < list.first!.index { continue }
            #expect(list.first!.hasMetadata, "\(flow): the session's first packet has no metadata")
        }

        // Payload: the marker to the default (encrypted) service never shows; the one to the
        // encryption "none" service does.
        #expect(!packets.contains { $0.contains(Array(secret.utf8)) }, "encrypted payload marker visible on the wire")
        #expect(packets.contains { $0.contains(Array(clear.utf8)) }, "encryption none: marker not found in clear")
    }

    // ---- deny by default -------------------------------------------------------------------

    @Test("A denied session sends nothing to the WAN and is counted")
    func deniedSendsNothing() throws {
        let lab = try E2ELab()
        defer { expectClean(lab) }
        try lab.start()
        try lab.startHTTPServer()
        try lab.startUDPEcho()
        let before = lab.drops(0, "not-allowed")
        #expect(before != nil, "svrd show stats --json has no readable drop counters")

        let packets = try lab.capture(onLinkTo: 0) {
            let ping = lab.ping(count: 2, source: Addr.guest)
            #expect(ping.status != 0, "the guest's ping got through")
            #expect(lab.download("x", source: Addr.guest, timeout: 2) == nil, "the guest's HTTP request got through")
            let udp = lab.udpExchange(count: 1, payload: "guest", source: Addr.guest)
            #expect(udp.status != 0, "the guest's UDP got through")
        }
        let svr = packets.filter { $0.isIPv4 && ($0.isUDP || $0.isTCP) && !$0.isPathMonitoring }
        #expect(svr.isEmpty, "denied traffic produced \(svr.count) WAN packets: \(svr.prefix(3).map(\.flow))")

        let after = lab.drops(0, "not-allowed")
        if let b = before, let a = after {
            #expect(a > b, "not-allowed drops \(b) → \(a)")
        }
        // and the staff client still gets through
        #expect(lab.ping(count: 1).status == 0)
    }

    // ---- multi-hop -------------------------------------------------------------------------

    @Test("Three routers in a chain: A → hub → B")
    func chain() throws {
        let lab = try E2ELab(routers: 3)
        defer { expectClean(lab) }
        try lab.start()
        try lab.startHTTPServer()
        try lab.startUDPEcho()
        let ping = lab.ping(count: 3)
        #expect(ping.status == 0, "ping A → hub → B: \(ping.output)")
        let want = try lab.makeBlob("blob2", megabytes: 2)
        let got = lab.download("blob2", timeout: 20)
        #expect(got == want, "2 MB through the hub")
        if got != want {
            for i in lab.routers.indices {
                print("e2e chain \(lab.routerNames[i]):\n\(lab.show(i, "sessions").output)\(lab.show(i, "stats").output)")
            }
        }
        let udp = lab.udpExchange(count: 10)
        #expect(udp.status == 0, "UDP through the hub: \(udp.output)")
        // the hub really carried it (A has no path to B's waypoint in its config)
        let hub = lab.show(1, "sessions")
        #expect(hub.status == 0 && hub.output.contains("cloud"), "hub sessions:\n\(hub.output)")
    }

    // ---- restart ---------------------------------------------------------------------------

    @Test("svrd restarts cleanly after kill -9 and traffic flows again")
    func restartAfterKill() throws {
        let lab = try E2ELab()
        defer { expectClean(lab) }
        try lab.start()
        try lab.startHTTPServer()
        #expect(lab.ping(count: 2).status == 0, "ping before the kill")
        let tables = shell("ip netns exec \(lab.a.name) nft list tables").output.trimmed

        lab.killDaemon(0)
        #expect(lab.ping(count: 1).status != 0, "traffic still flows with router A's svrd dead")

        try lab.startDaemon(0)
        let tablesAfter = shell("ip netns exec \(lab.a.name) nft list tables").output.trimmed
        #expect(tablesAfter == tables, "nftables after restart: \(tablesAfter) (before: \(tables))")
        let ping = lab.ping(count: 3)
        #expect(ping.status == 0, "ping after the restart: \(ping.output)")
        let want = try lab.makeBlob("blob1", megabytes: 1)
        #expect(lab.download("blob1") == want, "download after the restart")
    }

    // ---- helpers ---------------------------------------------------------------------------

    /// Tears the lab down and checks that nothing is left: svrd removed its TUN, nftables
    /// table and socket on SIGTERM, and the namespaces are gone.
    private func expectClean(_ lab: E2ELab) {
        let names = ([lab.client, lab.wan, lab.server] + lab.routers).map(\.name)
        let left = lab.close()
        #expect(left.isEmpty, "left behind after SIGTERM: \(left)")
        let list = shell("ip netns list").output
        let stale = names.filter { list.contains($0) }
        #expect(stale.isEmpty, "namespaces left: \(stale)")
    }

    private func flows(_ packets: [CapturedPacket]) -> [String: [CapturedPacket]] {
        var out: [String: [CapturedPacket]] = [:]
        for p in packets where (p.isUDP || p.isTCP) && !p.isPathMonitoring { out[p.flow, default: []].append(p) }
        return out
    }

    /// Both directions of a session in capture order: ">M" forward with metadata, "<." reverse
    /// without, TCP flags in brackets.
    private func describe(_ forward: ArraySlice<CapturedPacket>, reverse: ArraySlice<CapturedPacket>) -> String {
        let all = (forward.map { ($0, ">") } + reverse.map { ($0, "<") }).sorted { $0.0.index < $1.0.index }
        return all.map { p, dir in
            let flags = p.isTCP ? "[\(String(p.tcpFlags, radix: 16))]" : ""
            return "\(dir)\(p.hasMetadata ? "M" : ".")\(flags)#\(p.index)"
        }.joined(separator: " ")
    }

    private func reverseKey(_ flow: String) -> String {
        // "s:sp>d:dp/proto" → "d:dp>s:sp/proto"
        let parts = flow.split(separator: "/")
        let ends = parts[0].split(separator: ">")
        return "\(ends[1])>\(ends[0])/\(parts[1])"
    }
}

/// The pcap reader itself (no root needed).
@Suite struct PcapReaderTests {
    @Test func decodesEthernetIPv4UDPWithCookie() throws {
        var frame: [UInt8] = Array(repeating: 0xAA, count: 12) + [0x08, 0x00]
        let payload = svrCookie + Array("hello".utf8)
        let udpLen = 8 + payload.count
        let total = 20 + udpLen
        frame += [0x45, 0, UInt8(total >> 8), UInt8(total & 255), 0, 1, 0x40, 0, 64, 17, 0, 0]
        frame += ipv4Bytes("172.16.1.2") + ipv4Bytes("172.16.2.2")
        frame += [0x40, 0x00, 0x75, 0x31, UInt8(udpLen >> 8), UInt8(udpLen & 255), 0, 0] + payload
        frame += [0, 0]  // Ethernet padding past the IP length
        var file: [UInt8] = [0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0] + Array(repeating: 0, count: 8)
        file += [0xFF, 0xFF, 0, 0, 1, 0, 0, 0]  // snaplen, linktype 1
        let n = UInt32(frame.count)
        let le = [UInt8(n & 255), UInt8(n >> 8 & 255), 0, 0]
        file += Array(repeating: 0, count: 8) + le + le + frame
        file += [1, 2, 3]  // a truncated record is ignored
        let packets = try Pcap.parse(file)
        #expect(packets.count == 1)
        let p = try #require(packets.first)
        #expect(p.isUDP && p.hasMetadata)
        #expect(p.sourcePort == 0x4000 && p.destinationPort == 0x7531)
        #expect(p.flow == "172.16.1.2:16384>172.16.2.2:30001/17")
        #expect(Array(p.payload.dropFirst(8)) == Array("hello".utf8))
        #expect(p.contains(ipv4Bytes("172.16.2.2")) && !p.contains(ipv4Bytes("10.1.0.10")))
    }

    @Test func rejectsGarbage() {
        #expect(throws: PcapError.self) { try Pcap.parse([1, 2, 3]) }
        #expect(throws: PcapError.self) { try Pcap.parse(Array(repeating: 0, count: 40)) }
    }
}

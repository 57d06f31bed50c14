// Root tests of WAN I/O against the real kernel: two namespaces `a` (the router, waypoint
// 10.91.0.1 on svrv0) and `b` (the peer, 10.91.0.2 on svrv1) joined by a veth pair. The
// nftables rules are exactly those of docs/wan-io.md (`svrdRules`), installed with `nft -f`.

import Glibc
import TestSupport
import Testing
@testable import TunIO

/// The isolation rules of docs/wan-io.md for waypoint 10.91.0.1 (keep the two in step).
let svrdRules = """
    table inet svrd {
    	set waypoints_v4 {
    		type ipv4_addr
    		elements = { 10.91.0.1 }
    	}
    	set waypoints_v6 {
    		type ipv6_addr
    		elements = { fd00:91::1 }
    	}
    	set waypoint_ports {
    		type inet_service
    		flags interval
    		elements = { 1280, 16384-65535 }
    	}
    	chain wan_prerouting {
    		type filter hook prerouting priority raw; policy accept;
    		ip daddr @waypoints_v4 meta l4proto { tcp, udp } th dport @waypoint_ports drop
    		ip6 daddr @waypoints_v6 meta l4proto { tcp, udp } th dport @waypoint_ports drop
    	}
    	chain wan_output {
    		type filter hook output priority raw; policy accept;
    		ip saddr @waypoints_v4 meta l4proto { tcp, udp } th sport @waypoint_ports notrack
    		ip6 saddr @waypoints_v6 meta l4proto { tcp, udp } th sport @waypoint_ports notrack
    	}
    }
    """

/// Test-only observers behind conntrack (priority 0): waypoint packets that reach the host
/// stack, and our own sends by conntrack state.
private let observerRules = """
    table inet svrtest {
    	chain pre {
    		type filter hook prerouting priority 0; policy accept;
    		ip daddr 10.91.0.1 meta l4proto { tcp, udp } th dport 16384-65535 counter
    	}
    	chain out {
    		type filter hook output priority 0; policy accept;
    		ip saddr 10.91.0.1 ct state untracked counter
    		ip saddr 10.91.0.1 ct state new counter
    	}
    }
    """

extension TestNamespace {
    /// Loads an nftables ruleset with `nft -f -`.
    func nft(_ rules: String) throws {
        try check("nft -f - <<'EOF'\n\(rules)\nEOF")
    }

    /// The packet counts of the `counter` statements of a chain, in rule order.
    func counters(_ table: String, _ chain: String) throws -> [Int] {
        let r = sh("nft list chain inet \(table) \(chain)")
        guard r.status == 0 else { throw TestSupportError("nft list chain: \(r.output)") }
        return r.output.split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ")
            guard let at = words.firstIndex(of: "counter"), at + 2 < words.count, words[at + 1] == "packets" else { return nil }
            return Int(words[at + 2])
        }
    }

    /// Captures on `interface` with tcpdump while `body` runs (and `linger` after), and
    /// returns the packets matching `expression` as tcpdump prints them, one per line.
    func capture(on interface: String, _ expression: String, linger: Duration = .milliseconds(1500),
                 _ body: () throws -> Void) throws -> [String] {
        let file = "/tmp/\(name)-\(interface).pcap"
        let log = "/tmp/\(name)-\(interface).log"
        defer { shell("rm -f \(file) \(log)") }
        sh("tcpdump -i \(interface) -nn -U -Z root -w \(file) '\(expression)' >\(log) 2>&1 & echo $! >\(log).pid")
        defer { shell("kill $(cat \(log).pid) 2>/dev/null; rm -f \(log).pid") }
        let ready = ContinuousClock.now + .seconds(5)
        while !shell("cat \(log)").output.contains("listening on") {
            guard ContinuousClock.now < ready else { throw TestSupportError("tcpdump did not start: \(shell("cat \(log)").output)") }
            usleep(20_000)
        }
        try body()
        usleep(UInt32(linger.components.seconds * 1_000_000 + linger.components.attoseconds / 1_000_000_000_000))
        shell("kill -INT $(cat \(log).pid); sleep 0.3")
        let r = shell("tcpdump -nn -r \(file)")
        return r.output.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("reading from file") }
    }
}

@Suite(.serialized) struct WanIOKernelTests {
    @Test(.enabled(if: isRoot)) func receiverGetsWholeWaypointPacketsAndNothingElse() throws {
        let pair = try WanPair("wr")
        defer { pair.close() }
        var rx = try openReceiver(in: pair.a, "svrv0", .ipv4(destination: wanA))
        let raw = try pair.b.run { try rawSocket() }
        defer { close(raw) }
        let udpSock = try pair.b.run { try udpSocket(bind: wanB, port: 16385) }
        defer { close(udpSock) }

        let payload80 = (0..<80).map { UInt8($0) }
        let wanted = [
            tcpSyn4(wanB, 16384, wanA, 20001, payload: payload80),            // SYN carrying data
            udp4(wanB, 16384, wanA, 16384, Array("first port".utf8), id: 1),
            udp4(wanB, 1280, wanA, 1280, Array("bfd".utf8), id: 2),           // BFD port
            udp4(wanB, 16384, wanA, 65535, Array("last port".utf8), id: 3),
        ]
        let unwanted = [
            udp4(wanB, 16384, wanOther, 20001, Array("other address".utf8)),
            udp4(wanB, 16384, wanA, 16383, Array("below range".utf8)),
            udp4(wanB, 20000, wanA, 1281, Array("next to bfd".utf8)),
            ipv4Packet(src: wanB, dst: wanA, proto: 1, l4: [8, 0, 0xf7, 0xfe, 0, 1, 0, 0]),   // ICMP echo
            ipv4Packet(src: wanB, dst: wanA, proto: 17, l4: udpSegment(srcPort: 1, dstPort: 20001, payload: payload80),
                       fragment: 0x0010),                                   // a later fragment
        ]
        for p in unwanted + wanted { try rawSend(raw, p) }
        // Sent by the peer's own stack: a datagram (checksum left to offload on veth) and a
        // TCP SYN from connect(2).
        try udpSend(udpSock, Array("from a socket".utf8), to: wanA, port: 30001)
        let tcp = try pair.b.run { () -> Int32 in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var sa = sockaddrIn(wanA, 30003)
            _ = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            return fd
        }
        defer { close(tcp) }

        let got = try collect(&rx, window: .milliseconds(800))
        let stats = rx.stats
        for p in wanted { #expect(got.contains(p), "missing \(dstPort(p))") }
        for p in unwanted { #expect(!got.contains(p)) }
        // Everything received is for the waypoint, TCP/UDP, in the port set.
        for p in got {
            #expect(be32(p, 16) == wanA && (p[9] == 6 || p[9] == 17))
            #expect(dstPort(p) == 1280 || dstPort(p) >= 16384)
            #expect(l4Checksum(p) == 0 && p.withUnsafeBytes { InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<20])) } == 0)
        }
        let fromSocket = got.first { p in p[9] == 17 && dstPort(p) == 30001 }
        #expect(fromSocket.map { Array($0[28...]) } == Array("from a socket".utf8))
        #expect(fromSocket.map { be16($0, 20) } == 16385)
        let syn = got.first { p in p[9] == 6 && dstPort(p) == 30003 }
        #expect(syn.map { $0[33] & 0x3f } == 0x02)  // SYN only
        #expect(stats.packets == UInt64(got.count) && stats.oversized == 0)
        // The kernel's datagram left the peer with a partial checksum, which read completed.
        #expect(stats.checksumsCompleted >= 1)
        #expect(try rx.takeKernelDrops() == 0)
    }

    @Test(.enabled(if: isRoot)) func rulesKeepTheHostStackSilentAndConntrackOut() throws {
        let pair = try WanPair("ws")
        defer { pair.close() }
        try pair.a.nft(observerRules)
        var rx = try openReceiver(in: pair.a, "svrv0", .ipv4(destination: wanA))
        var tx = try openSender(in: pair.a, "svrv0")
        let raw = try pair.b.run { try rawSocket() }
        defer { close(raw) }
        let probes = [
            tcpSyn4(wanB, 16384, wanA, 20001, payload: Array(repeating: 0x5a, count: 80)),
            ipv4Packet(src: wanB, dst: wanA, proto: 6, l4: tcpSegment(srcPort: 16386, dstPort: 20003, seq: 99, ack: 77, flags: 0x18,
                                                                      payload: [1, 2, 3])),   // mid-flow PSH/ACK
            udp4(wanB, 16384, wanA, 20005, Array("udp to a closed port".utf8)),
            udp4(wanB, 1280, wanA, 1280, Array("bfd".utf8)),
        ]
        let ours = [
            udp4(wanA, 16384, wanB, 16385, Array("our udp".utf8), id: 7),
            tcpSyn4(wanA, 16386, wanB, 16387, payload: Array(repeating: 0x33, count: 80)),
        ]
        var out = PacketBatch(capacity: 4)

        // Without the rules the host stack answers: RSTs and ICMP port unreachable (this
        // proves that the capture would see them), and conntrack tracks our sends.
        let before = try pair.b.capture(on: "svrv1", "ip src 10.91.0.1") {
            for p in probes { try rawSend(raw, p) }
        }
        #expect(before.contains { $0.contains("Flags [R") })
        #expect(before.contains { $0.contains("ICMP") && $0.contains("unreachable") })
        let reachedStack = try pair.a.counters("svrtest", "pre")[0]
        #expect(reachedStack == probes.count - 1)  // all but 1280 (not in 16384-65535)
        fill(&out, ours)
        #expect(try tx.send(out) == 2)
        #expect(try pair.a.counters("svrtest", "out") == [0, 2])
        usleep(200_000)
        _ = try collect(&rx, window: .milliseconds(100))  // the peer's answers (RST) to our sends
        let reachedStackWithAnswers = try pair.a.counters("svrtest", "pre")[0]

        // With the rules: silence on the wire, nothing reaches the stack, we still receive
        // every probe, and our sends are untracked.
        try pair.a.nft(svrdRules)
        let after = try pair.b.capture(on: "svrv1", "ip src 10.91.0.1") {
            for p in probes { try rawSend(raw, p) }
        }
        #expect(after.isEmpty, "host answered: \(after)")
        #expect(try pair.a.counters("svrtest", "pre")[0] == reachedStackWithAnswers)
        let got = try collect(&rx, window: .milliseconds(300), until: probes.count)
        #expect(got == probes)
        fill(&out, ours)
        #expect(try tx.send(out) == 2)
        #expect(try pair.a.counters("svrtest", "out") == [2, 2])
        // No conntrack entry for the waypoint: the table lists none with our address and ports.
        let ct = pair.a.sh("cat /proc/net/nf_conntrack 2>/dev/null || conntrack -L 2>/dev/null")
        #expect(!ct.output.contains("dport=20001") && !ct.output.contains("sport=16386"))
    }

    @Test(.enabled(if: isRoot)) func senderPacketsArriveByteExact() throws {
        let pair = try WanPair("wt")
        defer { pair.close() }
        try pair.a.nft(svrdRules)
        var tx = try openSender(in: pair.a, "svrv0")
        var peerRx = try openReceiver(in: pair.b, "svrv1", .ipv4(destination: wanB))
        let sock = try pair.b.run { try udpSocket(bind: wanB, port: 16389) }
        defer { close(sock) }

        let packets = [
            udp4(wanA, 16388, wanB, 16389, Array("svr udp over raw".utf8), id: 0x1001),
            tcpSyn4(wanA, 16390, wanB, 16391, payload: (0..<80).map { UInt8(255 - $0) }),
            ipv4Packet(src: wanA, dst: wanB, proto: 6, l4: tcpSegment(srcPort: 1280, dstPort: 1280, seq: 0xdead_beef, ack: 1,
                                                                      flags: 0x29, payload: [9])),   // odd flags: FIN|PSH|URG... any
        ]
        var batch = PacketBatch(capacity: 8)
        fill(&batch, packets)
        #expect(try tx.send(batch) == packets.count)
        let got = try collect(&peerRx, window: .seconds(2), until: packets.count)
        #expect(got == packets)
        // The peer's own stack delivers the datagram to a plain socket too.
        let r = try #require(udpReceive(sock))
        #expect(r.payload == Array("svr udp over raw".utf8) && r.from == wanA && r.port == 16388)
        let stats = tx.stats
        #expect(stats.sent == 3 && stats.droppedInvalid == 0 && stats.droppedRefused == 0 && stats.droppedBackPressure == 0)
    }

    @Test(.enabled(if: isRoot)) func aBatchOf128ArrivesWhole() throws {
        let pair = try WanPair("wb")
        defer { pair.close() }
        try pair.a.nft(svrdRules)
        var tx = try openSender(in: pair.a, "svrv0", maxBatch: 128)
        var peerRx = try openReceiver(in: pair.b, "svrv1", .ipv4(destination: wanB))
        var packets: [[UInt8]] = []
        for i in 0..<128 {
            let payload = (0..<1000).map { (j: Int) -> UInt8 in UInt8((j + i) & 0xff) }
            let port = UInt16(16384 + 2 * i)
            packets.append(udp4(wanA, port, wanB, port + 1, payload, id: UInt16(i + 1)))
        }
        var batch = PacketBatch(capacity: 128)
        fill(&batch, packets)
        #expect(try tx.send(batch) == 128)
        let got = try collect(&peerRx, window: .seconds(3), until: 128)
        #expect(got.count == 128)
        #expect(got == packets)  // every packet, intact, in order
        #expect(tx.stats.sent == 128)
    }

    @Test(.enabled(if: isRoot)) func senderSkipsRefusedAndInvalidPacketsAndSendsTheRest() throws {
        let pair = try WanPair("wv")
        defer { pair.close() }
        try pair.a.nft(svrdRules)
        // Not bound to svrv0: with SO_BINDTODEVICE a destination without a route is taken
        // to be on the link (the kernel resolves it there and drops it later), not refused.
        var tx = try openSender(in: pair.a, nil)
        var peerRx = try openReceiver(in: pair.b, "svrv1", .ipv4(destination: wanB))
        let good1 = udp4(wanA, 16384, wanB, 16385, [1], id: 11)
        let good2 = udp4(wanA, 16384, wanB, 16385, [2], id: 12)
        let good3 = udp4(wanA, 16384, wanB, 16385, [3], id: 13)
        let tooBig = udp4(wanA, 16384, wanB, 16385, [UInt8](repeating: 0, count: 1600))       // > MTU 1500: EMSGSIZE
        let noRoute = udp4(wanA, 16384, ipv4("198.51.100.7"), 16385, [4])                    // ENETUNREACH
        let garbage: [UInt8] = [0x60] + [UInt8](repeating: 0, count: 39)                       // not IPv4
        var batch = PacketBatch(capacity: 8, maxPacketSize: 2048)
        fill(&batch, [good1, tooBig, good2, garbage, noRoute, good3])
        let sent = try tx.send(batch)
        #expect(sent == 3)
        let stats = tx.stats
        #expect(stats.sent == 3 && stats.droppedInvalid == 1 && stats.droppedRefused == 2, "\(stats)")
        #expect(stats.lastRefusedErrno == ENETUNREACH)
        #expect(try collect(&peerRx, window: .seconds(2), until: 3) == [good1, good2, good3])
        // From the middle of the batch: only the rest.
        #expect(try tx.send(batch, from: 5) == 1)
        #expect(try collect(&peerRx, window: .seconds(2), until: 1) == [good3])
    }

    @Test(.enabled(if: isRoot)) func ipv6WaypointPacketsBothWaysAndTheRulesSilenceTheHost() throws {
        let pair = try WanPair("w6", ipv6: true)
        defer { pair.close() }
        var rx = try openReceiver(in: pair.a, "svrv0", .ipv6(destination: wan6A))
        var peerRx = try openReceiver(in: pair.b, "svrv1", .ipv6(destination: wan6B))
        let txA = Holder<WanSender>()
        try pair.a.run { txA.value = try WanSender(ipv6: true, interface: "svrv0") }
        var tx = txA.value.take()!
        let txB = Holder<WanSender>()
        try pair.b.run { txB.value = try WanSender(ipv6: true, interface: "svrv1") }
        var peerTx = txB.value.take()!

        let payload80 = (0..<80).map { UInt8($0 ^ 0x3c) }
        let wanted = [
            tcpSyn6(wan6B, 16384, wan6A, 20001, payload: payload80),
            udp6(wan6B, 16384, wan6A, 16384, Array("first port".utf8)),
            udp6(wan6B, 1280, wan6A, 1280, Array("bfd".utf8)),
        ]
        let unwanted = [
            udp6(wan6B, 16384, wan6Other, 20001, Array("other address".utf8)),
            udp6(wan6B, 16384, wan6A, 16383, Array("below range".utf8)),
            ipv6Packet(src: wan6B, dst: wan6A, nextHeader: 17, l4: udpSegment(srcPort: 1, dstPort: 20001, payload: [1]), extensionHeader: 44),
        ]
        var batch = PacketBatch(capacity: 8)
        // ND and RA traffic is not ours; the capture looks at everything else from a.
        let fromA = "ip6 src fd00:91::1 and not (icmp6 and ip6[40] >= 133 and ip6[40] <= 137)"

        // Without the rules: the host answers (RST, ICMPv6 port unreachable).
        var sent = 0
        let before = try pair.b.capture(on: "svrv1", fromA) {
            fill(&batch, [wanted[0], wanted[1]])
            sent = try peerTx.send(batch)
        }
        #expect(sent == 2)
        #expect(before.contains { $0.contains("Flags [R") })
        #expect(before.contains { $0.contains("ICMP6") && $0.contains("unreachable") })
        let first = try collect(&rx, window: .milliseconds(300), until: 2)
        #expect(first == [wanted[0], wanted[1]])
        // b's receiver got the RST too (to its waypoint port 16384); clear it.
        #expect(try collect(&peerRx, window: .milliseconds(100)).contains { $0[6] == 6 && $0[53] & 0x04 != 0 })

        // With the rules: silence, and every wanted packet received intact, nothing else.
        try pair.a.nft(svrdRules)
        // (unwanted[2], behind a fragment header, is for a waypoint port too: silenced)
        let after = try pair.b.capture(on: "svrv1", fromA) {
            fill(&batch, [unwanted[2]] + wanted)
            sent = try peerTx.send(batch)
        }
        #expect(sent == 1 + wanted.count)
        fill(&batch, [unwanted[0], unwanted[1]])
        #expect(try peerTx.send(batch) == 2)
        #expect(after.isEmpty, "host answered: \(after)")
        let got = try collect(&rx, window: .milliseconds(500))
        #expect(got == wanted)

        // a -> b: byte-exact at the peer.
        let ours = [udp6(wan6A, 16388, wan6B, 16389, Array("svr udp over raw v6".utf8)),
                    tcpSyn6(wan6A, 16390, wan6B, 16391, payload: payload80)]
        fill(&batch, ours)
        #expect(try tx.send(batch) == 2)
        let atPeer = try collect(&peerRx, window: .seconds(2), until: 2)
        #expect(atPeer == ours, "\(atPeer.map { hexString($0) }) vs \(ours.map { hexString($0) })")
        // An IPv4 packet or a wrong payload length is refused by an IPv6 sender.
        var badLength = ours[0]
        badLength[5] &+= 1
        fill(&batch, [udp4(wanA, 16384, wanB, 16385, [1]), badLength])
        #expect(try tx.send(batch) == 0)
        let stats = tx.stats
        #expect(stats.droppedInvalid == 2 && stats.sent == 2)
    }

    @Test(.enabled(if: isRoot)) func interfaceDownIsReportedOnceAndReceivingResumes() throws {
        let pair = try WanPair("wd")
        defer { pair.close() }
        var rx = try openReceiver(in: pair.a, "svrv0", .ipv4(destination: wanA))
        let raw = try pair.b.run { try rawSocket() }
        defer { close(raw) }
        let probe = udp4(wanB, 16384, wanA, 20001, [1, 2, 3])
        try rawSend(raw, probe)
        #expect(try collect(&rx, window: .seconds(1), until: 1) == [probe])

        try pair.a.check("ip link set svrv0 down")
        // The error wakes a waiting thread (the socket reports it as readable) ...
        #expect(try rx.wait(timeout: .seconds(1)) == .readable)
        var batch = PacketBatch(capacity: 4)
        do {
            _ = try rx.read(into: &batch)
            Issue.record("no error after the interface went down")
        } catch {
            #expect(error.kind == .interfaceDown && error.errno == ENETDOWN && error.interface == "svrv0")
        }
        // ... once.
        #expect(try rx.read(into: &batch) == 0)

        try pair.a.check("ip link set svrv0 up && ip addr replace 10.91.0.1/24 dev svrv0")
        try pair.b.check("ip link set svrv1 up")
        var again: [[UInt8]] = []
        let deadline = ContinuousClock.now + .seconds(5)
        while again.isEmpty && ContinuousClock.now < deadline {  // until the link and ARP are back
            try rawSend(raw, probe)
            again = try collect(&rx, window: .milliseconds(200), until: 1)
        }
        #expect(again == [probe])
    }

    @Test(.enabled(if: isRoot)) func openErrorsAreTyped() throws {
        let ns = try TestNamespace("we")
        defer { ns.close() }
        let filter = try WanFilter.ipv4(destination: wanA)
        func receiverError(_ name: String) throws -> WanIOError? {
            try ns.run { () -> WanIOError? in
                do throws(WanIOError) {
                    _ = try WanReceiver(interface: name, filter: filter)
                    return nil
                } catch { return error }
            }
        }
        func senderError(_ name: String?, maxBatch: Int = 128) throws -> WanIOError? {
            try ns.run { () -> WanIOError? in
                do throws(WanIOError) {
                    _ = try WanSender(interface: name, maxBatch: maxBatch)
                    return nil
                } catch { return error }
            }
        }
        for bad in ["", "svr/x", "svr x", "a-name-that-is-too-long"] {
            #expect(try receiverError(bad)?.kind == .invalidName)
            #expect(try senderError(bad)?.kind == .invalidName)
        }
        let missingRx = try receiverError("svrnone0")
        #expect(missingRx?.kind == .interfaceNotFound && missingRx?.errno == ENODEV)
        #expect(missingRx?.description.contains("svrnone0") == true)
        let missingTx = try senderError("svrnone0")
        #expect(missingTx?.kind == .interfaceNotFound && missingTx?.errno == ENODEV && missingTx?.operation == "SO_BINDTODEVICE")
        #expect(try senderError(nil, maxBatch: 0)?.kind == .invalidConfiguration)
        #expect(try receiverError("lo") == nil)  // and a real interface opens
        #expect(try senderError(nil) == nil)
    }

    @Test(.enabled(if: isRoot)) func withoutCapNetRawOpeningIsPermissionDenied() throws {
        // Capabilities are per thread: drop CAP_NET_RAW from the effective set of a fresh
        // thread only (capset through dlsym, as glibc exports it without a header).
        let filter = try WanFilter.ipv4(destination: wanA)
        let errors = try withoutNetRaw { () -> (WanIOError?, WanIOError?) in
            var rxError: WanIOError?
            var txError: WanIOError?
            do throws(WanIOError) { _ = try WanReceiver(interface: "lo", filter: filter) } catch { rxError = error }
            do throws(WanIOError) { _ = try WanSender() } catch { txError = error }
            return (rxError, txError)
        }
        #expect(errors.0?.kind == .permissionDenied && errors.0?.errno == EPERM && errors.0?.operation == "socket AF_PACKET")
        #expect(errors.1?.kind == .permissionDenied && errors.1?.errno == EPERM)
    }

    @Test(.enabled(if: !isRoot)) func asAnOrdinaryUserOpeningIsPermissionDenied() throws {
        let filter = try WanFilter.ipv4(destination: wanA)
        #expect(throws: WanIOError.self) { _ = try WanReceiver(interface: "lo", filter: filter) }
        do throws(WanIOError) {
            _ = try WanSender()
            Issue.record("raw socket opened without privileges")
        } catch {
            #expect(error.kind == .permissionDenied)
        }
    }
}

/// Runs `body` on a new thread whose effective capabilities lack CAP_NET_RAW (13).
private func withoutNetRaw<T>(_ body: () -> T) throws -> T {
    typealias CapCall = @convention(c) (UnsafeMutableRawPointer, UnsafeMutableRawPointer) -> Int32
    guard let get = dlsym(nil, "capget"), let set = dlsym(nil, "capset") else { throw TestSupportError("no capget/capset") }
    let capget = unsafeBitCast(get, to: CapCall.self)
    let capset = unsafeBitCast(set, to: CapCall.self)
    var result: T?
    var failure: String?
    try withoutActuallyEscaping(body) { body in
        try onThread {
            var header: (UInt32, Int32) = (0x2008_0522, 0)  // _LINUX_CAPABILITY_VERSION_3, this thread
            var data = [UInt32](repeating: 0, count: 6)     // 2 x {effective, permitted, inheritable}
            let ok = withUnsafeMutableBytes(of: &header) { h in
                data.withUnsafeMutableBytes { d in
                    guard capget(h.baseAddress!, d.baseAddress!) == 0 else { return false }
                    d.storeBytes(of: d.load(as: UInt32.self) & ~(1 << 13), as: UInt32.self)
                    return capset(h.baseAddress!, d.baseAddress!) == 0
                }
            }
            guard ok else {
                failure = "capget/capset: errno \(errno)"
                return
            }
            result = body()
        }
    }
    if let failure { throw TestSupportError(failure) }
    return result!
}

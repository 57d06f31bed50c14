// Root tests of the nftables layer: each one in its own network namespace, checked against
// the kernel with our own read-back and independently with `nft`.

import Glibc
import Netlink
import TestSupport
import Testing

/// The table most tests install: every kind of chain, set and rule statement svrd needs
/// in an inet table (netdev ingress and forward chains have their own tests).
func sampleTable(name: String = "svrt", ports: [UInt16] = [22, 80]) -> NftTable {
    NftTable(name: name, family: .inet, chains: [
        NftChain(name: "wan"),
        NftChain(name: "input", type: .filter, hook: .input, priority: 0, policy: .accept, rules: [
            NftRule(tag: "from-s4", [.sourceAddress(.set("s4"))], then: [.counter, .accept]),
            NftRule(tag: "v6", [.destinationAddress(.prefix(NftPrefix("2001:db8::/32")!))], then: [.accept]),
            NftRule([.sourceAddress(.address(NftAddress(10, 1, 2, 3))),
                     .destinationAddress(.prefix(NftPrefix("10.0.0.0/12")!))], then: [.drop]),
            NftRule(tag: "svr-ports", [.destinationPort(.udp, .range(16000...16100))], then: [.counter, .jump("wan")]),
            NftRule([.destinationPort(.any, .set("svc"))], then: [.goto("wan")]),
            NftRule([.sourcePort(.tcp, .port(179)), .inputInterfaceName("eth*")], then: [.accept]),
            NftRule([.ctState([.established, .related])], then: [.accept]),
            NftRule([.mark(0x10), .inputInterfaceIndex(1)], then: [.setMark(0x20), .return]),
            NftRule([.l4proto(.icmp)], then: [.counter]),
            NftRule(tag: "not", [.not(.sourceAddress(.set("s4"))), .not(.destinationPort(.udp, .range(16000...16100)))],
                    then: [.drop]),
        ]),
        NftChain(name: "post", type: .nat, hook: .postrouting, priority: 100, rules: [
            NftRule([.outputInterfaceName("lo")], then: [.masquerade]),
            NftRule([.sourceAddress(.set("s6"))], then: [.snat(NftAddress("2001:db8::1")!)]),
            NftRule([.sourceAddress(.prefix(NftPrefix("192.168.0.0/16")!))], then: [.snat(NftAddress(198, 18, 0, 1))]),
        ]),
    ], sets: [
        NftSet(name: "s4", keyType: .ipv4Address, interval: true,
               elements: [.prefix(NftPrefix("10.0.0.0/8")!), .address(NftAddress(192, 168, 1, 1)),
                          .addressRange(NftAddress(172, 16, 0, 1), NftAddress(172, 16, 0, 9))]),
        NftSet(name: "s6", keyType: .ipv6Address, elements: [.address(NftAddress("2001:db8::7")!)]),
        NftSet(name: "svc", keyType: .inetService, elements: ports.map { .port($0) }),
        NftSet(name: "ranges", keyType: .inetService, interval: true, elements: [.portRange(1000...2000), .port(3000)]),
    ])
}

/// Number of rules `nft -j` lists for a table.
private func nftRuleCount(_ ns: TestNamespace, _ table: String) -> Int {
    ns.sh("nft -j list table inet \(table)").output.components("\"rule\":").count - 1
}

extension String {
    /// Splits on a separator string (Foundation-free).
    func components(_ separator: String) -> [Substring] {
        var parts = [Substring]()
        var rest = self[...]
        while let r = rest.firstRange(of: separator) {
            parts.append(rest[..<r.lowerBound])
            rest = rest[r.upperBound...]
        }
        parts.append(rest)
        return parts
    }
}

@Suite(.serialized) struct NftKernelTests {
    @Test(.enabled(if: isRoot)) func replacedTableIsListedByNft() throws {
        let ns = try TestNamespace("nft")
        defer { ns.close() }
        let table = sampleTable()
        try ns.run {
            let nft = try Nftables()
            try nft.replace(table)
            #expect(try nft.tableExists("svrt", family: .inet))
            #expect(try nft.tables() == [NftTableID(name: "svrt", family: .inet)])
        }
        let text = ns.sh("nft list table inet svrt").output
        for line in [
            "set s4 {", "type ipv4_addr", "flags interval",
            "elements = { 10.0.0.0/8, 172.16.0.1-172.16.0.9,", "192.168.1.1 }",
            "elements = { 2001:db8::7 }", "elements = { 22, 80 }", "elements = { 1000-2000, 3000 }",
            "chain wan {",
            "type filter hook input priority filter; policy accept;",
            "ip saddr @s4 counter packets 0 bytes 0 accept comment \"from-s4\"",
            "ip6 daddr 2001:db8::/32 accept comment \"v6\"",
            "ip saddr 10.1.2.3 ip daddr 10.0.0.0/12 drop",
            "udp dport 16000-16100 counter packets 0 bytes 0 jump wan comment \"svr-ports\"",
            "th dport @svc goto wan",
            "tcp sport 179 iifname \"eth*\" accept",
            "ct state established,related accept",
            "meta mark 0x00000010 iif \"lo\" meta mark set 0x00000020 return",
            "meta l4proto icmp counter packets 0 bytes 0",
            "ip saddr != @s4 udp dport != 16000-16100 drop comment \"not\"",
            "type nat hook postrouting priority srcnat; policy accept;",
            "oifname \"lo\" masquerade",
            "ip6 saddr @s6 snat ip6 to 2001:db8::1",
            "ip saddr 192.168.0.0/16 snat ip to 198.18.0.1",
        ] {
            #expect(text.contains(line), "nft list lacks: \(line)\n\(text)")
        }
        #expect(nftRuleCount(ns, "svrt") == 13)
    }

    @Test(.enabled(if: isRoot)) func counterCountsRealPackets() throws {
        let ns = try TestNamespace("nfc")
        defer { ns.close() }
        let port: UInt16 = 40123
        let sent = 7, payload = 100
        let table = NftTable(name: "svrc", family: .inet, chains: [
            NftChain(name: "out", type: .filter, hook: .output, rules: [
                NftRule(tag: "probe", [.destinationPort(.udp, .port(port))], then: [.counter]),
                NftRule(tag: "other", [.destinationPort(.udp, .port(port + 1))], then: [.counter]),
            ]),
        ])
        let rules = try ns.run {
            let nft = try Nftables()
            try nft.replace(table)
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(fd) }
            var to = sockaddr_in()
            to.sin_family = sa_family_t(AF_INET)
            to.sin_port = port.bigEndian
            to.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            let data = [UInt8](repeating: 0x5a, count: payload)
            for _ in 0..<sent {
                let n = withUnsafePointer(to: &to) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, data, data.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                #expect(n == payload)
            }
            return try nft.rules(table: "svrc", family: .inet)
        }
        #expect(rules.count == 2)
        let probe = rules.first { $0.tag == "probe" }
        #expect(probe?.chain == "out")
        #expect(probe?.packets == UInt64(sent))
        #expect(probe?.bytes == UInt64(sent * (20 + 8 + payload)))
        #expect(rules.first { $0.tag == "other" }?.packets == 0)
        let json = ns.sh("nft -j list table inet svrc").output
        #expect(json.contains("{\"counter\": {\"packets\": \(sent), \"bytes\": \(sent * 128)}}"), "\(json)")
    }

    @Test(.enabled(if: isRoot)) func replacingTwiceLeavesOneCopyOfEachRule() throws {
        let ns = try TestNamespace("nfr")
        defer { ns.close() }
        let (first, second) = try ns.run {
            let nft = try Nftables()
            try nft.replace(sampleTable())
            let first = try nft.rules(table: "svrt", family: .inet)
            try nft.replace(sampleTable(ports: [443]))
            return (first, try nft.rules(table: "svrt", family: .inet))
        }
        #expect(first.count == 13)
        #expect(second.count == 13)
        #expect(second.map(\.tag) == first.map(\.tag))
        #expect(nftRuleCount(ns, "svrt") == 13)
        let text = ns.sh("nft list ruleset").output
        #expect(text.components("table inet svrt").count == 2)
        #expect(text.contains("elements = { 443 }"))
        #expect(!text.contains("elements = { 22, 80 }"))
    }

    /// Several NEWSETELEM messages, hundreds of ACKs and a rule dump spanning several reads.
    @Test(.enabled(if: isRoot)) func largeTablesRoundTrip() throws {
        let ns = try TestNamespace("nfl")
        defer { ns.close() }
        let elements = (0..<3000).map { i in
            NftSetElement.prefix(NftPrefix(NftAddress(10, UInt8(i / 256), UInt8(i % 256), 0), length: 28)!)
        }
        let rules = (0..<400).map { i in
            NftRule(tag: "r\(i)", [.sourceAddress(.set("nets")), .destinationPort(.udp, .port(UInt16(20000 + i)))],
                    then: [.counter, .accept])
        }
        let table = NftTable(name: "svrl", family: .inet, chains: [
            NftChain(name: "input", type: .filter, hook: .input, rules: rules),
        ], sets: [NftSet(name: "nets", keyType: .ipv4Address, interval: true, elements: elements)])
        let listed = try ns.run {
            let nft = try Nftables()
            try nft.replace(table)
            try nft.replace(table)
            return try nft.rules(table: "svrl", family: .inet)
        }
        #expect(listed.map(\.tag) == (0..<400).map { "r\($0)" })
        #expect(listed.allSatisfy { $0.chain == "input" && $0.packets == 0 })
        let set = ns.sh("nft list set inet svrl nets").output
        for e in ["10.0.0.0/28", "10.0.1.0/28", "10.5.255.0/28", "10.11.183.0/28"] {
            #expect(set.contains(e), "set lacks \(e)")
        }
        #expect(!set.contains("10.11.184.0/28"))  // element 3000 does not exist
        #expect(nftRuleCount(ns, "svrl") == 400)
    }

    @Test(.enabled(if: isRoot)) func deletingLeavesNothing() throws {
        let ns = try TestNamespace("nfd")
        defer { ns.close() }
        try ns.run {
            let nft = try Nftables()
            #expect(try nft.delete(table: "svrt", family: .inet) == false)  // absent: no error
            try nft.replace(sampleTable())
            try nft.replace(NftTable(name: "svr4", family: .ip, chains: [
                NftChain(name: "out", type: .filter, hook: .output, rules: [
                    NftRule([.destinationAddress(.prefix(NftPrefix("198.51.100.0/24")!))], then: [.drop]),
                ]),
            ]))
            try nft.replace(NftTable(name: "svr6", family: .ip6, chains: [
                NftChain(name: "out", type: .filter, hook: .output, rules: [
                    NftRule([.destinationAddress(.address(NftAddress("2001:db8::9")!))], then: [.drop]),
                ]),
            ]))
            #expect(Set(try nft.tables()) == [NftTableID(name: "svrt", family: .inet),
                                               NftTableID(name: "svr4", family: .ip),
                                               NftTableID(name: "svr6", family: .ip6)])
            #expect(try nft.tables(family: .ip6) == [NftTableID(name: "svr6", family: .ip6)])
            #expect(ns.sh("nft list table ip svr4").output.contains("ip daddr 198.51.100.0/24 drop"))
            #expect(ns.sh("nft list table ip6 svr6").output.contains("ip6 daddr 2001:db8::9 drop"))
            #expect(try nft.tableExists("svr4", family: .ip6) == false)  // same name, other family
            #expect(try nft.delete(table: "svrt", family: .inet) == true)
            #expect(try nft.delete(table: "svr4", family: .ip) == true)
            #expect(try nft.delete(table: "svr6", family: .ip6) == true)
            #expect(try nft.tableExists("svrt", family: .inet) == false)
            #expect(try nft.tables().isEmpty)
            #expect(try nft.delete(table: "svrt", family: .inet) == false)
        }
        #expect(ns.sh("nft list tables").output == "")
        #expect(ns.sh("nft list ruleset").output == "")
    }

    @Test(.enabled(if: isRoot)) func mssClampTproxyNotrackAndNetdevIngressAreAccepted() throws {
        let ns = try TestNamespace("nfm")
        defer { ns.close() }
        #expect(ns.sh("ip link add svrd0 type veth peer name svrd1 && ip link set svrd0 up").status == 0)
        let index = UInt32(ns.sh("cat /sys/class/net/svrd0/ifindex").output.filter(\.isNumber))!
        try ns.run {
            let nft = try Nftables()
            try nft.replace(NftTable(name: "svrm", family: .inet, chains: [
                NftChain(name: "fwd", type: .filter, hook: .forward, rules: [
                    NftRule(tag: "mss", [.outputInterfaceName("svrd0")], then: [.clampMSS(1360)]),
                    NftRule(tag: "pmtu", then: [.clampMSSToRoute]),
                ]),
                NftChain(name: "raw", type: .filter, hook: .prerouting, priority: -300, rules: [
                    NftRule([.destinationPort(.udp, .range(16000...16100))], then: [.notrack]),
                ]),
                NftChain(name: "mangle", type: .filter, hook: .prerouting, priority: -150, rules: [
                    NftRule([.destinationPort(.udp, .range(16000...16100))], then: [.tproxy(port: 5000)]),
                ]),
            ]))
            try nft.replace(NftTable(name: "svri", family: .netdev, chains: [
                NftChain(name: "in", type: .filter, hook: .ingress, priority: -500, device: "svrd0", rules: [
                    NftRule(tag: "to-svrd0", [.destinationAddress(.address(NftAddress(198, 18, 0, 1))),
                                              .destinationPort(.udp, .range(16000...16100))],
                            then: [.counter, .forward(interfaceIndex: index)]),
                    NftRule(tag: "by-name", [.destinationPort(.tcp, .port(179))], then: [.forwardToDevice("svrd1")]),
                ]),
            ]))
        }
        let text = ns.sh("nft list ruleset").output
        for line in [
            "oifname \"svrd0\" tcp flags syn tcp option maxseg size set 1360 comment \"mss\"",
            "tcp flags syn tcp option maxseg size set rt mtu comment \"pmtu\"",
            "udp dport 16000-16100 notrack",
            "udp dport 16000-16100 tproxy to :5000",
            "tcp dport 179 fwd to \"svrd1\" comment \"by-name\"",
            "table netdev svri {",
            "type filter hook ingress device \"svrd0\" priority -500; policy accept;",
            "ip daddr 198.18.0.1 udp dport 16000-16100 counter packets 0 bytes 0 fwd to \"svrd0\" comment \"to-svrd0\"",
        ] {
            #expect(text.contains(line), "nft list lacks: \(line)\n\(text)")
        }
    }

    @Test(.enabled(if: isRoot)) func badReplacementIsRejectedAndLeavesTheTableIntact() throws {
        let ns = try TestNamespace("nfb")
        defer { ns.close() }
        #expect(ns.sh("ip link add svrd0 type veth peer name svrd1 && ip link set svrd0 up").status == 0)
        let ingress = NftTable(name: "svrb", family: .netdev, chains: [
            NftChain(name: "in", type: .filter, hook: .ingress, device: "svrd0", rules: [
                NftRule(tag: "keep", then: [.counter]),
            ]),
        ])
        let good = sampleTable()
        var bad = good
        // `rt mtu` exists only after routing: the kernel rejects it in an input chain when it
        // checks the rule against the base chain.
        bad.chains[1].rules.append(NftRule(then: [.clampMSSToRoute]))  // rule 10
        var fwdInInet = good  // fwd exists only in the netdev family
        fwdInInet.chains[1].rules.insert(NftRule(then: [.forward(interfaceIndex: 1)]), at: 0)
        var wrongType = ingress  // the netdev family has no nat chains
        wrongType.chains[0].hook?.type = .nat
        let before = ns.sh("nft list ruleset").output
        #expect(before == "")
        try ns.run {
            let nft = try Nftables()
            try nft.replace(good)
            try nft.replace(ingress)
        }
        let installed = ns.sh("nft -a list ruleset").output
        let errors = try ns.run {
            let nft = try Nftables()
            var errors = [NetlinkError]()
            for table in [bad, fwdInInet, wrongType] {
                do {
                    try nft.replace(table)
                    Issue.record("the kernel accepted a bad table \(table.name)")
                } catch let e as NetlinkError {
                    errors.append(e)
                }
            }
            return errors
        }
        try #require(errors.count == 3)
        #expect(errors[0].errno == EOPNOTSUPP)
        #expect(errors[0].description.hasPrefix("replace table inet svrt: "))
        #expect(errors[0].detail == "refused: add rule 10 to chain input")
        #expect(errors[1].errno != 0)
        #expect(errors[1].detail == "refused: add rule 0 to chain input")
        #expect(errors[2].errno != 0)
        #expect(errors[2].detail == "refused: add chain in")
        for e in errors { print("rejected as expected: \(e)") }
        // Atomicity: not a rule, handle or set element changed.
        #expect(ns.sh("nft -a list ruleset").output == installed)
    }
}

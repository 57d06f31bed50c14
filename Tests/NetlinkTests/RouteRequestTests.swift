// Golden bytes of every rtnetlink request kind.
//
// How the goldens were checked: field by field against the kernel structures (nlmsghdr 16
// bytes: len u32, type u16, flags u16, seq u32, pid u32; ifinfomsg 16; ifaddrmsg 8; rtmsg
// 12; fib_rule_hdr 12; attributes len u16, type u16, value padded to 4), and against `ip`
// (iproute2 6.1): the equivalent `ip` command was run under
// `strace -e trace=sendmsg -e write=all` and its request compared byte for byte. Where a
// golden says "= ip", the bytes are identical to ip's apart from the sequence number (0 here)
// and, for nested attributes, the NLA_F_NESTED bit (0x8000) that libmnl sets and ip does not
// (the kernel accepts both; strict validation of newer attributes requires it).
// Values: RTM_NEWLINK 16, DELLINK 17, GETLINK 18, NEWADDR 20, DELADDR 21, NEWROUTE 24,
// DELROUTE 25, GETROUTE 26, NEWRULE 32, DELRULE 33. Flags: REQUEST 1, ACK 4, REPLACE 0x100,
// EXCL 0x200, CREATE 0x400, DUMP 0x300.

import Netlink
import TestSupport
import Testing

private func bytes(_ request: RouteRequest) -> String { hexString(request.message().bytes) }
private func golden(_ hex: String) -> String { hexString(hexBytes(hex)) }
private func prefix(_ text: String) -> NetlinkPrefix { NetlinkPrefix(text)! }
private func address(_ text: String) -> NetlinkAddress { NetlinkAddress(text)! }

@Suite struct LinkRequestGoldens {
    @Test func setUp() {  // = ip link set dev svrv0 up (ifindex 3)
        #expect(bytes(.setLink(index: 3, up: true, mtu: nil)) == golden("""
            20000000 1000 0500 00000000 00000000
            00 00 0000 03000000 01000000 01000000
            """))  // ifinfomsg: family 0, type 0, index 3, flags IFF_UP, change IFF_UP
    }

    @Test func setDown() {
        #expect(bytes(.setLink(index: 3, up: false, mtu: nil)) == golden("""
            20000000 1000 0500 00000000 00000000
            00 00 0000 03000000 00000000 01000000
            """))  // flags 0, change IFF_UP
    }

    @Test func setMTU() {  // = ip link set dev svrv0 mtu 1400
        #expect(bytes(.setLink(index: 3, up: nil, mtu: 1400)) == golden("""
            28000000 1000 0500 00000000 00000000
            00 00 0000 03000000 00000000 00000000
            0800 0400 78050000
            """))  // IFLA_MTU (4) = 1400
    }

    @Test func delete() {  // = ip link del svrv0
        #expect(bytes(.deleteLink(index: 3)) == golden("""
            20000000 1100 0500 00000000 00000000
            00 00 0000 03000000 00000000 00000000
            """))
    }

    @Test func createDummy() {  // = ip link add svrd2 type dummy
        #expect(bytes(.createLink(name: "svrd2", kind: .dummy)) == golden("""
            3c000000 1000 0506 00000000 00000000
            00000000 00000000 00000000 00000000
            0a00 0300 73767264 32000000
            1000 1280 0900 0100 64756d6d 79000000
            """))  // IFLA_IFNAME "svrd2" + NUL; IFLA_LINKINFO (18 | NESTED) { IFLA_INFO_KIND "dummy" }
    }

    @Test func createVeth() {  // = ip link add svrv2 type veth peer name svrv3
        #expect(bytes(.createLink(name: "svrv2", kind: .veth(peer: "svrv3"))) == golden("""
            5c000000 1000 0506 00000000 00000000
            00000000 00000000 00000000 00000000
            0a00 0300 73767276 32000000
            3000 1280
              0800 0100 76657468
              2400 0280
                2000 0180
                  00000000 00000000 00000000 00000000
                  0a00 0300 73767276 33000000
            """))  // LINKINFO { KIND "veth", DATA { VETH_INFO_PEER { ifinfomsg, IFNAME } } }
    }

    @Test func getByName() {  // ip also sends IFLA_EXT_MASK; the kernel needs only the name
        #expect(bytes(.getLink(name: "lo")) == golden("""
            28000000 1200 0500 00000000 00000000
            00000000 00000000 00000000 00000000
            0700 0300 6c6f0000
            """))
    }

    @Test func dumpLinks() {
        #expect(bytes(.dumpLinks) == golden("""
            20000000 1200 0103 00000000 00000000
            00000000 00000000 00000000 00000000
            """))  // REQUEST|DUMP
    }
}

@Suite struct AddressRequestGoldens {
    @Test func addIPv4() {  // = ip addr add 198.51.100.7/24 dev svrv0
        #expect(bytes(.addAddress(prefix("198.51.100.7/24"), interfaceIndex: 3)) == golden("""
            28000000 1400 0506 00000000 00000000
            02 18 00 00 03000000
            0800 0200 c6336407
            0800 0100 c6336407
            """))  // ifaddrmsg: AF_INET, /24, flags 0, scope 0, index 3; IFA_LOCAL, IFA_ADDRESS
    }

    @Test func addIPv6WithoutDAD() {  // = ip addr add 2001:db8::7/64 dev svrv0 nodad
        #expect(bytes(.addAddress(prefix("2001:db8::7/64"), interfaceIndex: 3)) == golden("""
            40000000 1400 0506 00000000 00000000
            0a 40 02 00 03000000
            1400 0200 20010db8 00000000 00000000 00000007
            1400 0100 20010db8 00000000 00000000 00000007
            """))  // AF_INET6 (10), /64, IFA_F_NODAD (2)
    }

    @Test func deleteIPv4() {  // = ip addr del 198.51.100.7/24 dev svrv0
        #expect(bytes(.deleteAddress(prefix("198.51.100.7/24"), interfaceIndex: 3)) == golden("""
            28000000 1500 0500 00000000 00000000
            02 18 00 00 03000000
            0800 0200 c6336407
            0800 0100 c6336407
            """))
    }

    @Test func deleteIPv6() {  // no NODAD flag on delete
        #expect(bytes(.deleteAddress(prefix("2001:db8::7/64"), interfaceIndex: 3)) == golden("""
            40000000 1500 0500 00000000 00000000
            0a 40 00 00 03000000
            1400 0200 20010db8 00000000 00000000 00000007
            1400 0100 20010db8 00000000 00000000 00000007
            """))
    }
}

@Suite struct RouteRequestGoldens {
    @Test func addDeviceRoute() {  // = ip route add 10.1.0.0/16 dev svrv0
        let route = Route(destination: prefix("10.1.0.0/16"), interfaceIndex: 3, proto: .boot)
        #expect(bytes(.addRoute(route)) == golden("""
            2c000000 1800 0506 00000000 00000000
            02 10 00 00 fe 03 fd 01 00000000
            0800 0100 0a010000
            0800 0400 03000000
            """))  // rtmsg: AF_INET, /16, table main (254), proto boot, scope link (253), unicast
    }

    @Test func addGatewayRouteInTable100WithMetric() {
        // = ip route add 10.2.0.0/16 via 192.0.2.254 table 100 metric 10
        let route = Route(destination: prefix("10.2.0.0/16"), gateway: address("192.0.2.254"),
                          metric: 10, table: 100, proto: .boot)
        #expect(bytes(.addRoute(route)) == golden("""
            34000000 1800 0506 00000000 00000000
            02 10 00 00 64 03 00 01 00000000
            0800 0100 0a020000
            0800 0500 c00002fe
            0800 0600 0a000000
            """))  // table 100 in the header, scope universe; RTA_GATEWAY (5), RTA_PRIORITY (6)
    }

    @Test func addGatewayRouteWithDevice() {  // = ip route add 10.4.0.0/16 via 192.0.2.254 dev svrv0
        let route = Route(destination: prefix("10.4.0.0/16"), gateway: address("192.0.2.254"),
                          interfaceIndex: 3, proto: .boot)
        #expect(bytes(.addRoute(route)) == golden("""
            34000000 1800 0506 00000000 00000000
            02 10 00 00 fe 03 00 01 00000000
            0800 0100 0a040000
            0800 0500 c00002fe
            0800 0400 03000000
            """))
    }

    @Test func addRouteInTableAbove255UsesRTATable() {
        // = ip route add 10.3.0.0/16 via 192.0.2.254 table 1000, except protocol static (4),
        // the default of Route
        let route = Route(destination: prefix("10.3.0.0/16"), gateway: address("192.0.2.254"), table: 1000)
        #expect(bytes(.addRoute(route)) == golden("""
            34000000 1800 0506 00000000 00000000
            02 10 00 00 00 04 00 01 00000000
            0800 0100 0a030000
            0800 0500 c00002fe
            0800 0f00 e8030000
            """))  // header table RT_TABLE_UNSPEC (0), RTA_TABLE (15) = 1000
    }

    @Test func addIPv6GatewayRouteWithMetric() {  // = ip -6 route add 2001:db8:1::/48 via 2001:db8::1 metric 20
        let route = Route(destination: prefix("2001:db8:1::/48"), gateway: address("2001:db8::1"),
                          metric: 20, proto: .boot)
        #expect(bytes(.addRoute(route)) == golden("""
            4c000000 1800 0506 00000000 00000000
            0a 30 00 00 fe 03 00 01 00000000
            1400 0100 20010db8 00010000 00000000 00000000
            1400 0500 20010db8 00000000 00000000 00000001
            0800 0600 14000000
            """))
    }

    @Test func addIPv6DeviceRouteInTable100() {  // = ip -6 route add 2001:db8:2::/48 table 100 dev svrv0
        let route = Route(destination: prefix("2001:db8:2::/48"), interfaceIndex: 3, table: 100, proto: .boot)
        #expect(bytes(.addRoute(route)) == golden("""
            38000000 1800 0506 00000000 00000000
            0a 30 00 00 64 03 00 01 00000000
            1400 0100 20010db8 00020000 00000000 00000000
            0800 0400 03000000
            """))  // IPv6 routes carry scope universe, as ip sends them
    }

    @Test func addDefaultRouteHasNoDestination() {
        let route = Route(destination: .defaultRoute(.ipv4), gateway: address("192.0.2.1"))
        #expect(bytes(.addRoute(route)) == golden("""
            24000000 1800 0506 00000000 00000000
            02 00 00 00 fe 04 00 01 00000000
            0800 0500 c0000201
            """))
    }

    @Test func addBlackholeRoute() {  // = ip route add blackhole 10.5.0.0/16
        let route = Route(destination: prefix("10.5.0.0/16"), proto: .boot, type: .blackhole)
        #expect(bytes(.addRoute(route)) == golden("""
            24000000 1800 0506 00000000 00000000
            02 10 00 00 fe 03 00 06 00000000
            0800 0100 0a050000
            """))  // RTN_BLACKHOLE (6), scope universe
        #expect(RouteRequest.addRoute(route).description == "add route blackhole 10.5.0.0/16 table main")
    }

    @Test func replace() {  // = ip route replace 10.1.0.0/16 dev svrv0 metric 5
        let route = Route(destination: prefix("10.1.0.0/16"), interfaceIndex: 3, metric: 5, proto: .boot)
        #expect(bytes(.replaceRoute(route)) == golden("""
            34000000 1800 0505 00000000 00000000
            02 10 00 00 fe 03 fd 01 00000000
            0800 0100 0a010000
            0800 0600 05000000
            0800 0400 03000000
            """))  // flags REQUEST|ACK|REPLACE|CREATE (0x505)
    }

    @Test func deleteIPv4() {  // = ip route del 10.2.0.0/16 table 100
        let route = Route(destination: prefix("10.2.0.0/16"), table: 100)
        #expect(bytes(.deleteRoute(route)) == golden("""
            24000000 1900 0500 00000000 00000000
            02 10 00 00 64 00 ff 00 00000000
            0800 0100 0a020000
            """))  // protocol 0, scope RT_SCOPE_NOWHERE (255), type 0: wildcards
    }

    @Test func deleteIPv6() {  // = ip -6 route del 2001:db8:1::/48 via 2001:db8::1 metric 20
        let route = Route(destination: prefix("2001:db8:1::/48"), gateway: address("2001:db8::1"), metric: 20)
        #expect(bytes(.deleteRoute(route)) == golden("""
            4c000000 1900 0500 00000000 00000000
            0a 30 00 00 fe 00 00 00 00000000
            1400 0100 20010db8 00010000 00000000 00000000
            1400 0500 20010db8 00000000 00000000 00000001
            0800 0600 14000000
            """))
    }

    @Test func dumpIPv6() {
        #expect(bytes(.dumpRoutes(.ipv6)) == golden("""
            1c000000 1a00 0103 00000000 00000000
            0a 00 00 00 00 00 00 00 00000000
            """))
    }

    @Test func operationText() {
        let route = Route(destination: prefix("10.0.0.0/8"), gateway: address("192.0.2.1"), table: 100)
        #expect(RouteRequest.addRoute(route).description == "add route 10.0.0.0/8 via 192.0.2.1 table 100")
        #expect(RouteRequest.deleteRoute(Route(destination: prefix("2001:db8::/32"), interfaceIndex: 2, metric: 7)).description
            == "delete route 2001:db8::/32 dev #2 metric 7 table main")
    }
}

@Suite struct RuleRequestGoldens {
    @Test func addFwmarkRule() {  // = ip rule add fwmark 0x1/0xff table 100 priority 1000
        let rule = RoutingRule(family: .ipv4, priority: 1000, fwmark: 1, fwmask: 0xff, table: 100)
        #expect(bytes(.addRule(rule)) == golden("""
            34000000 2000 0506 00000000 00000000
            02 00 00 00 64 00 00 01 00000000
            0800 0a00 01000000
            0800 1000 ff000000
            0800 0600 e8030000
            """))  // fib_rule_hdr: AF_INET, table 100, action FR_ACT_TO_TBL; FWMARK 10, FWMASK 16, PRIORITY 6
    }

    @Test func deleteFwmarkRule() {  // = ip rule del fwmark 0x1/0xff table 100 priority 1000
        let rule = RoutingRule(family: .ipv4, priority: 1000, fwmark: 1, fwmask: 0xff, table: 100)
        #expect(bytes(.deleteRule(rule)) == golden("""
            34000000 2100 0500 00000000 00000000
            02 00 00 00 64 00 00 00 00000000
            0800 0a00 01000000
            0800 1000 ff000000
            0800 0600 e8030000
            """))  // action 0 matches any
    }

    @Test func addIPv6RuleInTable1000() {  // = ip -6 rule add fwmark 0x2 table 1000 priority 1001
        let rule = RoutingRule(family: .ipv6, priority: 1001, fwmark: 2, table: 1000)
        #expect(bytes(.addRule(rule)) == golden("""
            34000000 2000 0506 00000000 00000000
            0a 00 00 00 00 00 00 01 00000000
            0800 0a00 02000000
            0800 0f00 e8030000
            0800 0600 e9030000
            """))  // header table 0, FRA_TABLE (15) = 1000
    }

    @Test func addSourceRule() {  // = ip rule add from 192.0.2.0/24 table 7
        let rule = RoutingRule(family: .ipv4, source: prefix("192.0.2.0/24"), table: 7)
        #expect(bytes(.addRule(rule)) == golden("""
            24000000 2000 0506 00000000 00000000
            02 00 18 00 07 00 00 01 00000000
            0800 0200 c0000200
            """))  // src_len 24, FRA_SRC (2)
    }
}

@Suite struct AddressValueTests {
    @Test func parsesAndPrints() {
        #expect(address("192.0.2.1") == .v4(0xc000_0201))
        #expect(address("2001:db8::1") == .v6(high: 0x2001_0db8_0000_0000, low: 1))
        #expect(address("2001:db8::1").bytes == hexBytes("20010db8000000000000000000000001"))
        #expect(address("::ffff:1.2.3.4").description == "::ffff:1.2.3.4")
        #expect(NetlinkAddress("300.1.1.1") == nil)
        #expect(NetlinkPrefix("10.0.0.0/33") == nil)
        #expect(NetlinkPrefix("10.1.2.3/8")!.network.description == "10.0.0.0/8")
        #expect(NetlinkPrefix("2001:db8:ffff::1/36")!.network.description == "2001:db8:f000::/36")
        #expect(NetlinkPrefix("2001:db8::1")!.length == 128)
    }
}

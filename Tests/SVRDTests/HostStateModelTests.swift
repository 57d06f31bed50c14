// Unit tests (no root) of what svrd derives from a config: the nftables table it installs
// and the JSON documents of the control API.

import Netlink
import SVR
@testable import svrd
import Testing

@Suite struct HostStateModelTests {
    static let config = """
        [router]
        name = "unit"
        private-key = "QNtRX4EhG/ADFrQrVJYlIUKu9REcAk0G2be+lZXiAFk="
        lan-device = "svr7"
        lan-address = "10.77.0.1/24"
        mtu = 1300
        [[interface]]
        name = "eth0"
        address = "203.0.113.10"
        neighborhood = "internet"
        port-range = "20000-29999"
        [[interface]]
        name = "eth1"
        address = "198.51.100.7"
        neighborhood = "mpls"
        [[peer]]
        name = "hub"
        public-key = "X++bW0CCBzYCGiQEiy/b1gESv88rxjc5x4iaR3RShTY="
        waypoints = ["192.0.2.1"]
        [[tenant]]
        name = "staff"
        prefixes = ["10.77.0.0/24"]
        [[service]]
        name = "remote"
        prefixes = ["10.9.0.0/16", "10.10.0.0/16"]
        tenants = ["staff"]
        [[service]]
        name = "web"
        prefixes = ["10.80.0.0/24"]
        protocol = "tcp"
        ports = ["80"]
        tenants = ["staff"]
        [[service]]
        name = "plain"
        prefixes = ["10.81.0.0/24"]
        tenants = ["staff"]
        [[service-route]]
        service = "remote"
        peer = "hub"
        [[service-route]]
        service = "web"
        local = true
        source-nat = true
        nat-address = "10.80.0.1"
        [[service-route]]
        service = "plain"
        local = true
        """

    func load(_ text: String = config) throws -> Config {
        do throws(ConfigErrors) {
            return try Config.parse(text: text, fileName: "unit.toml")
        } catch {
            Issue.record("\(error.errors)")
            throw error
        }
    }

    @Test func nftTableHasIsolationMarksClampAndNAT() throws {
        let config = try load()
        let table = HostState.nftTable(config: config, tun: "svr7")
        #expect(table.name == "svrd" && table.family == .inet)
        #expect(table.chains.map(\.name) == ["wan_prerouting", "wan_output", "lan_prerouting", "lan_output",
                                             "mss_forward", "mss_output", "nat_postrouting", "wan_silence"])
        // One port set per interface: its own range (or the default) and 1280.
        #expect(table.sets.map(\.name) == ["peer_waypoints", "waypoint_ports_0", "waypoint_ports_1"])
        #expect(!table.sets[0].elements.isEmpty && table.sets[0].keyType == .ipv4Address)
        #expect(table.sets[1].elements == [.portRange(20000...29999), .port(1280)])
        #expect(table.sets[2].elements == [.portRange(16384...65535), .port(1280)])
        let pre = table.chains[0]
        #expect(pre.hook?.priority == -300 && pre.hook?.hook == .prerouting)
        #expect(pre.rules.count == 4)
        #expect(pre.rules[0].matches == [.sourceAddress(.set("peer_waypoints")), .destinationAddress(.address(NftAddress(203, 0, 113, 10))),
                                         .destinationPort(.udp, .set("waypoint_ports_0"))])
        #expect(pre.rules[0].statements == [.counter, .drop])
        #expect(table.chains[1].rules.allSatisfy { $0.statements == [.notrack] })
        let marks = table.chains[2].rules
        #expect(marks[0].matches == [.inputInterfaceName("svr7"), .ctState(.new)] && marks[0].statements == [.setCtMark(0x5352)])
        #expect(marks[1].matches == [.not(.inputInterfaceName("svr7")), .ctMark(0x5352)] && marks[1].statements == [.setMark(0x5352)])
        #expect(table.chains[3].hook?.type == .route)
        #expect(table.chains[4].rules.allSatisfy { $0.statements == [.clampMSS(1260)] })
        // Source NAT only for the local route with source-nat, to its nat-address.
        let nat = table.chains[6].rules
        #expect(nat.count == 1)
        #expect(nat[0].statements == [.snat(NftAddress(10, 80, 0, 1))])
        #expect(nat[0].matches.contains(.destinationAddress(.prefix(NftPrefix("10.80.0.0/24")!))))
        // Strangers: after conntrack, what is not a connection of the host's is dropped.
        let silence = table.chains[7]
        #expect(silence.hook?.priority == -190 && silence.hook?.hook == .prerouting)
        #expect(silence.rules.count == 4)
        #expect(silence.rules[1].matches == [.destinationAddress(.address(NftAddress(203, 0, 113, 10))),
                                             .destinationPort(.tcp, .set("waypoint_ports_0")),
                                             .not(.ctState([.established, .related]))])
        #expect(silence.rules.allSatisfy { $0.statements == [.counter, .drop] })
    }

    @Test func noNATChainWithoutSourceNAT() throws {
        let config = try load(Self.config.replacing("source-nat = true\nnat-address = \"10.80.0.1\"", with: ""))
        let table = HostState.nftTable(config: config, tun: "svr7")
        #expect(!table.chains.contains { $0.name == "nat_postrouting" })
    }

    @Test func statsDocumentListsEveryDropReason() throws {
        var counters = EngineCounters()
        counters.lanReceivedPackets = 5
        counters.drop(.notAllowed)
        let snap = DataPlaneSnapshot(
            engine: EngineSnapshot(routerName: "unit", counters: counters, sessions: [], peers: [], services: []),
            io: IOCounters(tunReadPackets: 5, wanReceived: [1], wanSent: [2], wanSendDrops: [0], wanKernelDrops: [0]),
            interfaces: ["eth0"])
        let json = ControlAPI.stats(snap)
        #expect(json["router"]?.stringValue == "unit")
        #expect(json["lan"]?["received-packets"]?.intValue == 5)
        #expect(json["drops"]?["not-allowed"]?.intValue == 1)
        if case .object(let drops)? = json["drops"] {
            #expect(drops.map(\.0) == DropReason.allCases.map(\.description))
        } else {
            Issue.record("no drops object")
        }
        #expect(json["io"]?["interfaces"]?.arrayValue?.first?["sent"]?.intValue == 2)
    }

    @Test func tableAlignsColumns() {
        var t = Table(["A", "LONGER"])
        t.add(["xyz", "1"])
        #expect(t.render() == "A    LONGER\nxyz  1\n")
        #expect(Table.bytes(512) == "512 B" && Table.bytes(1536) == "1.5 KiB")
        #expect(Table.age(59) == "59s" && Table.age(61) == "1m1s" && Table.age(3700) == "1h1m")
    }
}

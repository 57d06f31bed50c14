// In-memory SVR network for the engine tests: routers built from TOML strings, a link that
// hands every `.toWAN` packet to the router owning its destination waypoint, LAN sinks, and
// a log of every packet seen on the simulated wire.

import Testing

@testable import SVR

/// Real IPv4 packets with valid checksums.
enum Pkt {
    static func ipv4(_ src: String, _ dst: String, proto: UInt8, l4: [UInt8], payload: [UInt8], id: UInt16 = 0x1234) -> [UInt8] {
        let total = 20 + l4.count + payload.count
        var b: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), UInt8(id >> 8), UInt8(id & 0xff), 0x40, 0, 64, proto, 0, 0]
        b += bytes(IPv4Address(src)!.value) + bytes(IPv4Address(dst)!.value)
        b += l4 + payload
        let slot = PacketSlot(capacity: b.count)
        return withExtendedLifetime(slot) {
            var p = try! IPPacket(try! slot.packet(headroom: 0, copying: b))
            p.recomputeChecksums()
            return p.buffer.copyBytes()
        }
    }

    static func bytes(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }

    static func udp(_ src: String, _ sp: UInt16, _ dst: String, _ dp: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let l4 = be16(sp) + be16(dp) + be16(UInt16(8 + payload.count)) + [0, 0]
        return ipv4(src, dst, proto: 17, l4: l4, payload: payload)
    }

    static func tcp(_ src: String, _ sp: UInt16, _ dst: String, _ dp: UInt16, flags: UInt8, seq: UInt32, ack: UInt32 = 0,
                    options: [UInt8] = [], _ payload: [UInt8] = []) -> [UInt8] {
        let off = UInt8((20 + options.count) / 4)
        var l4 = be16(sp) + be16(dp) + bytes(seq) + bytes(ack)
        l4 += [off << 4, flags] + be16(64240) + [0, 0, 0, 0] + options
        return ipv4(src, dst, proto: 6, l4: l4, payload: payload)
    }

    static func echo(_ src: String, _ dst: String, type: UInt8, id: UInt16, seq: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let l4: [UInt8] = [type, 0, 0, 0] + be16(id) + be16(seq)
        return ipv4(src, dst, proto: 1, l4: l4, payload: payload)
    }

    /// Whether the IPv4 header checksum and the L4 checksum verify.
    static func checksumsValid(_ b: [UInt8]) -> Bool {
        let slot = PacketSlot(capacity: b.count)
        return withExtendedLifetime(slot) {
            guard let p = try? IPPacket(try! slot.packet(headroom: 0, copying: b)) else { return false }
            let header = b.withUnsafeBytes { InternetChecksum.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<20])) }
            return header == 0 && p.isTransportChecksumValid == true
        }
    }
}

/// A packet seen on the simulated WAN.
struct WirePacket {
    let from: String
    let bytes: [UInt8]

    var proto: UInt8 { bytes[9] }
    var l4Length: Int { proto == 6 ? Int(bytes[20 + 12] >> 4) * 4 : 8 }
    /// Bytes after the outer L4 header (metadata, payload, trailer).
    var body: [UInt8] { Array(bytes[(20 + l4Length)...]) }
    /// Carries a metadata block that is not a bare false-positive header.
    var hasMetadata: Bool {
        let b = body
        guard b.count >= 12, Array(b[0..<8]) == [0x4c, 0x48, 0xdb, 0xc6, 0xdd, 0xf6, 0x67, 0x0c] else { return false }
        return !(b[8] == 0x10 && b[9] == 0x0c && b[10] == 0 && b[11] == 0)
    }
    var hasFalsePositiveHeader: Bool {
        let b = body
        return b.count >= 12 && Array(b[0..<8]) == [0x4c, 0x48, 0xdb, 0xc6, 0xdd, 0xf6, 0x67, 0x0c] && b[8] == 0x10 && b[9] == 0x0c
    }
    func contains(_ marker: [UInt8]) -> Bool { Net.find(marker, in: bytes) }
}

/// The in-memory network.
final class Net {
    var routers: [String: SVRRouter] = [:]
    var owner: [UInt32: String] = [:]
    var wire: [WirePacket] = []
    var lan: [String: [[UInt8]]] = [:]
    var drops: [(router: String, reason: DropReason)] = []
    var consumed = 0
    var now = EngineTime(monotonicNanos: 1_000_000_000_000, unixSeconds: 1_700_000_000)
    /// Tamper hook: may change a packet on the wire (return nil to lose it).
    var onWire: ((WirePacket) -> [UInt8]?)?

    var configs: [String: String] = [:]

    func add(_ name: String, _ toml: String, waypoint: String, maxSessions: Int = 4096) throws {
        configs[name] = toml
        let config = try Config.parse(text: toml, fileName: "\(name).toml")
        routers[name] = try SVRRouter(config: config, maxSessions: maxSessions, cipherCacheSize: 64)
        owner[IPv4Address(waypoint)!.value] = name
    }

    /// Replaces `name` by a fresh router with the same config (a restart: no sessions).
    func restart(_ name: String) throws {
        let config = try Config.parse(text: configs[name]!, fileName: "\(name).toml")
        routers[name] = try SVRRouter(config: config, maxSessions: 4096, cipherCacheSize: 64)
    }

    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Bool {
        guard needle.count <= hay.count, !needle.isEmpty else { return false }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] && Array(hay[i..<i + needle.count]) == needle { return true }
        return false
    }

    /// Runs `bytes` through `router`'s LAN side and everything it causes; returns the disposition at the first router.
    @discardableResult
    func sendLAN(_ router: String, _ bytes: [UInt8]) -> Disposition {
        let (d, out) = run(router, bytes, wan: false)
        follow(router, d, out)
        drain(router)
        return d
    }

    /// Delivers what `router` queued besides the packet it was handed (SVR fragments,
    /// reassembled datagrams, ICMP errors), as the daemon does after every batch.
    func drain(_ router: String) {
        guard let r = routers[router] else { return }
        var out: [([UInt8], Disposition)] = []
        let slot = UnsafeMutableRawBufferPointer.allocate(byteCount: 70_000, alignment: 64)
        defer { slot.deallocate() }
        r.drainGenerated(into: slot, headroom: 256) { p, d in out.append((p.copyBytes(), d)) }
        for (b, d) in out { follow(router, d, b) }
    }

    /// Injects `bytes` on the WAN of the router owning its destination.
    @discardableResult
    func injectWAN(_ bytes: [UInt8]) -> Disposition {
        let dst = UInt32(bytes[16]) << 24 | UInt32(bytes[17]) << 16 | UInt32(bytes[18]) << 8 | UInt32(bytes[19])
        guard let r = owner[dst] else { return .drop(.unknownPeer) }
        let (d, out) = run(r, bytes, wan: true)
        follow(r, d, out)
        drain(r)
        return d
    }

    func run(_ router: String, _ bytes: [UInt8], wan: Bool) -> (Disposition, [UInt8]) {
        let slot = PacketSlot(capacity: 512 + bytes.count + 512)
        return withExtendedLifetime(slot) {
            var p = try! slot.packet(headroom: 512, copying: bytes)
            let r = routers[router]!
            let d = wan ? r.handleWAN(&p, interface: 0, now: now) : r.handleLAN(&p, now: now)
            if case .drop(let why) = d { drops.append((router, why)) }
            if d == .consumed { consumed += 1 }
            return (d, p.copyBytes())
        }
    }

    func follow(_ router: String, _ d: Disposition, _ out: [UInt8]) {
        switch d {
        case .toWAN:
            let w = WirePacket(from: router, bytes: out)
            wire.append(w)
            guard let sent = onWire.map({ $0(w) }) ?? out else { return }
            injectWAN(sent)
        case .toLAN:
            lan[router, default: []].append(out)
        default:
            break
        }
    }

    func advance(seconds: Double) { now = now.adding(seconds: seconds) }

    /// Ticks every router and delivers what they generated.
    func tick() {
        for (name, r) in routers.sorted(by: { $0.key < $1.key }) {
            r.tick(now: now)
            drain(name)
        }
    }

    func counters(_ r: String) -> EngineCounters { routers[r]!.snapshot(now: now).counters }
}

/// Two- and three-router configurations.
enum Topo {
    static let a = "203.0.113.1", b = "198.51.100.2", h = "192.0.2.1"
    static let client = "10.1.1.10", dns = "172.16.2.20", web = "172.16.2.30"

    struct Keys {
        let a = try! X25519PrivateKey.generate()
        let b = try! X25519PrivateKey.generate()
        let h = try! X25519PrivateKey.generate()
    }

    /// `dnsTenant`: the tenant allowed to use "dns" (a refusal test admits only "red").
    static func services(route: String, encryption: String, adaptive: Bool, dnsTenant: String = "blue") -> String {
        """
        [[tenant]]
        name = "red"

        [[service-policy]]
        name = "pol"
        encryption = "\(encryption)"
        adaptive-encryption = \(adaptive)

        """
            + service("dns", prefix: "172.16.2.20/32", protocol: "udp", ports: "53", tenant: dnsTenant, policy: "pol", route: route)
            + service("web", prefix: "172.16.2.30/32", protocol: "tcp", ports: "80", tenant: "blue", policy: "pol", route: route)
            + service("ping", prefix: "172.16.2.0/24", protocol: "icmp", tenant: "blue", policy: "pol", route: route)
            + service("secret", prefix: "172.16.9.0/24", protocol: "udp", tenant: "red", policy: "pol", route: route)
    }

    /// One `[[service]]` and its `[[service-route]]` (`route`: `peer = "B"`, `local = true`).
    static func service(_ name: String, prefix: String, protocol proto: String, ports: String? = nil, tenant: String,
                        policy: String, route: String) -> String {
        """
        [[service]]
        name = "\(name)"
        prefixes = ["\(prefix)"]
        protocol = "\(proto)"
        \(ports.map { "ports = [\"\($0)\"]" } ?? "")
        tenants = ["\(tenant)"]
        service-policy = "\(policy)"

        [[service-route]]
        service = "\(name)"
        \(route)

        """
    }

    static func router(_ name: String, key: X25519PrivateKey, address: String, tenantPrefixes: String) -> String {
        """
        [router]
        name = "\(name)"
        private-key = "\(key.base64)"

        [[interface]]
        name = "wan0"
        address = "\(address)"
        neighborhood = "internet"

        [[tenant]]
        name = "blue"
        prefixes = [\(tenantPrefixes)]

        """
    }

    static func peer(_ name: String, key: X25519PrivateKey, address: String, transport: String) -> String {
        """
        [[peer]]
        name = "\(name)"
        public-key = "\(key.publicKey.base64)"
        waypoints = ["\(address)"]
        transport = "\(transport)"

        """
    }

    /// A (ingress, LAN 10.1.0.0/16) ⇄ B (egress, local services).
    static func twoRouters(transport: String = "native", encryption: String = "aes-cbc-hmac", adaptive: Bool = false) throws -> Net {
        try twoRouters(transport: transport) { services(route: $0, encryption: encryption, adaptive: adaptive) }
    }

    /// A ⇄ B with the services, policies and routes `services(route)` writes (route: the
    /// `[[service-route]]` line, `peer = "B"` at A, `local = true` at B).
    static func twoRouters(transport: String = "native", services: (String) -> String) throws -> Net {
        let k = Keys()
        let net = Net()
        try net.add("A", router("A", key: k.a, address: a, tenantPrefixes: "\"10.1.0.0/16\"")
            + peer("B", key: k.b, address: b, transport: transport) + services("peer = \"B\""), waypoint: a)
        try net.add("B", router("B", key: k.b, address: b, tenantPrefixes: "")
            + peer("A", key: k.a, address: a, transport: transport) + services("local = true"), waypoint: b)
        return net
    }

    /// A → H → B.
    static func chain(encryption: String = "aes-cbc-hmac", transport: String = "native", adaptive: Bool = false) throws -> Net {
        let k = Keys()
        let net = Net()
        try net.add("A", router("A", key: k.a, address: a, tenantPrefixes: "\"10.1.0.0/16\"")
            + peer("H", key: k.h, address: h, transport: transport)
            + services(route: "peer = \"H\"", encryption: encryption, adaptive: adaptive), waypoint: a)
        try net.add("H", router("H", key: k.h, address: h, tenantPrefixes: "")
            + peer("A", key: k.a, address: a, transport: transport)
            + peer("B", key: k.b, address: b, transport: transport)
            + services(route: "peer = \"B\"", encryption: encryption, adaptive: adaptive), waypoint: h)
        try net.add("B", router("B", key: k.b, address: b, tenantPrefixes: "")
            + peer("H", key: k.h, address: h, transport: transport)
            + services(route: "local = true", encryption: encryption, adaptive: adaptive), waypoint: b)
        return net
    }
}

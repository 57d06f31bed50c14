// The engine svrd runs until the SVR engine (`SVRRouter`, Sources/SVR/Engine) is merged: it
// forwards nothing (every LAN packet is dropped as no-route, every WAN packet as
// no-session, counted) and shows the configured peers and services. It lets the daemon's
// plumbing (TUN, routes, nftables, WAN sockets, data-plane thread, control API) run and be
// tested. `makeEngine` is the one place that picks the engine.

import SVR

/// Creates the packet engine of the data-plane thread.
func makeEngine(config: Config) -> any PacketEngine {
    PlaceholderEngine(config: config)
}

final class PlaceholderEngine: PacketEngine {
    private let config: Config
    private var counters = EngineCounters()

    init(config: Config) { self.config = config }

    func handleLAN(_ packet: inout PacketBuffer, now: EngineTime) -> Disposition {
        counters.lanReceivedPackets &+= 1
        counters.lanReceivedBytes &+= UInt64(packet.count)
        counters.drop(.noRoute)
        return .drop(.noRoute)
    }

    func handleWAN(_ packet: inout PacketBuffer, interface: Int, now: EngineTime) -> Disposition {
        counters.wanReceivedPackets &+= 1
        counters.wanReceivedBytes &+= UInt64(packet.count)
        counters.drop(.noSession)
        return .drop(.noSession)
    }

    func tick(now: EngineTime) {}

    func drainGenerated(into slot: UnsafeMutableRawBufferPointer, headroom: Int, _ send: (PacketBuffer, Disposition) -> Void) {}

    func snapshot(now: EngineTime) -> EngineSnapshot {
        let peers = config.peers.map {
            PeerView(name: $0.name, waypoints: $0.waypoints.map { "\($0.address)" }, transport: $0.transport.rawValue,
                     status: "unknown", sessions: 0)
        }
        let services = config.services.map { s in
            let route: String
            switch config.route(forService: s.name)?.target {
            case .peers(let names)?: route = "peer " + names.joined(separator: ", ")
            case .local(let snat, _)?: route = snat ? "local snat" : "local"
            case nil: route = "none"
            }
            let transport = s.proto == .any ? "any"
                : s.ports.isEmpty ? s.proto.rawValue : "\(s.proto.rawValue)/" + s.ports.map(\.description).joined(separator: ",")
            return ServiceView(name: s.name, prefixes: s.prefixes.map(\.description), transport: transport, tenants: s.tenants,
                               route: route, encryption: s.policy.encryption.rawValue, sessions: 0)
        }
        return EngineSnapshot(routerName: config.router.name, counters: counters, sessions: [], peers: peers, services: services)
    }
}

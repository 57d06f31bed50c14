// The server side of the control API: the commands `svrctl` sends and the JSON documents
// svrd answers with. Runs on the control thread; everything about the engine comes from a
// snapshot the data-plane thread copies out (DataPlaneControl.requestSnapshot).
//
//   ping            {"ok":true,"router":…,"pid":…}
//   show sessions   {"router":…,"sessions":[{uuid, role, tenant, service, peer, original{…},
//                    waypoint{…}, transport, encryption, state, forward{packets,bytes,encryption},
//                    reverse{packets,bytes,encryption}, age-seconds, idle-seconds}]}
//                  (per-direction encryption: what went on the wire, see SessionView)
//   show peers      {"router":…,"peers":[{name, waypoints, transport, status, sessions}]}
//   show services   {"router":…,"services":[{name, prefixes, transport, tenants, route, encryption, sessions}]}
//   show stats      {"router":…,"lan":{…},"wan":{…},"sessions":{…},"drops":{reason:n,…},"io":{…}}
//   anything else   {"error":"…"}

import Glibc
import SVR

enum ControlAPI {
    static let commands = ["ping", "show sessions", "show peers", "show services", "show stats"]

    static func handle(_ words: [String], control: DataPlaneControl, config: Config) -> JSON {
        let command = words.joined(separator: " ")
        if command == "ping" {
            return .object([("ok", .bool(true)), ("router", .string(config.router.name)), ("pid", .int(Int64(getpid())))])
        }
        guard words.count == 2, words[0] == "show", ["sessions", "peers", "services", "stats"].contains(words[1]) else {
            return .object([("error", .string("unknown command '\(command)'; known: \(commands.joined(separator: ", "))"))])
        }
        guard let snap = control.requestSnapshot() else {
            return .object([("error", .string("the data plane did not answer"))])
        }
        let router = ("router", JSON.string(snap.engine.routerName))
        switch words[1] {
        case "sessions": return .object([router, ("sessions", .array(snap.engine.sessions.map(json)))])
        case "peers": return .object([router, ("peers", .array(snap.engine.peers.map(json)))])
        case "services": return .object([router, ("services", .array(snap.engine.services.map(json)))])
        default: return stats(snap)
        }
    }

    static func json(_ t: FiveTuple) -> JSON {
        .object([("protocol", .int(Int64(t.proto))), ("source", .string("\(t.source)")), ("source-port", .int(Int64(t.sourcePort))),
                 ("destination", .string("\(t.destination)")), ("destination-port", .int(Int64(t.destinationPort)))])
    }

    static func json(_ s: SessionView) -> JSON {
        .object([
            ("uuid", .string(s.uuid)), ("role", .string(s.role.rawValue)), ("tenant", .string(s.tenant)),
            ("service", .string(s.service)), ("peer", .string(s.peer)), ("original", json(s.original)),
            ("waypoint", json(s.waypoint)), ("transport", .string(s.transport)), ("encryption", .string(s.encryption)),
            ("state", .string(s.state)),
            ("forward", .object([("packets", .int(Int64(clamping: s.forwardPackets))), ("bytes", .int(Int64(clamping: s.forwardBytes))),
                                 ("encryption", .string(s.forwardEncryption))])),
            ("reverse", .object([("packets", .int(Int64(clamping: s.reversePackets))), ("bytes", .int(Int64(clamping: s.reverseBytes))),
                                 ("encryption", .string(s.reverseEncryption))])),
            ("age-seconds", .double(s.ageSeconds)), ("idle-seconds", .double(s.idleSeconds)),
        ])
    }

    static func json(_ p: PeerView) -> JSON {
        .object([("name", .string(p.name)), ("waypoints", .array(p.waypoints.map(JSON.string))),
                 ("transport", .string(p.transport)), ("status", .string(p.status)), ("sessions", .int(Int64(p.sessions)))])
    }

    static func json(_ s: ServiceView) -> JSON {
        .object([("name", .string(s.name)), ("prefixes", .array(s.prefixes.map(JSON.string))), ("transport", .string(s.transport)),
                 ("tenants", .array(s.tenants.map(JSON.string))), ("route", .string(s.route)),
                 ("encryption", .string(s.encryption)), ("sessions", .int(Int64(s.sessions)))])
    }

    static func stats(_ snap: DataPlaneSnapshot) -> JSON {
        let c = snap.engine.counters
        func n(_ v: UInt64) -> JSON { .int(Int64(clamping: v)) }
        let drops = DropReason.allCases.map { ($0.description, n(c.drops($0))) }
        let io = snap.io
        let wan = snap.interfaces.enumerated().map { k, name -> JSON in
            .object([("interface", .string(name)), ("received", n(io.wanReceived[k])), ("sent", n(io.wanSent[k])),
                     ("send-drops", n(io.wanSendDrops[k])), ("kernel-drops", n(io.wanKernelDrops[k]))])
        }
        return .object([
            ("router", .string(snap.engine.routerName)),
            ("lan", .object([("received-packets", n(c.lanReceivedPackets)), ("received-bytes", n(c.lanReceivedBytes)),
                             ("sent-packets", n(c.lanSentPackets)), ("sent-bytes", n(c.lanSentBytes))])),
            ("wan", .object([("received-packets", n(c.wanReceivedPackets)), ("received-bytes", n(c.wanReceivedBytes)),
                             ("sent-packets", n(c.wanSentPackets)), ("sent-bytes", n(c.wanSentBytes))])),
            ("sessions", .object([("active", .int(Int64(snap.engine.sessions.count))), ("created", n(c.sessionsCreated)),
                                  ("expired", n(c.sessionsExpired))])),
            ("mtu", .object([("fragments-sent", n(c.fragmentsSent)), ("datagrams-reassembled", n(c.datagramsReassembled)),
                             ("too-big-sent", n(c.tooBigSent)), ("path-mtu-reductions", n(c.pathMTUReductions)),
                             ("paths", .object(snap.engine.peers.map { ($0.name, .int(Int64($0.mtu))) }))])),
            ("drops", .object(drops)),
            ("io", .object([("tun-read", n(io.tunReadPackets)), ("tun-written", n(io.tunWrittenPackets)),
                            ("tun-write-drops", n(io.tunWriteDrops)), ("wan-no-sender", n(io.wanNoSender)),
                            ("interfaces", .array(wan))])),
        ])
    }
}

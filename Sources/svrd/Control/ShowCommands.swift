// `svrd show sessions|peers|services|stats [--json] [--socket PATH]` and `svrd ping`: the
// client side of the control API. Installed as `svrctl` (a symlink to svrd), the same
// binary offers exactly these commands: `svrctl show sessions`.

import ArgumentParser
import Glibc
import SVR

struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The control socket of the running svrd.", valueName: "path"))
    var socket: String = defaultControlSocketPath

    @Flag(name: .long, help: "Print the JSON document svrd answered instead of a table.")
    var json = false

    /// Sends `words`, returns the answer or throws the exit code after printing why.
    func request(_ words: [String]) throws -> JSON {
        let program = SVRD.invokedAsSvrctl ? "svrctl" : "svrd"
        let answer: JSON
        do {
            answer = try ControlClient.request(path: socket, words: words)
        } catch {
            let kind: DaemonFailure.Kind = error.errno == EACCES || error.errno == EPERM ? .notPermitted : .notRunning
            let hint = kind == .notPermitted ? "; run as root (the socket is root-only)" : ""
            throw DaemonFailure(kind, "\(error)\(hint)").report(program)
        }
        if let message = answer["error"]?.stringValue {
            throw DaemonFailure(.runtime, "svrd: \(message)").report(program)
        }
        return answer
    }
}

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show what the running svrd holds (through its control socket).",
        subcommands: [ShowSessions.self, ShowPeers.self, ShowServices.self, ShowStats.self])
}

struct PingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ping", abstract: "Check that svrd answers on its control socket.")
    @OptionGroup var options: ClientOptions
    func run() throws {
        let a = try options.request(["ping"])
        if options.json { print(a.serialized(pretty: true)); return }
        print("svrd '\(a["router"]?.stringValue ?? "?")' is running (pid \(a["pid"]?.intValue ?? 0))")
    }
}

struct ShowSessions: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sessions", abstract: "Sessions: UUID, tenant, service, tuples, peer, counters, age, state.")
    @OptionGroup var options: ClientOptions
    func run() throws {
        let a = try options.request(["show", "sessions"])
        if options.json { print(a.serialized(pretty: true)); return }
        let sessions = a["sessions"]?.arrayValue ?? []
        func tuple(_ t: JSON?) -> String {
            guard let t else { return "-" }
            let p = Self.protocolName(t["protocol"]?.intValue ?? 0)
            return "\(p) \(t["source"]?.stringValue ?? "?"):\(t["source-port"]?.intValue ?? 0) > \(t["destination"]?.stringValue ?? "?"):\(t["destination-port"]?.intValue ?? 0)"
        }
        func counts(_ d: JSON?) -> String { "\(d?["packets"]?.intValue ?? 0)/\(Table.bytes(d?["bytes"]?.intValue ?? 0))" }
        var t = Table(["UUID", "ROLE", "TENANT", "SERVICE", "ORIGINAL", "WAYPOINT", "PEER", "ENC", "FWD PKT/B", "REV PKT/B", "AGE", "STATE"])
        for s in sessions {
            t.add([s["uuid"]?.stringValue ?? "", s["role"]?.stringValue ?? "", s["tenant"]?.stringValue ?? "",
                   s["service"]?.stringValue ?? "", tuple(s["original"]), tuple(s["waypoint"]) + " (\(s["transport"]?.stringValue ?? ""))",
                   s["peer"]?.stringValue ?? "", s["encryption"]?.stringValue ?? "", counts(s["forward"]), counts(s["reverse"]),
                   Table.age(s["age-seconds"]?.doubleValue ?? 0), s["state"]?.stringValue ?? ""])
        }
        print(t.render(), terminator: "")
        print("\(sessions.count) session\(sessions.count == 1 ? "" : "s") on router '\(a["router"]?.stringValue ?? "?")'")
    }

    static func protocolName(_ p: Int64) -> String {
        switch p {
        case 6: "tcp"
        case 17: "udp"
        case 1: "icmp"
        case 58: "icmpv6"
        default: "proto-\(p)"
        }
    }
}

struct ShowPeers: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "peers", abstract: "Peers: waypoints, transport, status, sessions.")
    @OptionGroup var options: ClientOptions
    func run() throws {
        let a = try options.request(["show", "peers"])
        if options.json { print(a.serialized(pretty: true)); return }
        var t = Table(["PEER", "WAYPOINTS", "TRANSPORT", "STATUS", "SESSIONS"])
        for p in a["peers"]?.arrayValue ?? [] {
            t.add([p["name"]?.stringValue ?? "", (p["waypoints"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ","),
                   p["transport"]?.stringValue ?? "", p["status"]?.stringValue ?? "", "\(p["sessions"]?.intValue ?? 0)"])
        }
        print(t.render(), terminator: "")
    }
}

struct ShowServices: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "services", abstract: "Services: prefixes, transport, tenants, route, encryption, sessions.")
    @OptionGroup var options: ClientOptions
    func run() throws {
        let a = try options.request(["show", "services"])
        if options.json { print(a.serialized(pretty: true)); return }
        var t = Table(["SERVICE", "PREFIXES", "TRANSPORT", "TENANTS", "ROUTE", "ENCRYPTION", "SESSIONS"])
        for s in a["services"]?.arrayValue ?? [] {
            t.add([s["name"]?.stringValue ?? "", (s["prefixes"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ","),
                   s["transport"]?.stringValue ?? "", (s["tenants"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ","),
                   s["route"]?.stringValue ?? "", s["encryption"]?.stringValue ?? "", "\(s["sessions"]?.intValue ?? 0)"])
        }
        print(t.render(), terminator: "")
    }
}

struct ShowStats: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Packets and bytes each way, sessions, drops by reason, I/O counters.")
    @OptionGroup var options: ClientOptions
    func run() throws {
        let a = try options.request(["show", "stats"])
        if options.json { print(a.serialized(pretty: true)); return }
        func v(_ path: [String]) -> Int64 {
            var j: JSON? = a
            for p in path { j = j?[p] }
            return j?.intValue ?? 0
        }
        print("router \(a["router"]?.stringValue ?? "?")")
        print("  lan  received \(v(["lan", "received-packets"])) packets \(Table.bytes(v(["lan", "received-bytes"]))), sent \(v(["lan", "sent-packets"])) packets \(Table.bytes(v(["lan", "sent-bytes"])))")
        print("  wan  received \(v(["wan", "received-packets"])) packets \(Table.bytes(v(["wan", "received-bytes"]))), sent \(v(["wan", "sent-packets"])) packets \(Table.bytes(v(["wan", "sent-bytes"])))")
        print("  sessions  active \(v(["sessions", "active"])), created \(v(["sessions", "created"])), expired \(v(["sessions", "expired"]))")
        var paths = ""
        if case .object(let ps)? = a["mtu"]?["paths"] { paths = ps.map { "\($0.0) \($0.1.intValue ?? 0)" }.joined(separator: ", ") }
        print("  mtu  paths: \(paths.isEmpty ? "none" : paths); SVR fragments sent \(v(["mtu", "fragments-sent"])), reassembled \(v(["mtu", "datagrams-reassembled"])), too-big sent \(v(["mtu", "too-big-sent"])), path MTU reductions \(v(["mtu", "path-mtu-reductions"]))")
        print("drops")
        if case .object(let drops)? = a["drops"] {
            let nonzero = drops.filter { ($0.1.intValue ?? 0) > 0 }
            if nonzero.isEmpty { print("  none") }
            for (reason, count) in nonzero { print("  \(reason)  \(count.intValue ?? 0)") }
        }
        print("io")
        print("  tun  read \(v(["io", "tun-read"])), written \(v(["io", "tun-written"])), write drops \(v(["io", "tun-write-drops"]))")
        for i in a["io"]?["interfaces"]?.arrayValue ?? [] {
            print("  \(i["interface"]?.stringValue ?? "?")  received \(i["received"]?.intValue ?? 0), sent \(i["sent"]?.intValue ?? 0), send drops \(i["send-drops"]?.intValue ?? 0), kernel drops \(i["kernel-drops"]?.intValue ?? 0)")
        }
    }
}

/// A plain text table: columns padded to their widest cell, two spaces apart.
struct Table {
    let header: [String]
    var rows: [[String]] = []
    init(_ header: [String]) { self.header = header }
    mutating func add(_ row: [String]) { rows.append(row) }

    func render() -> String {
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        var out = ""
        for r in [header] + rows {
            var line = ""
            for (i, c) in r.enumerated() {
                line += i == r.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count + 2)
            }
            out += line + "\n"
        }
        return out
    }

    static func bytes(_ b: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(b)
        var u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(b) B" : String(Int(v * 10) / 10) + "." + String(Int(v * 10) % 10) + " " + units[u]
    }

    static func age(_ s: Double) -> String {
        let t = Int(s)
        if t < 60 { return "\(t)s" }
        if t < 3600 { return "\(t / 60)m\(t % 60)s" }
        return "\(t / 3600)h\((t % 3600) / 60)m"
    }
}

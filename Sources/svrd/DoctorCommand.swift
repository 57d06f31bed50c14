// `svrd doctor --config FILE`: checks the host settings svrd depends on but does not change,
// and prints each finding with its fix. Read-only: it changes nothing on the host.
//
// Checks: IP forwarding; strict rp_filter on WAN interfaces; other nftables tables (and,
// with the `nft` command, their chains that drop by policy or NAT) and legacy iptables
// tables; the waypoint ports overlapping the host's ephemeral ports; GRO on WAN interfaces
// when a peer uses native transport (with `ethtool`); /dev/net/tun; clock synchronisation.

import ArgumentParser
internal import CShim
import Glibc
import Netlink
import SVR

struct Finding: Sendable, Equatable {
    enum Status: String, Sendable { case ok, warning, problem, unknown }
    var check: String
    var status: Status
    var summary: String
    var fix: String?

    var json: JSON {
        var members: [(String, JSON)] = [("check", .string(check)), ("status", .string(status.rawValue)),
                                         ("summary", .string(summary))]
        if let fix { members.append(("fix", .string(fix))) }
        return .object(members)
    }
}

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check the host settings svrd depends on and say how to fix what is wrong.",
        discussion: "Read-only. Exit status 0: no problems (warnings allowed); 1: config errors; 2: problems found.")

    @Option(name: .long, help: ArgumentHelp("The TOML configuration file.", valueName: "file"))
    var config: String = "/etc/svrd/svrd.toml"

    @Flag(name: .long, help: "Print the findings as one JSON document.")
    var json = false

    func run() throws {
        let loaded: Config
        do throws(ConfigErrors) {
            loaded = try Config.load(path: config)
        } catch {
            CheckCommand.writeStandardError(error.errors.map { "\($0)\n" }.joined()
                + "\(config): configuration errors; run svrd check first\n")
            throw ExitCode(1)
        }
        let findings = Doctor.run(config: loaded)
        print(json ? Doctor.json(findings).serialized(pretty: true) : Doctor.text(findings), terminator: json ? "\n" : "")
        if findings.contains(where: { $0.status == .problem }) { throw ExitCode(2) }
    }
}

enum Doctor {
    static func run(config: Config, root: String = "") -> [Finding] {
        var out: [Finding] = []
        out.append(ipForwarding(root))
        out.append(contentsOf: rpFilter(config, root))
        out.append(contentsOf: firewall())
        out.append(contentsOf: ephemeralPorts(config, root))
        out.append(contentsOf: gro(config))
        out.append(tun(root))
        out.append(clock())
        return out
    }

    static func text(_ findings: [Finding]) -> String {
        let problems = findings.filter { $0.status == .problem }.count
        let warnings = findings.filter { $0.status == .warning }.count
        var s = ""
        for f in findings {
            let mark = switch f.status { case .ok: "ok     "; case .warning: "WARNING"; case .problem: "PROBLEM"; case .unknown: "unknown" }
            s += "\(mark) \(f.check): \(f.summary)\n"
            if let fix = f.fix, f.status != .ok { s += "        fix: \(fix)\n" }
        }
        s += "\(findings.count) checks: \(problems) problem\(problems == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")\n"
        return s
    }

    static func json(_ findings: [Finding]) -> JSON {
        .object([("findings", .array(findings.map(\.json))),
                 ("problems", .int(Int64(findings.filter { $0.status == .problem }.count))),
                 ("warnings", .int(Int64(findings.filter { $0.status == .warning }.count)))])
    }

    static func sysctl(_ root: String, _ name: String) -> String? {
        HostState.readSysctl(root + "/proc/sys/" + name.replacing(".", with: "/"))
    }

    // MARK: - checks

    static func ipForwarding(_ root: String) -> Finding {
        switch sysctl(root, "net.ipv4.ip_forward") {
        case "1": Finding(check: "ip-forwarding", status: .ok, summary: "net.ipv4.ip_forward = 1")
        case nil: Finding(check: "ip-forwarding", status: .unknown, summary: "cannot read net.ipv4.ip_forward")
        case let v?:
            Finding(check: "ip-forwarding", status: .problem,
                    summary: "net.ipv4.ip_forward = \(v): LAN hosts' traffic is not forwarded into svr0, nor restored packets to the servers",
                    fix: "sysctl -w net.ipv4.ip_forward=1; echo net.ipv4.ip_forward=1 > /etc/sysctl.d/60-svrd.conf")
        }
    }

    /// The kernel uses the larger of `all` and the device's value; 1 (strict) drops packets
    /// whose reply route is another interface (asymmetric WAN paths, the return path).
    static func rpFilter(_ config: Config, _ root: String) -> [Finding] {
        let all = Int(sysctl(root, "net.ipv4.conf.all.rp_filter") ?? "") ?? 0
        return config.interfaces.map { i in
            guard let dev = Int(sysctl(root, "net.ipv4.conf.\(i.name).rp_filter") ?? "") else {
                return Finding(check: "rp-filter", status: .unknown, summary: "\(i.name): cannot read its rp_filter (does it exist?)")
            }
            if max(all, dev) == 1 {
                return Finding(check: "rp-filter", status: .warning,
                               summary: "\(i.name): strict reverse-path filtering (rp_filter: all = \(all), \(i.name) = \(dev)) drops packets that arrive on a path the reply would not take",
                               fix: "sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.\(i.name).rp_filter=2 (loose), and persist it in /etc/sysctl.d/60-svrd.conf")
            }
            return Finding(check: "rp-filter", status: .ok, summary: "\(i.name): rp_filter \(max(all, dev)) (\(max(all, dev) == 2 ? "loose" : "off"))")
        }
    }

    /// Other nftables tables (and legacy iptables tables) can drop or NAT svrd's traffic;
    /// svrd never edits them.
    static func firewall() -> [Finding] {
        var out: [Finding] = []
        let tables: [NftTableID]
        do {
            tables = try Nftables().tables().filter { !($0.name == "svrd" && $0.family == .inet) }
        } catch {
            return [Finding(check: "firewall", status: .unknown, summary: "cannot list the nftables tables (run as root): \(error)")]
        }
        if tables.isEmpty {
            out.append(Finding(check: "firewall", status: .ok, summary: "no nftables table besides svrd's"))
        } else {
            let names = tables.map { "\($0.family) \($0.name)" }.joined(separator: ", ")
            let chains = nftChainsOfConcern(tables)
            if let chains, chains.isEmpty {
                out.append(Finding(check: "firewall", status: .ok,
                                   summary: "other nftables tables (\(names)) have no chain that drops by policy or does NAT"))
            } else {
                let detail = chains.map { "; chains: " + $0.joined(separator: ", ") } ?? " (install nftables for details)"
                out.append(Finding(check: "firewall", status: .warning,
                                   summary: "other nftables tables can drop or NAT svrd's traffic: \(names)\(detail)",
                                   fix: "accept iifname \"svr0\" and oifname \"svr0\" in forward chains with policy drop, accept the waypoint ports from the peers in input, and exclude the waypoint traffic from NAT; inspect with: nft list ruleset"))
            }
        }
        if let legacy = readFile("/proc/net/ip_tables_names"), !legacy.isEmpty {
            let names = legacy.split(separator: "\n").joined(separator: ", ")
            out.append(Finding(check: "firewall-legacy", status: .warning,
                               summary: "legacy iptables tables are loaded (\(names)): they filter and NAT as well",
                               fix: "check them with iptables-legacy -S and iptables-legacy -t nat -S"))
        }
        return out
    }

    /// "family table chain (hook, policy drop | nat)" of the chains that can drop or NAT,
    /// from `nft -j list chains`; nil when the nft command is missing.
    static func nftChainsOfConcern(_ tables: [NftTableID]) -> [String]? {
        guard let text = runCommand("nft -j list chains 2>/dev/null"), let doc = try? JSON.parse(text),
              let items = doc["nftables"]?.arrayValue else { return nil }
        var out: [String] = []
        for item in items {
            guard let c = item["chain"], let table = c["table"]?.stringValue, let family = c["family"]?.stringValue,
                  tables.contains(where: { $0.name == table && "\($0.family)" == family }),
                  let hook = c["hook"]?.stringValue else { continue }
            let name = c["name"]?.stringValue ?? "?"
            if c["type"]?.stringValue == "nat" {
                out.append("\(family) \(table) \(name) (\(hook), nat)")
            } else if c["policy"]?.stringValue == "drop", ["input", "forward", "prerouting", "ingress"].contains(hook) {
                out.append("\(family) \(table) \(name) (\(hook), policy drop)")
            }
        }
        return out
    }

    static func ephemeralPorts(_ config: Config, _ root: String) -> [Finding] {
        guard let text = sysctl(root, "net.ipv4.ip_local_port_range") else {
            return [Finding(check: "ephemeral-ports", status: .unknown, summary: "cannot read net.ipv4.ip_local_port_range")]
        }
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard words.count == 2, let lo = UInt16(words[0]), let hi = UInt16(words[1]), lo <= hi else {
            return [Finding(check: "ephemeral-ports", status: .unknown, summary: "net.ipv4.ip_local_port_range is '\(text)'")]
        }
        return config.interfaces.map { i in
            let ranges = HostState.waypointPorts(i)
            let shown = ranges.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
            guard ranges.contains(where: { $0.overlaps(lo...hi) }) else {
                return Finding(check: "ephemeral-ports", status: .ok, summary: "\(i.name): waypoint ports \(shown) apart from the ephemeral ports \(lo)-\(hi)")
            }
            return Finding(check: "ephemeral-ports", status: .warning,
                           summary: "\(i.name): waypoint ports \(shown) overlap the host's ephemeral ports \(lo)-\(hi): the host's own connections from \(i.address) to a peer's waypoint lose their replies",
                           fix: "set port-range on the [[interface]] (e.g. \"20000-29999\") or sysctl -w net.ipv4.ip_local_port_range=\"\(ranges[0].lowerBound > 10000 ? "10000 \(ranges[0].lowerBound - 1)" : "40000 60999")\" (persist it)")
        }
    }

    /// svrd reads WAN packets after GRO: merged native-TCP segments exceed the MTU and are dropped.
    static func gro(_ config: Config) -> [Finding] {
        let native = config.peers.filter { $0.transport == .native }.map(\.name)
        guard !native.isEmpty else {
            return [Finding(check: "gro", status: .ok, summary: "no peer uses native transport (GRO does not matter)")]
        }
        return config.interfaces.map { i in
            guard let text = runCommand("ethtool -k '\(i.name)' 2>/dev/null"), text.contains("generic-receive-offload") else {
                return Finding(check: "gro", status: .unknown, summary: "\(i.name): cannot read its offloads (install ethtool)",
                               fix: "apt install ethtool; ethtool -k \(i.name) | grep generic-receive-offload")
            }
            if text.split(separator: "\n").contains(where: { $0.hasPrefix("generic-receive-offload: on") }) {
                return Finding(check: "gro", status: .warning,
                               summary: "\(i.name): GRO is on and peers \(native.joined(separator: ", ")) use native transport: merged TCP segments are larger than the MTU and are dropped",
                               fix: "ethtool -K \(i.name) gro off (persist it, e.g. in a systemd .link file or ifupdown post-up), or transport = \"udp\" for those peers")
            }
            return Finding(check: "gro", status: .ok, summary: "\(i.name): GRO off")
        }
    }

    static func tun(_ root: String) -> Finding {
        let path = root + "/dev/net/tun"
        let fd = open(path, O_RDWR | O_CLOEXEC)
        if fd >= 0 {
            close(fd)
            return Finding(check: "tun", status: .ok, summary: "/dev/net/tun opens")
        }
        let e = errno
        if e == ENOENT || e == ENODEV || e == ENXIO {
            return Finding(check: "tun", status: .problem, summary: "/dev/net/tun is missing (\(String(cString: strerror(e))))",
                           fix: "modprobe tun (and add tun to /etc/modules); in a container pass the device in (--device /dev/net/tun)")
        }
        return Finding(check: "tun", status: e == EACCES || e == EPERM ? .unknown : .problem,
                       summary: "/dev/net/tun does not open: \(String(cString: strerror(e))) (errno \(e))",
                       fix: e == EACCES || e == EPERM ? "run svrd doctor as root" : nil)
    }

    /// The packet authentication is time-based (spec: HMAC over the time): a clock off by
    /// more than a few seconds makes every packet fail authentication at the peer.
    static func clock() -> Finding {
        var esterror = 0
        let r = svr_clock_unsynchronized(&esterror)
        if r < 0 {
            return Finding(check: "clock", status: .unknown, summary: "adjtimex: \(String(cString: strerror(-r)))")
        }
        if r == 1 {
            return Finding(check: "clock", status: .warning,
                           summary: "the clock is not synchronised (NTP): packet authentication depends on the routers' clocks agreeing",
                           fix: "apt install systemd-timesyncd (or chrony) and check: timedatectl timesync-status")
        }
        return Finding(check: "clock", status: .ok, summary: "synchronised (estimated error \(esterror) µs)")
    }

    /// The output of a shell command, nil when it fails or prints nothing.
    static func runCommand(_ command: String) -> String? {
        guard let p = popen(command, "r") else { return nil }
        let out = readAll(p)
        guard pclose(p) == 0, !out.isEmpty else { return nil }
        return out
    }

    /// A whole (small) file, nil if it cannot be opened.
    static func readFile(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        return readAll(f)
    }

    private static func readAll(_ f: UnsafeMutablePointer<FILE>) -> String {
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

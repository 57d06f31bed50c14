// `svrd run --config FILE`: the daemon, in the foreground (systemd Type=notify).
//
// Order (each step only after the previous one succeeded; on failure everything created so
// far is removed again, in reverse order):
//   1. load and validate the config — on errors print exactly what `svrd check` prints and
//      exit 1 having created nothing; warnings (settings not in effect) are printed the same
//      way and do not stop the start;
//   2. preconditions, still creating nothing: CAP_NET_ADMIN + CAP_NET_RAW (exit 3), the TUN
//      clone device (exit 4), no other svrd on the control socket (exit 6), the LAN device
//      name not taken (exit 5);
//   3. remove leftovers of a killed svrd; create the TUN; address, routes, return path,
//      nftables table (HostState); WAN receivers and senders; control socket;
//   4. start the data-plane thread; READY=1 once it runs;
//   5. wait for SIGTERM/SIGINT; STOPPING=1; stop the threads; remove everything.

import ArgumentParser
import Glibc
import Logging
import Netlink
import SVR
import TunIO

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the router in the foreground until SIGTERM or SIGINT.",
        discussion: "Validates the config first (nothing is created if it has errors), then creates the LAN TUN, routes, the return-path rule and the nftables table 'inet svrd', opens the WAN interfaces and forwards. Everything is removed on stop. Exit status: 0 stopped cleanly, 1 config errors, 3 not root, 4 no /dev/net/tun, 5 LAN device name taken, 6 already running, 7 setup failed, 9 data plane failed.")

    @Option(name: .long, help: ArgumentHelp("The TOML configuration file.", valueName: "file"))
    var config: String = "/etc/svrd/svrd.toml"

    @Option(name: .long, help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel: String = "info"

    @Option(name: .long, help: .hidden)
    var tunClonePath: String = "/dev/net/tun"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() throws {
        // 1. config
        let loaded = try ConfigReport.load(config).config
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let logConfig = loaded.log
        let journalStream = getenv("JOURNAL_STREAM").map { String(cString: $0) }
        LoggingSystem.bootstrap { _ in
            SVRDLogHandler(level: level, config: logConfig, environment: journalStream)
        }
        let logger = Logger(label: "svrd")
        Signals.block()
        do {
            try Daemon(config: loaded, configPath: config, clonePath: tunClonePath, logger: logger).run()
        } catch {
            logger.error("svrd stopped with an error", metadata: ["event": "failed", "error": "\(error.message)"])
            throw error.report()
        }
    }
}

/// One run of the daemon (main thread).
final class Daemon {
    let config: Config
    let configPath: String
    let clonePath: String
    let logger: Logger

    init(config: Config, configPath: String, clonePath: String, logger: Logger) {
        self.config = config
        self.configPath = configPath
        self.clonePath = clonePath
        self.logger = logger
    }

    func run() throws(DaemonFailure) {
        // 2. preconditions
        try Self.checkPrivileges()
        guard access(clonePath, F_OK) == 0 else {
            throw DaemonFailure(.tunUnavailable, "\(clonePath) does not exist: load the tun module (modprobe tun) or, in a container, pass the device in (--device /dev/net/tun)")
        }
        let socketPath = config.control.socketPath
        // A clean stop removes the socket: one nobody answers on is left by an svrd that was
        // killed or crashed (systemd keeps /run/svrd over restarts: RuntimeDirectoryPreserve).
        var uncleanStop = false
        if access(socketPath, F_OK) == 0 {
            if (try? ControlClient.request(path: socketPath, words: ["ping"], timeoutMs: 300)) != nil {
                throw DaemonFailure(.alreadyRunning, "another svrd is running (it answers on \(socketPath)); stop it first")
            }
            uncleanStop = true
        }
        guard NamespaceLock.acquire() else {
            throw DaemonFailure(.alreadyRunning, "another svrd is running in this network namespace (one svrd per namespace: routes, rule and nftables table are namespace-wide)")
        }
        let host = try HostState(config: config, logger: logger)
        try host.checkLANDeviceFree()
        try host.checkWANInterfaces()

        let r = config.router
        if uncleanStop {
            logger.warning("restart after an unclean stop: the previous svrd was killed or crashed; its leftovers are removed",
                           metadata: ["event": "restart", "socket": "\(socketPath)"])
        }
        logger.notice("svrd starting", metadata: [
            "event": "start", "version": "\(BuildInfo.versionLine)", "router": "\(r.name)", "config": "\(configPath)", "tun": "\(r.lanDevice)", "mtu": "\(r.mtu)",
            "interfaces": "\(config.interfaces.map(\.name).joined(separator: ","))", "peers": "\(config.peers.count)",
            "services": "\(config.services.count)", "pid": "\(getpid())"])

        // The engine first: it allocates its session table (and can fail) before anything exists.
        let engine = try makeEngine(config: config)

        host.warnAboutHostSettings()

        // 3. host objects
        host.removeLeftovers()
        var device: TunDevice
        do {
            device = try TunDevice(TunConfiguration(name: r.lanDevice, clonePath: clonePath, queues: 1, mtu: r.mtu))
        } catch {
            switch error.kind {
            case .tunUnavailable: throw DaemonFailure(.tunUnavailable, "cannot open \(clonePath): \(error)")
            case .permissionDenied: throw DaemonFailure(.notPermitted, "cannot create the TUN \(r.lanDevice): \(error)")
            case .nameInUse: throw DaemonFailure(.deviceTaken, "LAN device name '\(r.lanDevice)' is in use: \(error)")
            default: throw DaemonFailure(.setup, "cannot create the TUN \(r.lanDevice): \(error)")
            }
        }
        let tunName = device.name
        guard let queue = device.takeQueue(0) else { throw DaemonFailure(.setup, "TUN \(tunName) has no queue") }
        let tun = TunBox(queue)
        device.close()

        var controlServer: ControlServer?
        var metricsServer: MetricsServer?
        var thread: PosixThread?
        let control = try DataPlaneControl()
        defer {
            // 5. (also after a failed start) stop threads, then remove host objects.
            control.stop()
            thread?.join()
            controlServer?.stop()
            metricsServer?.stop()
            host.remove()
        }
        try host.install(tunName: tunName)

        var receivers: [ReceiverBox] = []
        var senders: [SenderBox?] = []
        for (k, i) in config.interfaces.enumerated() {
            guard case .v4(let a) = i.address else {
                logger.warning("IPv6 WAN interfaces are not supported yet; interface not used", metadata: ["interface": "\(i.name)"])
                senders.append(nil)
                continue
            }
            do {
                let filter = try WanFilter.ipv4(destination: a.value, protocols: [.udp, .tcp, .icmpFragmentationNeeded],
                                                ports: HostState.waypointPorts(i))
                var rx = try WanReceiver(interface: i.name, filter: filter)
                rx.wakeup = control.wakeup
                receivers.append(ReceiverBox(rx, interface: k))
                senders.append(SenderBox(try WanSender(interface: i.name)))
            } catch {
                if error.kind == .permissionDenied { throw DaemonFailure(.notPermitted, "\(error)") }
                throw DaemonFailure(.setup, "cannot open WAN interface \(i.name): \(error)")
            }
            if let local = Self.localPortRange(), HostState.waypointPorts(i).contains(where: { $0.overlaps(local) }) {
                logger.warning("the waypoint ports overlap the host's ephemeral ports: the host's own connections from this address lose their replies to svrd; set port-range or net.ipv4.ip_local_port_range apart (docs/operations.md)",
                               metadata: ["interface": "\(i.name)", "ip_local_port_range": "\(local.lowerBound)-\(local.upperBound)"])
            }
            // Peer paths start from the device's MTU unless the interface has `mtu`.
            let deviceMTU = WanSender.deviceMTU(i.name)
            if i.mtu == nil, let deviceMTU, let router = engine as? SVRRouter { router.setInterfaceMTU(k, deviceMTU) }
            logger.info("WAN interface open", metadata: ["interface": "\(i.name)", "waypoint": "\(i.address)",
                                                        "mtu": "\(i.mtu ?? deviceMTU ?? 1500)\(i.mtu == nil ? "" : " (configured)")",
                                                        "ports": "\(HostState.waypointPorts(i).map { "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ","))"])
        }

        let handlerConfig = config
        do {
            controlServer = try ControlServer(path: socketPath) { words in
                ControlAPI.handle(words, control: control, config: handlerConfig)
            }
        } catch {
            throw DaemonFailure(.setup, "\(error)")
        }
        logger.info("control socket listening", metadata: ["socket": "\(socketPath)"])
        if let listen = config.metrics.listen {
            do {
                metricsServer = try MetricsServer(endpoint: listen) { MetricsServer.text(control.requestSnapshot()) }
            } catch {
                throw DaemonFailure(.setup, "\(error)")
            }
            logger.info("metrics endpoint listening", metadata: ["listen": "http://\(listen)/metrics"])
        }

        // 4. data plane
        let receiverCount = receivers.count
        let plane = DataPlane(control: control, engine: engine, logger: logger, tun: tun,
                              receivers: receivers, senders: senders, interfaceNames: config.interfaces.map(\.name),
                              maxPacketSize: max(r.mtu, 1500))
        do {
            thread = try PosixThread(name: "svr-data") { plane.run() }
        } catch {
            throw DaemonFailure(.setup, "\(error)")
        }
        for _ in 0..<2000 where !control.running.load(ordering: .acquiring) && !control.failed.load(ordering: .acquiring) {
            usleep(1000)
        }
        guard control.running.load(ordering: .acquiring) else {
            throw DaemonFailure(.runtime, "the data plane did not start")
        }
        SystemdNotify.send("READY=1\nSTATUS=forwarding on \(tunName)\nMAINPID=\(getpid())")
        logger.notice("svrd running", metadata: ["event": "ready", "tun": "\(tunName)", "wan-receivers": "\(receiverCount)",
                                                 "socket": "\(socketPath)"])


        // One line per peer (path monitoring will log its state changes the same way).
        if let snap = control.requestSnapshot() {
            for p in snap.engine.peers {
                let meta: Logger.Metadata = ["peer": "\(p.name)", "waypoints": "\(p.waypoints.joined(separator: ","))",
                                             "transport": "\(p.transport)", "status": "\(p.status)"]
                if p.status == "down" {
                    logger.warning("peer has no path (no local interface reaches its waypoints)", metadata: meta)
                } else {
                    logger.info("peer", metadata: meta)
                }
            }
        }

        let watchdogMs = SystemdNotify.watchdogMilliseconds
        // Every second at most: the watchdog, the TUN watch and the counter-derived events.
        let housekeepingMs = min(1000, max((watchdogMs ?? 4000) / 2, 100))
        var events = EventMonitor()
        var lastHeartbeat = control.heartbeat.load(ordering: .relaxed)
        if let watchdogMs {
            SystemdNotify.send("WATCHDOG=1")
            logger.info("systemd watchdog", metadata: ["interval-ms": "\(watchdogMs)"])
        }

        // 5. wait for a stop signal
        while true {
            // Every 2 s without a signal: put the routes back if the TUN went down and up.
            guard let sig = Signals.wait(milliseconds: housekeepingMs) else {
                host.watchTUN()
                if let counters = control.latestCounters() {
                    events.update(counters, now: Double(EngineTime.now().monotonicNanos) / 1e9, logger: logger)
                }
                // The watchdog is fed only while the data-plane loop turns: a hung data
                // plane gets svrd restarted by systemd (WatchdogSec=).
                if watchdogMs != nil {
                    let beat = control.heartbeat.load(ordering: .relaxed)
                    if beat != lastHeartbeat {
                        SystemdNotify.send("WATCHDOG=1")
                        lastHeartbeat = beat
                    } else {
                        logger.error("the data plane has not turned since the last watchdog check; not feeding the watchdog")
                    }
                }
                continue
            }
            if sig == SIGHUP {
                logger.warning("SIGHUP: configuration reload is not implemented yet; restart svrd to apply changes",
                               metadata: ["event": "reload", "applied": "false"])
                continue
            }
            if control.failed.load(ordering: .acquiring) {
                SystemdNotify.send("STOPPING=1")
                throw DaemonFailure(.runtime, "the data plane failed; stopping (see the previous log line)")
            }
            logger.notice("stopping", metadata: ["event": "stop", "signal": "\(Signals.name(sig))"])
            break
        }
        SystemdNotify.send("STOPPING=1")
        control.stop()
        thread?.join()
        thread = nil
        controlServer?.stop()
        controlServer = nil
        metricsServer?.stop()
        metricsServer = nil
        host.remove()
        logger.notice("svrd stopped", metadata: ["event": "stopped"])
    }

    /// net.ipv4.ip_local_port_range (the host's ephemeral ports), nil if unreadable.
    static func localPortRange() -> ClosedRange<UInt16>? {
        guard let f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r") else { return nil }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 64)
        guard fgets(&line, Int32(line.count), f) != nil else { return nil }
        let words = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        guard words.count == 2, let lo = UInt16(words[0]), let hi = UInt16(words[1]), lo <= hi else { return nil }
        return lo...hi
    }

    /// Root, or at least CAP_NET_ADMIN and CAP_NET_RAW in the effective set.
    static func checkPrivileges() throws(DaemonFailure) {
        if geteuid() == 0 { return }
        var effective: UInt64 = 0
        if let f = fopen("/proc/self/status", "r") {
            defer { fclose(f) }
            var line = [CChar](repeating: 0, count: 512)
            while fgets(&line, Int32(line.count), f) != nil {
                let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if s.hasPrefix("CapEff:") {
                    effective = UInt64(s.dropFirst(7).trimmingCharacters(in: " \t\n"), radix: 16) ?? 0
                }
            }
        }
        let needed: UInt64 = (1 << 12) | (1 << 13)  // CAP_NET_ADMIN, CAP_NET_RAW
        guard effective & needed == needed else {
            throw DaemonFailure(.notPermitted, "svrd run must run as root (it needs CAP_NET_ADMIN and CAP_NET_RAW to create the TUN, routes, nftables rules and WAN sockets)")
        }
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}

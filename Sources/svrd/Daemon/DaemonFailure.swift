// Why `svrd run` (or a client command) stops with an error, and its exit status. Each kind
// has its own exit status so that scripts and systemd (`RestartPreventExitStatus=`) can tell
// them apart; docs/operations.md lists them with their messages.

import ArgumentParser

struct DaemonFailure: Error, CustomStringConvertible {
    enum Kind {
        /// 1: the configuration has errors (printed as `svrd check` prints them).
        case config
        /// 3: not root / missing CAP_NET_ADMIN or CAP_NET_RAW.
        case notPermitted
        /// 4: the TUN clone device (/dev/net/tun) is missing or has no driver.
        case tunUnavailable
        /// 5: the LAN device name belongs to another device.
        case deviceTaken
        /// 6: another svrd already serves the control socket.
        case alreadyRunning
        /// 7: creating a host object failed (netlink, nftables, WAN sockets, threads).
        case setup
        /// 8: (client) svrd is not running / the control socket does not answer.
        case notRunning
        /// 9: the data plane failed while running.
        case runtime
    }

    let kind: Kind
    let message: String
    init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    var description: String { message }

    var exitCode: Int32 {
        switch kind {
        case .config: 1
        case .notPermitted: 3
        case .tunUnavailable: 4
        case .deviceTaken: 5
        case .alreadyRunning: 6
        case .setup: 7
        case .notRunning: 8
        case .runtime: 9
        }
    }

    /// Prints `svrd: MESSAGE` on stderr and returns the exit code to throw.
    func report(_ program: String = "svrd") -> ExitCode {
        CheckCommand.writeStandardError("\(program): \(message)\n")
        return ExitCode(exitCode)
    }
}

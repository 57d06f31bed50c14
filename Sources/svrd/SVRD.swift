import ArgumentParser
import Glibc

@main
struct SVRD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "svrd",
        abstract: "Secure Vector Routing (SVR) router for Linux.",
        discussion: "Installed as 'svrctl' (a symlink to svrd), the binary offers only the operator commands: svrctl show sessions|peers|services|stats, svrctl ping.",
        version: BuildInfo.versionLine,
        subcommands: [RunCommand.self, CheckCommand.self, DoctorCommand.self, SupportBundleCommand.self, GenKey.self, PubKey.self, ShowCommand.self, PingCommand.self])

    /// Whether the binary was started under the name `svrctl` (argv[0]).
    static var invokedAsSvrctl: Bool {
        guard let first = CommandLine.arguments.first else { return false }
        return first.split(separator: "/").last == "svrctl"
    }

    static func main() {
        if invokedAsSvrctl { SVRCtl.main() } else { SVRD.main(nil) }
    }
}

/// `svrctl`: the operator's view of a running svrd (same binary, argv[0] = svrctl).
struct SVRCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "svrctl",
        abstract: "Look at a running svrd through its control socket.",
        version: BuildInfo.versionLine,
        subcommands: [ShowCommand.self, PingCommand.self])
}

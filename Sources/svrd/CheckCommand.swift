import ArgumentParser
import Glibc
import SVR

/// `svrd check --config FILE`: validates a configuration file without running anything.
/// Prints `FILE: ok` and a summary on stdout and exits 0, or prints every problem as
/// `FILE:LINE: key.path: what is wrong` on stderr and exits 1. Settings that are valid but not
/// in effect yet are printed as `FILE:LINE: warning: key.path: why` on stderr; they do not
/// change the exit status.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration file and list every problem in it.",
        discussion: "Each problem is printed as FILE:LINE: key.path: what is wrong. Settings that svrd does not act on yet are printed as FILE:LINE: warning: key.path: why; they do not fail the check. Exit status 0 means the file is valid.")

    @Option(name: .long, help: ArgumentHelp("The TOML configuration file.", valueName: "file"))
    var config: String = "/etc/svrd/svrd.toml"

    /// The time bound on reading the config (tests shorten it to see it work).
    @Option(name: .long, help: .hidden)
    var configDeadlineMs: Int = ConfigReport.deadlineMilliseconds

    func run() throws {
        let loaded = try ConfigReport.load(config, deadlineMs: configDeadlineMs)
        print("\(config): ok")
        print(loaded.config.summary)
    }

    static func writeStandardError(_ text: String) { ConfigReport.writeStandardError(text) }
}

import ArgumentParser
import Glibc
import SVR

/// `svrd check --config FILE`: validates a configuration file without running anything.
/// Prints `FILE: ok` and a summary on stdout and exits 0, or prints every problem as
/// `FILE:LINE: key.path: what is wrong` on stderr and exits 1.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration file and list every problem in it.",
        discussion: "Each problem is printed as FILE:LINE: key.path: what is wrong. Exit status 0 means the file is valid.")

    @Option(name: .long, help: ArgumentHelp("The TOML configuration file.", valueName: "file"))
    var config: String = "/etc/svrd/svrd.toml"

    func run() throws {
        do throws(ConfigErrors) {
            let loaded = try Config.load(path: config)
            print("\(config): ok")
            print(loaded.summary)
        } catch {
            let text = error.errors.map { "\($0)\n" }.joined()
            Self.writeStandardError(text)
            let n = error.errors.count
            Self.writeStandardError("\(config): \(n) error\(n == 1 ? "" : "s")\n")
            throw ExitCode(1)
        }
    }

    /// `stderr` is a C global Swift 6 rejects; write to fd 2 directly.
    static func writeStandardError(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            bytes = bytes.dropFirst(n)
        }
    }
}

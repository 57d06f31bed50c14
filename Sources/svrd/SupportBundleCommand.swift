// `svrd support-bundle --config FILE`: one tar.gz with what a bug report needs, and no
// secret: version, host facts, the config with the private key redacted, `svrd doctor`,
// and, when svrd runs, the `show` documents (stats, peers, services, sessions) as JSON.

import ArgumentParser
import Glibc
import SVR

struct SupportBundleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "support-bundle",
        abstract: "Write a tar.gz for a bug report: version, redacted config, doctor, show outputs.",
        discussion: "The private key is never included: the key itself and every occurrence of it are replaced by <redacted>; private-key-file is named, not read into the bundle.")

    @Option(name: .long, help: ArgumentHelp("The TOML configuration file.", valueName: "file"))
    var config: String = "/etc/svrd/svrd.toml"

    @Option(name: .long, help: ArgumentHelp("The bundle to write (default: svrd-support-TIME.tar.gz here).", valueName: "file"))
    var out: String?

    func run() throws {
        let stamp = LogFormat.now().filter { $0.isNumber }.prefix(14)
        let name = "svrd-support-\(stamp)"
        let target = out ?? "\(name).tar.gz"
        var template = Array("/tmp/svrd-support.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            CheckCommand.writeStandardError("svrd: cannot create a temporary directory: \(String(cString: strerror(errno)))\n")
            throw ExitCode(1)
        }
        let tmp = String(cString: made)
        defer { _ = Doctor.runCommand("rm -rf '\(tmp)'") }
        let dir = "\(tmp)/\(name)"
        mkdir(dir, 0o700)

        var files: [(String, String)] = []
        files.append(("version.txt", "svrd \(BuildInfo.versionLine)\n"))
        files.append(("host.txt", hostFacts()))
        let text = Doctor.readFile(config)
        var loaded: Config?
        var configErrors = ""
        do throws(ConfigErrors) {
            loaded = try Config.load(path: config)
        } catch {
            configErrors = error.errors.map { "\($0)\n" }.joined()
        }
        if let text {
            files.append(("svrd.toml", Self.redact(text, key: loaded?.router.privateKey)))
        } else {
            files.append(("svrd.toml.missing", "cannot read \(config)\n"))
        }
        if !configErrors.isEmpty { files.append(("check.txt", Self.redact(configErrors, key: nil))) }
        if let loaded {
            let findings = Doctor.run(config: loaded)
            files.append(("doctor.json", Doctor.json(findings).serialized(pretty: true) + "\n"))
            for what in ["stats", "peers", "services", "sessions"] {
                do throws(DaemonError) {
                    let doc = try ControlClient.request(path: loaded.control.socketPath, words: ["show", what])
                    files.append(("show-\(what).json", doc.serialized(pretty: true) + "\n"))
                } catch {
                    files.append(("show-\(what).error.txt", "\(error)\n"))
                }
            }
        }
        for (file, content) in files {
            guard let f = fopen("\(dir)/\(file)", "w") else { continue }
            fputs(content, f)
            fclose(f)
        }
        guard Doctor.runCommand("tar czf '\(target)' -C '\(tmp)' '\(name)' && echo ok") != nil else {
            CheckCommand.writeStandardError("svrd: cannot write \(target) (tar failed)\n")
            throw ExitCode(1)
        }
        chmod(target, 0o600)
        print("\(target): \(files.map(\.0).joined(separator: ", "))")
    }

    /// The config text with the private key removed: `private-key = "…"` values, and every
    /// occurrence of the loaded key's base64 (wherever it was written).
    static func redact(_ text: String, key: Config.PrivateKey?) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            // `private-key = …`, also as a dotted key (`router.private-key = …`)
            guard let eq = line.firstIndex(of: "="), line[..<eq].contains("private-key"),
                  !line[..<eq].contains("private-key-file") else { return String(line) }
            return String(line[..<eq]) + "= \"<redacted>\""
        }
        if let key {
            let b64 = Base64.encode(key.bytes)
            lines = lines.map { $0.replacing(b64, with: "<redacted>") }
        }
        return lines.joined(separator: "\n")
    }

    func hostFacts() -> String {
        var u = utsname()
        uname(&u)
        func field<T>(_ v: inout T) -> String {
            withUnsafeBytes(of: &v) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        var s = "kernel: \(field(&u.sysname)) \(field(&u.release)) \(field(&u.version)) \(field(&u.machine))\n"
        if let os = Doctor.readFile("/etc/os-release") {
            s += os.split(separator: "\n").filter { $0.hasPrefix("PRETTY_NAME=") }.map { "os: \($0.dropFirst(12))\n" }.joined()
        }
        return s
    }
}

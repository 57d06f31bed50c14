// The deploy files stay in step with the daemon: the systemd unit runs `svrd run` as
// Type=notify with only the two network capabilities, cloud-init carries an identical copy
// of it, and the config cloud-init writes passes `svrd check`.

import Glibc
import TestSupport
import Testing

@Suite struct DeployFilesTests {
    static let root: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    static func read(_ path: String) -> String { shell("cat '\(root)/\(path)'").output }

    /// The `content: |` block of the cloud-init write_files entry for `path`.
    static func cloudInitFile(_ path: String) -> String? {
        let lines = read("deploy/cloud-init/onramp.yaml").split(separator: "\n", omittingEmptySubsequences: false)
        guard let at = lines.firstIndex(where: { $0.hasSuffix("- path: \(path)") }),
              let start = lines[at...].firstIndex(where: { $0.hasSuffix("content: |") }) else { return nil }
        var out: [Substring] = []
        for line in lines[(start + 1)...] {
            if line.isEmpty { out.append(""); continue }
            guard line.hasPrefix("      ") else { break }
            out.append(line.dropFirst(6))
        }
        while out.last == "" { out.removeLast() }
        return out.joined(separator: "\n") + "\n"
    }

    @Test func unitRunsTheDaemonAsNotifyWithNetworkCapabilitiesOnly() {
        let unit = Self.read("deploy/systemd/svrd.service")
        for line in ["Type=notify", "ExecStart=/usr/local/bin/svrd run --config /etc/svrd/svrd.toml",
                     "ExecStartPre=/usr/local/bin/svrd check --config /etc/svrd/svrd.toml",
                     "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW", "Restart=on-failure",
                     "RestartPreventExitStatus=1 3 4 5 6", "DeviceAllow=/dev/net/tun rw", "RuntimeDirectory=svrd"] {
            #expect(unit.split(separator: "\n").contains { $0 == line }, "missing: \(line)")
        }
    }

    /// The cloud-init on-ramp: its settings, with the WAN interface given (the test host's
    /// default route is not the VM's) and the given changes.
    static func onrampSettings(_ changes: [(String, String)] = []) throws -> String {
        var settings = try #require(cloudInitFile("/etc/default/svrd-onramp"))
        for (key, value) in [("WAN_DEVICE", "eth0"), ("WAN_ADDRESS", "10.100.0.5")] + changes {
            let line = try #require(settings.split(separator: "\n").first { $0.hasPrefix("\(key)=") }, "no \(key)")
            settings = settings.replacing(line, with: "\(key)=\"\(value)\"")
        }
        return settings
    }

    /// What `svrd-onramp --print-config` writes for these settings.
    static func onrampConfig(_ dir: ScratchDirectory, _ settings: String) throws -> CommandResult {
        let script = try dir.write("svrd-onramp", try #require(cloudInitFile("/usr/local/sbin/svrd-onramp")), mode: 0o700)
        let file = try dir.write("settings", settings)
        return shell("SVRD_ONRAMP_SETTINGS=\(file) sh \(script) --print-config")
    }

    @Test func cloudInitScriptIsValidShell() throws {
        let dir = try ScratchDirectory()
        defer { dir.close() }
        let script = try dir.write("svrd-onramp", try #require(Self.cloudInitFile("/usr/local/sbin/svrd-onramp")))
        let r = shell("sh -n \(script)")
        #expect(r.status == 0, "\(r.output)")
    }

    /// The config the on-ramp writes from its settings passes `svrd check`: as shipped, and
    /// with a public address, native transport and several prefixes and waypoints.
    @Test(arguments: [[], [("PUBLIC_ADDRESS", "198.51.100.10"), ("PEER_TRANSPORT", "native"),
                           ("SERVICE_PREFIXES", "10.100.0.0/16 10.101.0.0/24"), ("PEER_WAYPOINTS", "203.0.113.10")]])
    func cloudInitConfigPassesCheck(changes: [(String, String)]) throws {
        let dir = try ScratchDirectory()
        defer { dir.close() }
        let r = try Self.onrampConfig(dir, try Self.onrampSettings(changes))
        try #require(r.status == 0, "\(r.output)")
        #expect(r.output.contains("name = \"eth0\"") && r.output.contains("address = \"10.100.0.5\""))
        for (key, value) in changes where key == "PUBLIC_ADDRESS" {
            #expect(r.output.contains("external-address = \"\(value)\""))
        }
        let key = "\(dir.path)/private.key"
        try #require(shell("\(svrdBinary) genkey --out \(key)").status == 0)
        let file = try dir.write("svrd.toml", r.output.replacing("/etc/svrd/private.key", with: key))
        let check = shell("\(svrdBinary) check --config \(file)")
        #expect(check.status == 0, "\(check.output)\n\(r.output)")
    }

    /// cloud-init's own schema check (when cloud-init is installed: scripts/test.sh installs it).
    @Test(.enabled(if: shell("command -v cloud-init").status == 0, "cloud-init is not installed"))
    func cloudInitPassesSchemaCheck() {
        let r = shell("cloud-init schema --config-file '\(Self.root)/deploy/cloud-init/onramp.yaml' 2>&1")
        #expect(r.status == 0 && r.output.contains("Valid"), "\(r.output)")
    }
}

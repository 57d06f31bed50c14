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

    @Test func cloudInitCarriesTheSameUnit() {
        #expect(Self.cloudInitFile("/etc/systemd/system/svrd.service") == Self.read("deploy/systemd/svrd.service"))
    }

    @Test func cloudInitConfigPassesCheck() throws {
        let config = try #require(Self.cloudInitFile("/etc/svrd/svrd.toml"))
        let dir = try ScratchDirectory()
        defer { dir.close() }
        let key = "\(dir.path)/private.key"
        try #require(shell("\(svrdBinary) genkey --out \(key)").status == 0)
        let file = try dir.write("svrd.toml", config.replacing("/etc/svrd/private.key", with: key))
        let r = shell("\(svrdBinary) check --config \(file)")
        #expect(r.status == 0, "\(r.output)")
    }
}

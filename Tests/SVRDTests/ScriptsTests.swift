// The README's two commands (deploy/lab/lab.sh, scripts/test.sh) run as root directly, and
// as another user run themselves again with sudo, keeping PATH (for swift) and their own
// settings; without sudo they stop with a clear message. Also `svrd --version`.

import Glibc
import TestSupport
import Testing

@Suite struct ScriptsTests {
    /// A directory for PATH with only the commands the scripts need before `as_root`, and a
    /// fake `sudo` that prints what it was asked to run when `withSudo`.
    static func fakePath(_ dir: ScratchDirectory, withSudo: Bool) throws -> String {
        let bin = "\(dir.path)/bin"
        for tool in ["id", "basename", "dirname", "realpath", "cat"] {
            #expect(shell("mkdir -p \(bin) && ln -sf \"$(command -v \(tool))\" \(bin)/\(tool)").status == 0)
        }
        if withSudo {
            _ = try dir.write("bin/sudo", "#!/bin/bash\necho \"sudo $*\"\n", mode: 0o755)
        }
        shell("chmod -R a+rX \(dir.path)")
        return bin
    }

    /// Runs `script` as user nobody with only `path` on PATH.
    static func runAsNobody(_ script: String, path: String, env: String = "") -> CommandResult {
        shell("cd \(DeployFilesTests.root) && setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/env -i PATH=\(path) \(env) /bin/bash \(script)")
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to become nobody"),
          arguments: ["deploy/lab/lab.sh", "scripts/test.sh"])
    func notRootWithoutSudoStopsWithAClearMessage(script: String) throws {
        let dir = try ScratchDirectory()
        defer { dir.close() }
        let r = Self.runAsNobody(script, path: try Self.fakePath(dir, withSudo: false))
        #expect(r.status == 1)
        #expect(r.output.contains("must run as root, and sudo is not installed"), "\(r.output)")
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to become nobody"),
          arguments: [("deploy/lab/lab.sh", "LAB_MB=3"), ("scripts/test.sh", "SVRD_TEST_PACKAGE=1")])
    func notRootRunsItselfWithSudoKeepingPathAndSettings(script: String, setting: String) throws {
        let dir = try ScratchDirectory()
        defer { dir.close() }
        let path = try Self.fakePath(dir, withSudo: true)
        let r = Self.runAsNobody(script, path: path, env: setting)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("sudo -- env PATH=/usr/local/sbin:/usr/sbin:/sbin:\(path) \(setting) \(script)"), "\(r.output)")
    }

    @Test func versionNamesTheReleaseAndTheCommit() {
        let svrd = shell("\(svrdBinary) --version")
        #expect(svrd.status == 0)
        // A plain `swift build` (as the tests use) has no commit embedded: it says so.
        #expect(svrd.output.wholeMatch(of: /[0-9]+\.[0-9]+\.[0-9]+ \(unknown commit\)\n/) != nil, "\(svrd.output)")
        let dir = "/tmp/svrd-version-\(getpid())"
        defer { shell("rm -rf \(dir)") }
        let ctl = shell("mkdir -p \(dir) && ln -sf \(svrdBinary) \(dir)/svrctl && \(dir)/svrctl --version")
        #expect(ctl.output == svrd.output)
    }
}

// `svrd doctor` in a network namespace whose settings are broken on purpose (forwarding off,
// strict rp_filter, a foreign nftables table with a drop-policy forward chain and a NAT
// chain, the default ephemeral ports overlapping the waypoint ports): each is found with
// its fix; once fixed, doctor reports them ok and exits 0.

import Glibc
import SVR
@testable import svrd
import TestSupport
import Testing

@Suite(.serialized) struct DoctorTests {
    @Test(.enabled(if: isRoot)) func findsEachBrokenSettingWithItsFixThenNothing() throws {
        try withTestRouter("dr") { ns, dir, config, _ in
            try #require(ns.sh("""
                sysctl -qw net.ipv4.ip_forward=0 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.svrw0.rp_filter=1 \
                  net.ipv4.ip_local_port_range='32768 60999' &&
                nft add table inet svrtfw &&
                nft add chain inet svrtfw forward_drop '{ type filter hook forward priority 0; policy drop; }' &&
                nft add chain inet svrtfw post_nat '{ type nat hook postrouting priority srcnat; }'
                """).status == 0)

            let broken = ns.sh("\(svrdBinary) doctor --config \(config)")
            #expect(broken.status == 2, "\(broken.output)")
            let lines = broken.output.split(separator: "\n").map(String.init)
            func finding(_ prefix: String) -> (line: String, fix: String)? {
                guard let i = lines.firstIndex(where: { $0.hasPrefix(prefix) }) else { return nil }
                let fix = i + 1 < lines.count && lines[i + 1].hasPrefix("        fix: ") ? lines[i + 1] : ""
                return (lines[i], fix)
            }
            let forwarding = finding("PROBLEM ip-forwarding: net.ipv4.ip_forward = 0")
            #expect(forwarding?.fix.contains("sysctl -w net.ipv4.ip_forward=1") == true, "\(broken.output)")
            let rp = finding("WARNING rp-filter: svrw0: strict")
            #expect(rp?.fix.contains("net.ipv4.conf.svrw0.rp_filter=2") == true, "\(broken.output)")
            let fw = finding("WARNING firewall: other nftables tables")
            #expect(fw?.line.contains("inet svrtfw forward_drop (forward, policy drop)") == true, "\(broken.output)")
            #expect(fw?.line.contains("inet svrtfw post_nat (postrouting, nat)") == true, "\(broken.output)")
            #expect(fw?.fix.contains("svr0") == true, "\(broken.output)")
            let ports = finding("WARNING ephemeral-ports: svrw0: waypoint ports 16384-65535,1280 overlap the host's ephemeral ports 32768-60999")
            #expect(ports?.fix.contains("port-range") == true, "\(broken.output)")
            #expect(lines.contains { $0.hasPrefix("ok      tun: /dev/net/tun opens") }, "\(broken.output)")
            #expect(lines.contains { $0.contains(" clock: ") }, "\(broken.output)")
            #expect(lines.contains { $0.contains(" gro: ") }, "\(broken.output)")

            // The same as JSON: every finding that is not ok says how to fix it.
            let json = ns.sh("\(svrdBinary) doctor --json --config \(config) 2>/dev/null")
            let doc = try JSON.parse(json.output)
            let findings = try #require(doc["findings"]?.arrayValue)
            #expect(doc["problems"] == .int(1))
            for f in findings where ["problem", "warning"].contains(f["status"]?.stringValue) {
                #expect(f["fix"]?.stringValue?.isEmpty == false, "\(f)")
            }

            try #require(ns.sh("""
                sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.svrw0.rp_filter=2 net.ipv4.ip_local_port_range='10000 16383' &&
                nft delete table inet svrtfw
                """).status == 0)
            let fixed = ns.sh("\(svrdBinary) doctor --config \(config)")
            #expect(fixed.status == 0, "\(fixed.output)")
            for ok in ["ok      ip-forwarding", "ok      rp-filter: svrw0", "ok      firewall: no nftables table besides svrd's",
                       "ok      ephemeral-ports: svrw0"] {
                #expect(fixed.output.contains(ok), "\(ok)\n\(fixed.output)")
            }
        }
    }
}

/// `svrd support-bundle`: a tar.gz with version, redacted config, doctor and the show
/// documents of the running svrd; the private key appears nowhere in it.
@Suite(.serialized) struct SupportBundleTests {
    @Test(.enabled(if: isRoot)) func bundleHasEverythingButThePrivateKey() throws {
        try withTestRouter("sb") { ns, dir, config, text in
            let keyLine = try #require(text.split(separator: "\n").first { $0.hasPrefix("private-key = ") })
            let key = String(keyLine.dropFirst("private-key = \"".count).dropLast())
            try #require(key.count == 44)

            let p = try DaemonProcess(namespace: ns.name, arguments: ["run", "--config", config], logFile: "\(dir.path)/log")
            defer { p.kill() }
            try #require(ns.waitForControl(socket: "\(dir.path)/ctl/svrd.sock", process: p), "\(p.log)")

            let bundle = "\(dir.path)/bundle.tar.gz"
            let r = ns.sh("\(svrdBinary) support-bundle --config \(config) --out \(bundle)")
            try #require(r.status == 0, "\(r.output)")
            #expect(shell("stat -c %a \(bundle)").output == "600\n")
            try #require(shell("mkdir \(dir.path)/x && tar xzf \(bundle) -C \(dir.path)/x").status == 0)
            let listing = shell("cd \(dir.path)/x && find . -type f | sort").output
            for f in ["version.txt", "host.txt", "svrd.toml", "doctor.json", "show-stats.json", "show-peers.json",
                      "show-services.json", "show-sessions.json"] {
                #expect(listing.contains("/\(f)\n"), "\(f) missing: \(listing)")
            }
            // No private key: neither the base64 nor its bytes in any file, also not compressed away.
            #expect(shell("grep -rlF '\(key)' \(dir.path)/x").output.isEmpty)
            #expect(shell("zcat \(bundle) | grep -caF '\(key)'").output == "0\n")
            let redacted = shell("cat \(dir.path)/x/*/svrd.toml").output
            #expect(redacted.contains("private-key = \"<redacted>\""), "\(redacted)")
            #expect(redacted.contains("name = \"svrd-test\""))
            let stats = try JSON.parse(shell("cat \(dir.path)/x/*/show-stats.json").output)
            #expect(stats["drops"] != nil, "\(stats)")
            #expect(shell("cat \(dir.path)/x/*/version.txt").output.hasPrefix("svrd 0."))
        }
    }

    @Test func redactsTheKeyWhereverItIs() throws {
        let key = try #require(Config.PrivateKey(bytes: Array(repeating: 7, count: 32)))
        let b64 = Base64.encode(key.bytes)
        let text = "[router]\nprivate-key = \"\(b64)\"\n# old key: \(b64)\nrouter.private-key=\"x\"\nprivate-key-file = \"/etc/svrd/private.key\"\n"
        let out = SupportBundleCommand.redact(text, key: key)
        #expect(!out.contains(b64))
        #expect(out == "[router]\nprivate-key = \"<redacted>\"\n# old key: <redacted>\nrouter.private-key= \"<redacted>\"\nprivate-key-file = \"/etc/svrd/private.key\"\n")
    }
}

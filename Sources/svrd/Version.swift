// `svrd --version`: the release number and the git commit the binary was built from.

internal import CShim

enum BuildInfo {
    /// The release number; scripts/package.sh names the Debian package after it.
    static let version = "0.1.0"

    /// The commit, embedded by scripts/package.sh (`-Xcc -DSVRD_GIT_COMMIT=…`); nil for a
    /// plain `swift build`.
    static let commit: String? = {
        let c = String(cString: svrd_build_commit())
        return c.isEmpty ? nil : c
    }()

    /// "0.1.0 (commit 0123abcdef01)" or "0.1.0 (unknown commit)".
    static var versionLine: String {
        if let commit { return "\(version) (commit \(commit))" }
        return "\(version) (unknown commit)"
    }
}
